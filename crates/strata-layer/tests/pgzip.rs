//! Parallel gzip in `Encoder`: one valid gzip member, read back by flate2
//! and by the system gzip, the same bytes however the input is written, the
//! digest and size of what was written, errors surfaced without hanging.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use strata_layer::pgzip::BLOCK_SIZE;
use strata_layer::{Compression, Encoder};
use strata_oci::Digest;

/// Deterministic pseudo-random bytes (xorshift64*).
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        v.extend_from_slice(&s.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Text-like bytes that compress well but not trivially.
fn compressible(len: usize) -> Vec<u8> {
    let words = [
        "layer", "tar", "gzip", "usr/lib/", "x86_64", "strata", "\n", "0000644", "root",
    ];
    let r = random_bytes(len, 11);
    let mut v = Vec::with_capacity(len + 16);
    let mut i = 0;
    while v.len() < len {
        v.extend_from_slice(words[r[i % len] as usize % words.len()].as_bytes());
        v.push(b' ');
        i += 1;
    }
    v.truncate(len);
    v
}

/// Gzips `data` through `Encoder`, written in pieces of the sizes given (in
/// turn, cycling); checks that the digest and size returned are those of the
/// bytes written.
fn gzip(data: &[u8], pieces: &[usize], level: Option<i32>) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new(), Compression::Gzip, level).unwrap();
    let (mut pos, mut k) = (0, 0);
    while pos < data.len() {
        let n = pieces[k % pieces.len()].min(data.len() - pos);
        e.write_all(&data[pos..pos + n]).unwrap();
        pos += n;
        k += 1;
    }
    let (out, digest, size) = e.finish().unwrap();
    assert_eq!(size, out.len() as u64, "size returned");
    assert_eq!(digest, Digest::sha256_of(&out), "digest returned");
    out
}

/// Reads `gz` as exactly one gzip member with flate2.
fn flate2_decode(gz: &[u8]) -> Vec<u8> {
    let mut d = flate2::bufread::GzDecoder::new(gz);
    let mut got = Vec::new();
    d.read_to_end(&mut got).expect("flate2 reads the gzip stream");
    let rest = d.into_inner();
    assert!(rest.is_empty(), "{} bytes after the first gzip member", rest.len());
    got
}

fn system_gzip() -> Option<&'static str> {
    let p = ["/bin/gzip", "/usr/bin/gzip"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    if p.is_none() {
        println!("note: no system gzip; gzip -dc and gzip -t checks skipped");
    }
    p
}

/// Runs `gzip args` with `input` on stdin; returns stdout, asserting success.
fn run_gzip(gzip: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(gzip)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let out = std::thread::scope(|s| {
        s.spawn(move || stdin.write_all(input).unwrap());
        child.wait_with_output().unwrap()
    });
    assert!(
        out.status.success(),
        "gzip {args:?}: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Gzips `data`, then checks it reads back with flate2 and the system gzip.
fn round_trip(data: &[u8], pieces: &[usize], level: Option<i32>) -> Vec<u8> {
    let gz = gzip(data, pieces, level);
    assert_eq!(&gz[..3], &[0x1f, 0x8b, 8], "gzip header");
    let got = flate2_decode(&gz);
    assert!(
        got == data,
        "flate2 read back {} bytes, not the {} written",
        got.len(),
        data.len()
    );
    if let Some(g) = system_gzip() {
        let got = run_gzip(g, &["-dc"], &gz);
        assert!(
            got == data,
            "gzip -dc read back {} bytes, not the {} written",
            got.len(),
            data.len()
        );
        run_gzip(g, &["-t"], &gz);
    }
    gz
}

#[test]
fn empty_input() {
    let gz = round_trip(b"", &[1], None);
    assert_eq!(&gz[gz.len() - 8..], &[0; 8], "CRC and size of nothing");
}

#[test]
fn one_byte() {
    round_trip(b"x", &[1], None);
}

#[test]
fn exactly_one_block() {
    round_trip(&random_bytes(BLOCK_SIZE, 1), &[BLOCK_SIZE], None);
    round_trip(&compressible(BLOCK_SIZE), &[4096], None);
}

#[test]
fn one_block_and_one_byte() {
    round_trip(&random_bytes(BLOCK_SIZE + 1, 2), &[BLOCK_SIZE + 1], None);
    round_trip(&compressible(BLOCK_SIZE + 1), &[BLOCK_SIZE, 1], None);
}

#[test]
fn many_blocks_random() {
    round_trip(&random_bytes(9 * BLOCK_SIZE + BLOCK_SIZE / 3, 3), &[256 * 1024], None);
    round_trip(&random_bytes(4 * BLOCK_SIZE, 4), &[BLOCK_SIZE], None);
}

#[test]
fn many_blocks_compressible() {
    let data = compressible(12 * BLOCK_SIZE + 5);
    let gz = round_trip(&data, &[100_000], None);
    assert!(
        gz.len() < data.len() / 2,
        "{} bytes gzipped to {}",
        data.len(),
        gz.len()
    );
    // Highly repetitive.
    round_trip(&vec![b'a'; 5 * BLOCK_SIZE + 17], &[1 << 20], None);
}

#[test]
fn odd_sized_writes() {
    let data = compressible(2 * BLOCK_SIZE + 12_345);
    round_trip(&data, &[1], None);
    round_trip(&data, &[7], None);
    round_trip(&data, &[65537], None);
    round_trip(&data, &[1, 7, 65537], None);
}

#[test]
fn every_level_round_trips() {
    let mut data = compressible(2 * BLOCK_SIZE);
    data.extend(random_bytes(BLOCK_SIZE + 99, 5));
    for level in 0..=9 {
        round_trip(&data, &[300_000], Some(level));
    }
}

#[test]
fn same_bytes_whatever_the_writes() {
    let mut data = compressible(3 * BLOCK_SIZE + 777);
    data.extend(random_bytes(BLOCK_SIZE / 2, 6));
    let whole = gzip(&data, &[data.len()], None);
    for pieces in [
        &[1][..],
        &[7],
        &[65537],
        &[BLOCK_SIZE],
        &[BLOCK_SIZE + 1],
        &[BLOCK_SIZE - 1, 3, 1 << 20],
    ] {
        let gz = gzip(&data, pieces, None);
        assert!(gz == whole, "writes of {pieces:?} bytes gave other bytes");
    }
    // And from one run to the next.
    assert!(gzip(&data, &[4096], None) == whole);
}

/// Each block is primed with the 32 KiB before it: data repeating with a
/// short period compresses across block boundaries as in one stream.
#[test]
fn blocks_see_the_data_before_them() {
    let unit = random_bytes(20 * 1024, 8);
    let blocks = 6;
    let data: Vec<u8> = unit.iter().copied().cycle().take(blocks * BLOCK_SIZE).collect();
    let gz = round_trip(&data, &[1 << 20], Some(6));
    let mut one = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    one.write_all(&data).unwrap();
    let one = one.finish().unwrap();
    // Without a dictionary every block would start with 20 KiB of literals.
    assert!(
        gz.len() <= one.len() + blocks * 64,
        "level 6: {} bytes gzipped to {} in blocks, {} in one stream",
        data.len(),
        gz.len(),
        one.len()
    );
    // Level 1 (zlib-rs's quick strategy) also uses the dictionary, if less
    // well than one stream. (igzip's level 1, where built in, forgets matches
    // 20 KiB back even inside a block: its own test checks its dictionary.)
    if strata_layer::deflates_with_igzip(1) {
        return;
    }
    let gz = round_trip(&data, &[1 << 20], Some(1));
    assert!(
        gz.len() < blocks * unit.len(),
        "level 1: {} bytes gzipped to {}",
        data.len(),
        gz.len()
    );
}

/// Accepts `limit` bytes, then fails.
struct FailingWriter {
    limit: usize,
    written: usize,
}

impl Write for FailingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written >= self.limit {
            return Err(std::io::Error::other("disk full"));
        }
        let n = buf.len().min(self.limit - self.written);
        self.written += n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn write_errors_surface() {
    let data = random_bytes(8 * BLOCK_SIZE, 9);
    for limit in [0, 5, BLOCK_SIZE, 3 * BLOCK_SIZE] {
        let mut e = Encoder::new(FailingWriter { limit, written: 0 }, Compression::Gzip, None).unwrap();
        let r = e.write_all(&data);
        match r {
            Err(err) => {
                assert!(err.to_string().contains("disk full"), "limit {limit}: {err}");
                // Failed once, failed for good.
                assert!(e.write_all(b"more").is_err());
                assert!(e.finish().is_err());
            }
            Ok(()) => {
                let err = e.finish().err().unwrap_or_else(|| panic!("limit {limit}: no error"));
                assert!(err.to_string().contains("disk full"), "limit {limit}: {err}");
            }
        }
    }
    // Dropped unfinished, mid-stream: the workers are stopped, no hang.
    let mut e = Encoder::new(Vec::new(), Compression::Gzip, None).unwrap();
    e.write_all(&data).unwrap();
    drop(e);
}

/// Zstd compresses with its own workers: same bytes whatever the writes,
/// across several of its jobs.
#[test]
fn zstd_multithreaded_round_trips_the_same_bytes() {
    let mut data = compressible(20 << 20);
    data.extend(random_bytes(3 << 20, 10));
    let encode = |piece: usize| {
        let mut e = Encoder::new(Vec::new(), Compression::Zstd, None).unwrap();
        for p in data.chunks(piece) {
            e.write_all(p).unwrap();
        }
        let (out, digest, size) = e.finish().unwrap();
        assert_eq!((digest, size), (Digest::sha256_of(&out), out.len() as u64));
        out
    };
    let whole = encode(data.len());
    assert!(zstd::decode_all(&whole[..]).unwrap() == data);
    for piece in [65537, 1 << 20] {
        assert!(encode(piece) == whole, "writes of {piece} bytes gave other bytes");
    }
    let small = encode(1000);
    assert!(small == whole);
}

/// Timings of the gzip and zstd encoders on 16 MiB of random bytes and on
/// bench/.cache/debian.tar when present (run with --release --ignored
/// --nocapture).
#[test]
#[ignore]
fn bench_encoders() {
    let mut inputs = vec![("random 16 MiB".to_string(), random_bytes(16 << 20, 7))];
    let tar = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/.cache/debian.tar");
    match std::fs::read(tar) {
        Ok(d) => inputs.push((format!("debian.tar {} MiB", d.len() >> 20), d)),
        Err(e) => println!("no {tar}: {e}"),
    }
    let level: Option<i32> = std::env::var("LEVEL").ok().map(|l| l.parse().unwrap());
    for (name, data) in &inputs {
        for c in [Compression::Gzip, Compression::Zstd] {
            let mut times = vec![];
            let mut size = 0;
            let mut digests = vec![];
            for _ in 0..5 {
                let t = Instant::now();
                let mut e = Encoder::new(std::io::sink(), c, level).unwrap();
                for chunk in data.chunks(256 * 1024) {
                    e.write_all(chunk).unwrap();
                }
                let (_, digest, n) = e.finish().unwrap();
                times.push(t.elapsed().as_secs_f64());
                size = n;
                digests.push(digest);
            }
            assert!(
                digests.windows(2).all(|w| w[0] == w[1]),
                "{name} {}: runs differ",
                c.name()
            );
            times.sort_by(f64::total_cmp);
            let med = times[times.len() / 2];
            println!(
                "{name:>22} {:>5}: median {:7.1} ms ({:6.1} MB/s), min {:7.1} ms, out {} ({:.2}%)",
                c.name(),
                med * 1e3,
                data.len() as f64 / med / 1e6,
                times[0] * 1e3,
                size,
                size as f64 * 100.0 / data.len() as f64
            );
        }
    }
}
