//! Build output in the manner of BuildKit.
//!
//! *Plain* progress: each step is a numbered vertex (`#5 [2/4] RUN make`),
//! its output lines are prefixed with the vertex number and the seconds
//! since it started, and it ends with `#5 DONE 0.3s`, `#5 CACHED` or
//! `#5 ERROR: ...`. Lines of stages built in parallel interleave, each whole.
//!
//! *Tty* progress (`docker buildx build --progress=tty`): a display redrawn
//! in place at most ten times a second, a header `[+] Building 1.2s (3/7)`
//! and a line per vertex (` => [2/4] RUN make   0.3s`), each running vertex
//! followed by its last few output lines (` => => # ...`), every line cut
//! to the terminal's width. When the build ends the display is drawn a last
//! time without output lines, and the whole output of each failed vertex is
//! printed after it. Lines not tied to a vertex (warnings) are printed above
//! the display.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use unicode_width::UnicodeWidthChar;

/// The least time between two redraws of the tty display.
const TICK: Duration = Duration::from_millis(100);

/// Output lines shown under a running vertex.
const SHOWN_OUTPUT_LINES: usize = 6;

pub struct Progress {
    next: AtomicUsize,
    sink: Sink,
}

enum Sink {
    Plain(Mutex<Box<dyn Write + Send>>),
    Tty {
        tty: Arc<Tty>,
        ticker: Option<JoinHandle<()>>,
    },
}

/// One vertex being reported.
pub struct Vertex<'a> {
    p: &'a Progress,
    pub n: usize,
    start: Instant,
    ended: bool,
}

impl Progress {
    /// Plain progress to `out` (BuildKit's `--progress=plain`).
    pub fn new(out: Box<dyn Write + Send>) -> Progress {
        Progress {
            next: AtomicUsize::new(1),
            sink: Sink::Plain(Mutex::new(out)),
        }
    }

    /// A tty display to `out`, sized to stderr's terminal (`--progress=tty`).
    pub fn terminal(out: Box<dyn Write + Send>) -> Progress {
        Progress::tty_sized(out, Size::Terminal)
    }

    /// A tty display to `out`, `width` columns wide (no height limit).
    pub fn tty(out: Box<dyn Write + Send>, width: usize) -> Progress {
        Progress::tty_sized(out, Size::Fixed(width.max(1)))
    }

    fn tty_sized(out: Box<dyn Write + Send>, size: Size) -> Progress {
        let tty = Arc::new(Tty {
            state: Mutex::new(TtyState {
                out,
                size,
                began: Instant::now(),
                vertices: BTreeMap::new(),
                shown: 0,
                last_draw: None,
                dirty: false,
                finished: false,
            }),
            wake: Condvar::new(),
        });
        let t = tty.clone();
        // Without a ticker the display is still drawn on events and at the end.
        let ticker = std::thread::Builder::new()
            .name("strata-progress".into())
            .spawn(move || t.tick())
            .ok();
        Progress {
            next: AtomicUsize::new(1),
            sink: Sink::Tty { tty, ticker },
        }
    }

    fn tty_display(&self) -> Option<&Tty> {
        match &self.sink {
            Sink::Plain(_) => None,
            Sink::Tty { tty, .. } => Some(tty),
        }
    }

    /// Writes lines as one block (in tty mode: above the display).
    pub fn lines(&self, lines: &[String]) {
        match &self.sink {
            Sink::Plain(out) => {
                let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
                for l in lines {
                    let _ = writeln!(out, "{l}");
                }
                let _ = out.flush();
            }
            Sink::Tty { tty, .. } => tty.lock().print_above(lines),
        }
    }

    pub fn line(&self, line: impl Into<String>) {
        self.lines(&[line.into()]);
    }

    /// Starts a vertex: prints a blank line and `#N name` (in tty mode: adds
    /// it to the display).
    pub fn start(&self, name: &str) -> Vertex<'_> {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let start = Instant::now();
        match self.tty_display() {
            None => self.lines(&[String::new(), format!("#{n} {name}")]),
            Some(t) => {
                let mut s = t.lock();
                s.vertices.insert(
                    n,
                    TtyVertex {
                        name: name.to_string(),
                        start,
                        state: State::Running,
                        took: Duration::ZERO,
                        statuses: Vec::new(),
                        output: Vec::new(),
                    },
                );
                s.changed();
            }
        }
        Vertex {
            p: self,
            n,
            start,
            ended: false,
        }
    }

    /// Ends a tty display: the last frame, then the output of the failed
    /// vertices; stops the ticker. Plain output needs nothing.
    fn finish(&mut self) {
        if let Sink::Tty { tty, ticker } = &mut self.sink {
            {
                let mut s = tty.lock();
                if !s.finished {
                    s.finished = true;
                    s.draw(true);
                    s.print_errors();
                }
            }
            tty.wake.notify_all();
            if let Some(h) = ticker.take() {
                let _ = h.join();
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Vertex<'_> {
    /// Changes this vertex in the tty display, if that is the mode.
    fn update(&self, f: impl FnOnce(&mut TtyVertex)) -> bool {
        let Some(t) = self.p.tty_display() else {
            return false;
        };
        let mut s = t.lock();
        if let Some(v) = s.vertices.get_mut(&self.n) {
            f(v);
        }
        s.changed();
        true
    }

    /// Ends this vertex in the tty display, if that is the mode.
    fn end(&self, state: State) -> bool {
        let took = self.start.elapsed();
        self.update(|v| {
            v.state = state;
            v.took = took;
            if !matches!(v.state, State::Error) {
                // Only a failed vertex's output is printed at the end.
                v.output = Vec::new();
            }
        })
    }

    /// A status line (`#N message`).
    pub fn log(&self, msg: &str) {
        if !self.update(|v| v.statuses.push(msg.to_string())) {
            self.p.line(format!("#{} {msg}", self.n));
        }
    }

    /// A line of the step's own output, with the time since it started.
    pub fn output(&self, line: &str) {
        let t = self.start.elapsed().as_secs_f64();
        if !self.update(|v| v.output.push(format!("{t:.3} {line}"))) {
            self.p.line(format!("#{} {t:.3} {line}", self.n));
        }
    }

    pub fn done(mut self) {
        self.ended = true;
        if !self.end(State::Done) {
            self.p
                .line(format!("#{} DONE {:.1}s", self.n, self.start.elapsed().as_secs_f64()));
        }
    }

    pub fn cached(mut self) {
        self.ended = true;
        if !self.end(State::Cached) {
            self.p.line(format!("#{} CACHED", self.n));
        }
    }

    pub fn error(mut self, msg: &str) {
        self.ended = true;
        if !self.end(State::Error) {
            self.p.line(format!("#{} ERROR: {msg}", self.n));
        }
    }
}

impl Drop for Vertex<'_> {
    fn drop(&mut self) {
        if !self.ended && !self.end(State::Canceled) {
            self.p.line(format!("#{} CANCELED", self.n));
        }
    }
}

// ---- The tty display ----

struct Tty {
    state: Mutex<TtyState>,
    /// Wakes the ticker when the display is finished.
    wake: Condvar,
}

impl Tty {
    fn lock(&self) -> MutexGuard<'_, TtyState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The ticker: redraws (running times move) until the display is finished.
    fn tick(&self) {
        let mut s = self.lock();
        while !s.finished {
            s = self.wake.wait_timeout(s, TICK).unwrap_or_else(|e| e.into_inner()).0;
            if !s.finished && (s.dirty || s.running()) && s.may_draw() {
                s.draw(false);
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Size {
    Fixed(usize),
    /// Stderr's terminal, asked at each frame (else `COLUMNS`/`LINES`, 80 columns).
    Terminal,
}

impl Size {
    /// (columns, rows if known).
    fn get(self) -> (usize, Option<usize>) {
        match self {
            Size::Fixed(w) => (w, None),
            Size::Terminal => {
                let env = |k: &str| {
                    std::env::var(k)
                        .ok()
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .filter(|&v| v > 0)
                };
                let ws = rustix::termios::tcgetwinsize(std::io::stderr()).ok();
                let cols = ws
                    .map(|w| usize::from(w.ws_col))
                    .filter(|&c| c > 0)
                    .or_else(|| env("COLUMNS"))
                    .unwrap_or(80);
                let rows = ws
                    .map(|w| usize::from(w.ws_row))
                    .filter(|&r| r > 0)
                    .or_else(|| env("LINES"));
                (cols, rows)
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Running,
    Done,
    Cached,
    Error,
    Canceled,
}

struct TtyVertex {
    name: String,
    start: Instant,
    state: State,
    /// How long it ran, once ended.
    took: Duration,
    /// `Vertex::log` messages, shown as ` => => message`.
    statuses: Vec<String>,
    /// Output lines as plain progress has them (`0.123 line`): the last few
    /// shown while it runs, all printed after the display if it fails.
    output: Vec<String>,
}

struct TtyState {
    out: Box<dyn Write + Send>,
    size: Size,
    began: Instant,
    vertices: BTreeMap<usize, TtyVertex>,
    /// Lines of the display now on the screen, above the cursor.
    shown: usize,
    last_draw: Option<Instant>,
    /// Changed since the last frame.
    dirty: bool,
    finished: bool,
}

impl TtyState {
    fn running(&self) -> bool {
        self.vertices.values().any(|v| v.state == State::Running)
    }

    fn may_draw(&self) -> bool {
        self.last_draw.is_none_or(|t| t.elapsed() >= TICK)
    }

    /// After an event: redraw now unless a frame was drawn less than a tick
    /// ago (the ticker draws it then).
    fn changed(&mut self) {
        self.dirty = true;
        if !self.finished && self.may_draw() {
            self.draw(false);
        }
    }

    /// The escape sequences that move the cursor back to the display's first
    /// line, the display's lines then being rewritten or erased.
    fn rewind(&self, buf: &mut String) {
        if self.shown > 0 {
            let _ = write!(buf, "\x1b[{}A", self.shown);
        }
        buf.push('\r');
    }

    /// Draws the display over the one on the screen.
    fn draw(&mut self, last: bool) {
        let (width, rows) = self.size.get();
        let frame = self.frame(Instant::now(), width, if last { None } else { rows }, last);
        let mut buf = String::new();
        self.rewind(&mut buf);
        for l in &frame {
            // Erased before written: a line as wide as the terminal leaves
            // the cursor in its last column, where erasing would eat a character.
            buf.push_str("\x1b[K");
            buf.push_str(l);
            buf.push('\n');
        }
        if frame.len() < self.shown {
            buf.push_str("\x1b[J");
        }
        self.shown = frame.len();
        self.last_draw = Some(Instant::now());
        self.dirty = false;
        let _ = self.out.write_all(buf.as_bytes());
        let _ = self.out.flush();
    }

    /// Prints lines above the display: erases it, prints, draws it again.
    fn print_above(&mut self, lines: &[String]) {
        let mut buf = String::new();
        if self.shown > 0 {
            self.rewind(&mut buf);
            buf.push_str("\x1b[J");
        }
        for l in lines {
            buf.push_str(l);
            buf.push('\n');
        }
        self.shown = 0;
        let _ = self.out.write_all(buf.as_bytes());
        if self.finished {
            let _ = self.out.flush();
        } else {
            self.draw(false);
        }
    }

    /// The whole output of each failed vertex, as BuildKit prints it after
    /// its display.
    fn print_errors(&mut self) {
        let mut buf = String::new();
        for v in self.vertices.values().filter(|v| v.state == State::Error) {
            buf.push_str("------\n");
            let _ = writeln!(buf, " > {}:", v.name);
            for l in &v.output {
                buf.push_str(l);
                buf.push('\n');
            }
            buf.push_str("------\n");
        }
        let _ = self.out.write_all(buf.as_bytes());
        let _ = self.out.flush();
    }

    /// The display's lines at `now`, each at most `width` columns; at most
    /// `rows - 1` of them when `rows` is known (older finished vertices go
    /// first), so that the cursor can always move back over it. The last
    /// frame has no output lines.
    fn frame(&self, now: Instant, width: usize, rows: Option<usize>, last: bool) -> Vec<String> {
        let total = self.vertices.len();
        let finished = self.vertices.values().filter(|v| v.state != State::Running).count();
        let secs = now.saturating_duration_since(self.began).as_secs_f64();
        let mut header = format!("[+] Building {secs:.1}s ({finished}/{total})");
        if last {
            header.push_str(" FINISHED");
        }
        let mut blocks: Vec<(bool, Vec<String>)> = Vec::new();
        for v in self.vertices.values() {
            let mut block = Vec::new();
            let (label, took) = match v.state {
                State::Running => ("", now.saturating_duration_since(v.start)),
                State::Done => ("", v.took),
                State::Cached => ("CACHED ", Duration::ZERO),
                State::Error => ("ERROR ", v.took),
                State::Canceled => ("CANCELED ", v.took),
            };
            block.push(with_timer(
                &format!(" => {label}{}", sanitize(&v.name)),
                &format!("{:.1}s", took.as_secs_f64()),
                width,
            ));
            for s in &v.statuses {
                block.push(cut(&format!(" => => {}", sanitize(s)), width));
            }
            if v.state == State::Running && !last {
                let from = v.output.len().saturating_sub(SHOWN_OUTPUT_LINES);
                for l in &v.output[from..] {
                    // Without plain progress's time prefix.
                    let text = l.split_once(' ').map_or(l.as_str(), |(_, t)| t);
                    block.push(cut(&format!(" => => # {}", sanitize(text)), width));
                }
            }
            blocks.push((v.state != State::Running, block));
        }
        if let Some(rows) = rows {
            let room = rows.saturating_sub(2).max(1);
            let mut used: usize = blocks.iter().map(|b| b.1.len()).sum();
            let mut i = 0;
            while used > room && i < blocks.len() {
                if blocks[i].0 {
                    used -= blocks[i].1.len();
                    blocks.remove(i);
                } else {
                    i += 1;
                }
            }
        }
        let mut lines = vec![cut(&header, width)];
        lines.extend(blocks.into_iter().flat_map(|b| b.1));
        if let Some(rows) = rows {
            lines.truncate(rows.saturating_sub(1).max(1));
        }
        lines
    }
}

/// Columns `s` takes on a terminal.
fn columns(s: &str) -> usize {
    s.chars().map(|c| c.width().unwrap_or(0)).sum()
}

/// `s` cut to at most `width` columns.
fn cut(s: &str, width: usize) -> String {
    let mut used = 0;
    let mut out = String::new();
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > width {
            break;
        }
        used += w;
        out.push(c);
    }
    out
}

/// `left` and `timer` on one line `width` columns wide, the timer at the
/// right edge and `left` cut to make room for it.
fn with_timer(left: &str, timer: &str, width: usize) -> String {
    let tw = columns(timer);
    if width < tw + 2 {
        return cut(left, width);
    }
    let left = cut(left, width - tw - 1);
    let pad = width - tw - columns(&left);
    format!("{left}{}{timer}", " ".repeat(pad))
}

/// Text for one display line: what a carriage return would leave of it,
/// tabs as spaces, without escape sequences or other control characters
/// (they would move the cursor and spoil the redraw).
fn sanitize(s: &str) -> String {
    let s = s.trim_end_matches('\r');
    let s = s.rsplit('\r').next().unwrap_or(s);
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\t' => out.push(' '),
            '\x1b' => match chars.next() {
                // CSI: parameters, then a final byte in @..~.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC: up to BEL or ESC \.
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\x07' {
                            break;
                        }
                        if c == '\x1b' {
                            chars.next();
                            break;
                        }
                    }
                }
                _ => {}
            },
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose bytes the test keeps.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// Text without escape sequences.
    fn plain_text(s: &str) -> String {
        s.split('\n').map(sanitize).collect::<Vec<_>>().join("\n")
    }

    const WIDTH: usize = 60;

    #[test]
    fn tty_final_frame_and_failed_output() {
        let buf = Shared::default();
        let p = Progress::tty(Box::new(buf.clone()), WIDTH);
        p.start("[1/4] FROM docker.io/library/busybox:latest").done();
        p.start("[2/4] COPY . /src").cached();
        let long = format!("[3/4] RUN {}", "x".repeat(200));
        let v = p.start(&long);
        v.output("compiling");
        v.done();
        let v = p.start("[4/4] RUN false");
        v.output("first failing line");
        v.output("second failing line");
        v.error("process \"/bin/sh -c false\" did not complete successfully: exit code: 1");
        drop(p);

        let all = buf.text();
        // The final frame starts at the last header.
        let at = all.rfind("[+] Building").expect("a header");
        // It was drawn over the one before: the cursor moved up to it.
        assert!(
            all[..at].ends_with("A\r\x1b[K"),
            "no cursor reset before the final frame:\n{all:?}"
        );
        let text = plain_text(&all[at..]);
        let (display, after) = text
            .split_once("------\n")
            .expect("the failed step's log after the display");
        assert!(display.starts_with("[+] Building "), "{display}");
        assert!(display.lines().next().unwrap().ends_with("(4/4) FINISHED"), "{display}");
        assert!(display.contains(" => CACHED [2/4] COPY . /src"), "{display}");
        assert!(display.contains(" => ERROR [4/4] RUN false"), "{display}");
        assert!(
            display.contains(" => [1/4] FROM docker.io/library/busybox:latest"),
            "{display}"
        );
        // No output lines in the last frame.
        assert!(!display.contains("=> => #"), "{display}");
        for l in display.lines() {
            assert!(l.chars().count() <= WIDTH, "line longer than {WIDTH}: {l:?}");
        }
        // The long name is cut; its line ends with its time at the edge.
        let l = display.lines().find(|l| l.contains("[3/4] RUN xxx")).unwrap();
        assert!(!l.contains(&long), "{l}");
        assert_eq!(l.chars().count(), WIDTH, "{l:?}");
        assert!(l.ends_with('s') && l.contains(" 0."), "{l:?}");
        // The failed vertex's output, whole, after the display.
        assert!(after.starts_with(" > [4/4] RUN false:\n"), "{after}");
        let first = after.find(" first failing line\n").expect("first line");
        let second = after.find(" second failing line\n").expect("second line");
        assert!(first < second, "{after}");
        assert!(after.trim_end().ends_with("------"), "{after}");
        // A vertex that succeeded does not have its output printed.
        assert!(!after.contains("compiling"), "{after}");
    }

    #[test]
    fn tty_running_vertex_shows_its_last_output_lines() {
        let buf = Shared::default();
        let p = Progress::tty(Box::new(buf.clone()), 40);
        let v = p.start("[2/2] RUN make");
        for i in 1..=10 {
            v.output(&format!(
                "line {i} \x1b[31mred\x1b[0m\tand a long tail that goes past the edge"
            ));
        }
        let frame = {
            let t = p.tty_display().unwrap();
            let s = t.lock();
            s.frame(Instant::now(), 40, None, false)
        };
        assert!(
            frame[0].starts_with("[+] Building ") && frame[0].ends_with("(0/1)"),
            "{frame:?}"
        );
        assert!(frame[1].starts_with(" => [2/2] RUN make "), "{frame:?}");
        let shown: Vec<&String> = frame.iter().filter(|l| l.starts_with(" => => # ")).collect();
        assert_eq!(shown.len(), SHOWN_OUTPUT_LINES, "{frame:?}");
        assert!(shown[0].starts_with(" => => # line 5 red and"), "{frame:?}");
        assert!(shown[5].starts_with(" => => # line 10 red and"), "{frame:?}");
        for l in &frame {
            assert!(columns(l) <= 40, "{l:?}");
            assert!(!l.contains('\x1b') && !l.contains('\t'), "{l:?}");
        }
        v.done();
        drop(p);
        // The last frame has the vertex without its output.
        let all = buf.text();
        let last = plain_text(&all[all.rfind("[+] Building").unwrap()..]);
        assert!(last.contains(" => [2/2] RUN make"), "{last}");
        assert!(!last.contains("=> => #"), "{last}");
        assert!(!last.contains("------"), "nothing failed:\n{last}");
    }

    #[test]
    fn tty_frame_fits_the_rows() {
        let buf = Shared::default();
        let p = Progress::tty(Box::new(buf.clone()), 50);
        for i in 1..=20 {
            p.start(&format!("[{i}/21] LABEL a={i}")).done();
        }
        let v = p.start("[21/21] RUN sleep");
        v.output("still going");
        let frame = p
            .tty_display()
            .unwrap()
            .lock()
            .frame(Instant::now(), 50, Some(10), false);
        assert!(frame.len() <= 9, "{frame:?}");
        // The running vertex and its output stay; older finished ones go.
        assert!(
            frame.iter().any(|l| l.starts_with(" => [21/21] RUN sleep")),
            "{frame:?}"
        );
        assert!(frame.iter().any(|l| l == " => => # still going"), "{frame:?}");
        assert!(!frame.iter().any(|l| l.starts_with(" => [1/21] ")), "{frame:?}");
        v.done();
    }

    #[test]
    fn tty_free_lines_go_above_the_display() {
        let buf = Shared::default();
        let p = Progress::tty(Box::new(buf.clone()), 60);
        let v = p.start("[1/2] FROM scratch");
        p.line("[Warning] something to know");
        v.log("status message");
        v.done();
        drop(p);
        let all = buf.text();
        let w = all.find("[Warning] something to know\n").expect("the warning");
        // The display was erased before it and drawn again after it.
        assert!(all[..w].ends_with("A\r\x1b[J"), "{all:?}");
        assert!(all[w..].contains("[+] Building"), "{all:?}");
        let last = plain_text(&all[all.rfind("[+] Building").unwrap()..]);
        assert!(last.contains(" => => status message"), "{last}");
        assert!(!last.contains("[Warning]"), "{last}");
    }

    #[test]
    fn tty_canceled_vertex_and_ticker_stop() {
        let buf = Shared::default();
        let began = Instant::now();
        let p = Progress::tty(Box::new(buf.clone()), 60);
        {
            let _v = p.start("[2/3] RUN sleep 100");
            // The ticker redraws while the vertex runs (its time moves):
            // wait for two frames after the first.
            while buf.text().matches("[+] Building").count() < 3 {
                std::thread::sleep(TICK / 4);
            }
        }
        drop(p); // joins the ticker: returns only if it stopped
        let took = began.elapsed();
        let all = buf.text();
        let last = plain_text(&all[all.rfind("[+] Building").unwrap()..]);
        assert!(last.contains(" => CANCELED [2/3] RUN sleep 100"), "{last}");
        // At most one frame a tick, besides the first and the last.
        let frames = all.matches("[+] Building").count();
        let ticks = (took.as_millis() / TICK.as_millis()) as usize;
        assert!(frames <= ticks + 2, "{frames} frames in {took:?}:\n{all:?}");
        // Nothing draws after the end.
        let len = all.len();
        std::thread::sleep(TICK * 2);
        assert_eq!(buf.text().len(), len);
    }

    #[test]
    fn plain_output_unchanged() {
        let buf = Shared::default();
        let p = Progress::new(Box::new(buf.clone()));
        p.start("[1/2] FROM scratch").done();
        let v = p.start("[2/2] COPY a /a");
        v.log("cache miss: new");
        v.cached();
        let v = p.start("[3/3] RUN false");
        v.error("exit code: 1");
        p.line("[Warning] w");
        drop(p.start("x"));
        drop(p);
        let text = buf.text();
        let text = regex_free_times(&text);
        assert_eq!(
            text,
            "\n#1 [1/2] FROM scratch\n#1 DONE T\n\n#2 [2/2] COPY a /a\n#2 cache miss: new\n#2 CACHED\n\n#3 [3/3] RUN false\n#3 ERROR: exit code: 1\n[Warning] w\n\n#4 x\n#4 CANCELED\n"
        );
    }

    /// `DONE 0.0s` as `DONE T`.
    fn regex_free_times(s: &str) -> String {
        s.lines()
            .map(|l| match l.split_once(" DONE ") {
                Some((a, t)) if t.ends_with('s') => format!("{a} DONE T"),
                _ => l.to_string(),
            })
            .map(|l| l + "\n")
            .collect()
    }

    #[test]
    fn plain_output_lines_have_times() {
        let buf = Shared::default();
        let p = Progress::new(Box::new(buf.clone()));
        let v = p.start("[1/1] RUN echo hi");
        v.output("hi");
        v.done();
        drop(p);
        let text = buf.text();
        let l = text.lines().find(|l| l.ends_with(" hi") && !l.contains("RUN")).unwrap();
        let mut parts = l.split(' ');
        assert_eq!(parts.next(), Some("#1"));
        let t = parts.next().unwrap();
        assert!(
            t.parse::<f64>().is_ok() && t.split_once('.').unwrap().1.len() == 3,
            "{l}"
        );
    }

    #[test]
    fn cutting() {
        assert_eq!(cut("abcdef", 3), "abc");
        assert_eq!(cut("日本語", 5), "日本");
        assert_eq!(with_timer(" => abc", "0.1s", 12), " => abc 0.1s");
        assert_eq!(with_timer(" => abcdefghij", "0.1s", 12), " => abc 0.1s");
        assert_eq!(sanitize("50%\r100%\r"), "100%");
        assert_eq!(sanitize("a\x1b]0;title\x07b\x1b[1;31mc"), "abc");
    }
}
