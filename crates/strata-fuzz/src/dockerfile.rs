//! `dockerfile`: parse a Dockerfile, group it into stages, and expand every
//! word an instruction's evaluation would expand, with an environment.

use strata_build::{CommandForm, Instruction, Lex, env_from_list, parse, parse_dockerfile};

/// The environment the words are expanded with: set, empty and multi-word
/// values, and one value holding `$` (which must not be expanded again).
const ENV: &[&str] = &[
    "PWD=/home",
    "EMPTY=",
    "WORDS=a b  c",
    "DOLLAR=$HOME",
    "HOME=/root",
    "X=x",
];

/// The words of `ins` that BuildKit expands (and some it does not, which
/// only makes the expander see more input).
fn words(ins: &Instruction) -> Vec<&str> {
    fn cmd(c: &CommandForm) -> Vec<&str> {
        match c {
            CommandForm::Shell(s) => vec![s.as_str()],
            CommandForm::Exec(v) => v.iter().map(String::as_str).collect(),
        }
    }
    let mut out = Vec::new();
    match ins {
        Instruction::From(f) => {
            out.push(f.image.as_str());
            out.extend(f.platform.as_deref());
        }
        Instruction::Run(r) => {
            out.extend(cmd(&r.command));
            out.extend(r.flags.mounts.iter().map(String::as_str));
            out.extend(r.flags.network.as_deref());
            out.extend(r.heredocs.iter().map(|h| h.content.as_str()));
        }
        Instruction::Copy(c) | Instruction::Add(c) => {
            out.extend(c.sources.iter().map(String::as_str));
            out.push(c.dest.as_str());
            out.extend(c.flags.from.as_deref());
            out.extend(c.flags.chown.as_deref());
            out.extend(c.flags.chmod.as_deref());
            out.extend(c.flags.exclude.iter().map(String::as_str));
            out.extend(c.inline_sources.iter().map(|s| s.content.as_str()));
        }
        Instruction::Env(kv) | Instruction::Label(kv) => {
            for (k, v) in kv {
                out.push(k.as_str());
                out.push(v.as_str());
            }
        }
        Instruction::Arg(args) => {
            for (k, v) in args {
                out.push(k.as_str());
                out.extend(v.as_deref());
            }
        }
        Instruction::Workdir(s)
        | Instruction::User(s)
        | Instruction::Stopsignal(s)
        | Instruction::Onbuild(s)
        | Instruction::Maintainer(s) => out.push(s.as_str()),
        Instruction::Expose(v) | Instruction::Volume(v) | Instruction::Shell(v) => {
            out.extend(v.iter().map(String::as_str))
        }
        Instruction::Entrypoint(c) | Instruction::Cmd(c) => out.extend(cmd(c)),
        Instruction::Healthcheck(h) => out.extend(h.test.iter().map(String::as_str)),
    }
    out
}

/// Expands `word` every way the builder does and checks the ways agree.
pub fn expand(lex: &Lex, word: &str, env: &dyn Fn(&str) -> Option<String>) {
    let full = lex.process(word, &env);
    let one = lex.process_word(word, &env);
    let many = lex.process_words(word, &env);
    match full {
        Ok(e) => {
            assert_eq!(
                one.as_ref().ok(),
                Some(&e.result),
                "process_word disagrees with process on {word:?}"
            );
            assert_eq!(
                many.as_ref().ok(),
                Some(&e.words),
                "process_words disagrees with process on {word:?}"
            );
            assert!(
                e.matched.is_disjoint(&e.unmatched),
                "a variable both found and not found in {word:?}"
            );
        }
        Err(_) => assert!(one.is_err() && many.is_err(), "only some expansions of {word:?} failed"),
    }
}

pub fn run(data: &[u8]) {
    let staged = parse_dockerfile(data);
    let ast = parse(data);
    assert_eq!(
        staged.is_ok(),
        ast.is_ok() && strata_build::dockerfile_from_ast(ast.as_ref().unwrap()).is_ok(),
        "parse_dockerfile and parse + dockerfile_from_ast disagree"
    );
    if let Ok(ast) = &ast {
        let _ = ast.dump();
        for node in &ast.nodes {
            let _ = strata_build::parse_instruction(node);
        }
    }
    let Ok(df) = staged else { return };
    let env = env_from_list(ENV);
    for lex in [Lex::new(df.escape), {
        let mut l = Lex::new(df.escape);
        l.skip_unset_env = true;
        l
    }] {
        for (k, v) in &df.global_args {
            expand(&lex, k, &env);
            if let Some(v) = v {
                expand(&lex, v, &env);
            }
        }
        for stage in &df.stages {
            expand(&lex, &stage.base, &env);
            if let Some(p) = &stage.platform {
                expand(&lex, p, &env);
            }
            for step in &stage.instructions {
                for w in words(&step.instruction) {
                    expand(&lex, w, &env);
                }
            }
        }
    }
    let _ = df.stage("0");
}
