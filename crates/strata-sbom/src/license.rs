//! License strings as packages state them (`GPL-2+`, `MIT License`,
//! `Apache-2.0 OR MIT`) turned into SPDX license expressions for the SPDX
//! and CycloneDX documents: known identifiers (any case), Debian's and
//! Python classifiers' usual names, `and`/`or`/`with` in any case. Anything
//! else becomes a `LicenseRef-…` that carries the original text.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::license_ids::{EXCEPTION_IDS, LICENSE_IDS};

fn table(ids: &'static str) -> HashMap<String, &'static str> {
    ids.split_whitespace().map(|id| (id.to_ascii_lowercase(), id)).collect()
}

fn licenses() -> &'static HashMap<String, &'static str> {
    static T: OnceLock<HashMap<String, &'static str>> = OnceLock::new();
    T.get_or_init(|| table(LICENSE_IDS))
}

fn exceptions() -> &'static HashMap<String, &'static str> {
    static T: OnceLock<HashMap<String, &'static str>> = OnceLock::new();
    T.get_or_init(|| table(EXCEPTION_IDS))
}

/// Whole-string names that are not identifiers (lowercased).
const ALIASES: &[(&str, &str)] = &[
    ("expat", "MIT"),
    ("mit license", "MIT"),
    ("the mit license", "MIT"),
    ("mit/x11", "MIT"),
    ("apache software license", "Apache-2.0"),
    ("apache 2.0", "Apache-2.0"),
    ("apache 2", "Apache-2.0"),
    ("apache-2", "Apache-2.0"),
    ("apache license 2.0", "Apache-2.0"),
    ("apache license, version 2.0", "Apache-2.0"),
    ("apache license version 2.0", "Apache-2.0"),
    ("asl 2.0", "Apache-2.0"),
    ("artistic", "Artistic-1.0-Perl"),
    ("psf", "PSF-2.0"),
    ("psfl", "PSF-2.0"),
    ("python software foundation license", "PSF-2.0"),
    ("isc license (iscl)", "ISC"),
    ("isc license", "ISC"),
    ("mozilla public license 2.0 (mpl 2.0)", "MPL-2.0"),
    ("the unlicense (unlicense)", "Unlicense"),
    ("boost software license 1.0 (bsl-1.0)", "BSL-1.0"),
    ("eclipse public license 2.0 (epl-2.0)", "EPL-2.0"),
    ("gnu general public license v2 (gplv2)", "GPL-2.0-only"),
    ("gnu general public license v2 or later (gplv2+)", "GPL-2.0-or-later"),
    ("gnu general public license v3 (gplv3)", "GPL-3.0-only"),
    ("gnu general public license v3 or later (gplv3+)", "GPL-3.0-or-later"),
    ("gnu lesser general public license v2 (lgplv2)", "LGPL-2.0-only"),
    (
        "gnu lesser general public license v2 or later (lgplv2+)",
        "LGPL-2.0-or-later",
    ),
    ("gnu lesser general public license v3 (lgplv3)", "LGPL-3.0-only"),
    (
        "gnu lesser general public license v3 or later (lgplv3+)",
        "LGPL-3.0-or-later",
    ),
    ("gnu affero general public license v3", "AGPL-3.0-only"),
    (
        "gnu affero general public license v3 or later (agplv3+)",
        "AGPL-3.0-or-later",
    ),
];

/// A license string as SPDX sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Spdx {
    /// A valid SPDX expression (possibly one `LicenseRef-…`).
    pub expression: String,
    /// Set when `expression` is one listed identifier.
    pub id: Option<String>,
    /// Set when `expression` is a `LicenseRef-…` made from this text.
    pub extracted: Option<String>,
}

pub(crate) fn to_spdx(raw: &str) -> Spdx {
    let raw = raw.trim();
    if let Some(id) = whole(raw) {
        return Spdx {
            expression: id.clone(),
            id: Some(id),
            extracted: None,
        };
    }
    match expression(raw) {
        Some((e, single)) => Spdx {
            id: single.then(|| e.clone()),
            expression: e,
            extracted: None,
        },
        None => Spdx {
            expression: license_ref(raw),
            id: None,
            extracted: Some(raw.to_owned()),
        },
    }
}

fn whole(raw: &str) -> Option<String> {
    let lower = raw.to_ascii_lowercase();
    if let Some((_, id)) = ALIASES.iter().find(|(a, _)| *a == lower) {
        return Some((*id).to_owned());
    }
    licenses().get(&lower).map(|s| (*s).to_owned()).or_else(|| gnu(raw))
}

/// `GPL-2`, `GPL-2+`, `GPLv2+`, `LGPL-2.1`, `GPL-2.0+`, `GFDL-1.3+` → the
/// current `-only` / `-or-later` identifiers.
fn gnu(tok: &str) -> Option<String> {
    let upper = tok.to_ascii_uppercase();
    let family = ["AGPL", "LGPL", "GPL", "GFDL"]
        .into_iter()
        .find(|f| upper.starts_with(f))?;
    let rest = &upper[family.len()..];
    let rest = rest
        .strip_prefix('-')
        .or_else(|| rest.strip_prefix('V'))
        .unwrap_or(rest);
    let (ver, later) = if let Some(v) = rest.strip_suffix('+') {
        (v, true)
    } else if let Some(v) = rest.strip_suffix("-OR-LATER") {
        (v, true)
    } else {
        (rest.strip_suffix("-ONLY").unwrap_or(rest), false)
    };
    if ver.is_empty() || !ver.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let ver = if ver.contains('.') {
        ver.to_owned()
    } else {
        format!("{ver}.0")
    };
    let id = format!("{family}-{ver}-{}", if later { "or-later" } else { "only" });
    licenses().get(&id.to_ascii_lowercase()).map(|s| (*s).to_owned())
}

fn operand(tok: &str) -> Option<String> {
    if let Some(id) = whole(tok) {
        return Some(id);
    }
    let base = tok.strip_suffix('+')?;
    licenses().get(&base.to_ascii_lowercase()).map(|id| format!("{id}+"))
}

/// `(expression, is a single identifier)` when every part is known.
fn expression(raw: &str) -> Option<(String, bool)> {
    let spaced = raw.replace('(', " ( ").replace(')', " ) ");
    let toks: Vec<&str> = spaced.split_whitespace().collect();
    let mut out: Vec<String> = Vec::new();
    let (mut want_operand, mut depth, mut operators) = (true, 0usize, 0usize);
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i];
        let lower = t.to_ascii_lowercase();
        match lower.as_str() {
            "(" if want_operand => {
                depth += 1;
                out.push("(".into());
            }
            ")" if !want_operand && depth > 0 => {
                depth -= 1;
                out.push(")".into());
            }
            "and" | "or" if !want_operand => {
                out.push(lower.to_ascii_uppercase());
                want_operand = true;
                operators += 1;
            }
            "with" if !want_operand => {
                i += 1;
                let exc = exceptions().get(&toks.get(i)?.to_ascii_lowercase())?;
                out.push(format!("WITH {exc}"));
                operators += 1;
            }
            _ if want_operand && !matches!(lower.as_str(), "(" | ")" | "and" | "or" | "with") => {
                out.push(operand(t)?);
                want_operand = false;
            }
            _ => return None,
        }
        i += 1;
    }
    if want_operand || depth != 0 {
        return None;
    }
    let single = operators == 0 && out.len() == 1 && !out[0].ends_with('+');
    Some((out.join(" ").replace("( ", "(").replace(" )", ")"), single))
}

/// `LicenseRef-` and the text's letters, digits, `.` and `-`.
pub(crate) fn license_ref(raw: &str) -> String {
    let mut s = String::from("LicenseRef-");
    let mut dash = true;
    for c in raw.chars().take(64) {
        if c.is_ascii_alphanumeric() || c == '.' {
            s.push(c);
            dash = false;
        } else if !dash {
            s.push('-');
            dash = true;
        }
    }
    while s.ends_with('-') && s.len() > "LicenseRef-".len() {
        s.pop();
    }
    if s.len() == "LicenseRef-".len() {
        s.push_str("unknown");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(raw: &str) -> String {
        to_spdx(raw).expression
    }

    #[test]
    fn normalizes() {
        assert_eq!(
            to_spdx("MIT"),
            Spdx {
                expression: "MIT".into(),
                id: Some("MIT".into()),
                extracted: None
            }
        );
        assert_eq!(e("mit"), "MIT");
        assert_eq!(e("BSD-3-clause"), "BSD-3-Clause");
        assert_eq!(e("GPL-2+"), "GPL-2.0-or-later");
        assert_eq!(e("GPL-2"), "GPL-2.0-only");
        assert_eq!(e("LGPL-2.1+ or Artistic"), "LGPL-2.1-or-later OR Artistic-1.0-Perl");
        assert_eq!(e("GPL-2.0+"), "GPL-2.0-or-later");
        assert_eq!(
            e("(MIT OR Apache-2.0) AND Unicode-DFS-2016"),
            "(MIT OR Apache-2.0) AND Unicode-DFS-2016"
        );
        assert_eq!(
            e("GPL-2.0-or-later WITH Classpath-exception-2.0"),
            "GPL-2.0-or-later WITH Classpath-exception-2.0"
        );
        assert_eq!(e("MIT License"), "MIT");
        assert_eq!(e("Apache 2.0"), "Apache-2.0");
        assert_eq!(to_spdx("Apache-2.0 OR MIT").id, None);
        let r = to_spdx("public-domain");
        assert_eq!(
            (r.expression.as_str(), r.extracted.as_deref()),
            ("LicenseRef-public-domain", Some("public-domain"))
        );
        assert_eq!(e("MIT AND"), "LicenseRef-MIT-AND");
        assert_eq!(e("(MIT"), "LicenseRef-MIT");
        assert_eq!(e("BSD License"), "LicenseRef-BSD-License");
        assert_eq!(e("???"), "LicenseRef-unknown");
    }
}
