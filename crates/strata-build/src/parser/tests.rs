use super::*;

fn dump(src: &str) -> String {
    parse(src.as_bytes()).unwrap().dump()
}

fn err(src: &[u8]) -> String {
    parse(src).unwrap_err().to_string()
}

#[test]
fn basic_and_lines() {
    let ast = parse(b"# syntax=docker/dockerfile:1\n# check=skip=all\nFROM alpine AS base\n\nRUN a \\\n  b\nrun c\n")
        .unwrap();
    assert_eq!(ast.directive("syntax"), Some("docker/dockerfile:1"));
    assert_eq!(ast.directive("check"), Some("skip=all"));
    assert_eq!(
        ast.dump(),
        "(from \"alpine\" \"AS\" \"base\")\n(run \"a   b\")\n(run \"c\")\n"
    );
    let lines: Vec<_> = ast.nodes.iter().map(|n| (n.start_line, n.end_line)).collect();
    assert_eq!(lines, vec![(3, 3), (5, 6), (7, 7)]);
    assert_eq!(ast.nodes[1].original, "RUN a   b");
}

#[test]
fn directives() {
    assert_eq!(
        err(b"# escape=x\nFROM a\n"),
        "line 1: invalid escape token 'x' does not match ` or \\"
    );
    assert_eq!(
        err(b"# escape=`\n# escape=\\\nFROM a\n"),
        "line 2: only one escape parser directive can be used"
    );
    assert_eq!(
        err(b"# escape=  \nFROM a\n"),
        "line 1: invalid escape token ' ' does not match ` or \\"
    );
    assert_eq!(match_directive("#  Syntax =  a b  "), Some(("Syntax", "a b")));
    assert_eq!(match_directive("#syntax"), None);
    assert_eq!(match_directive("# 1x=y"), None);
    assert_eq!(match_directive("# x="), None);
    // A directive after an instruction or an unknown directive is a comment.
    let ast = parse(b"# foo=bar\n# escape=`\nFROM a \\\nb\n").unwrap();
    assert_eq!(ast.escape, '\\');
    assert!(ast.directives.is_empty());
    assert_eq!(ast.dump(), "(from \"a\" \"b\")\n");
    let ast = parse(b"\xEF\xBB\xBF# escape=`\r\nFROM a `\r\n  b\r\n").unwrap();
    assert_eq!(ast.escape, '`');
    assert_eq!(ast.dump(), "(from \"a\" \"b\")\n");
}

#[test]
fn heredocs() {
    let src =
        "FROM a\nRUN <<EOF\necho $X\nEOF\nRUN <<-\"EOF\" 3<<'B' cat\n\t\tone\n\tEOF\ntwo\nB\nCOPY <<EOF /dst\nx\nEOF\n";
    let ast = parse(src.as_bytes()).unwrap();
    let run = &ast.nodes[1];
    assert_eq!(run.next, vec!["<<EOF"]);
    assert_eq!(run.heredocs.len(), 1);
    assert_eq!(run.heredocs[0].content, "echo $X\n");
    assert!(run.heredocs[0].expand);
    assert_eq!((run.start_line, run.end_line), (2, 4));
    let run2 = &ast.nodes[2];
    assert_eq!(run2.heredocs.len(), 2);
    let h = &run2.heredocs[0];
    assert_eq!((h.name.as_str(), h.chomp, h.expand), ("EOF", true, false));
    assert_eq!(h.content, "\t\tone\n");
    assert_eq!(h.processed_content(), "one\n");
    let h = &run2.heredocs[1];
    assert_eq!(
        (h.name.as_str(), h.file_descriptor, h.expand, h.content.as_str()),
        ("B", 3, false, "two\n")
    );
    let copy = &ast.nodes[3];
    assert_eq!(copy.next, vec!["<<EOF", "/dst"]);
    assert_eq!(copy.heredocs[0].content, "x\n");
    assert_eq!((copy.start_line, copy.end_line), (10, 12));
    // JSON form and other instructions take no heredocs.
    let ast = parse(b"FROM a\nRUN [\"<<EOF\"]\nLABEL a=<<EOF\nRUN echo '<<EOF'\n").unwrap();
    assert!(ast.nodes.iter().all(|n| n.heredocs.is_empty()));
    // ONBUILD passes heredocs to its instruction.
    let ast = parse(b"FROM a\nONBUILD RUN <<EOF\nhi\nEOF\n").unwrap();
    assert_eq!(ast.nodes[1].heredocs[0].content, "hi\n");
}

#[test]
fn heredoc_errors() {
    assert_eq!(
        err(b"FROM a\nRUN <<EOF\necho\n"),
        "line 2: unterminated heredoc \"EOF\" (no line \"EOF\" before the end of the file)"
    );
    assert_eq!(parse_heredoc("<<EOF").unwrap().unwrap().name, "EOF");
    assert!(parse_heredoc("<<").unwrap().is_none());
    assert!(parse_heredoc("<<a b").unwrap().is_none());
    assert!(parse_heredoc("x<<EOF").unwrap().is_none());
    assert!(parse_heredoc("<<\"EOF\"").unwrap().is_some_and(|h| !h.expand));
    assert!(
        parse_heredoc("<<E\"O\"F")
            .unwrap()
            .is_some_and(|h| !h.expand && h.name == "EOF")
    );
}

#[test]
fn flags_and_json() {
    assert_eq!(
        dump("COPY --from=build --chown=\"a b\" --link -- x y\nRUN --mount=type=cache,target=/c [\"a\"]\n"),
        "(copy [\"--from=build\" \"--chown=a b\" \"--link\"] \"x\" \"y\")\n(run [\"--mount=type=cache,target=/c\"] \"a\")\n"
    );
    assert_eq!(dump("CMD [\"a\"] trailing\n"), "(cmd \"a\")\n");
    assert_eq!(
        dump("ENTRYPOINT [\"a\", \"b\"\n"),
        "(entrypoint \"[\\\"a\\\", \\\"b\\\"\")\n"
    );
    assert_eq!(
        err(b"CMD [\"a\", 1]\n"),
        "line 1: when using JSON array syntax, arrays must be comprised of strings only"
    );
    assert_eq!(dump("HEALTHCHECK NONE\n"), "(healthcheck \"NONE\")\n");
    assert_eq!(dump("ONBUILD\n"), "(onbuild)\n");
    assert_eq!(
        dump("ONBUILD copy --from=x a b\n"),
        "(onbuild (copy [\"--from=x\"] \"a\" \"b\"))\n"
    );
    assert_eq!(dump("FROM\n"), "(from)\n");
}

#[test]
fn env_forms() {
    assert_eq!(dump("ENV a b c\n"), "(env \"a\" \"b c\" \"\")\n");
    assert_eq!(
        dump("ENV a=1 b=\"x y\"\n"),
        "(env \"a\" \"1\" \"=\" \"b\" \"\\\"x y\\\"\" \"=\")\n"
    );
    assert_eq!(
        err(b"FROM a\nENV a=1 b\n"),
        "line 2: Syntax error - can't find = in \"b\". Must be of the form: name=value"
    );
    assert_eq!(err(b"FROM a\nLABEL a\n"), "line 2: LABEL must have two arguments");
    assert_eq!(dump("ENV\n"), "(env)\n");
}

#[test]
fn unknown_and_empty() {
    assert_eq!(
        err(b"FORM alpine\n"),
        "line 1: unknown instruction: FORM (did you mean from?)"
    );
    assert_eq!(
        err(b"FROM a\n\nBOGUSWORD x\n"),
        "line 3: unknown instruction: BOGUSWORD"
    );
    assert_eq!(err(b""), "line 1: file with no instructions");
    assert_eq!(err(b"# just a comment\n\n   \n"), "line 3: file with no instructions");
    assert_eq!(
        err(b"FROM a\nONBUILD FORM b\n"),
        "line 2: unknown instruction: FORM (did you mean from?)"
    );
}

#[test]
fn words() {
    let cases: &[(&str, &[&str])] = &[
        ("foo", &["foo"]),
        ("foo bar", &["foo", "bar"]),
        ("foo\\ bar", &["foo\\ bar"]),
        ("foo=bar", &["foo=bar"]),
        ("foo bar 'abc xyz'", &["foo", "bar", "'abc xyz'"]),
        ("foo bar \"abc xyz\"", &["foo", "bar", "\"abc xyz\""]),
        ("àöû", &["àöû"]),
        ("föo bàr \"âbc xÿz\"", &["föo", "bàr", "\"âbc xÿz\""]),
        ("a\\", &["a"]),
    ];
    for (input, expected) in cases {
        assert_eq!(parse_words(input, '\\'), *expected, "{input}");
    }
}

#[test]
fn empty_continuation_warnings() {
    let src = "\nFROM alpine:3.6\n\nRUN something \\\n\n    following \\\n\n    more\n\nRUN another \\\n\n    thing\n\
               RUN non-indented \\\n# this is a comment\n   after-comment\n\nRUN indented \\\n    # this is an indented comment\n    comment\n\t";
    let ast = parse(src.as_bytes()).unwrap();
    assert_eq!(ast.warnings.len(), 2, "{:?}", ast.warnings);
    assert!(ast.warnings[0].contains("RUN something     following     more"));
    assert!(ast.warnings[1].contains("RUN another     thing"));
    let lines: Vec<_> = ast.nodes.iter().map(|n| (n.start_line, n.end_line)).collect();
    assert_eq!(lines, vec![(2, 2), (4, 8), (10, 12), (13, 15), (17, 19)]);
    assert_eq!(ast.nodes[3].next, vec!["non-indented    after-comment"]);
}

#[test]
fn hostile_input() {
    let mut long = b"FROM a\nRUN ".to_vec();
    long.extend(std::iter::repeat_n(b'x', MAX_LINE_LEN));
    assert_eq!(
        err(&long),
        "line 2: dockerfile line greater than max allowed size of 65535"
    );
    long.truncate(long.len() - 4);
    assert!(parse(&long).is_ok());
    // NUL bytes and invalid UTF-8 do not break anything.
    let ast = parse(b"FROM a\0b\nRUN \xff\xfe x\n").unwrap();
    assert_eq!(ast.dump(), "(from \"a\\x00b\")\n(run \"\u{fffd}\u{fffd} x\")\n");
    // Deeply nested JSON is a syntax error (shell form), not a crash.
    let deep = format!("CMD {}\n", "[".repeat(60_000));
    assert_eq!(parse(deep.as_bytes()).unwrap().nodes[0].next.len(), 1);
    // Many continuation lines.
    let many = format!("RUN a{}\n", " \\\n b".repeat(50_000));
    let ast = parse(many.as_bytes()).unwrap();
    assert_eq!(ast.nodes[0].end_line, 50_001);
    // Lots of heredocs on one line, all unterminated.
    let heredocs = format!("RUN {}\n", "<<A ".repeat(1000));
    assert!(parse(heredocs.as_bytes()).is_err());
}
