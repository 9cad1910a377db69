use super::*;

fn instr(src: &str) -> Result<Instruction, String> {
    let ast = parse(src.as_bytes()).map_err(|e| e.to_string())?;
    parse_instruction(ast.nodes.last().unwrap()).map_err(|e| e.to_string())
}

fn df_err(src: &str) -> String {
    parse_dockerfile(src.as_bytes()).unwrap_err().to_string()
}

#[test]
fn stages_and_global_args() {
    let src = "ARG BASE=alpine\nARG V\nFROM --platform=$BUILDPLATFORM $BASE AS Build\nRUN make\n\
               FROM scratch\nCOPY --from=build /out /\n";
    let df = parse_dockerfile(src.as_bytes()).unwrap();
    assert_eq!(
        df.global_args,
        vec![("BASE".into(), Some("alpine".into())), ("V".into(), None)]
    );
    assert_eq!(df.stages.len(), 2);
    let s = &df.stages[0];
    assert_eq!(
        (s.name.as_deref(), s.base.as_str(), s.platform.as_deref()),
        (Some("build"), "$BASE", Some("$BUILDPLATFORM"))
    );
    assert_eq!(
        s.instructions[0].instruction,
        Instruction::Run(RunInstruction {
            command: CommandForm::Shell("make".into()),
            flags: RunFlags::default(),
            heredocs: vec![],
        })
    );
    assert_eq!((s.instructions[0].start_line, s.start_line), (4, 3));
    assert!(df.stage("BUILD").is_some());
    assert!(df.stage("1").is_some_and(|s| s.base == "scratch"));
    let Instruction::Copy(c) = &df.stages[1].instructions[0].instruction else {
        panic!()
    };
    assert_eq!(c.flags.from.as_deref(), Some("build"));
    assert_eq!((c.sources.clone(), c.dest.as_str()), (vec!["/out".to_string()], "/"));
}

#[test]
fn stage_errors() {
    assert_eq!(
        df_err("FROM a b\n"),
        "line 1: FROM requires either one or three arguments"
    );
    assert_eq!(df_err("FROM\n"), "line 1: FROM requires either one or three arguments");
    assert_eq!(
        df_err("FROM a AS 1x\n"),
        "line 1: invalid name for build stage: \"1x\", name can't start with a number or contain symbols"
    );
    assert_eq!(
        df_err("RUN x\nFROM a\n"),
        "line 1: no build stage in current context: RUN must come after a FROM (only ARG may come before the first FROM)"
    );
    assert_eq!(
        df_err("ARG a\n"),
        "line 1: dockerfile contains no stages to build (no FROM instruction)"
    );
    assert_eq!(
        df_err("FORM alpine\n"),
        "line 1: unknown instruction: FORM (did you mean from?)"
    );
    assert_eq!(
        df_err("FROM a\n\n\nCOPY x\n"),
        "line 4: COPY requires at least two arguments, but only one was provided. Destination could not be determined"
    );
    assert_eq!(df_err("FROM a\nCOPY --bogus=1 a b\n"), "line 2: Unknown flag: bogus");
    assert_eq!(
        df_err("FROM --platform linux a\n"),
        "line 1: FROM requires either one or three arguments"
    );
    assert_eq!(df_err("FROM --plat=x a\n"), "line 1: Unknown flag: plat");
    assert_eq!(df_err(""), "line 1: file with no instructions");
}

#[test]
fn flags() {
    let Instruction::Copy(c) = instr("COPY --link --chmod=755 --exclude=*.md --exclude=x --parents a b c/").unwrap()
    else {
        panic!()
    };
    assert!(c.flags.link && c.flags.parents);
    assert_eq!(c.flags.chmod.as_deref(), Some("755"));
    assert_eq!(c.flags.exclude, vec!["*.md", "x"]);
    assert_eq!(c.sources, vec!["a", "b"]);
    let Instruction::Add(a) = instr("ADD --keep-git-dir=true --unpack=False --checksum=sha256:ab http://x /y").unwrap()
    else {
        panic!()
    };
    assert!(a.flags.keep_git_dir);
    assert_eq!(a.flags.unpack, Some(false));
    assert_eq!(a.flags.checksum.as_deref(), Some("sha256:ab"));
    assert_eq!(instr("ADD --from=x a b").unwrap_err(), "line 1: Unknown flag: from");
    assert_eq!(
        instr("COPY --link=maybe a b").unwrap_err(),
        "line 1: Expecting boolean value for flag link, not: maybe"
    );
    assert_eq!(
        instr("COPY --link= a b").unwrap_err(),
        "line 1: Missing a value on flag: link"
    );
    assert_eq!(
        instr("COPY --from a b").unwrap_err(),
        "line 1: Missing a value on flag: from"
    );
    assert_eq!(
        instr("COPY --from=a --from=b a b").unwrap_err(),
        "line 1: Duplicate flag specified: from"
    );
    assert_eq!(instr("WORKDIR --x=1 /a").unwrap_err(), "line 1: Unknown flag: x");
    let Instruction::Run(r) =
        instr("RUN --mount=type=cache,target=/c --mount=type=secret,id=s --network=none [\"a\", \"b\"]").unwrap()
    else {
        panic!()
    };
    assert_eq!(r.flags.mounts, vec!["type=cache,target=/c", "type=secret,id=s"]);
    assert_eq!(r.flags.network.as_deref(), Some("none"));
    assert_eq!(r.command, CommandForm::Exec(vec!["a".into(), "b".into()]));
}

#[test]
fn simple_instructions() {
    assert_eq!(
        instr("ENV a=1 b=\"2 3\"").unwrap(),
        Instruction::Env(vec![("a".into(), "1".into()), ("b".into(), "\"2 3\"".into())])
    );
    assert_eq!(
        instr("ENV a b c").unwrap(),
        Instruction::Env(vec![("a".into(), "b c".into())])
    );
    assert_eq!(instr("ENV =x").unwrap_err(), "line 1: ENV names can not be blank");
    assert_eq!(instr("ENV").unwrap_err(), "line 1: ENV requires at least one argument");
    assert_eq!(
        instr("ARG a b=2 c=").unwrap(),
        Instruction::Arg(vec![
            ("a".into(), None),
            ("b".into(), Some("2".into())),
            ("c".into(), Some(String::new()))
        ])
    );
    assert_eq!(instr("ARG =1").unwrap_err(), "line 1: ARG names can not be blank");
    assert_eq!(
        instr("EXPOSE 80 443/tcp 22").unwrap(),
        Instruction::Expose(vec!["22".into(), "443/tcp".into(), "80".into()])
    );
    assert_eq!(
        instr("VOLUME [\"/a\", \" \"]").unwrap_err(),
        "line 1: VOLUME specified can not be an empty string"
    );
    assert_eq!(
        instr("VOLUME /a /b").unwrap(),
        Instruction::Volume(vec!["/a".into(), "/b".into()])
    );
    assert_eq!(instr("USER").unwrap_err(), "line 1: USER requires exactly one argument");
    assert_eq!(instr("WORKDIR /a b").unwrap(), Instruction::Workdir("/a b".into()));
    assert_eq!(
        instr("SHELL [\"/bin/bash\", \"-c\"]").unwrap(),
        Instruction::Shell(vec!["/bin/bash".into(), "-c".into()])
    );
    assert_eq!(
        instr("SHELL /bin/bash -c").unwrap_err(),
        "line 1: SHELL requires the arguments to be in JSON form"
    );
    assert_eq!(
        instr("SHELL []").unwrap_err(),
        "line 1: SHELL requires at least one argument"
    );
    assert_eq!(
        instr("CMD echo hi").unwrap(),
        Instruction::Cmd(CommandForm::Shell("echo hi".into()))
    );
    assert_eq!(
        instr("ENTRYPOINT []").unwrap(),
        Instruction::Entrypoint(CommandForm::Exec(vec![]))
    );
    assert_eq!(
        instr("STOPSIGNAL SIGKILL").unwrap(),
        Instruction::Stopsignal("SIGKILL".into())
    );
    assert_eq!(
        instr("MAINTAINER me <me@x>").unwrap(),
        Instruction::Maintainer("me <me@x>".into())
    );
    assert_eq!(
        instr("LABEL a=b").unwrap(),
        Instruction::Label(vec![("a".into(), "b".into())])
    );
}

#[test]
fn onbuild_and_heredocs() {
    assert_eq!(
        instr("onbuild  RUN echo hi").unwrap(),
        Instruction::Onbuild("RUN echo hi".into())
    );
    assert_eq!(
        instr("ONBUILD ONBUILD RUN x").unwrap_err(),
        "line 1: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    );
    assert_eq!(
        instr("ONBUILD from x").unwrap_err(),
        "line 1: FROM isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        instr("ONBUILD RUN <<EOF\nhi\nEOF\n").unwrap(),
        Instruction::Onbuild("RUN <<EOF\nhi\nEOF".into())
    );
    let Instruction::Copy(c) = instr("COPY <<-A <<\"B\" src /dst/\n\tone\n\tA\n$two\nB\n").unwrap() else {
        panic!()
    };
    assert_eq!(c.sources, vec!["src"]);
    assert_eq!(
        c.inline_sources,
        vec![
            InlineSource {
                name: "A".into(),
                content: "one\n".into(),
                expand: true
            },
            InlineSource {
                name: "B".into(),
                content: "$two\n".into(),
                expand: false
            },
        ]
    );
    assert_eq!(
        instr("COPY a <<EOF\nx\nEOF\n").unwrap_err(),
        "line 1: COPY cannot accept a heredoc as a destination"
    );
    let Instruction::Run(r) = instr("RUN <<EOF\nset -e\nEOF\n").unwrap() else {
        panic!()
    };
    assert_eq!(r.command, CommandForm::Shell("<<EOF".into()));
    assert_eq!(r.heredocs[0].content, "set -e\n");
}

#[test]
fn healthchecks() {
    let Instruction::Healthcheck(h) =
        instr("HEALTHCHECK --interval=1m30s --timeout=1.5s --retries=3 --start-period=0s CMD curl -f x").unwrap()
    else {
        panic!()
    };
    assert_eq!(h.test, vec!["CMD-SHELL", "curl -f x"]);
    assert_eq!(h.interval, Some(Duration::from_secs(90)));
    assert_eq!(h.timeout, Some(Duration::from_millis(1500)));
    assert_eq!(h.start_period, Some(Duration::ZERO));
    assert_eq!(h.retries, Some(3));
    let Instruction::Healthcheck(h) = instr("HEALTHCHECK CMD [\"a\", \"b\"]").unwrap() else {
        panic!()
    };
    assert_eq!(h.test, vec!["CMD", "a", "b"]);
    let Instruction::Healthcheck(h) = instr("HEALTHCHECK none").unwrap() else {
        panic!()
    };
    assert_eq!(h.test, vec!["NONE"]);
    assert_eq!(
        instr("HEALTHCHECK NONE x").unwrap_err(),
        "line 1: HEALTHCHECK NONE takes no arguments"
    );
    assert_eq!(
        instr("HEALTHCHECK CONNECT TCP 7000").unwrap_err(),
        "line 1: Unknown type \"CONNECT\" in HEALTHCHECK (try CMD)"
    );
    assert_eq!(
        instr("HEALTHCHECK CMD").unwrap_err(),
        "line 1: Missing command after HEALTHCHECK CMD"
    );
    assert_eq!(
        instr("HEALTHCHECK").unwrap_err(),
        "line 1: HEALTHCHECK requires at least one argument"
    );
    assert_eq!(
        instr("HEALTHCHECK --interval=10us CMD x").unwrap_err(),
        "line 1: Interval \"interval\" cannot be less than 1ms"
    );
    assert_eq!(
        instr("HEALTHCHECK --interval=5 CMD x").unwrap_err(),
        "line 1: time: invalid duration \"5\""
    );
    assert_eq!(
        instr("HEALTHCHECK --retries=-1 CMD x").unwrap_err(),
        "line 1: --retries cannot be negative (-1)"
    );
    assert_eq!(
        instr("HEALTHCHECK --bogus=1 CMD x").unwrap_err(),
        "line 1: Unknown flag: bogus"
    );
}

#[test]
fn go_durations() {
    assert_eq!(
        parse_go_duration("1h2m3.5s"),
        Some((false, Duration::from_millis(3_723_500)))
    );
    assert_eq!(parse_go_duration("-1ms"), Some((true, Duration::from_millis(1))));
    assert_eq!(parse_go_duration(".5s"), Some((false, Duration::from_millis(500))));
    assert_eq!(parse_go_duration("2\u{b5}s"), Some((false, Duration::from_micros(2))));
    assert_eq!(parse_go_duration("0"), Some((false, Duration::ZERO)));
    for bad in ["", "1", "s", ".s", "1x", "1s2", "99999999999999h"] {
        assert_eq!(parse_go_duration(bad), None, "{bad}");
    }
}
