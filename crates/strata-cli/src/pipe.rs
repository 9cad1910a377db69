//! Output to a closed pipe (`strata inspect IMG | head -1`) ends quietly, as
//! docker's does: a Go program whose write to STDOUT or STDERR fails with
//! EPIPE dies of SIGPIPE (status 141 in a shell), without a message.
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe is an error instead:
//! `println!` panics with a backtrace hint, `writeln!` returns it. SIGPIPE
//! stays ignored (a closed socket or a container's closed STDIN must stay an
//! error, as in Go); only when STDOUT or STDERR itself is the closed pipe does
//! strata end as docker does.

use std::io::ErrorKind;

/// Whether STDOUT or STDERR is a pipe whose reading end is closed.
pub fn output_closed() -> bool {
    [libc::STDOUT_FILENO, libc::STDERR_FILENO].into_iter().any(|fd| {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no timeout.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        n == 1 && p.revents & libc::POLLERR != 0
    })
}

/// Ends the process as a Go program does on EPIPE: killed by SIGPIPE.
pub fn die_of_sigpipe() -> ! {
    // SAFETY: restoring the default action of one signal and raising it.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(128 + libc::SIGPIPE)
}

/// Whether `e` (an error chain) is a broken pipe on STDOUT or STDERR.
pub fn is_closed_output(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe)
    }) && output_closed()
}

/// A panic over a write to a closed STDOUT or STDERR (`println!`'s, or a
/// library's `expect`) ends the process quietly; every other panic is
/// reported as before.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("Broken pipe") && output_closed() {
            die_of_sigpipe();
        }
        previous(info)
    }));
}
