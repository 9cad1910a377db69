//! `--change` instructions of `import` and `commit`: the Dockerfile
//! instructions Docker allows there, applied to an image's container config.

use std::collections::BTreeMap;

use serde_json::Value;
use strata_build::parser::INSTRUCTIONS;
use strata_build::{CommandForm, Instruction, Lex, ParseError, env_from_list, parse, parse_instruction};
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
///
/// The text is parsed as a Dockerfile by `strata-build` (as Docker parses `--change` with its
/// Dockerfile parser), so quoting, JSON and shell forms and the `KEY=VALUE` lists are
/// BuildKit's; `$VARIABLES` in ENV, LABEL, EXPOSE, VOLUME, USER, WORKDIR and STOPSIGNAL expand
/// against the config's ENV with BuildKit's expansion, CMD, ENTRYPOINT and ONBUILD are kept as
/// written. Several lines in one text are applied in order.
pub fn apply_change(cfg: &mut ContainerConfig, line: &str) -> Result<(), ChangeError> {
    let fail = |reason: String| ChangeError {
        line: line.to_string(),
        reason,
    };
    // Refuse a disallowed instruction before parsing it, so that its own syntax errors
    // (an unterminated `RUN <<EOF`, say) don't hide that it can't be used here.
    let first = line.split_whitespace().next().unwrap_or("");
    if INSTRUCTIONS.contains(&first.to_ascii_lowercase().as_str()) {
        check_allowed(first).map_err(fail)?;
    }
    let ast = parse(line.as_bytes()).map_err(|e| fail(parse_reason(e)))?;
    let mut instructions = Vec::with_capacity(ast.nodes.len());
    for node in &ast.nodes {
        check_allowed(&node.value).map_err(fail)?;
        instructions.push(parse_instruction(node).map_err(|e| fail(parse_reason(e)))?);
    }
    let lex = Lex::new(ast.escape);
    for instruction in instructions {
        apply(cfg, instruction, &lex).map_err(fail)?;
    }
    Ok(())
}

fn check_allowed(keyword: &str) -> Result<(), String> {
    let kw = keyword.to_ascii_uppercase();
    if ALLOWED.contains(&kw.as_str()) {
        return Ok(());
    }
    Err(format!("{kw} is not allowed here; allowed: {}", ALLOWED.join(", ")))
}

/// The parser's message, located only when the change has several lines.
fn parse_reason(e: ParseError) -> String {
    if e.line > 1 { e.to_string() } else { e.message }
}

fn apply(cfg: &mut ContainerConfig, instruction: Instruction, lex: &Lex) -> Result<(), String> {
    // Every word expands against the ENV from before the instruction, as in a Dockerfile.
    let env_now = cfg.env.clone().unwrap_or_default();
    let lookup = env_from_list(&env_now);
    let word = |w: &str| lex.process_word(w, &lookup).map_err(|e| e.to_string());
    match instruction {
        Instruction::Cmd(form) => cfg.cmd = Some(command(cfg, form)),
        Instruction::Entrypoint(form) => {
            cfg.entrypoint = Some(command(cfg, form));
            cfg.cmd = None;
        }
        Instruction::Env(pairs) => {
            for (k, v) in pairs {
                let (k, v) = (word(&k)?, word(&v)?);
                cfg.set_env(&k, &v);
            }
        }
        Instruction::Label(pairs) => {
            for (k, v) in pairs {
                let (k, v) = (word(&k)?, word(&v)?);
                cfg.labels.get_or_insert_with(BTreeMap::new).insert(k, v);
            }
        }
        Instruction::Expose(ports) => {
            for p in ports {
                // EXPOSE alone splits an expansion into several ports, as Docker does.
                for w in lex.process_words(&p, &lookup).map_err(|e| e.to_string())? {
                    let port = if w.contains('/') {
                        w.to_ascii_lowercase()
                    } else {
                        format!("{w}/tcp")
                    };
                    let (num, proto) = port.split_once('/').unwrap_or((&port, "tcp"));
                    let valid_num = num.split('-').all(|p| p.parse::<u16>().is_ok());
                    if !valid_num || !matches!(proto, "tcp" | "udp" | "sctp") {
                        return Err(format!("invalid port {w:?}"));
                    }
                    cfg.exposed_ports
                        .get_or_insert_with(BTreeMap::new)
                        .insert(port, Value::Object(Default::default()));
                }
            }
        }
        Instruction::Volume(vols) => {
            for v in vols {
                let v = word(&v)?;
                if v.is_empty() {
                    return Err("VOLUME specified can not be an empty string".into());
                }
                cfg.volumes
                    .get_or_insert_with(BTreeMap::new)
                    .insert(v, Value::Object(Default::default()));
            }
        }
        Instruction::User(u) => cfg.user = Some(word(&u)?),
        Instruction::Workdir(w) => {
            let w = word(&w)?;
            // Relative WORKDIRs are relative to the previous one, as in a Dockerfile.
            let base = cfg.working_dir.clone().unwrap_or_else(|| "/".into());
            cfg.working_dir = Some(if w.starts_with('/') {
                w
            } else {
                format!("{}/{w}", base.trim_end_matches('/'))
            });
        }
        Instruction::Stopsignal(s) => cfg.stop_signal = Some(word(&s)?),
        Instruction::Onbuild(trigger) => cfg.on_build.get_or_insert_with(Vec::new).push(trigger),
        other => unreachable!("{} is refused by check_allowed", other.keyword()),
    }
    Ok(())
}

/// The exec form as given, or the shell form run with the config's SHELL (`/bin/sh -c`); no
/// command at all (`CMD` or `CMD []`) is an empty one, as in Docker.
fn command(cfg: &ContainerConfig, form: CommandForm) -> Vec<String> {
    match form {
        CommandForm::Exec(args) => args,
        CommandForm::Shell(text) if text.is_empty() => Vec::new(),
        CommandForm::Shell(text) => {
            let mut shell = cfg
                .shell
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
            shell.push(text);
            shell
        }
    }
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

    #[test]
    fn quoted_values_keep_their_spaces() {
        let mut c = ContainerConfig::default();
        apply_change(&mut c, r#"ENV GREETING="hello  world" SINGLE='a $b' ESC=x\ y"#).unwrap();
        apply_change(&mut c, r#"ENV LEGACY two "quoted words""#).unwrap();
        apply_change(&mut c, r#"LABEL "com.example.desc"="a label with spaces" plain=one"#).unwrap();
        assert_eq!(
            c.env.unwrap(),
            vec![
                "GREETING=hello  world",
                "SINGLE=a $b",
                "ESC=x y",
                "LEGACY=two quoted words"
            ]
        );
        let labels = c.labels.unwrap();
        assert_eq!(labels["com.example.desc"], "a label with spaces");
        assert_eq!(labels["plain"], "one");
    }

    #[test]
    fn json_and_shell_forms() {
        let mut c = ContainerConfig::default();
        apply_change(&mut c, r#"CMD ["echo", "a b"]"#).unwrap();
        assert_eq!(c.cmd.clone().unwrap(), vec!["echo", "a b"]);
        // Shell form keeps the text as written: quotes and variables are the shell's.
        apply_change(&mut c, r#"CMD echo "a  b" $HOME"#).unwrap();
        assert_eq!(c.cmd.clone().unwrap(), vec!["/bin/sh", "-c", r#"echo "a  b" $HOME"#]);
        // Not a JSON array of strings: shell form, as in a Dockerfile.
        apply_change(&mut c, "CMD [echo, hi]").unwrap();
        assert_eq!(c.cmd.clone().unwrap(), vec!["/bin/sh", "-c", "[echo, hi]"]);
        // The shell form runs with the config's SHELL.
        c.shell = Some(vec!["/bin/bash".into(), "-ec".into()]);
        apply_change(&mut c, "ENTRYPOINT exec app").unwrap();
        assert_eq!(c.entrypoint.take().unwrap(), vec!["/bin/bash", "-ec", "exec app"]);
        assert_eq!(c.cmd, None);
        // No command clears it, as `docker commit --change 'CMD []'` does.
        for line in ["CMD []", "CMD"] {
            apply_change(&mut c, line).unwrap();
            assert_eq!(c.cmd, Some(Vec::new()), "{line}");
        }
    }

    #[test]
    fn expands_against_config_env() {
        let mut c = ContainerConfig::default();
        c.set_env("HOME", "/root");
        c.set_env("EMPTY", "");
        apply_change(
            &mut c,
            "ENV P=${HOME:-/nope}/bin Q=${MISSING:-/opt}/bin R=${EMPTY:-dflt} S=${EMPTY-kept}",
        )
        .unwrap();
        apply_change(&mut c, "WORKDIR ${APP_DIR:-/srv}/app").unwrap();
        apply_change(&mut c, "USER ${HOME:+root}").unwrap();
        // Pairs in one ENV all see the ENV from before it.
        apply_change(&mut c, "ENV HOME=/home/u OLD=$HOME").unwrap();
        let env = c.env.unwrap();
        for want in ["P=/root/bin", "Q=/opt/bin", "R=dflt", "S=", "HOME=/home/u", "OLD=/root"] {
            assert!(env.iter().any(|e| e == want), "{want} in {env:?}");
        }
        assert_eq!(c.working_dir.unwrap(), "/srv/app");
        assert_eq!(c.user.unwrap(), "root");
        let mut c = ContainerConfig::default();
        c.set_env("PORTS", "80 53/udp");
        apply_change(&mut c, "EXPOSE $PORTS").unwrap();
        let ports = c.exposed_ports.take().unwrap();
        assert!(ports.contains_key("80/tcp") && ports.contains_key("53/udp"));
        let err = apply_change(&mut c, "ENV X=${NOPE:?must be set}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be set"), "{err}");
    }

    #[test]
    fn refuses_what_a_change_cannot_do() {
        for line in [
            "RUN <<EOF",
            "from alpine",
            "COPY a b",
            "HEALTHCHECK NONE",
            "ENV A=1\nRUN x",
        ] {
            let err = apply_change(&mut ContainerConfig::default(), line)
                .unwrap_err()
                .to_string();
            assert!(err.contains("is not allowed here"), "{line}: {err}");
        }
        let err = apply_change(&mut ContainerConfig::default(), "ONBUILD FROM x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("FROM isn't allowed as an ONBUILD trigger"), "{err}");
        let err = apply_change(&mut ContainerConfig::default(), "FOO bar")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown instruction: FOO"), "{err}");
        let mut c = ContainerConfig::default();
        apply_change(&mut c, "ONBUILD RUN echo $HOME").unwrap();
        assert_eq!(c.on_build.unwrap(), vec!["RUN echo $HOME"]);
    }
}
