//! CVE-2019-5736: while `exec` joins a container it runs the host's binary
//! inside the container's PID namespace. A container process that opens
//! `/proc/PID/exe` of it could later overwrite the host binary. The attack:
//! the container swaps its `/etc/passwd` for a FIFO, so the joining process
//! blocks inside the container (it looks up HOME there, after it has taken
//! the container's user and capabilities, just before its execve) and the
//! attacker has all the time it needs. (Needs root and /bin/busybox.)

mod common;

use std::fs;
use std::time::Duration;

use common::*;
use strata_runtime::{ExecSpec, RunSpec, exec_with_stdio, kill, spawn_detached};

/// The container's attacker: waits for the joining process, tries to read its
/// exe (`EXPOSED` when it could), then lets it go by feeding the FIFO.
const ATTACKER: &str = r#"
rm -f /etc/passwd && mkfifo /etc/passwd && touch /armed
while :; do
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = 1 ] || [ "$p" = $$ ] && continue
    if [ "$(cat $d/comm 2>/dev/null)" = "$JOINER" ]; then
      if head -c4 $d/exe 2>/dev/null | grep -q ELF; then echo EXPOSED > /result; else echo DENIED > /result; fi
      echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd
      sleep 1000
    fi
  done
done
"#;

#[test]
fn a_container_process_cannot_open_the_joining_processs_binary() {
    if !can_run() {
        return;
    }
    let t = busybox_root();
    // The joining process is a fork of this thread: it has this thread's comm.
    let comm = fs::read_to_string("/proc/thread-self/comm").unwrap().trim().to_string();
    let mut spec = RunSpec::new(&t.root, sh(ATTACKER));
    spec.env.push(format!("JOINER={comm}"));
    let state_dir = t.dir.path().join("state");
    spawn_detached(&spec, &state_dir).unwrap();
    while !t.root.join("armed").exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
    // No HOME: the joining process reads the container's /etc/passwd (the FIFO).
    let mut e = ExecSpec::new(vec!["true".into()]);
    e.env = vec!["PATH=/bin".into()];
    let (cap, io) = Captured::new(t.dir.path(), "exec");
    assert_eq!(exec_with_stdio(&state_dir, &e, io).unwrap(), 0, "{}", cap.err());
    let result = fs::read_to_string(t.root.join("result")).unwrap();
    kill(&state_dir, libc::SIGKILL).unwrap();
    assert_eq!(
        result.trim(),
        "DENIED",
        "a container process read the host binary through /proc/PID/exe"
    );
}
