//! Layers: OCI layer tarballs written from directory trees, checked and
//! recompressed as streams, and unpacked safely into a root.
//!
//! Every path in a layer is untrusted. Names are cleaned and refused when
//! they are absolute or contain `..`; on disk every operation is relative to
//! an open directory and never follows a symlink, so nothing outside the
//! root can be reached whatever the layer (or an earlier one) contains.
//! An archive a build step unpacks into its own root
//! ([`UnpackOptions::follow_symlinks`]) follows symlinks on the way as a
//! chrooted process would, resolved inside the root ([`resolve_in_root`]).

mod check;
mod compress;
mod error;
mod guard;
#[cfg(strata_isal)]
pub mod igzip;
pub mod pgzip;
mod resolve;
mod sparse;
mod unpack;
pub mod walk;
mod write;

pub use check::{EntryName, Whiteout, clean_entry_name};
pub use compress::{Encoder, decompressor, deflates_with_igzip, inflates_with_igzip};
pub use error::LayerError;
pub use guard::{MAX_PAX_RECORDS, MAX_SPARSE_ENTRIES, MAX_TAR_METADATA_SIZE, MetadataLimit, TarGuard};
pub use resolve::{MAX_SYMLINK_HOPS, resolve_in_root};
pub use strata_oci::media::Compression;
pub use unpack::{
    DEFAULT_MAX_UNPACKED_SIZE, UnpackOptions, UnpackReport, WhiteoutMode, check_lowers, unpack, unpack_at,
};
pub use walk::{MAX_OPEN_DIRS, TreeVisitor, walk_tree};
pub use write::{
    Selected, write_dir_layer, write_entry_at, write_fuse_overlay_upper_layer, write_overlay_upper_layer,
    write_selected,
};

use std::io::{Read, Write};

use strata_oci::{Algorithm, Digest, HashingReader};

pub type Result<T, E = LayerError> = std::result::Result<T, E>;

/// How to write a layer.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    pub compression: Compression,
    /// Compression level (gzip 0-9, zstd 1-22); a fast default when `None`.
    pub level: Option<i32>,
    /// Clamp every file time to this Unix time (reproducible builds).
    pub source_date_epoch: Option<i64>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            compression: Compression::Gzip,
            level: None,
            source_date_epoch: None,
        }
    }
}

/// The two identities of a layer, computed in the same pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDigests {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    pub diff_size: u64,
    /// sha256 of the bytes written (the distribution digest).
    pub digest: Digest,
    pub size: u64,
    pub compression: Compression,
}

/// Reads a layer tar (plain, gzip or zstd, sniffed), checks every header
/// (names, links, whiteouts, sizes) and writes the same tar compressed as
/// `opts` says. One pass: decompress → hash (diff ID) → check → compress →
/// hash (digest).
pub fn recompress<R: Read, W: Write>(input: R, opts: &WriteOptions, out: W) -> Result<LayerDigests> {
    let reader = decompressor(std::io::BufReader::with_capacity(256 * 1024, input))?;
    let mut encoder = Encoder::new_unhashed_plain(out, opts.compression, opts.level)?;
    let tee = Tee {
        inner: HashingReader::new(reader, Algorithm::Sha256),
        out: &mut encoder,
        failed: None,
    };
    let mut tee = check::check_stream(tee)?;
    if let Some(e) = tee.failed.take() {
        return Err(LayerError::io("writing the layer", e));
    }
    let (_, diff_id, diff_size) = tee.inner.finish();
    encoder.finish_layer(diff_id, diff_size)
}

/// Checks a plain (uncompressed) layer tar as [`recompress`] does (every
/// header, then what follows the end-of-archive marker) without hashing
/// it, for a caller that verifies the same bytes against the diff ID
/// itself (a plain layer's blob digest is its diff ID); returns how many
/// bytes it read (the diff size).
pub fn check_plain<R: Read>(input: R) -> Result<u64> {
    let counted = check::check_stream(Counting { inner: input, n: 0 })?;
    Ok(counted.n)
}

/// Counts what is read through it.
struct Counting<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}

/// Copies everything read through it into a writer.
struct Tee<'a, R, W: Write> {
    inner: R,
    out: &'a mut W,
    failed: Option<std::io::Error>,
}

impl<R: Read, W: Write> Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.out.write_all(&buf[..n]) {
            // Surface write errors as-is rather than as a tar parse error.
            let msg = e.to_string();
            self.failed = Some(e);
            return Err(std::io::Error::other(msg));
        }
        Ok(n)
    }
}
