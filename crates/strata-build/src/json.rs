//! Reads the JSON array at the start of an instruction's arguments, as BuildKit does with Go's
//! `json.Decoder`: the first JSON value is read and anything after it is ignored.
//!
//! A syntax error means "not JSON" (the instruction falls back to shell form); a well-formed
//! array with a non-string element is a hard error. Strings are decoded like Go's
//! `encoding/json` (lone surrogates become U+FFFD). Nesting deeper than Go's limit of 10,000 is a
//! syntax error, as in Go. Nothing here recurses, so hostile input cannot exhaust the stack.

/// The outcome of reading a JSON array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonArray {
    /// A well-formed array of strings.
    Strings(Vec<String>),
    /// A well-formed array holding something other than a string.
    NotStrings,
}

const MAX_DEPTH: usize = 10_000;

/// Reads the array at the start of `s` (after leading whitespace); `None` if `s` does not start
/// with a well-formed JSON array.
pub fn parse_array_prefix(s: &str) -> Option<JsonArray> {
    let s = s.trim_start();
    if !s.starts_with('[') {
        return None;
    }
    let mut p = Reader {
        b: s.as_bytes(),
        s,
        i: 1,
    };
    let mut strings = Vec::new();
    let mut all_strings = true;
    p.ws();
    if p.peek() == Some(b']') {
        return Some(JsonArray::Strings(strings));
    }
    loop {
        p.ws();
        if p.peek() == Some(b'"') {
            strings.push(p.string()?);
        } else {
            p.skip_value()?;
            all_strings = false;
        }
        p.ws();
        match p.bump()? {
            b',' => continue,
            b']' => break,
            _ => return None,
        }
    }
    Some(if all_strings {
        JsonArray::Strings(strings)
    } else {
        JsonArray::NotStrings
    })
}

struct Reader<'a> {
    b: &'a [u8],
    s: &'a str,
    i: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.bump()? == c).then_some(())
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.s.get(self.i..self.i + 4)?;
        if !h.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        self.i += 4;
        u32::from_str_radix(h, 16).ok()
    }

    fn string(&mut self) -> Option<String> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            let start = self.i;
            while let Some(c) = self.peek() {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.i += 1;
            }
            out.push_str(&self.s[start..self.i]);
            match self.bump()? {
                b'"' => return Some(out),
                b'\\' => {}
                _ => return None, // a control character
            }
            match self.bump()? {
                b'"' => out.push('"'),
                b'\\' => out.push('\\'),
                b'/' => out.push('/'),
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'u' => {
                    let hi = self.hex4()?;
                    let mut c = char::from_u32(hi);
                    if (0xd800..0xdc00).contains(&hi) && self.b[self.i..].starts_with(b"\\u") {
                        let save = self.i;
                        self.i += 2;
                        match self.hex4() {
                            Some(lo) if (0xdc00..0xe000).contains(&lo) => {
                                c = char::from_u32(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00));
                            }
                            _ => self.i = save,
                        }
                    }
                    out.push(c.unwrap_or('\u{fffd}'));
                }
                _ => return None,
            }
        }
    }

    /// Skips one well-formed JSON value of any kind, without recursion.
    fn skip_value(&mut self) -> Option<()> {
        let mut stack: Vec<u8> = Vec::new();
        loop {
            // A value is expected here.
            self.ws();
            match self.peek()? {
                b'[' => {
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b']') {
                        self.i += 1;
                    } else {
                        stack.push(b'[');
                        if stack.len() >= MAX_DEPTH {
                            return None;
                        }
                        continue;
                    }
                }
                b'{' => {
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                    } else {
                        stack.push(b'{');
                        if stack.len() >= MAX_DEPTH {
                            return None;
                        }
                        self.string()?;
                        self.ws();
                        self.expect(b':')?;
                        continue;
                    }
                }
                b'"' => {
                    self.string()?;
                }
                b't' => self.literal("true")?,
                b'f' => self.literal("false")?,
                b'n' => self.literal("null")?,
                _ => self.number()?,
            }
            // A value ended: close containers until another value is expected.
            loop {
                let Some(&top) = stack.last() else { return Some(()) };
                self.ws();
                match (self.bump()?, top) {
                    (b',', b'[') => break,
                    (b',', _) => {
                        self.ws();
                        self.string()?;
                        self.ws();
                        self.expect(b':')?;
                        break;
                    }
                    (b']', b'[') | (b'}', b'{') => {
                        stack.pop();
                    }
                    _ => return None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Option<JsonArray> {
        Some(JsonArray::Strings(v.iter().map(|s| s.to_string()).collect()))
    }

    #[test]
    fn arrays() {
        assert_eq!(parse_array_prefix("[]"), strings(&[]));
        assert_eq!(parse_array_prefix(" [ \"a\" , \"b\" ] trailing"), strings(&["a", "b"]));
        assert_eq!(
            parse_array_prefix(r#"["\" \\ \/ \b \f \n \r \t \u0000 \u00e9"]"#),
            strings(&["\" \\ / \u{8} \u{c} \n \r \t \0 é"])
        );
        assert_eq!(
            parse_array_prefix(r#"["\ud83d\ude00", "\ud800x"]"#),
            strings(&["😀", "\u{fffd}x"])
        );
        assert_eq!(parse_array_prefix(r#"["a", ["b"]]"#), Some(JsonArray::NotStrings));
        assert_eq!(
            parse_array_prefix(r#"["a", {"k": [1, 2.5e3, -0, true, null]}]"#),
            Some(JsonArray::NotStrings)
        );
        assert_eq!(parse_array_prefix(r#"["a", 1"#), None);
        assert_eq!(parse_array_prefix(r#"['a']"#), None);
        assert_eq!(parse_array_prefix(r#"["a",]"#), None);
        assert_eq!(parse_array_prefix(r#"["a"#), None);
        assert_eq!(parse_array_prefix("[\"a\tb\"]"), None);
        assert_eq!(parse_array_prefix(r#"["\x"]"#), None);
        assert_eq!(parse_array_prefix(r#"[01]"#), None);
        assert_eq!(parse_array_prefix("x"), None);
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let deep = format!("[\"a\", {}{}]", "[".repeat(200_000), "]".repeat(200_000));
        assert_eq!(parse_array_prefix(&deep), None);
        let ok = format!("[\"a\", {}{}]", "[".repeat(100), "]".repeat(100));
        assert_eq!(parse_array_prefix(&ok), Some(JsonArray::NotStrings));
    }
}
