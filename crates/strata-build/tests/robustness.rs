//! Random Dockerfile-like input must never panic the parser, the typed layer or the lexer
//! (deterministic pseudo-random inputs, so failures reproduce).

use strata_build::{Lex, parse, parse_dockerfile};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const PIECES: &[&str] = &[
    "FROM ",
    "RUN ",
    "COPY ",
    "ADD ",
    "ENV ",
    "ARG ",
    "LABEL ",
    "ONBUILD ",
    "HEALTHCHECK ",
    "CMD ",
    "SHELL ",
    "EXPOSE ",
    "VOLUME ",
    "WORKDIR ",
    "USER ",
    "STOPSIGNAL ",
    "MAINTAINER ",
    "ENTRYPOINT ",
    "NONE ",
    "AS ",
    "--from=",
    "--mount=",
    "--link ",
    "--",
    "-",
    "<<",
    "<<-",
    "EOF",
    "'",
    "\"",
    "\\",
    "`",
    "$",
    "${",
    "}",
    "{",
    ":",
    ":-",
    ":+",
    ":?",
    "#",
    "##",
    "%",
    "%%",
    "/",
    "//",
    "*",
    "?",
    "=",
    "[",
    "]",
    ",",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\\\n",
    "# escape=`\n",
    "# syntax=x\n",
    "a",
    "b",
    "é",
    "한",
    "\u{0}",
    "\u{a0}",
    "\u{2028}",
    "\u{feff}",
    "\u{fffd}",
    "1",
    "0",
];

#[test]
fn random_inputs_do_not_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let lex = Lex::new('\\');
    let env = |name: &str| {
        name.starts_with(|c: char| c.is_ascii_uppercase())
            .then(|| format!("v{name} x*y"))
    };
    for _ in 0..8_000 {
        let len = rng.below(40);
        let mut src = String::new();
        for _ in 0..len {
            src.push_str(PIECES[rng.below(PIECES.len())]);
        }
        let _ = parse(src.as_bytes());
        let _ = parse_dockerfile(src.as_bytes());
        let _ = lex.process_words(&src, &env);
        let _ = Lex {
            raw_quotes: true,
            raw_escapes: true,
            skip_unset_env: true,
            ..Lex::new('`')
        }
        .process(&src, &env);
    }
}

#[test]
fn random_bytes_do_not_panic() {
    let mut rng = Rng(12345);
    for _ in 0..5_000 {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = parse(&bytes);
        let _ = parse_dockerfile(&bytes);
    }
}
