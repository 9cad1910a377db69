//! `--change` instructions of `import` and `commit`: the Dockerfile
//! instructions Docker allows there, applied to an image's container config.

use std::collections::BTreeMap;

use serde_json::Value;
use strata_oci::ContainerConfig;

#[derive(Debug, thiserror::Error)]
#[error("invalid --change {line:?}: {reason}")]
pub struct ChangeError {
    pub line: String,
    pub reason: String,
}

const ALLOWED: &[&str] = &[
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Applies one instruction, e.g. `CMD ["sh"]` or `ENV PATH=/bin`.
pub fn apply_change(cfg: &mut ContainerConfig, line: &str) -> Result<(), ChangeError> {
    let fail = |reason: String| ChangeError {
        line: line.to_string(),
        reason,
    };
    let trimmed = line.trim();
    let (kw, rest) = trimmed.split_once(char::is_whitespace).unwrap_or((trimmed, ""));
    let kw = kw.to_ascii_uppercase();
    let rest = rest.trim();
    if !ALLOWED.contains(&kw.as_str()) {
        return Err(fail(format!(
            "{kw} is not allowed here; allowed: {}",
            ALLOWED.join(", ")
        )));
    }
    if rest.is_empty() {
        return Err(fail(format!("{kw} needs an argument")));
    }
    let env_now = cfg.env.clone().unwrap_or_default();
    match kw.as_str() {
        "CMD" => cfg.cmd = Some(exec_or_shell(rest)),
        "ENTRYPOINT" => {
            cfg.entrypoint = Some(exec_or_shell(rest));
            cfg.cmd = None;
        }
        "ENV" | "LABEL" => {
            let pairs = key_values(rest, &env_now).map_err(&fail)?;
            for (k, v) in pairs {
                if kw == "ENV" {
                    cfg.set_env(&k, &v);
                } else {
                    cfg.labels.get_or_insert_with(BTreeMap::new).insert(k, v);
                }
            }
        }
        "EXPOSE" => {
            for w in words(rest, &env_now).map_err(&fail)? {
                let port = if w.contains('/') {
                    w.to_ascii_lowercase()
                } else {
                    format!("{w}/tcp")
                };
                let (num, proto) = port.split_once('/').unwrap_or((&port, "tcp"));
                let valid_num = num.split('-').all(|p| p.parse::<u16>().is_ok());
                if !valid_num || !matches!(proto, "tcp" | "udp" | "sctp") {
                    return Err(fail(format!("invalid port {w:?}")));
                }
                cfg.exposed_ports
                    .get_or_insert_with(BTreeMap::new)
                    .insert(port, Value::Object(Default::default()));
            }
        }
        "VOLUME" => {
            let vols = match json_array(rest) {
                Some(v) => v,
                None => words(rest, &env_now).map_err(&fail)?,
            };
            for v in vols {
                if v.is_empty() {
                    return Err(fail("VOLUME specified can not be an empty string".into()));
                }
                cfg.volumes
                    .get_or_insert_with(BTreeMap::new)
                    .insert(v, Value::Object(Default::default()));
            }
        }
        "USER" => cfg.user = Some(single(rest, &env_now).map_err(&fail)?),
        "WORKDIR" => {
            let w = single(rest, &env_now).map_err(&fail)?;
            // Relative WORKDIRs are relative to the previous one, as in a Dockerfile.
            let base = cfg.working_dir.clone().unwrap_or_else(|| "/".into());
            cfg.working_dir = Some(if w.starts_with('/') {
                w
            } else {
                format!("{}/{w}", base.trim_end_matches('/'))
            });
        }
        "STOPSIGNAL" => cfg.stop_signal = Some(single(rest, &env_now).map_err(&fail)?),
        "ONBUILD" => {
            let inner = rest.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
            if matches!(inner.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                return Err(fail(format!("{inner} isn't allowed as an ONBUILD trigger")));
            }
            cfg.on_build.get_or_insert_with(Vec::new).push(rest.to_string());
        }
        _ => unreachable!("checked against ALLOWED"),
    }
    Ok(())
}

fn json_array(s: &str) -> Option<Vec<String>> {
    if !s.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(s).ok()
}

/// JSON (exec) form, or shell form wrapped in `/bin/sh -c`.
fn exec_or_shell(s: &str) -> Vec<String> {
    json_array(s).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), s.to_string()])
}

fn single(s: &str, env: &[String]) -> Result<String, String> {
    let w = words(s, env)?;
    match w.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(format!("expected exactly one argument, got {}", w.len())),
    }
}

fn lookup<'a>(env: &'a [String], key: &str) -> &'a str {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or("")
}

/// Splits shell-like words: quotes group, backslash escapes, `$VAR` and
/// `${VAR}` expand from `env` (not inside single quotes).
fn words(s: &str, env: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => {
                in_word = true;
                match chars.next() {
                    Some(n) => cur.push(n),
                    None => cur.push('\\'),
                }
            }
            (_, '$') => {
                in_word = true;
                let mut name = String::new();
                if chars.peek() == Some(&'{') {
                    chars.next();
                    for n in chars.by_ref() {
                        if n == '}' {
                            break;
                        }
                        name.push(n);
                    }
                } else {
                    while let Some(&n) = chars.peek() {
                        if n.is_ascii_alphanumeric() || n == '_' {
                            name.push(n);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                if name.is_empty() {
                    cur.push('$');
                } else {
                    cur.push_str(lookup(env, &name));
                }
            }
            (_, c) => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!("unterminated quote {q}"));
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// `k=v k2="v 2"` pairs, or the legacy `k v with spaces` form.
fn key_values(s: &str, env: &[String]) -> Result<Vec<(String, String)>, String> {
    let first = s.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        let (k, v) = s.split_once(char::is_whitespace).ok_or("needs a key and a value")?;
        let v = words(v.trim(), env)?.join(" ");
        return Ok(vec![(k.to_string(), v)]);
    }
    let mut out = Vec::new();
    for w in words(s, env)? {
        let (k, v) = w.split_once('=').ok_or_else(|| format!("{w:?} is not KEY=VALUE"))?;
        if k.is_empty() {
            return Err(format!("{w:?} has an empty key"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_changes() {
        let mut c = ContainerConfig::default();
        apply_change(&mut c, r#"CMD ["/bin/sh"]"#).unwrap();
        apply_change(&mut c, "ENV PATH=/usr/bin:/bin A=\"x y\"").unwrap();
        apply_change(&mut c, "ENV B $A-z").unwrap();
        apply_change(&mut c, "WORKDIR /app").unwrap();
        apply_change(&mut c, "WORKDIR sub").unwrap();
        apply_change(&mut c, "EXPOSE 80 53/udp").unwrap();
        apply_change(&mut c, "LABEL a=b").unwrap();
        apply_change(&mut c, "USER 1000:1000").unwrap();
        apply_change(&mut c, "VOLUME /data").unwrap();
        apply_change(&mut c, "ENTRYPOINT echo hi").unwrap();
        assert_eq!(c.cmd, None);
        assert_eq!(c.entrypoint.unwrap(), vec!["/bin/sh", "-c", "echo hi"]);
        assert_eq!(c.env.unwrap(), vec!["PATH=/usr/bin:/bin", "A=x y", "B=x y-z"]);
        assert_eq!(c.working_dir.unwrap(), "/app/sub");
        assert!(c.exposed_ports.as_ref().unwrap().contains_key("80/tcp"));
        assert!(c.exposed_ports.as_ref().unwrap().contains_key("53/udp"));
        assert_eq!(c.user.unwrap(), "1000:1000");
        assert!(
            apply_change(&mut ContainerConfig::default(), "RUN x")
                .unwrap_err()
                .to_string()
                .contains("not allowed")
        );
        assert!(apply_change(&mut ContainerConfig::default(), "EXPOSE http").is_err());
        assert!(apply_change(&mut ContainerConfig::default(), "ENV").is_err());
    }
}
