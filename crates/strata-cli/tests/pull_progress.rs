//! pull and push on a terminal draw per-layer bars (redrawn in place) and
//! end with Docker's summary lines; on a pipe they print plain lines only.

mod common;

use common::*;

#[test]
fn pull_and_push_draw_bars_on_a_terminal() {
    if !have("script") {
        eprintln!("skipped: the terminal check needs util-linux `script`");
        return;
    }
    let reg = TestRegistry::strata();
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let name = format!("{}/lib/bars:1", reg.host);
    env.ok(&["tag", "busybox:latest", &name]);
    let pushed = on_terminal(&env, &["push", &name]);
    assert!(pushed.contains("1: digest: sha256:"), "{pushed}");
    let fresh = Env::new();
    let pulled = on_terminal(&fresh, &["pull", &name]);
    assert!(pulled.contains("Pulling from lib/bars"), "{pulled}");
    assert!(pulled.contains("Pull complete"), "{pulled}");
    assert!(pulled.contains("Status: Downloaded newer image for"), "{pulled}");
    // Drawn in place: cursor movement / line clearing, which a pipe never gets.
    assert!(pulled.contains("\u{1b}["), "no terminal control in {pulled:?}");
    let piped = Env::new().ok(&["pull", &name]);
    assert!(!piped.contains('\u{1b}'), "{piped:?}");
}

/// `args` on a terminal (TERM=xterm), insisting on success.
fn on_terminal(env: &Env, args: &[&str]) -> String {
    let (ok, text) = env.on_terminal(args, "xterm").expect("script was checked");
    assert!(ok, "strata {args:?} on a terminal failed:\n{text}");
    text
}
