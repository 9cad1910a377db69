//! binfmt_misc: its entries as the kernel prints them, and the writes that
//! register, disable and remove handlers.
//!
//! An entry (`/proc/sys/fs/binfmt_misc/NAME`) reads:
//!
//! ```text
//! enabled
//! interpreter /usr/bin/qemu-aarch64-static
//! flags: POCF
//! offset 0
//! magic 7f454c460201010000000000000000000200b700
//! mask ffffffffffffff00fffffffffffffffffeffffff
//! ```
//!
//! (`extension .EXT` instead of offset/magic/mask for extension handlers;
//! no `mask` line when the handler has none).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::EmulationError;

/// Where binfmt_misc is mounted.
pub const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";

/// A handler's flags (`P`, `O`, `C`, `F`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// `P`: the program's own argv[0] is passed on.
    pub preserve_argv0: bool,
    /// `O`: the interpreter gets an open file descriptor of the program.
    pub open_binary: bool,
    /// `C`: credentials (setuid) come from the program, not the interpreter.
    pub credentials: bool,
    /// `F`: the interpreter was opened at registration, so it is found in
    /// every mount namespace (a container's, where it does not exist).
    pub fix_binary: bool,
}

impl Flags {
    pub fn parse(s: &str) -> Flags {
        let mut f = Flags::default();
        for c in s.chars() {
            match c {
                'P' => f.preserve_argv0 = true,
                'O' => f.open_binary = true,
                'C' => f.credentials = true,
                'F' => f.fix_binary = true,
                _ => {}
            }
        }
        f
    }
}

impl std::fmt::Display for Flags {
    /// In the kernel's order.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (on, c) in [
            (self.preserve_argv0, 'P'),
            (self.open_binary, 'O'),
            (self.credentials, 'C'),
            (self.fix_binary, 'F'),
        ] {
            if on {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// What a handler recognises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// Bytes at an offset, under a mask (all ones when absent).
    Magic {
        offset: usize,
        magic: Vec<u8>,
        mask: Option<Vec<u8>>,
    },
    /// A file name extension (without the dot).
    Extension(String),
}

impl Matcher {
    /// Whether a file starting with `head` is this handler's, as the
    /// kernel decides: every masked byte equal. Bytes past `head` are
    /// unknown, so a magic reaching there matches only where masked out.
    pub fn matches(&self, head: &[u8]) -> bool {
        let Matcher::Magic { offset, magic, mask } = self else {
            return false;
        };
        magic.iter().enumerate().all(|(i, m)| {
            let k = mask.as_ref().map_or(0xff, |mask| mask.get(i).copied().unwrap_or(0xff));
            match head.get(offset + i) {
                Some(b) => (b ^ m) & k == 0,
                None => k == 0,
            }
        })
    }
}

/// One registered handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    /// Its name (the entry's file name).
    pub name: String,
    pub enabled: bool,
    pub interpreter: PathBuf,
    pub flags: Flags,
    pub matcher: Matcher,
}

/// An entry the parser did not understand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("binfmt_misc entry {name}: {reason}")]
pub struct ParseError {
    pub name: String,
    pub reason: String,
}

fn hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Decodes binfmt_misc's registration spelling (`\x7fELF\x02`): `\xHH`
/// escapes and plain characters.
pub fn unescape(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            match b.get(i + 1) {
                Some(b'x') => {
                    out.push(u8::from_str_radix(s.get(i + 2..i + 4)?, 16).ok()?);
                    i += 4;
                }
                Some(b'\\') => {
                    out.push(b'\\');
                    i += 2;
                }
                _ => return None,
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

impl Handler {
    /// Parses an entry's text as the kernel prints it.
    pub fn parse(name: &str, text: &str) -> Result<Handler, ParseError> {
        let err = |reason: &str| ParseError {
            name: name.to_string(),
            reason: reason.to_string(),
        };
        let mut enabled = None;
        let mut interpreter = None;
        let mut flags = Flags::default();
        let mut offset = 0usize;
        let mut magic = None;
        let mut mask = None;
        let mut extension = None;
        for line in text.lines() {
            let line = line.trim_end();
            match line {
                "enabled" => enabled = Some(true),
                "disabled" => enabled = Some(false),
                _ => {
                    let (key, value) = line.split_once(' ').unwrap_or((line, ""));
                    match key {
                        "interpreter" => interpreter = Some(PathBuf::from(value)),
                        "flags:" => flags = Flags::parse(value.trim()),
                        "offset" => offset = value.trim().parse().map_err(|_| err("offset is not a number"))?,
                        "magic" => magic = Some(hex(value).ok_or_else(|| err("magic is not hex"))?),
                        "mask" => mask = Some(hex(value).ok_or_else(|| err("mask is not hex"))?),
                        "extension" => extension = Some(value.trim().trim_start_matches('.').to_string()),
                        // Lines a newer kernel may add are not ours to refuse.
                        _ => {}
                    }
                }
            }
        }
        let enabled = enabled.ok_or_else(|| err("no enabled/disabled line"))?;
        let interpreter = interpreter.ok_or_else(|| err("no interpreter line"))?;
        let matcher = match (magic, extension) {
            (Some(magic), _) => {
                if mask.as_ref().is_some_and(|m: &Vec<u8>| m.len() != magic.len()) {
                    return Err(err("mask and magic differ in length"));
                }
                Matcher::Magic { offset, magic, mask }
            }
            (None, Some(ext)) => Matcher::Extension(ext),
            (None, None) => return Err(err("neither magic nor extension")),
        };
        Ok(Handler {
            name: name.to_string(),
            enabled,
            interpreter,
            flags,
            matcher,
        })
    }
}

/// A binfmt_misc directory: the system's (`Binfmt::system()`), or any
/// directory laid out like it (tests).
#[derive(Debug, Clone)]
pub struct Binfmt {
    pub dir: PathBuf,
}

impl Default for Binfmt {
    fn default() -> Self {
        Binfmt::system()
    }
}

impl Binfmt {
    pub fn system() -> Binfmt {
        Binfmt {
            dir: PathBuf::from(BINFMT_MISC),
        }
    }

    pub fn at(dir: impl Into<PathBuf>) -> Binfmt {
        Binfmt { dir: dir.into() }
    }

    fn io(&self, what: String) -> impl FnOnce(io::Error) -> EmulationError {
        move |source| EmulationError::Io { what, source }
    }

    /// Whether binfmt_misc is mounted here (its `register` file exists).
    pub fn is_mounted(&self) -> bool {
        self.dir.join("register").exists()
    }

    /// Mounts binfmt_misc when it is not (as systemd does at boot and
    /// tonistiigi/binfmt before registering). Needs root.
    pub fn ensure_mounted(&self) -> Result<(), EmulationError> {
        if self.is_mounted() {
            return Ok(());
        }
        rustix::mount::mount(
            "binfmt_misc",
            &self.dir,
            "binfmt_misc",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .map_err(|e| EmulationError::Mount {
            dir: self.dir.clone(),
            source: e.into(),
        })?;
        Ok(())
    }

    /// Whether binfmt_misc as a whole is on (its `status` file).
    pub fn globally_enabled(&self) -> bool {
        fs::read_to_string(self.dir.join("status"))
            .map(|s| s.trim() != "disabled")
            .unwrap_or(true)
    }

    /// Every handler, sorted by name. Entries that do not parse are
    /// returned apart, so one odd entry does not hide the others.
    pub fn handlers(&self) -> Result<(Vec<Handler>, Vec<ParseError>), EmulationError> {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        let rd = fs::read_dir(&self.dir).map_err(self.io(format!("reading {}", self.dir.display())))?;
        for entry in rd {
            let entry = entry.map_err(self.io(format!("reading {}", self.dir.display())))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "register" || name == "status" {
                continue;
            }
            match self.handler(&name) {
                Ok(Some(h)) => out.push(h),
                Ok(None) => {}
                Err(EmulationError::Parse(e)) => bad.push(e),
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((out, bad))
    }

    /// One handler by name (`None` when there is no such entry).
    pub fn handler(&self, name: &str) -> Result<Option<Handler>, EmulationError> {
        let path = self.dir.join(name);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(Handler::parse(name, &text)?)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(EmulationError::Io {
                what: format!("reading {}", path.display()),
                source,
            }),
        }
    }

    /// Writes one registration line (`:name:M:offset:magic:mask:interpreter:flags`).
    pub fn register(&self, line: &str) -> Result<(), EmulationError> {
        let path = self.dir.join("register");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(self.io(format!("opening {}", path.display())))?;
        // One write: the kernel takes a registration per write call.
        f.write_all(line.as_bytes())
            .map_err(self.io(format!("registering with {}: {line}", path.display())))
    }

    /// Removes a handler (`-1` to its entry).
    pub fn remove(&self, name: &str) -> Result<(), EmulationError> {
        self.write_entry(name, "-1")
    }

    /// Enables (`1`) or disables (`0`) a handler.
    pub fn set_enabled(&self, name: &str, on: bool) -> Result<(), EmulationError> {
        self.write_entry(name, if on { "1" } else { "0" })
    }

    fn write_entry(&self, name: &str, what: &str) -> Result<(), EmulationError> {
        if name.is_empty() || name.contains('/') || name == "register" || name == "status" {
            return Err(EmulationError::Io {
                what: format!("binfmt_misc handler name {name:?}"),
                source: io::Error::from(io::ErrorKind::InvalidInput),
            });
        }
        let path = self.dir.join(name);
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(what.as_bytes()))
            .map_err(self.io(format!("writing {what} to {}", path.display())))
    }
}

/// The registration line for a handler.
pub(crate) fn registration(name: &str, magic: &str, mask: &str, interpreter: &Path, flags: Flags) -> String {
    format!(":{name}:M:0:{magic}:{mask}:{}:{flags}", interpreter.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    const QEMU_AARCH64: &str = "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: POCF\noffset 0\n\
        magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

    #[test]
    fn parses_a_magic_entry() {
        let h = Handler::parse("qemu-aarch64", QEMU_AARCH64).unwrap();
        assert!(h.enabled);
        assert_eq!(h.interpreter, Path::new("/usr/bin/qemu-aarch64-static"));
        assert_eq!(
            h.flags,
            Flags {
                preserve_argv0: true,
                open_binary: true,
                credentials: true,
                fix_binary: true
            }
        );
        assert_eq!(h.flags.to_string(), "POCF");
        let Matcher::Magic { offset, magic, mask } = &h.matcher else {
            panic!("{h:?}")
        };
        assert_eq!(*offset, 0);
        assert_eq!(magic.len(), 20);
        assert_eq!(magic[18], 0xb7);
        assert_eq!(mask.as_ref().unwrap()[7], 0);
    }

    #[test]
    fn parses_disabled_no_flags_no_mask_and_extension_entries() {
        let h = Handler::parse(
            "python3.11",
            "disabled\ninterpreter /usr/bin/python3.11\nflags: \noffset 0\nmagic a70d0d0a\n",
        )
        .unwrap();
        assert!(!h.enabled);
        assert_eq!(h.flags, Flags::default());
        assert_eq!(
            h.matcher,
            Matcher::Magic {
                offset: 0,
                magic: vec![0xa7, 0x0d, 0x0d, 0x0a],
                mask: None
            }
        );
        assert!(h.matcher.matches(&[0xa7, 0x0d, 0x0d, 0x0a, 0]));
        assert!(!h.matcher.matches(&[0xa7, 0x0d, 0x0d, 0x0b]));
        let h = Handler::parse("wine", "enabled\ninterpreter /usr/bin/wine\nflags: \nextension .exe\n").unwrap();
        assert_eq!(h.matcher, Matcher::Extension("exe".into()));
        assert!(!h.matcher.matches(b"MZ"));
    }

    #[test]
    fn refuses_broken_entries() {
        for (text, why) in [
            ("interpreter /x\nflags: F\noffset 0\nmagic 7f\n", "enabled"),
            ("enabled\nflags: F\noffset 0\nmagic 7f\n", "interpreter"),
            ("enabled\ninterpreter /x\nflags: F\n", "neither"),
            ("enabled\ninterpreter /x\nflags: F\noffset x\nmagic 7f\n", "offset"),
            ("enabled\ninterpreter /x\nflags: F\noffset 0\nmagic 7g\n", "hex"),
            (
                "enabled\ninterpreter /x\nflags: F\noffset 0\nmagic 7f45\nmask ff\n",
                "length",
            ),
        ] {
            let e = Handler::parse("h", text).unwrap_err();
            assert!(e.to_string().contains(why), "{e} for {text:?}");
            assert!(e.to_string().contains("entry h"), "{e}");
        }
    }

    #[test]
    fn offsets_and_short_heads() {
        let m = Matcher::Magic {
            offset: 2,
            magic: vec![0xaa, 0xbb],
            mask: Some(vec![0xff, 0x00]),
        };
        assert!(m.matches(&[0, 0, 0xaa]));
        assert!(!m.matches(&[0, 0, 0xab]));
        assert!(!m.matches(&[0, 0]));
    }

    #[test]
    fn unescapes_registration_spelling() {
        assert_eq!(unescape(r"\x7fELF\x02").unwrap(), b"\x7fELF\x02");
        assert!(unescape(r"\x7").is_none());
        assert!(unescape(r"\q").is_none());
    }

    #[test]
    fn registration_line() {
        let flags = Flags::parse("FCOP");
        assert_eq!(
            registration(
                "qemu-arm",
                r"\x7f",
                r"\xff",
                Path::new("/usr/bin/qemu-arm-static"),
                flags
            ),
            r":qemu-arm:M:0:\x7f:\xff:/usr/bin/qemu-arm-static:POCF"
        );
    }
}
