//! Build output in the manner of BuildKit's plain progress: each step is a
//! numbered vertex (`#5 [2/4] RUN make`), its output lines are prefixed
//! with the vertex number and the seconds since it started, and it ends
//! with `#5 DONE 0.3s`, `#5 CACHED` or `#5 ERROR: ...`. Lines of stages
//! built in parallel interleave, each whole.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

pub struct Progress {
    out: Mutex<Box<dyn Write + Send>>,
    next: AtomicUsize,
}

/// One vertex being reported.
pub struct Vertex<'a> {
    p: &'a Progress,
    pub n: usize,
    start: Instant,
    ended: bool,
}

impl Progress {
    pub fn new(out: Box<dyn Write + Send>) -> Progress {
        Progress {
            out: Mutex::new(out),
            next: AtomicUsize::new(1),
        }
    }

    /// Writes lines as one block.
    pub fn lines(&self, lines: &[String]) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        for l in lines {
            let _ = writeln!(out, "{l}");
        }
        let _ = out.flush();
    }

    pub fn line(&self, line: impl Into<String>) {
        self.lines(&[line.into()]);
    }

    /// Starts a vertex: prints a blank line and `#N name`.
    pub fn start(&self, name: &str) -> Vertex<'_> {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        self.lines(&[String::new(), format!("#{n} {name}")]);
        Vertex {
            p: self,
            n,
            start: Instant::now(),
            ended: false,
        }
    }
}

impl Vertex<'_> {
    /// A status line (`#N message`).
    pub fn log(&self, msg: &str) {
        self.p.line(format!("#{} {msg}", self.n));
    }

    /// A line of the step's own output, with the time since it started.
    pub fn output(&self, line: &str) {
        let t = self.start.elapsed().as_secs_f64();
        self.p.line(format!("#{} {t:.3} {line}", self.n));
    }

    pub fn done(mut self) {
        self.ended = true;
        self.p
            .line(format!("#{} DONE {:.1}s", self.n, self.start.elapsed().as_secs_f64()));
    }

    pub fn cached(mut self) {
        self.ended = true;
        self.p.line(format!("#{} CACHED", self.n));
    }

    pub fn error(mut self, msg: &str) {
        self.ended = true;
        self.p.line(format!("#{} ERROR: {msg}", self.n));
    }
}

impl Drop for Vertex<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.p.line(format!("#{} CANCELED", self.n));
        }
    }
}
