//! gzip inflate by ISA-L's igzip (through `csrc/igzip_shim.c`), as a
//! [`Read`] over a [`BufRead`]: concatenated members are read whole, each
//! member's CRC-32 and size checked by igzip, as flate2's `MultiGzDecoder`
//! does with zlib-rs. Built only where ISA-L's headers are (cfg
//! `strata_isal`, see build.rs); [`crate::decompressor`] falls back to
//! zlib-rs otherwise, or when `STRATA_INFLATE=zlib` (for measurements).

use std::ffi::c_void;
use std::io::{self, BufRead, Read};
use std::ptr::NonNull;

unsafe extern "C" {
    #[allow(clippy::too_many_arguments)]
    fn strata_isal_deflate_block(
        level: i32,
        dict: *const u8,
        dict_len: u32,
        input: *const u8,
        in_len: u32,
        last: i32,
        out: *mut u8,
        out_cap: u32,
        out_len: *mut u32,
    ) -> i32;
    fn strata_isal_inflate_new() -> *mut c_void;
    fn strata_isal_inflate_reset(p: *mut c_void);
    fn strata_isal_inflate_free(p: *mut c_void);
    fn strata_isal_inflate(
        p: *mut c_void,
        input: *const u8,
        in_len: u32,
        consumed: *mut u32,
        out: *mut u8,
        out_len: u32,
        produced: *mut u32,
        finished: *mut i32,
    ) -> i32;
}

/// igzip's inflate state, freed on drop.
struct State(NonNull<c_void>);

// The state is plain memory owned by this value alone.
unsafe impl Send for State {}

impl Drop for State {
    fn drop(&mut self) {
        // SAFETY: allocated by strata_isal_inflate_new, freed once.
        unsafe { strata_isal_inflate_free(self.0.as_ptr()) }
    }
}

/// A gzip stream (one or more members) inflated by igzip.
pub struct IgzipDecoder<R> {
    inner: R,
    state: State,
    /// The last member ended: another starts only if input follows.
    member_done: bool,
    done: bool,
}

impl<R: BufRead> IgzipDecoder<R> {
    /// The reader back when the state cannot be allocated (the caller uses zlib-rs).
    pub fn new(inner: R) -> Result<IgzipDecoder<R>, R> {
        // SAFETY: returns a fresh state or NULL.
        let Some(p) = NonNull::new(unsafe { strata_isal_inflate_new() }) else {
            return Err(inner);
        };
        Ok(IgzipDecoder {
            inner,
            state: State(p),
            member_done: false,
            done: false,
        })
    }
}

fn message(status: i32) -> &'static str {
    match status {
        -1 => "invalid deflate block",
        -2 => "invalid deflate symbol",
        -3 => "invalid lookback distance",
        -4 => "invalid gzip header",
        -5 => "gzip header names an unsupported compression method",
        -6 => "corrupt deflate stream: gzip checksum or size mismatch",
        _ => "corrupt deflate stream",
    }
}

impl<R: BufRead> Read for IgzipDecoder<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let out_len = out.len().min(u32::MAX as usize);
        loop {
            if self.done {
                return Ok(0);
            }
            let input = self.inner.fill_buf()?;
            if self.member_done {
                if input.is_empty() {
                    self.done = true;
                    return Ok(0);
                }
                // SAFETY: a live state.
                unsafe { strata_isal_inflate_reset(self.state.0.as_ptr()) };
                self.member_done = false;
            }
            let eof = input.is_empty();
            let in_len = input.len().min(u32::MAX as usize);
            let (mut consumed, mut produced, mut finished) = (0u32, 0u32, 0i32);
            // SAFETY: the pointers and lengths are the live slices' own; igzip
            // reads at most in_len bytes of input and writes at most out_len.
            let status = unsafe {
                strata_isal_inflate(
                    self.state.0.as_ptr(),
                    input.as_ptr(),
                    in_len as u32,
                    &mut consumed,
                    out.as_mut_ptr(),
                    out_len as u32,
                    &mut produced,
                    &mut finished,
                )
            };
            self.inner.consume(consumed as usize);
            if status < 0 {
                self.done = true;
                return Err(io::Error::new(io::ErrorKind::InvalidData, message(status)));
            }
            if finished != 0 {
                self.member_done = true;
            }
            if produced > 0 {
                return Ok(produced as usize);
            }
            if finished == 0 && eof && consumed == 0 {
                self.done = true;
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "gzip stream ends before its end (truncated)",
                ));
            }
        }
    }
}

/// Whether gzip at `level` is deflated by igzip: levels 1 to 3 (igzip's
/// own 1 to 3), unless `STRATA_DEFLATE=zlib`; 0 and 4-9 stay zlib-rs's.
pub(crate) fn deflates(level: u32) -> bool {
    (1..=3).contains(&level) && std::env::var("STRATA_DEFLATE").map_or(true, |v| v != "zlib")
}

/// One block of [`crate::pgzip`]'s stream by igzip: `input[dict_len..]` as
/// raw deflate primed with `input[..dict_len]`, ended by a sync flush, or
/// ending the stream when `last`, into `out`.
pub(crate) fn deflate_block(
    level: u32,
    input: &[u8],
    dict_len: usize,
    last: bool,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let data = &input[dict_len..];
    let too_big = || io::Error::other("a block too large for igzip");
    let mut cap = data.len() + data.len() / 8 + 64 * 1024;
    for _ in 0..4 {
        out.clear();
        out.reserve(cap);
        let mut n = 0u32;
        // SAFETY: igzip reads the dictionary and data slices and writes at
        // most `cap` bytes into `out`'s spare capacity (reserved above).
        let r = unsafe {
            strata_isal_deflate_block(
                level as i32,
                input.as_ptr(),
                dict_len.try_into().map_err(|_| too_big())?,
                data.as_ptr(),
                data.len().try_into().map_err(|_| too_big())?,
                i32::from(last),
                out.as_mut_ptr(),
                cap.try_into().map_err(|_| too_big())?,
                &mut n,
            )
        };
        match r {
            0 => {
                // SAFETY: igzip wrote n <= cap bytes.
                unsafe { out.set_len(n as usize) };
                return Ok(());
            }
            1 => cap *= 2,
            e => return Err(io::Error::other(format!("igzip deflate failed (error {e})"))),
        }
    }
    Err(io::Error::other("igzip deflate: the output of a block does not fit"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn inflate(bytes: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        IgzipDecoder::new(io::BufReader::with_capacity(1000, bytes))
            .ok()
            .unwrap()
            .read_to_end(&mut out)?;
        Ok(out)
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| ((i * 7919) % 251) as u8 ^ (i / 3000) as u8).collect()
    }

    #[test]
    fn deflated_blocks_form_one_gzip_stream() {
        // Through the parallel encoder: blocks of igzip deflate, read back by zlib-rs.
        let a = data(3_000_000);
        let mut e = crate::Encoder::new(Vec::new(), crate::Compression::Gzip, Some(1)).unwrap();
        e.write_all(&a).unwrap();
        let (gz, _, _) = e.finish().unwrap();
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, a);
        assert!(gz.len() < a.len() / 2, "compressed: {}", gz.len());
    }

    #[test]
    fn a_block_is_primed_with_its_dictionary() {
        // Pseudo-random bytes: nothing to match but the dictionary.
        let mut x = 0x9e3779b97f4a7c15u64;
        let unit: Vec<u8> = (0..2048)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut input: Vec<u8> = unit.iter().copied().cycle().take(32 * 1024).collect();
        input.extend(&unit);
        let (mut primed, mut cold) = (Vec::new(), Vec::new());
        deflate_block(1, &input, 32 * 1024, true, &mut primed).unwrap();
        deflate_block(1, &unit, 0, true, &mut cold).unwrap();
        assert!(
            primed.len() < 100 && cold.len() > 1000,
            "{} {}",
            primed.len(),
            cold.len()
        );
        // And it inflates to the data, given the dictionary.
        let mut d = flate2::Decompress::new(false);
        d.set_dictionary(&input[..32 * 1024]).unwrap();
        let mut out = Vec::with_capacity(4096);
        d.decompress_vec(&primed, &mut out, flate2::FlushDecompress::Finish)
            .unwrap();
        assert_eq!(out, unit);
    }

    #[test]
    fn inflates_members_and_refuses_corruption() {
        let a = data(300_000);
        let b = data(7);
        let mut two = gz(&a);
        two.extend(gz(&b));
        let mut want = a.clone();
        want.extend(&b);
        assert_eq!(inflate(&two).unwrap(), want);
        assert_eq!(inflate(&gz(b"")).unwrap(), b"");
        // Truncated, a flipped bit, a bad checksum, trailing garbage: errors.
        let one = gz(&a);
        assert!(inflate(&one[..one.len() - 5]).is_err());
        let mut flipped = one.clone();
        flipped[one.len() / 2] ^= 0x10;
        assert!(inflate(&flipped).is_err());
        let mut crc = one.clone();
        let n = crc.len();
        crc[n - 8] ^= 1;
        assert!(inflate(&crc).is_err());
        let mut garbage = one.clone();
        garbage.extend(b"not gzip at all");
        assert!(inflate(&garbage).is_err());
    }
}
