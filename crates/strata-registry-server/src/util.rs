//! Small helpers: random ids, durations, glob patterns, time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// 32 lowercase hex characters from the system's random source.
pub fn random_id() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("the system random source works");
    strata_oci::digest::to_hex(&b)
}

/// Is `s` an upload id this server made (and so safe in a storage key)?
pub fn is_upload_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Parses `90s`, `15m`, `24h`, `7d` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86400),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .map(|n| Duration::from_secs(n * mult))
        .map_err(|_| format!("invalid duration {s:?} (examples: 0s, 90s, 15m, 24h, 7d)"))
}

/// Matches a repository name against a glob: `*` within one path component,
/// `**` across any number of characters including `/`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn m(p: &[u8], n: &[u8]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some(b'*') if p.get(1) == Some(&b'*') => (0..=n.len()).any(|i| m(&p[2..], &n[i..])),
            Some(b'*') => {
                let mut i = 0;
                loop {
                    if m(&p[1..], &n[i..]) {
                        return true;
                    }
                    if i == n.len() || n[i] == b'/' {
                        return false;
                    }
                    i += 1;
                }
            }
            Some(c) => n.first() == Some(c) && m(&p[1..], &n[1..]),
        }
    }
    m(pattern.as_bytes(), name.as_bytes())
}

/// rustls needs one process-wide crypto provider; strata uses ring.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("alice/*", "alice/app"));
        assert!(!glob_match("alice/*", "alice/app/x"));
        assert!(glob_match("alice/**", "alice/app/x"));
        assert!(!glob_match("alice/**", "bob/app"));
        assert!(glob_match("**", "a/b/c"));
        assert!(glob_match("lib*/x", "library/x"));
        assert!(!glob_match("alice", "alice2"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert!(parse_duration("x").is_err());
        assert!(random_id() != random_id() && is_upload_id(&random_id()));
        assert!(!is_upload_id("../../etc/passwd"));
    }
}
