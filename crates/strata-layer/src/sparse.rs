//! Writing GNU sparse entries as sparse files.
//!
//! The tar reader hands a sparse entry out as a plain stream in which the
//! holes read as zeros: written as they come, a few bytes of layer fill
//! gigabytes of disk. Blocks of zeros are skipped instead (the file's
//! length is set at the end), so the holes stay holes.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::check::{content_error, truncated};
use crate::{LayerError, Result};

/// Hole granularity: a common file system block size. Blocks are aligned
/// on it in the file since every read but the last fills the buffer.
const BLOCK: usize = 4096;
const BUF: usize = 256 * 1024;
static ZEROS: [u8; BLOCK] = [0; BLOCK];

/// Writes the content of the sparse entry `path` (`size` apparent bytes)
/// into `file`, a new empty file, leaving blocks of zeros unwritten;
/// `io_err` describes a failed write.
pub(crate) fn write_sparse<R: Read>(
    entry: &mut R,
    path: &Path,
    size: u64,
    file: &File,
    io_err: impl Fn(io::Error) -> LayerError,
) -> Result<u64> {
    let mut buf = vec![0u8; BUF];
    let mut off = 0u64;
    loop {
        let n = fill(entry, &mut buf).map_err(|e| content_error(e, path, size))?;
        if n == 0 {
            break;
        }
        let data = &buf[..n];
        // Runs of blocks holding data are written at their offset.
        let mut run: Option<usize> = None;
        for start in (0..n).step_by(BLOCK) {
            let block = &data[start..(start + BLOCK).min(n)];
            let zero = block == &ZEROS[..block.len()];
            match (zero, run) {
                (false, None) => run = Some(start),
                (true, Some(s)) => {
                    file.write_all_at(&data[s..start], off + s as u64).map_err(&io_err)?;
                    run = None;
                }
                _ => {}
            }
        }
        if let Some(s) = run {
            file.write_all_at(&data[s..], off + s as u64).map_err(&io_err)?;
        }
        off += n as u64;
    }
    // A trailing hole: the length says where the file ends.
    file.set_len(off).map_err(&io_err)?;
    if off < size {
        return Err(truncated(path, size, Some(off)));
    }
    Ok(off)
}

/// Reads until `buf` is full or the stream ends.
fn fill<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
