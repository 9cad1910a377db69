//! A streaming guard in front of the tar reader that bounds tar metadata.
//!
//! The `tar` crate reads a PAX extended header, a GNU long name or long
//! link name whole into memory, and keeps a GNU sparse map as a list in
//! memory, however large the header says they are: a 1 KB compressed
//! layer could make it allocate gigabytes (the CVE-2022-2879 class). The
//! guard sits between the decompressor and `tar::Archive`, follows the
//! stream's 512-byte headers as they pass (entry sizes, padding, a PAX
//! `size` record that moves the next header, sparse extension blocks), and
//! fails the read that would hand the tar reader an over-limit header, so
//! the reader never buffers more than the limits. The limits are Go's
//! archive/tar ones (what Docker uses) where it has them.
//!
//! It parses each header with the `tar` crate's own accessors, so both see
//! the same sizes. Where the tar reader will refuse a header (bad checksum,
//! unreadable size), the guard stops following and lets bytes through: the
//! tar reader reads nothing past that header.

use std::io::{self, Read};

use tar::{EntryType, GnuExtSparseHeader, Header, PaxExtensions};

/// The most bytes a PAX extended header (`x` or `g`), a GNU long name
/// (`L`) or long link name (`K`) may hold: 1 MiB, as Go's archive/tar.
pub const MAX_TAR_METADATA_SIZE: u64 = 1 << 20;

/// The most records one PAX header may hold. Each becomes a small
/// allocation when read (xattrs are kept per entry); Linux lists at most
/// 64 KiB of xattr names per file, fewer than this many xattrs.
pub const MAX_PAX_RECORDS: u64 = 16 * 1024;

/// The most data segments a GNU sparse map may list (the tar reader keeps
/// two small records per segment).
pub const MAX_SPARSE_ENTRIES: u64 = 64 * 1024;

const BLOCK: u64 = 512;

/// Tar metadata over one of the limits above: carried inside the
/// `io::Error` the guard's reads return (a caller using [`TarGuard`] with
/// its own `tar::Archive` can downcast to it); the layer functions return
/// it as [`crate::LayerError::TarLimit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataLimit {
    /// The name in the offending header.
    pub entry: String,
    /// Where that header starts in the plain tar stream.
    pub offset: u64,
    /// What is over the limit.
    pub what: &'static str,
    pub found: u64,
    pub limit: u64,
}

impl std::fmt::Display for MetadataLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "entry {:?} (header at byte {}): {} {} is over the limit of {}",
            self.entry, self.offset, self.what, self.found, self.limit
        )
    }
}

impl std::error::Error for MetadataLimit {}

enum State {
    /// Collecting the next 512-byte header.
    Header,
    /// Passing entry content and padding.
    Content { left: u64 },
    /// Buffering a PAX header's records (at most the limit), then `pad`.
    Pax {
        records: Vec<u8>,
        left: u64,
        pad: u64,
        /// A local (`x`) header the tar reader applies to the next entry.
        local: bool,
        entry: String,
        offset: u64,
    },
    /// Collecting GNU sparse extension blocks, then the entry's `content`.
    SparseExt {
        entries: u64,
        content: u64,
        entry: String,
        offset: u64,
    },
    /// Past the end-of-archive marker, or at a header the tar reader
    /// refuses: nothing more to follow.
    Done,
}

/// See the module documentation.
pub struct TarGuard<R> {
    inner: R,
    state: State,
    block: [u8; BLOCK as usize],
    filled: usize,
    /// Stream offset of the next byte read.
    pos: u64,
    /// A local PAX header is pending for the next entry: its `size`
    /// record, if it has one the tar reader reads.
    pending_size: Option<Option<u64>>,
    failed: Option<MetadataLimit>,
}

impl<R: Read> TarGuard<R> {
    pub fn new(inner: R) -> TarGuard<R> {
        TarGuard {
            inner,
            state: State::Header,
            block: [0; BLOCK as usize],
            filled: 0,
            pos: 0,
            pending_size: None,
            failed: None,
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Follows `data`, the next bytes of the stream.
    fn observe(&mut self, mut data: &[u8]) -> Result<(), MetadataLimit> {
        while !data.is_empty() {
            match &mut self.state {
                State::Done => return Ok(()),
                State::Content { left } => {
                    let k = (*left).min(data.len() as u64);
                    *left -= k;
                    self.pos += k;
                    data = &data[k as usize..];
                    if *left == 0 {
                        self.state = State::Header;
                    }
                }
                State::Pax { records, left, .. } => {
                    let k = (*left).min(data.len() as u64);
                    records.extend_from_slice(&data[..k as usize]);
                    *left -= k;
                    self.pos += k;
                    data = &data[k as usize..];
                    if *left == 0 {
                        self.pax_done()?;
                    }
                }
                State::Header | State::SparseExt { .. } => {
                    let k = (self.block.len() - self.filled).min(data.len());
                    self.block[self.filled..self.filled + k].copy_from_slice(&data[..k]);
                    self.filled += k;
                    self.pos += k as u64;
                    data = &data[k..];
                    if self.filled == self.block.len() {
                        self.filled = 0;
                        if matches!(self.state, State::Header) {
                            self.header()?;
                        } else {
                            self.sparse_ext()?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// A whole header is in `block`.
    fn header(&mut self) -> Result<(), MetadataLimit> {
        let offset = self.pos - BLOCK;
        let h = Header::from_byte_slice(&self.block);
        // The tar reader ends at the first zero block, and refuses a header
        // whose checksum or size it cannot read.
        if self.block.iter().all(|&b| b == 0) || !checksum_ok(h) {
            self.state = State::Done;
            return Ok(());
        }
        let Ok(mut size) = h.entry_size() else {
            self.state = State::Done;
            return Ok(());
        };
        let kind = h.entry_type();
        let pax = kind.is_pax_local_extensions() || kind.is_pax_global_extensions();
        let long = kind.is_gnu_longname() || kind.is_gnu_longlink();
        let recognized = h.as_gnu().is_some() || h.as_ustar().is_some();
        // As the tar reader: a pending local PAX header's size applies to
        // the next header that is no extension header; it is pending until
        // an entry is handed out (any header but a recognized x, L or K).
        if !(pax || long)
            && let Some(Some(s)) = self.pending_size
        {
            size = s;
        }
        if !(recognized && (long || kind.is_pax_local_extensions())) {
            self.pending_size = None;
        }
        let entry = || String::from_utf8_lossy(&h.path_bytes()).into_owned();
        if (pax || long) && size > MAX_TAR_METADATA_SIZE {
            let what = match kind {
                EntryType::XHeader => "PAX extended header size in bytes",
                EntryType::XGlobalHeader => "PAX global header size in bytes",
                EntryType::GNULongName => "GNU long name size in bytes",
                _ => "GNU long link name size in bytes",
            };
            return Err(MetadataLimit {
                entry: entry(),
                offset,
                what,
                found: size,
                limit: MAX_TAR_METADATA_SIZE,
            });
        }
        let Some(padded) = size.checked_next_multiple_of(BLOCK) else {
            self.state = State::Done;
            return Ok(());
        };
        self.state = if pax {
            State::Pax {
                records: Vec::with_capacity(size.min(64 * 1024) as usize),
                left: size,
                pad: padded - size,
                local: recognized && kind.is_pax_local_extensions(),
                entry: entry(),
                offset,
            }
        } else if kind.is_gnu_sparse() {
            let Some(gnu) = h.as_gnu() else {
                self.state = State::Done;
                return Ok(());
            };
            let entries = gnu.sparse.iter().filter(|s| !s.is_empty()).count() as u64;
            if gnu.is_extended() {
                State::SparseExt {
                    entries,
                    content: padded,
                    entry: entry(),
                    offset,
                }
            } else {
                State::Content { left: padded }
            }
        } else {
            State::Content { left: padded }
        };
        if matches!(self.state, State::Content { left: 0 }) {
            self.state = State::Header;
        }
        // An empty PAX header is complete at once.
        if matches!(self.state, State::Pax { left: 0, .. }) {
            self.pax_done()?;
        }
        Ok(())
    }

    /// A PAX header's records are all in.
    fn pax_done(&mut self) -> Result<(), MetadataLimit> {
        let State::Pax {
            records,
            pad,
            local,
            entry,
            offset,
            ..
        } = std::mem::replace(&mut self.state, State::Header)
        else {
            unreachable!("called in the Pax state");
        };
        let count = PaxExtensions::new(&records).count() as u64;
        if count > MAX_PAX_RECORDS {
            return Err(MetadataLimit {
                entry,
                offset,
                what: "number of PAX records",
                found: count,
                limit: MAX_PAX_RECORDS,
            });
        }
        if local {
            self.pending_size = Some(pax_size(&records));
        }
        if pad > 0 {
            self.state = State::Content { left: pad };
        }
        Ok(())
    }

    /// A GNU sparse extension block is in `block`.
    fn sparse_ext(&mut self) -> Result<(), MetadataLimit> {
        let mut ext = GnuExtSparseHeader::new();
        ext.as_mut_bytes().copy_from_slice(&self.block);
        let State::SparseExt {
            entries,
            content,
            entry,
            offset,
        } = &mut self.state
        else {
            unreachable!("called in the SparseExt state");
        };
        *entries += ext.sparse.iter().filter(|s| !s.is_empty()).count() as u64;
        if *entries > MAX_SPARSE_ENTRIES {
            return Err(MetadataLimit {
                entry: std::mem::take(entry),
                offset: *offset,
                what: "number of GNU sparse map entries",
                found: *entries,
                limit: MAX_SPARSE_ENTRIES,
            });
        }
        if !ext.is_extended() {
            self.state = match *content {
                0 => State::Header,
                left => State::Content { left },
            };
        }
        Ok(())
    }
}

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = &self.failed {
            return Err(io::Error::new(io::ErrorKind::InvalidData, e.clone()));
        }
        let n = self.inner.read(buf)?;
        if let Err(e) = self.observe(&buf[..n]) {
            self.failed = Some(e.clone());
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        Ok(n)
    }
}

/// The header checksum test of the tar reader.
fn checksum_ok(h: &Header) -> bool {
    let b = h.as_bytes();
    let sum = b[..148].iter().chain(&b[156..]).map(|&x| u32::from(x)).sum::<u32>() + 8 * 32;
    h.cksum().is_ok_and(|c| c == sum)
}

/// The `size` record of a PAX header as the tar reader reads it: the first
/// `size` record, if every record before it parses and its value is a
/// decimal u64; else none.
fn pax_size(records: &[u8]) -> Option<u64> {
    for r in PaxExtensions::new(records) {
        let r = r.ok()?;
        if r.key() != Ok("size") {
            continue;
        }
        return r.value().ok()?.parse::<u64>().ok();
    }
    None
}
