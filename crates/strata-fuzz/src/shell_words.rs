//! `shell_words`: expand one word with a chosen escape character, options
//! and environment.
//!
//! Input: a flags byte (bit 0: escape `` ` `` instead of `\`; bits 1-4:
//! `raw_quotes`, `raw_escapes`, `skip_process_quotes`, `skip_unset_env`),
//! then the word, then optionally `\0` and `KEY=VALUE` lines.

use strata_build::{Lex, env_from_list};

pub fn run(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (word, env) = text.split_once('\0').unwrap_or((&text, ""));
    let env: Vec<&str> = env.lines().collect();
    let env = env_from_list(&env);
    let mut lex = Lex::new(if flags & 1 == 0 { '\\' } else { '`' });
    lex.raw_quotes = flags & 2 != 0;
    lex.raw_escapes = flags & 4 != 0;
    lex.skip_process_quotes = flags & 8 != 0;
    lex.skip_unset_env = flags & 16 != 0;
    crate::dockerfile::expand(&lex, word, &env);
    // A word with nothing to expand, quote or escape comes out as it went in.
    if !word.contains(['$', '\'', '"', lex.escape]) {
        assert_eq!(
            lex.process_word(word, &env).ok().as_deref(),
            Some(word),
            "plain word changed"
        );
    }
}
