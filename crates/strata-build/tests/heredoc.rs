//! Heredoc extraction, checked against the cases of BuildKit's `parser_heredoc_test.go`.

use strata_build::parser::parse_heredoc;
use strata_build::{Heredoc, parse};

fn h(name: &str, content: &str, expand: bool, chomp: bool, fd: u32) -> Heredoc {
    Heredoc {
        name: name.into(),
        file_descriptor: fd,
        expand,
        chomp,
        content: content.into(),
    }
}

const SRC: &str = r#"
FROM alpine:3.6

ENV NAME=me

RUN ls

RUN <<EMPTY
EMPTY

RUN 3<<EMPTY2
EMPTY2

RUN "<<NOHEREDOC"

RUN <<INDENT
	foo
	bar
INDENT

RUN <<-UNINDENT
	baz
	quux
UNINDENT

RUN <<-UNINDENT2
	baz
	quux
	UNINDENT2

RUN <<-EXPAND
	expand $NAME
EXPAND

RUN <<-'NOEXPAND'
	don't expand $NAME
NOEXPAND

RUN <<COPY
echo hello world
echo foo bar
COPY

RUN <<COMMENT
# internal comment
echo hello world
echo foo bar # trailing comment
COMMENT

RUN --mount=type=cache,target=/foo <<MOUNT
echo hello
MOUNT

COPY <<FILE1 <<FILE2 /dest
content 1
FILE1
content 2
FILE2

COPY <<EOF /quotes
"foo"
'bar'
EOF

COPY <<X <<Y /dest
Y
X
X
Y

RUN <<COMPLEX python3
print('hello world')
COMPLEX

COPY <<file.txt /dest
hello world
file.txt

RUN <<eo'f'
echo foo
eof

RUN <<eo\'f
echo foo
eo'f

RUN <<'e'o\'f
echo foo
eo'f

RUN <<'one two'
echo bar
one two

RUN <<$EOF
$EOF

RUN <<  EOF
EOF

RUN <<  EOF  > foo
EOF
	"#;

#[test]
fn extracts_heredocs_like_buildkit() {
    let expected: Vec<Vec<Heredoc>> = vec![
        vec![],
        vec![],
        vec![h("EMPTY", "", true, false, 0)],
        vec![h("EMPTY2", "", true, false, 3)],
        vec![],
        vec![h("INDENT", "\tfoo\n\tbar\n", true, false, 0)],
        vec![h("UNINDENT", "\tbaz\n\tquux\n", true, true, 0)],
        vec![h("UNINDENT2", "\tbaz\n\tquux\n", true, true, 0)],
        vec![h("EXPAND", "\texpand $NAME\n", true, true, 0)],
        vec![h("NOEXPAND", "\tdon't expand $NAME\n", false, true, 0)],
        vec![h("COPY", "echo hello world\necho foo bar\n", true, false, 0)],
        vec![h(
            "COMMENT",
            "# internal comment\necho hello world\necho foo bar # trailing comment\n",
            true,
            false,
            0,
        )],
        vec![h("MOUNT", "echo hello\n", true, false, 0)],
        vec![
            h("FILE1", "content 1\n", true, false, 0),
            h("FILE2", "content 2\n", true, false, 0),
        ],
        vec![h("EOF", "\"foo\"\n'bar'\n", true, false, 0)],
        vec![h("X", "Y\n", true, false, 0), h("Y", "X\n", true, false, 0)],
        vec![h("COMPLEX", "print('hello world')\n", true, false, 0)],
        vec![h("file.txt", "hello world\n", true, false, 0)],
        vec![h("eof", "echo foo\n", false, false, 0)],
        vec![h("eo'f", "echo foo\n", true, false, 0)],
        vec![h("eo'f", "echo foo\n", false, false, 0)],
        vec![h("one two", "echo bar\n", false, false, 0)],
        vec![h("$EOF", "", true, false, 0)],
        vec![h("EOF", "", true, false, 0)],
        vec![h("EOF", "", true, false, 0)],
    ];
    let ast = parse(SRC.as_bytes()).unwrap();
    assert_eq!(ast.nodes.len(), expected.len() + 1);
    for (node, want) in ast.nodes[1..].iter().zip(&expected) {
        assert_eq!(&node.heredocs, want, "{}", node.original);
    }
}

#[test]
fn json_form_has_no_heredocs() {
    let ast = parse(b"FROM alpine:3.6\nRUN [\"whoami\"]\nRUN [\"<<EOF\"]\nRUN [\"<<'EOF'\"]\n").unwrap();
    assert!(ast.nodes.iter().all(|n| n.heredocs.is_empty()));
}

#[test]
fn heredoc_markers() {
    for src in [
        "<<EOF",
        "<<'EOF'",
        "<<\"EOF\"",
        "<<-EOF",
        "<<-'EOF'",
        "<<-\"EOF\"",
        "<<EO\"F\"",
        "<< EOF",
        "<<- EOF",
    ] {
        assert_eq!(
            parse_heredoc(src).unwrap().map(|h| h.name).as_deref(),
            Some("EOF"),
            "{src}"
        );
    }
    for src in ["<<'EOF", "<<\"EOF", "<<EOF'", "<<EOF\""] {
        assert!(parse_heredoc(src).is_err(), "{src}");
    }
    for src in ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh"] {
        assert_eq!(parse_heredoc(src).unwrap(), None, "{src}");
    }
}

#[test]
fn heredoc_names_from_lines() {
    let cases: &[(&str, &[&str])] = &[
        ("RUN <<EOF", &["EOF"]),
        ("RUN <<-EOF", &["EOF"]),
        // BuildKit's lexer keeps blanks only right after `<<`, so `<<-` and `EOF` are two words
        // here and there is no heredoc (its own test passes vacuously on this line).
        ("RUN <<- EOF", &[]),
        ("RUN << -EOF", &["-EOF"]),
        ("RUN <<'EOF'", &["EOF"]),
        ("RUN 4<<EOF", &["EOF"]),
        ("RUN <<EOF <<EOF2", &["EOF", "EOF2"]),
        ("RUN '<<EOF'", &[]),
        ("RUN \"<<EOF\"", &[]),
    ];
    for (line, names) in cases {
        // Give every heredoc an empty body so that the file parses.
        let mut src = format!("FROM a\n{line}\n");
        for name in *names {
            src.push_str(name);
            src.push('\n');
        }
        let ast = parse(src.as_bytes()).unwrap();
        let got: Vec<&str> = ast.nodes[1].heredocs.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(&got, names, "{line}");
    }
}

#[test]
fn heredoc_line_numbers_and_crlf() {
    let ast = parse(b"FROM a\r\nRUN <<EOF\r\nline\r\nEOF\r\nRUN b\r\n").unwrap();
    assert_eq!(ast.nodes[1].heredocs[0].content, "line\r\n");
    assert_eq!((ast.nodes[1].start_line, ast.nodes[1].end_line), (2, 4));
    assert_eq!(ast.nodes[2].start_line, 5);
    let err = parse(b"FROM a\nCOPY <<A <<B /x\na\nA\nb\n").unwrap_err();
    assert_eq!(err.line, 2);
    assert!(err.message.contains("unterminated heredoc \"B\""), "{err}");
}
