//! Times the layer compressor on a file: `cargo run --release -p
//! strata-layer --example deflate FILE [gzip|zstd] [LEVEL]`; prints MB/s of
//! input and the output size (run under `time` for the CPU it took).

use std::io::Write;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: deflate FILE [gzip|zstd] [LEVEL]");
    let kind = match args.next().as_deref() {
        Some("zstd") => strata_layer::Compression::Zstd,
        _ => strata_layer::Compression::Gzip,
    };
    let level = args.next().map(|l| l.parse().expect("level"));
    let bytes = std::fs::read(&path).expect("read");
    let t = std::time::Instant::now();
    let mut e = strata_layer::Encoder::new(std::io::sink(), kind, level).expect("start");
    for chunk in bytes.chunks(256 * 1024) {
        e.write_all(chunk).expect("compress");
    }
    let (_, _, size) = e.finish().expect("finish");
    let s = t.elapsed().as_secs_f64();
    println!(
        "{kind:?} level {level:?}: {} MB in {s:.3} s: {:.0} MB/s, {size} bytes out",
        bytes.len() / 1_000_000,
        bytes.len() as f64 / s / 1e6
    );
}
