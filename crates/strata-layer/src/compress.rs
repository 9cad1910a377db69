//! Compression: sniffing decompressors and hashing compressors.

use std::io::{self, BufRead, Read, Write};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use strata_oci::media::Compression;
use strata_oci::{Algorithm, Digest, HashingReader, HashingWriter};

use crate::{LayerDigests, LayerError, Result};

/// Marks an I/O error as coming from the decompressor, so that it is not
/// reported as a tar problem.
#[derive(Debug)]
pub(crate) struct DecompressError {
    pub compression: &'static str,
    pub message: String,
}

impl std::fmt::Display for DecompressError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} stream: {}", self.compression, self.message)
    }
}

impl std::error::Error for DecompressError {}

struct Labeled<R> {
    inner: R,
    compression: &'static str,
}

impl<R: Read> Read for Labeled<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            let message = if e.kind() == io::ErrorKind::UnexpectedEof {
                "unexpected end of data (truncated)".to_string()
            } else {
                e.to_string()
            };
            io::Error::new(
                io::ErrorKind::InvalidData,
                DecompressError {
                    compression: self.compression,
                    message,
                },
            )
        })
    }
}

/// Whether igzip inflates gzip (ISA-L built in, and not `STRATA_INFLATE=zlib`).
pub fn inflates_with_igzip() -> bool {
    cfg!(strata_isal) && std::env::var("STRATA_INFLATE").map_or(true, |v| v != "zlib")
}

/// Whether gzip at `level` is deflated by igzip (built in, levels 1-3, and
/// not `STRATA_DEFLATE=zlib`); else by zlib-rs.
pub fn deflates_with_igzip(level: u32) -> bool {
    #[cfg(strata_isal)]
    return crate::igzip::deflates(level);
    #[cfg(not(strata_isal))]
    {
        let _ = level;
        false
    }
}

/// A gzip stream's decoder: igzip where built in (see [`inflates_with_igzip`]), else zlib-rs.
fn gzip_decoder<'a, R: BufRead + 'a>(reader: R) -> Box<dyn Read + 'a> {
    #[cfg(strata_isal)]
    let reader = match inflates_with_igzip() {
        true => match crate::igzip::IgzipDecoder::new(reader) {
            Ok(d) => {
                return Box::new(Labeled {
                    inner: d,
                    compression: "gzip",
                });
            }
            Err(reader) => reader,
        },
        false => reader,
    };
    Box::new(Labeled {
        inner: flate2::bufread::MultiGzDecoder::new(reader),
        compression: "gzip",
    })
}

/// Wraps a stream in the decompressor its first bytes call for (gzip,
/// zstd, or none). Concatenated gzip members and zstd frames are read whole.
pub fn decompressor<'a, R: BufRead + 'a>(mut reader: R) -> Result<Box<dyn Read + 'a>> {
    let head = reader.fill_buf().map_err(|e| LayerError::io("reading the layer", e))?;
    Ok(match Compression::sniff(head) {
        Compression::None => Box::new(reader),
        Compression::Gzip => gzip_decoder(reader),
        Compression::Zstd => {
            let d = zstd::Decoder::with_buffer(reader).map_err(|e| LayerError::io("starting zstd", e))?;
            Box::new(Labeled {
                inner: d,
                compression: "zstd",
            })
        }
    })
}

/// A layer's plain (uncompressed) stream with its diff ID computed on the
/// way: read it to the end, then [`PlainStream::finish`] gives the sha256
/// and the length of everything read.
pub(crate) enum PlainStream<R> {
    /// Uncompressed input, hashed as it is read.
    Direct(HashingReader<R>),
    /// Decompressed on a thread that also hashes (see [`decompress_on_thread`]).
    Queued(QueueReader),
}

impl<R: Read> Read for PlainStream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            PlainStream::Direct(r) => r.read(buf),
            PlainStream::Queued(q) => q.read(buf),
        }
    }
}

impl<R> PlainStream<R> {
    /// The diff ID and size of the stream, once it was read to its end.
    pub(crate) fn finish(self) -> Result<(Digest, u64)> {
        match self {
            PlainStream::Direct(r) => {
                let (_, digest, size) = r.finish();
                Ok((digest, size))
            }
            PlainStream::Queued(q) => q.end.ok_or_else(|| {
                LayerError::io(
                    "reading the layer",
                    io::Error::other("the decompressor stopped before the end of the stream"),
                )
            }),
        }
    }
}

/// [`decompressor`] run on a thread of `scope`: the returned reader yields
/// the plain stream from a small bounded queue (4 chunks of 256 KiB), so the
/// caller's work on the plain bytes overlaps decompression. A third thread
/// hashes the same chunks (the diff ID): which of inflating, hashing and
/// writing the files is the long pole depends on the layer and on the
/// filesystem, and as threads of their own the scheduler spreads them over
/// the cores. Uncompressed input is returned as it is, with no thread,
/// hashed as it is read. Errors (a corrupt or truncated stream) reach the
/// reader unchanged; when the reader is dropped early, the threads stop at
/// their next chunk.
pub(crate) fn decompress_on_thread<'scope, 'env, R>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    mut reader: R,
) -> Result<PlainStream<R>>
where
    R: BufRead + Send + 'scope,
{
    let head = reader.fill_buf().map_err(|e| LayerError::io("reading the layer", e))?;
    if Compression::sniff(head) == Compression::None {
        return Ok(PlainStream::Direct(HashingReader::new(reader, Algorithm::Sha256)));
    }
    // Chunks go to the reader over `tx` and to the hasher over `to_hash`,
    // with their filled length; the reader sends spent ones back over
    // `back`, so the same few buffers are reused (no allocation and zeroing
    // of 256 KiB per chunk) once the hasher let go of them too.
    let (tx, rx) = sync_channel::<io::Result<Handover>>(QUEUED);
    let (back, spent) = sync_channel::<Arc<Vec<u8>>>(QUEUED + 2);
    let (to_hash, hash_rx) = sync_channel::<(Arc<Vec<u8>>, usize)>(2 * QUEUED);
    let thread_error = |e| LayerError::io("starting a decompression thread", e);
    let hasher = std::thread::Builder::new()
        .name("layer-hash".into())
        .spawn_scoped(scope, move || {
            let mut hasher = Algorithm::Sha256.hasher();
            let mut total = 0u64;
            for (chunk, len) in hash_rx {
                hasher.update(&chunk[..len]);
                total += len as u64;
            }
            (hasher.finish(), total)
        })
        .map_err(thread_error)?;
    std::thread::Builder::new()
        .name("layer-inflate".into())
        .spawn_scoped(scope, move || {
            let mut plain = match decompressor(reader) {
                Ok(d) => d,
                Err(e) => {
                    let _ = tx.send(Err(io::Error::other(e)));
                    return;
                }
            };
            loop {
                let mut chunk = reusable(&spent);
                let mut filled = 0;
                // Whole chunks where the stream allows: fewer hand-overs.
                while filled < chunk.len() {
                    match plain.read(&mut chunk[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            if filled > 0 {
                                let _ = tx.send(Ok(Handover::Chunk(Arc::new(chunk), filled)));
                            }
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
                if filled == 0 {
                    drop(to_hash);
                    let end = match hasher.join() {
                        Ok((digest, size)) => Ok(Handover::End(digest, size)),
                        Err(_) => Err(io::Error::other("the layer's hash thread failed")),
                    };
                    let _ = tx.send(end);
                    return;
                }
                let chunk = Arc::new(chunk);
                if to_hash.send((chunk.clone(), filled)).is_err()
                    || tx.send(Ok(Handover::Chunk(chunk, filled))).is_err()
                {
                    return;
                }
            }
        })
        .map_err(thread_error)?;
    Ok(PlainStream::Queued(QueueReader {
        rx,
        back,
        cur: Arc::new(Vec::new()),
        len: 0,
        pos: 0,
        end: None,
    }))
}

/// A spent buffer both the reader and the hasher are done with, or a new one.
fn reusable(spent: &Receiver<Arc<Vec<u8>>>) -> Vec<u8> {
    while let Ok(chunk) = spent.try_recv() {
        if let Ok(buf) = Arc::try_unwrap(chunk) {
            return buf;
        }
    }
    vec![0u8; CHUNK]
}

/// What the decompression thread hands over: plain bytes (a buffer and how
/// much of it holds data), then the digest and length of them all.
enum Handover {
    Chunk(Arc<Vec<u8>>, usize),
    End(Digest, u64),
}

/// Plain bytes per hand-over, and hand-overs queued at most.
const CHUNK: usize = 256 * 1024;
const QUEUED: usize = 4;

/// The reading end of [`decompress_on_thread`].
pub(crate) struct QueueReader {
    rx: Receiver<io::Result<Handover>>,
    back: SyncSender<Arc<Vec<u8>>>,
    cur: Arc<Vec<u8>>,
    /// Bytes of `cur` that hold data.
    len: usize,
    pos: usize,
    /// The stream's digest and length, once its end was read.
    end: Option<(Digest, u64)>,
}

impl Read for QueueReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.len {
            if self.end.is_some() {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(Handover::Chunk(chunk, len))) => {
                    let spent = std::mem::replace(&mut self.cur, chunk);
                    if !spent.is_empty() {
                        let _ = self.back.try_send(spent);
                    }
                    self.len = len;
                    self.pos = 0;
                }
                Ok(Ok(Handover::End(digest, size))) => {
                    self.end = Some((digest, size));
                    return Ok(0);
                }
                Ok(Err(e)) => return Err(e),
                // The thread is gone without an end: it sent its error before.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.len - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Turns an I/O error met while reading a layer stream into the most
/// telling `LayerError`.
pub(crate) fn read_error(e: io::Error, context: &str) -> LayerError {
    if let Some(l) = find_error::<crate::MetadataLimit>(&e) {
        return LayerError::TarLimit(l.clone());
    }
    if let Some(d) = find_decompress_error(&e) {
        return LayerError::Compression {
            compression: d.compression,
            message: d.message.clone(),
        };
    }
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return LayerError::Truncated(context.to_string());
    }
    LayerError::io(context.to_string(), e)
}

enum Inner<W: Write> {
    /// Uncompressed output whose digest the caller already computes (it is
    /// the diff ID): counted, not hashed twice.
    Plain(W, u64),
    None(HashingWriter<W>),
    /// Parallel gzip; see [`crate::pgzip`].
    Gzip(crate::pgzip::GzEncoder<HashingWriter<W>>),
    Zstd(zstd::Encoder<'static, HashingWriter<W>>),
}

/// A compressing writer that hashes and counts what it emits.
///
/// Gzip and zstd compress on all cores (gzip in blocks, see
/// [`crate::pgzip`]; zstd with its own workers) and are deterministic: the
/// same input and level give the same bytes whatever the number of cores,
/// the threads' timing or the sizes of the writes. Gzip starts no thread
/// for an input of one block ([`crate::pgzip::BLOCK_SIZE`]) or less.
pub struct Encoder<W: Write> {
    inner: Inner<W>,
}

impl<W: Write> Encoder<W> {
    pub fn new(out: W, compression: Compression, level: Option<i32>) -> Result<Self> {
        let hashing = HashingWriter::new(out, Algorithm::Sha256);
        let inner = match compression {
            Compression::None => Inner::None(hashing),
            Compression::Gzip => {
                let level = level.unwrap_or(1).clamp(0, 9) as u32;
                Inner::Gzip(crate::pgzip::GzEncoder::new(hashing, level))
            }
            Compression::Zstd => {
                let mut e =
                    zstd::Encoder::new(hashing, level.unwrap_or(3)).map_err(|e| LayerError::io("starting zstd", e))?;
                // zstd's own workers (threads start at the first write, ~0.1
                // ms). Measured: 1 to 4 workers and any write sizes give the
                // same bytes; none (single-threaded zstd) gives other bytes,
                // so one core still gets one worker.
                let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
                let workers = workers.min(crate::pgzip::MAX_WORKERS) as u32;
                e.multithread(workers).map_err(|e| LayerError::io("starting zstd", e))?;
                Inner::Zstd(e)
            }
        };
        Ok(Encoder { inner })
    }

    /// An encoder for `compression`, except that uncompressed output is not
    /// hashed (see [`Encoder::finish_parts`]).
    pub(crate) fn new_unhashed_plain(out: W, compression: Compression, level: Option<i32>) -> Result<Self> {
        if compression == Compression::None {
            return Ok(Encoder {
                inner: Inner::Plain(out, 0),
            });
        }
        Encoder::new(out, compression, level)
    }

    /// Finishes the output of a layer whose plain tar has `diff_id` and
    /// `diff_size`: unhashed plain output is that tar, so its digest is the
    /// diff ID.
    pub(crate) fn finish_layer(self, diff_id: Digest, diff_size: u64) -> Result<LayerDigests> {
        let compression = match &self.inner {
            Inner::Plain(..) | Inner::None(_) => Compression::None,
            Inner::Gzip(_) => Compression::Gzip,
            Inner::Zstd(_) => Compression::Zstd,
        };
        let (digest, size) = match self.inner {
            Inner::Plain(mut out, n) => {
                out.flush().map_err(|e| LayerError::io("writing the layer", e))?;
                (diff_id.clone(), n)
            }
            _ => {
                let (_, d, n) = self.finish()?;
                (d, n)
            }
        };
        Ok(LayerDigests {
            diff_id,
            diff_size,
            digest,
            size,
            compression,
        })
    }

    /// Flushes the compressor; returns the output, its digest and size.
    pub fn finish(self) -> Result<(W, Digest, u64)> {
        let hashing = match self.inner {
            Inner::Plain(..) => unreachable!("plain unhashed encoders finish with finish_layer"),
            Inner::None(h) => h,
            Inner::Gzip(g) => g.finish().map_err(|e| LayerError::io("finishing gzip", e))?,
            Inner::Zstd(z) => z.finish().map_err(|e| LayerError::io("finishing zstd", e))?,
        };
        let (mut out, digest, size) = hashing.finish();
        out.flush().map_err(|e| LayerError::io("writing the layer", e))?;
        Ok((out, digest, size))
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Plain(w, n) => {
                let k = w.write(buf)?;
                *n += k as u64;
                Ok(k)
            }
            Inner::None(w) => w.write(buf),
            Inner::Gzip(w) => w.write(buf),
            Inner::Zstd(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Plain(w, _) => w.flush(),
            Inner::None(w) => w.flush(),
            Inner::Gzip(w) => w.flush(),
            Inner::Zstd(w) => w.flush(),
        }
    }
}

/// Finds a decompressor error however deeply readers wrapped it (the tar
/// reader wraps I/O errors in its own).
pub(crate) fn find_decompress_error(e: &io::Error) -> Option<&DecompressError> {
    find_error::<DecompressError>(e)
}

/// Finds an error of type `T` however deeply readers wrapped it.
pub(crate) fn find_error<T: std::error::Error + 'static>(e: &io::Error) -> Option<&T> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|r| r as _);
    while let Some(err) = cur {
        if let Some(d) = err.downcast_ref::<T>() {
            return Some(d);
        }
        if let Some(inner) = err.downcast_ref::<io::Error>() {
            cur = inner.get_ref().map(|r| r as _);
            continue;
        }
        cur = err.source();
    }
    None
}
