//! Parallel gzip, pigz-style, behind [`crate::Encoder`].
//!
//! The input is cut into blocks of [`BLOCK_SIZE`] bytes. Each block is
//! compressed as raw deflate by a new `flate2::Compress`, primed with the
//! last 32 KiB of input before the block as dictionary (so matches may
//! reach back across the cut, as in one stream), and ended with a sync
//! flush, which leaves it on a byte boundary; the last block ends the
//! deflate stream instead. The blocks written one after another form one
//! deflate stream, wrapped in one gzip member (header, stream, CRC-32 and
//! length of the input).
//!
//! Determinism: block boundaries depend only on the position in the input
//! (every block holds `BLOCK_SIZE` bytes but the last, which holds the rest
//! and may be empty when the input is), each block's bytes only on its input,
//! its dictionary, whether it is last and the level, and blocks are written
//! in input order. So the same input at the same level gives the same bytes
//! whatever the number of threads (none on one core, or when thread start
//! fails), their timing, or how the input was split into `write` calls
//! (for a given version of flate2 and zlib-rs, as with one stream; where
//! ISA-L is built in, levels 1-3 are igzip's, whose bytes are those of a
//! given ISA-L version and the code path it picks for the CPU). `flush`
//! writes out the blocks already compressed but never cuts a block. The
//! bytes differ from flate2's `GzEncoder` (one stream) for inputs of more
//! than one block.
//!
//! The block size was measured flat between 256 KiB and 1 MiB (16 MiB of
//! random bytes and a 115 MiB Debian rootfs tar, 2 cores, level 1); smaller
//! blocks compress a little better at level 1, larger ones start fewer
//! compressors. The CRC-32 is computed per block by the workers and
//! combined (about 10 GB/s either way, so it hardly matters where).
//!
//! Threads: none until the input exceeds one block (smaller inputs are
//! compressed on the caller's thread at `finish`); then a pool of one worker
//! per core (at most [`MAX_WORKERS`]) owned by the encoder, joined at
//! `finish` or when the encoder is dropped. Compressed blocks are written,
//! hashed and counted on the caller's thread, in order; at most
//! `IN_FLIGHT_PER_WORKER` blocks per worker are between the caller and the
//! output (each ~1.1 MiB of input and output buffers), so memory stays
//! bounded and a slow output slows the input down. A worker's panic or a
//! compression or write error is an `io::Error` from `write` or `finish`
//! (and from every later call); dropping an unfinished encoder stops and
//! joins its workers.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use flate2::{Compress, Crc, FlushCompress, Status};

/// Input bytes per independently compressed block.
pub const BLOCK_SIZE: usize = 512 * 1024;
/// Deflate's window: the dictionary given to each block.
const DICT_SIZE: usize = 32 * 1024;
/// Beyond this, the caller's thread (hashing and writing the output) is the
/// bottleneck anyway.
pub const MAX_WORKERS: usize = 16;
/// Blocks dispatched and not yet written, per worker.
const IN_FLIGHT_PER_WORKER: usize = 2;

/// A gzip writer compressing blocks in parallel (see the module docs).
pub(crate) struct GzEncoder<W: Write> {
    out: W,
    level: flate2::Compression,
    block_size: usize,
    /// Worker threads to start when the input exceeds one block (0: none).
    workers: usize,
    /// The dictionary (`dict_len` bytes) then the input of the block being
    /// filled.
    buf: Vec<u8>,
    dict_len: usize,
    total_in: u64,
    /// CRC-32 of the input written out so far.
    crc: Crc,
    header_written: bool,
    pool: Option<Pool>,
    /// Sequence number of the next block dispatched / written out.
    next_seq: u64,
    next_out: u64,
    /// Finished blocks waiting for the ones before them.
    done: BTreeMap<u64, Done>,
    spare_in: Vec<Vec<u8>>,
    spare_out: Vec<Vec<u8>>,
    failed: bool,
    /// Tests: the block whose worker panics.
    #[cfg(test)]
    panic_at: Option<u64>,
}

struct Job {
    seq: u64,
    input: Vec<u8>,
    dict_len: usize,
    last: bool,
    out: Vec<u8>,
    #[cfg(test)]
    panic: bool,
}

struct Done {
    seq: u64,
    /// The compressed block and the CRC of its input.
    result: io::Result<(Vec<u8>, Crc)>,
    /// Given back for reuse.
    input: Vec<u8>,
}

enum Msg {
    Done(Done),
    /// A worker panicked.
    Died,
}

/// The number of workers for this machine: one per core, none on one core.
fn default_workers() -> usize {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    if n <= 1 { 0 } else { n.min(MAX_WORKERS) }
}

fn gzip_header(level: flate2::Compression) -> [u8; 10] {
    // As flate2's GzEncoder: no name, mtime 0, XFL by level, OS unknown.
    let xfl = match level.level() {
        9.. => 2,
        0..=1 => 4,
        _ => 0,
    };
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]
}

/// Compresses one block as raw deflate into `out` (cleared first): the
/// input is `input[dict_len..]`, primed with `input[..dict_len]`; ends with a
/// sync flush, or the end of the stream when `last`.
///
/// Each block gets a new compressor, whose window starts zeroed. zlib-rs's
/// `reset` keeps the old window, and with a dictionary what earlier blocks
/// left there changes the output: with reused compressors, a block's bytes
/// depended on which blocks its worker had compressed before (seen at every
/// level, in a few blocks in a hundred). A new compressor costs ~1% of the
/// time of a block (measured).
fn compress_block(
    level: flate2::Compression,
    input: &[u8],
    dict_len: usize,
    last: bool,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    // igzip where built in, at levels 1-3 (about 2x less CPU than zlib-rs
    // at level 1 on a Debian rootfs here, and smaller).
    #[cfg(strata_isal)]
    if crate::igzip::deflates(level.level()) {
        return crate::igzip::deflate_block(level.level(), input, dict_len, last, out);
    }
    let mut c = Compress::new(level, false);
    if dict_len > 0 {
        c.set_dictionary(&input[..dict_len]).map_err(io::Error::other)?;
    }
    let data = &input[dict_len..];
    out.clear();
    // Level 1 codes random bytes with fixed Huffman codes: up to 9/8.
    out.reserve(data.len() + data.len() / 8 + 64);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut pos = 0;
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity() / 4 + 1024);
        }
        let (in_before, out_before) = (c.total_in(), out.len());
        let status = c.compress_vec(&data[pos..], out, flush).map_err(io::Error::other)?;
        pos += (c.total_in() - in_before) as usize;
        let room = out.len() < out.capacity();
        match status {
            Status::StreamEnd => return Ok(()),
            // A flush is complete when it leaves room in the output.
            _ if !last && pos == data.len() && room => return Ok(()),
            Status::BufError if room && c.total_in() == in_before && out.len() == out_before => {
                return Err(io::Error::other("deflate made no progress"));
            }
            _ => {}
        }
    }
}

fn block_crc(data: &[u8]) -> Crc {
    let mut crc = Crc::new();
    crc.update(data);
    crc
}

impl<W: Write> GzEncoder<W> {
    /// `level` 0 to 9.
    pub(crate) fn new(out: W, level: u32) -> Self {
        GzEncoder::with_params(out, level, BLOCK_SIZE, default_workers())
    }

    fn with_params(out: W, level: u32, block_size: usize, workers: usize) -> Self {
        assert!(block_size > 0);
        GzEncoder {
            out,
            level: flate2::Compression::new(level),
            block_size,
            workers,
            buf: Vec::new(),
            dict_len: 0,
            total_in: 0,
            crc: Crc::new(),
            header_written: false,
            pool: None,
            next_seq: 0,
            next_out: 0,
            done: BTreeMap::new(),
            spare_in: Vec::new(),
            spare_out: Vec::new(),
            failed: false,
            #[cfg(test)]
            panic_at: None,
        }
    }

    fn max_in_flight(&self) -> u64 {
        (self.workers.max(1) * IN_FLIGHT_PER_WORKER) as u64
    }

    fn check(&self) -> io::Result<()> {
        match self.failed {
            true => Err(io::Error::other("the gzip encoder failed earlier")),
            false => Ok(()),
        }
    }

    /// Marks the encoder failed when `r` is an error.
    fn sticky<T>(&mut self, r: io::Result<T>) -> io::Result<T> {
        self.failed |= r.is_err();
        r
    }

    /// Hands the block being filled to a worker (or compresses it here when
    /// there is no pool), then writes out what is finished, waiting while
    /// too many blocks are in flight.
    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        let dict_len = self.dict_len;
        let mut next = self.spare_in.pop().unwrap_or_default();
        next.clear();
        let input = std::mem::replace(&mut self.buf, next);
        self.dict_len = 0;
        if !last {
            let keep = DICT_SIZE.min(input.len());
            self.buf.reserve(keep + self.block_size);
            self.buf.extend_from_slice(&input[input.len() - keep..]);
            self.dict_len = keep;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut out = self.spare_out.pop().unwrap_or_default();
        if self.pool.is_none() && self.workers > 0 && !last {
            match Pool::start(self.workers, self.level) {
                Ok(pool) => self.pool = Some(pool),
                // Same output without threads.
                Err(_) => self.workers = 0,
            }
        }
        match &self.pool {
            Some(pool) => pool.send(Job {
                seq,
                input,
                dict_len,
                last,
                out,
                #[cfg(test)]
                panic: self.panic_at == Some(seq),
            })?,
            None => {
                let result = compress_block(self.level, &input, dict_len, last, &mut out).map(|()| {
                    let crc = block_crc(&input[dict_len..]);
                    (out, crc)
                });
                self.done.insert(seq, Done { seq, result, input });
            }
        }
        self.collect(false)?;
        while self.next_seq - self.next_out >= self.max_in_flight() {
            self.collect(true)?;
        }
        Ok(())
    }

    /// Takes the workers' finished blocks (with `wait`, waiting until the
    /// next one to write is among them) and writes out those next in order.
    fn collect(&mut self, wait: bool) -> io::Result<()> {
        if let Some(pool) = &self.pool {
            loop {
                let waiting = self.next_out < self.next_seq && !self.done.contains_key(&self.next_out);
                let done = match wait && waiting {
                    true => pool.recv()?,
                    false => match pool.try_recv()? {
                        Some(d) => d,
                        None => break,
                    },
                };
                self.done.insert(done.seq, done);
            }
        }
        while let Some(d) = self.done.remove(&self.next_out) {
            self.next_out += 1;
            self.emit(d)?;
        }
        Ok(())
    }

    fn emit(&mut self, d: Done) -> io::Result<()> {
        let (out, crc) = d.result?;
        if !self.header_written {
            self.out.write_all(&gzip_header(self.level))?;
            self.header_written = true;
        }
        self.out.write_all(&out)?;
        self.crc.combine(&crc);
        let keep = self.max_in_flight() as usize + 1;
        if self.spare_out.len() < keep {
            self.spare_out.push(out);
        }
        if self.spare_in.len() < keep {
            self.spare_in.push(d.input);
        }
        Ok(())
    }

    fn finish_stream(&mut self) -> io::Result<()> {
        self.dispatch(true)?;
        while self.next_out < self.next_seq {
            self.collect(true)?;
        }
        let mut trailer = [0; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        trailer[4..].copy_from_slice(&(self.total_in as u32).to_le_bytes());
        self.out.write_all(&trailer)?;
        if let Some(pool) = self.pool.take() {
            pool.join()?;
        }
        Ok(())
    }

    /// Compresses what is left, writes the trailer and joins the workers.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.check()?;
        self.finish_stream()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for GzEncoder<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.check()?;
        if data.is_empty() {
            return Ok(0);
        }
        // A full block is sent off once more input shows it is not the last.
        if self.buf.len() - self.dict_len == self.block_size {
            let r = self.dispatch(false);
            self.sticky(r)?;
        }
        let n = (self.block_size - (self.buf.len() - self.dict_len)).min(data.len());
        if self.buf.capacity() == 0 {
            self.buf.reserve(self.block_size.min(n.max(64 * 1024)));
        }
        self.buf.extend_from_slice(&data[..n]);
        self.total_in += n as u64;
        Ok(n)
    }

    /// Writes out the blocks already compressed and flushes the output; the
    /// block being filled stays (cutting it would make the output depend on
    /// when `flush` is called).
    fn flush(&mut self) -> io::Result<()> {
        self.check()?;
        let r = self.collect(false).and_then(|()| self.out.flush());
        self.sticky(r)
    }
}

/// The worker threads of one encoder.
struct Pool {
    jobs: Option<Sender<Job>>,
    results: Receiver<Msg>,
    cancel: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
}

/// Tells the encoder when its worker panics, so that it does not wait for
/// the block that worker held.
struct DeathNotice(Sender<Msg>);

impl Drop for DeathNotice {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.0.send(Msg::Died);
        }
    }
}

fn work(level: flate2::Compression, jobs: &Mutex<Receiver<Job>>, results: &Sender<Msg>, cancel: &AtomicBool) {
    loop {
        let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(mut job) = job else { return };
        if cancel.load(Ordering::Relaxed) {
            return;
        }
        #[cfg(test)]
        if job.panic {
            panic!("test: gzip worker panics");
        }
        let result = compress_block(level, &job.input, job.dict_len, job.last, &mut job.out)
            .map(|()| (std::mem::take(&mut job.out), block_crc(&job.input[job.dict_len..])));
        let done = Done {
            seq: job.seq,
            result,
            input: job.input,
        };
        if results.send(Msg::Done(done)).is_err() {
            return;
        }
    }
}

impl Pool {
    fn start(workers: usize, level: flate2::Compression) -> io::Result<Pool> {
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let (res_tx, res_rx) = mpsc::channel();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let mut pool = Pool {
            jobs: Some(job_tx),
            results: res_rx,
            cancel: Arc::new(AtomicBool::new(false)),
            handles: Vec::with_capacity(workers),
        };
        for i in 0..workers {
            let (jobs, results, cancel) = (job_rx.clone(), res_tx.clone(), pool.cancel.clone());
            // On failure, dropping the pool joins the workers started.
            let h = std::thread::Builder::new().name(format!("gzip-{i}")).spawn(move || {
                let _notice = DeathNotice(results.clone());
                work(level, &jobs, &results, &cancel);
            })?;
            pool.handles.push(h);
        }
        Ok(pool)
    }

    fn send(&self, job: Job) -> io::Result<()> {
        let gone = || io::Error::other("the gzip workers have exited");
        self.jobs.as_ref().ok_or_else(gone)?.send(job).map_err(|_| gone())
    }

    fn died() -> io::Error {
        io::Error::other("a gzip worker thread panicked")
    }

    fn recv(&self) -> io::Result<Done> {
        match self.results.recv() {
            Ok(Msg::Done(d)) => Ok(d),
            Ok(Msg::Died) | Err(_) => Err(Pool::died()),
        }
    }

    fn try_recv(&self) -> io::Result<Option<Done>> {
        match self.results.try_recv() {
            Ok(Msg::Done(d)) => Ok(Some(d)),
            Err(TryRecvError::Empty) => Ok(None),
            Ok(Msg::Died) | Err(TryRecvError::Disconnected) => Err(Pool::died()),
        }
    }

    /// Stops the workers (all blocks are written) and reports a panic.
    fn join(mut self) -> io::Result<()> {
        self.jobs = None;
        let mut panicked = false;
        for h in self.handles.drain(..) {
            panicked |= h.join().is_err();
        }
        match panicked {
            true => Err(Pool::died()),
            false => Ok(()),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Queued blocks are not compressed; the one a worker holds is
        // finished, then it exits.
        self.cancel.store(true, Ordering::Relaxed);
        self.jobs = None;
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn data(len: usize) -> Vec<u8> {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        (0..len)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                // Half random, half runs: both literals and matches.
                if (i / 3000) % 2 == 0 {
                    s as u8
                } else {
                    b"abcabd"[(s % 6) as usize]
                }
            })
            .collect()
    }

    fn gzip(data: &[u8], block: usize, workers: usize, piece: usize) -> Vec<u8> {
        let mut e = GzEncoder::with_params(Vec::new(), 1, block, workers);
        for p in data.chunks(piece) {
            e.write_all(p).unwrap();
        }
        e.finish().unwrap()
    }

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut out).unwrap();
        out
    }

    /// The bytes depend on the block size only: not on the number of
    /// workers (none: all on the caller's thread) nor on the writes.
    #[test]
    fn same_bytes_whatever_the_workers() {
        let input = data(1_200_000);
        for block in [1000, 32 * 1024, 100_000, BLOCK_SIZE, 2 << 20] {
            let serial = gzip(&input, block, 0, input.len());
            assert!(gunzip(&serial) == input, "block {block}");
            for workers in [1, 2, 3, 7] {
                for piece in [999, 65536] {
                    let gz = gzip(&input, block, workers, piece);
                    assert!(gz == serial, "block {block}, {workers} workers, writes of {piece}");
                }
            }
        }
    }

    #[test]
    fn threads_start_beyond_one_block_only() {
        let mut e = GzEncoder::with_params(Vec::new(), 1, 4096, 2);
        e.write_all(&[7; 4096]).unwrap();
        assert!(e.pool.is_none(), "one block: no threads");
        e.write_all(&[7]).unwrap();
        assert!(e.pool.is_some(), "a second block: threads");
        let gz = e.finish().unwrap();
        assert_eq!(gunzip(&gz), [7; 4097]);
    }

    #[test]
    fn a_worker_panic_is_an_error() {
        let input = data(64 * 1024);
        for at in [0, 3, 15] {
            let mut e = GzEncoder::with_params(Vec::new(), 1, 4096, 2);
            e.panic_at = Some(at);
            let r = e.write_all(&input).and_then(|()| e.finish().map(drop));
            let err = r.expect_err("a worker panicked");
            assert!(err.to_string().contains("panicked"), "{err}");
        }
    }

    #[test]
    fn dropping_joins_the_workers() {
        let mut e = GzEncoder::with_params(Vec::new(), 1, 4096, 3);
        e.write_all(&data(100_000)).unwrap();
        // Each worker holds a clone until it exits.
        let alive = Arc::clone(&e.pool.as_ref().unwrap().cancel);
        assert_eq!(Arc::strong_count(&alive), 5);
        drop(e);
        assert_eq!(Arc::strong_count(&alive), 1, "workers left running");
    }
}
