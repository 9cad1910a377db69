//! `WWW-Authenticate` challenges, token scopes and token responses
//! (Docker's token protocol and its OAuth2 variant).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lowercased scheme: `basic`, `bearer`, …
    pub scheme: String,
    /// Parameters with lowercased names (`realm`, `service`, `scope`, `error`).
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
    pub fn is_bearer(&self) -> bool {
        self.scheme == "bearer"
    }
    pub fn is_basic(&self) -> bool {
        self.scheme == "basic"
    }
}

/// Parses every challenge of a `WWW-Authenticate` value (RFC 7235: a scheme,
/// then `name=value` or `name="quoted, value"` pairs separated by commas; a
/// new scheme may follow after a comma).
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let b = header.as_bytes();
    let mut i = 0;
    let mut out: Vec<Challenge> = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t') {
            *i += 1;
        }
    };
    let is_tchar = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&c);
    while i < b.len() {
        skip_ws(&mut i);
        while i < b.len() && (b[i] == b',' || b[i] == b' ') {
            i += 1;
        }
        let start = i;
        while i < b.len() && is_tchar(b[i]) {
            i += 1;
        }
        if start == i {
            // Not a token: give up on the rest rather than loop.
            if i < b.len() {
                i += 1;
                continue;
            }
            break;
        }
        let word = &header[start..i];
        skip_ws(&mut i);
        if i < b.len() && b[i] == b'=' {
            // A parameter of the current challenge.
            i += 1;
            skip_ws(&mut i);
            let value = if i < b.len() && b[i] == b'"' {
                i += 1;
                let mut v = Vec::new();
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        i += 1;
                    }
                    v.push(b[i]);
                    i += 1;
                }
                i += 1; // closing quote
                String::from_utf8_lossy(&v).into_owned()
            } else {
                let s = i;
                while i < b.len() && b[i] != b',' && b[i] != b' ' {
                    i += 1;
                }
                header[s..i].to_string()
            };
            if let Some(c) = out.last_mut() {
                c.params.insert(word.to_ascii_lowercase(), value);
            }
        } else {
            // A new scheme; token68 forms (`Negotiate abc==`) keep no params.
            out.push(Challenge {
                scheme: word.to_ascii_lowercase(),
                params: BTreeMap::new(),
            });
        }
    }
    out
}

/// Picks the challenge strata can answer: Bearer first, then Basic.
pub fn pick_challenge(challenges: &[Challenge]) -> Option<Challenge> {
    challenges
        .iter()
        .find(|c| c.is_bearer() && c.param("realm").is_some())
        .or_else(|| challenges.iter().find(|c| c.is_basic()))
        .cloned()
}

/// What a request needs: a set of scopes such as `repository:NAME:pull`,
/// `repository:NAME:pull,push` or `registry:catalog:*`, kept normalized
/// (one entry per resource, actions sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Scope {
    entries: BTreeMap<String, Vec<String>>,
}

impl Scope {
    pub fn none() -> Scope {
        Scope::default()
    }

    pub fn pull(repo: &str) -> Scope {
        Scope::none().with_repository(repo, &["pull"])
    }

    pub fn push(repo: &str) -> Scope {
        Scope::none().with_repository(repo, &["pull", "push"])
    }

    pub fn catalog() -> Scope {
        let mut s = Scope::none();
        s.add("registry:catalog:*");
        s
    }

    pub fn with_repository(mut self, repo: &str, actions: &[&str]) -> Scope {
        self.add(&format!("repository:{repo}:{}", actions.join(",")));
        self
    }

    /// Adds one scope string (`TYPE:NAME:ACTIONS`; names may hold colons
    /// for registries with ports in a name, so the actions are after the last one).
    pub fn add(&mut self, scope: &str) {
        let Some((resource, actions)) = scope.rsplit_once(':') else {
            return;
        };
        if !resource.contains(':') {
            return;
        }
        let e = self.entries.entry(resource.to_string()).or_default();
        for a in actions.split(',').filter(|a| !a.is_empty()) {
            if !e.iter().any(|x| x == a) {
                e.push(a.to_string());
            }
        }
        e.sort();
    }

    /// Adds every space-separated scope of a challenge's `scope` parameter.
    pub fn merge_text(&mut self, text: &str) {
        for s in text.split(' ').filter(|s| !s.is_empty()) {
            self.add(s);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The scope strings, one per resource.
    pub fn strings(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|(r, a)| format!("{r}:{}", a.join(",")))
            .collect()
    }

    /// Whether a token asked for with `self` was asked for everything `other` needs.
    pub fn covers(&self, other: &Scope) -> bool {
        other.entries.iter().all(|(r, acts)| {
            self.entries
                .get(r)
                .is_some_and(|have| acts.iter().all(|a| have.iter().any(|h| h == a || h == "*")))
        })
    }

    pub fn key(&self) -> String {
        self.strings().join(" ")
    }
}

/// A token from a token service.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub value: String,
    pub expires: Instant,
    pub scope: Scope,
}

impl Token {
    pub fn fresh(&self) -> bool {
        // Leave room for a request's round trip.
        Instant::now() + Duration::from_secs(10) < self.expires
    }
}

/// The body of a token response (`token` or `access_token`).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_token: Option<String>,
}

impl TokenResponse {
    pub fn value(&self) -> Option<&str> {
        self.token
            .as_deref()
            .filter(|t| !t.is_empty())
            .or(self.access_token.as_deref().filter(|t| !t.is_empty()))
    }

    /// Lifetime: `expires_in`, at least 60 s as the spec says when absent or smaller.
    pub fn lifetime(&self) -> Duration {
        Duration::from_secs(self.expires_in.unwrap_or(60).max(60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_with_quoted_commas() {
        let h = r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push repository:c:pull",error="insufficient_scope""#;
        let c = parse_challenges(h);
        assert_eq!(c.len(), 1);
        assert!(c[0].is_bearer());
        assert_eq!(c[0].param("realm"), Some("https://auth.example/token"));
        assert_eq!(c[0].param("service"), Some("registry.example"));
        assert_eq!(c[0].param("scope"), Some("repository:a/b:pull,push repository:c:pull"));
        assert_eq!(c[0].param("error"), Some("insufficient_scope"));
    }

    #[test]
    fn parses_several_and_escapes() {
        let h = r#"Basic realm="a \"quoted\" realm", Bearer realm=https://x/token, service=s"#;
        let c = parse_challenges(h);
        assert_eq!(c.len(), 2);
        assert!(c[0].is_basic());
        assert_eq!(c[0].param("realm"), Some(r#"a "quoted" realm"#));
        assert_eq!(c[1].param("realm"), Some("https://x/token"));
        assert_eq!(c[1].param("service"), Some("s"));
        assert!(pick_challenge(&c).unwrap().is_bearer());
        assert!(parse_challenges("").is_empty());
        assert_eq!(parse_challenges("BASIC realm=x")[0].scheme, "basic");
        // Garbage never loops or panics.
        for g in [
            "=",
            "\"",
            ",,,",
            "Bearer realm=\"unterminated",
            "Bearer ===",
            "\u{e9}t\u{e9}",
        ] {
            let _ = parse_challenges(g);
        }
    }

    #[test]
    fn scopes() {
        let mut s = Scope::pull("a/b");
        s.merge_text("repository:a/b:push repository:c:pull");
        assert_eq!(s.strings(), ["repository:a/b:pull,push", "repository:c:pull"]);
        assert!(s.covers(&Scope::pull("a/b")));
        assert!(s.covers(&Scope::push("a/b")));
        assert!(!s.covers(&Scope::push("c")));
        assert!(!Scope::pull("a/b").covers(&Scope::push("a/b")));
        assert!(Scope::none().covers(&Scope::none()));
        let mut port = Scope::none();
        port.add("repository:host:5000/x:pull");
        assert_eq!(port.strings(), ["repository:host:5000/x:pull"]);
        assert_eq!(Scope::catalog().strings(), ["registry:catalog:*"]);
    }
}
