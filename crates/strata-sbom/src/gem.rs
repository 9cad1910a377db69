//! RubyGems: installed specifications (`…/specifications/*.gemspec`, and
//! `specifications/default/` for default gems). These are Ruby, written by
//! RubyGems in a fixed shape; they are read as text, never evaluated.

use crate::model::{Package, PackageType};

pub(crate) fn parse_gemspec(data: &[u8], path: &str, notes: &mut Vec<String>) -> Option<Package> {
    let text = String::from_utf8_lossy(data);
    let (mut name, mut version, mut licenses) = (None, None, Vec::new());
    for line in text.lines() {
        let line = line.trim();
        // `s.name = "rake".freeze`, `spec.version = "13.0.6"`, `s.licenses = ["MIT".freeze]`
        let Some((lhs, rhs)) = line.split_once('=') else {
            continue;
        };
        let Some((_, attr)) = lhs.trim().rsplit_once('.') else {
            continue;
        };
        match attr.trim() {
            "name" => name = name.or_else(|| quoted(rhs).into_iter().next()),
            "version" => version = version.or_else(|| quoted(rhs).into_iter().next()),
            "license" | "licenses" => licenses.extend(quoted(rhs)),
            _ => {}
        }
    }
    let (Some(name), Some(version)) = (name, version) else {
        notes.push("a gemspec without a name or version; skipped".into());
        return None;
    };
    let mut p = Package::new(PackageType::Gem, name, version, path);
    licenses.dedup();
    p.licenses = licenses;
    Some(p)
}

/// The double- or single-quoted strings in a Ruby expression.
fn quoted(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '"' || c == '\'' {
            let mut v = String::new();
            let mut closed = false;
            while let Some(d) = chars.next() {
                match d {
                    '\\' => v.extend(chars.next()),
                    d if d == c => {
                        closed = true;
                        break;
                    }
                    d => v.push(d),
                }
            }
            if closed && !v.is_empty() && v.len() <= 200 {
                out.push(v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_spec() {
        let spec = "# -*- encoding: utf-8 -*-\n# stub: rake 13.0.6 ruby lib\n\nGem::Specification.new do |s|\n  \
s.name = \"rake\".freeze\n  s.version = \"13.0.6\"\n  s.required_rubygems_version = Gem::Requirement.new(\">= 1.3.2\")\n  \
s.licenses = [\"MIT\".freeze, 'Ruby']\nend\n";
        let mut notes = Vec::new();
        let p = parse_gemspec(spec.as_bytes(), "specifications/rake-13.0.6.gemspec", &mut notes).unwrap();
        assert_eq!((p.name.as_str(), p.version.as_str()), ("rake", "13.0.6"));
        assert_eq!(p.licenses, vec!["MIT", "Ruby"]);
        assert!(parse_gemspec(b"garbage", "x", &mut notes).is_none());
        assert_eq!(notes.len(), 1);
    }
}
