//! Detached containers, their state, logs, kill, wait and exec (needs root and /bin/busybox).

mod common;

use std::fs;

use common::*;
use strata_runtime::{
    EXIT_UNKNOWN, ExecSpec, RunSpec, State, exec_with_stdio, kill, read_log, read_state_record, spawn_detached, state,
    wait,
};

/// Blocks until the process `pid` (not our child) has exited.
fn wait_gone(pid: i32) {
    let p = rustix::process::Pid::from_raw(pid).unwrap();
    let Ok(fd) = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) else {
        return;
    };
    let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
    while rustix::event::poll(&mut fds, None).is_err() {}
}

#[test]
fn detached_run_survives_its_caller_and_records_exit_and_logs() {
    if !can_run() {
        return;
    }
    let t = busybox_root();
    let state_dir = t.dir.path().join("state");
    let gate = t.dir.path().join("gate");
    fs::create_dir(&gate).unwrap();
    let mut spec = RunSpec::new(
        &t.root,
        sh("echo out1; echo err1 >&2; printf partial; while [ ! -e /gate/go ]; do sleep 0.05; done; echo out2; exit 7"),
    );
    spec.mounts = vec![strata_runtime::BindMount::parse(&format!("{}:/gate", gate.display())).unwrap()];
    // The caller is a process that starts the container and exits at once.
    let caller = unsafe { libc::fork() };
    assert!(caller >= 0);
    if caller == 0 {
        let code = match spawn_detached(&spec, &state_dir) {
            Ok(_) => 0,
            Err(e) => {
                eprintln!("spawn_detached: {e}");
                1
            }
        };
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    assert_eq!(unsafe { libc::waitpid(caller, &mut status, 0) }, caller);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "caller failed"
    );

    // The caller is gone; the container runs on.
    let State::Running { pid } = state(&state_dir).unwrap() else {
        panic!("not running: {:?}", state(&state_dir));
    };
    let rec = read_state_record(&state_dir).unwrap();
    assert_eq!(rec.pid, pid);
    assert_ne!(rec.monitor_pid, caller);
    fs::write(gate.join("go"), "").unwrap();
    let (code, finished_at) = wait(&state_dir).unwrap();
    assert_eq!(code, 7);
    assert!(finished_at.ends_with('Z') && finished_at.len() == 30, "{finished_at}");
    assert_eq!(state(&state_dir).unwrap(), State::Exited { code: 7, finished_at });

    let log = read_log(&state_dir).unwrap();
    let by_stream = |s: &str| -> String {
        log.iter()
            .filter(|e| e.stream == s)
            .map(|e| e.log.as_str())
            .collect::<Vec<_>>()
            .join("")
    };
    assert_eq!(by_stream("stdout"), "out1\npartialout2\n");
    assert_eq!(by_stream("stderr"), "err1\n");
    assert!(log.iter().any(|e| e.log == "out1\n"));
    assert!(log.iter().all(|e| e.time.ends_with('Z')));
}

#[test]
fn kill_and_exec_in_a_running_container() {
    if !can_run() {
        return;
    }
    let t = busybox_root();
    let state_dir = t.dir.path().join("state");
    let mut spec = RunSpec::new(&t.root, vec!["sleep".into(), "1000".into()]);
    spec.hostname = "exec-host".into();
    spec.env.push("IN_CTR=1".into());
    let pid = spawn_detached(&spec, &state_dir).unwrap();
    assert_eq!(state(&state_dir).unwrap(), State::Running { pid });
    // Starting it twice is refused.
    assert!(spawn_detached(&spec, &state_dir).is_err());

    let mut e = ExecSpec::new(sh(
        "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$; pwd; id -u; ls /proc/self/fd | tr '\\n' ' '",
    ));
    e.cwd = "/tmp/execdir".into();
    e.user.uid = 1000;
    e.user.gid = 1000;
    let (cap, io) = Captured::new(t.dir.path(), "exec");
    assert_eq!(exec_with_stdio(&state_dir, &e, io).unwrap(), 0, "{}", cap.err());
    let out = cap.out();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "exec-host");
    assert_eq!(lines[1].trim(), "sleep 1000");
    assert_ne!(lines[2], "1");
    assert_eq!(lines[3], "/tmp/execdir");
    assert_eq!(lines[4], "1000");
    assert_eq!(lines[5].trim(), "0 1 2 3");

    let (_, io) = Captured::new(t.dir.path(), "exec5");
    assert_eq!(
        exec_with_stdio(&state_dir, &ExecSpec::new(sh("exit 5")), io).unwrap(),
        5
    );
    let (_, io) = Captured::new(t.dir.path(), "exec127");
    let err = exec_with_stdio(&state_dir, &ExecSpec::new(vec!["nope".into()]), io).unwrap_err();
    assert_eq!(err.code, 127);

    kill(&state_dir, libc::SIGKILL).unwrap();
    assert_eq!(wait(&state_dir).unwrap().0, 137);
    assert!(matches!(state(&state_dir).unwrap(), State::Exited { code: 137, .. }));
    assert!(kill(&state_dir, libc::SIGTERM).is_err());
    let (_, io) = Captured::new(t.dir.path(), "exec-stopped");
    assert!(exec_with_stdio(&state_dir, &ExecSpec::new(vec!["true".into()]), io).is_err());
}

#[test]
fn a_killed_monitor_is_never_shown_as_running() {
    if !can_run() {
        return;
    }
    let t = busybox_root();
    let state_dir = t.dir.path().join("state");
    let spec = RunSpec::new(&t.root, vec!["sleep".into(), "1000".into()]);
    let pid = spawn_detached(&spec, &state_dir).unwrap();
    let rec = read_state_record(&state_dir).unwrap();
    unsafe { libc::kill(rec.monitor_pid, libc::SIGKILL) };
    // The container follows its monitor (parent-death signal).
    wait_gone(pid);
    wait_gone(rec.monitor_pid);
    match state(&state_dir).unwrap() {
        State::Exited { code, .. } => assert_eq!(code, EXIT_UNKNOWN),
        other => panic!("shown as {other:?}"),
    }
    // And a record whose process is gone after a "reboot" (another boot id) is not running either.
    let state_dir2 = t.dir.path().join("state2");
    let pid2 = spawn_detached(&spec, &state_dir2).unwrap();
    let path = state_dir2.join("state.json");
    let mut json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    json["boot_id"] = "another-boot".into();
    fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    assert!(matches!(state(&state_dir2).unwrap(), State::Exited { code: 255, .. }));
    unsafe { libc::kill(pid2, libc::SIGKILL) };
    wait_gone(pid2);
}

#[test]
fn detached_start_errors_keep_dockers_codes() {
    if !can_run() {
        return;
    }
    let t = busybox_root();
    let state_dir = t.dir.path().join("state");
    let err = spawn_detached(&RunSpec::new(&t.root, vec!["missing-cmd".into()]), &state_dir).unwrap_err();
    assert_eq!(err.code, 127);
    assert_eq!(wait(&state_dir).unwrap().0, 127);
}
