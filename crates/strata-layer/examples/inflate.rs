//! Times the layer decompressor on a file: `cargo run --release -p
//! strata-layer --example inflate FILE.gz` (igzip where built in;
//! `STRATA_INFLATE=zlib` for zlib-rs). Prints MB/s of output.

use std::io::{BufReader, Read};

fn main() {
    let path = std::env::args().nth(1).expect("usage: inflate FILE");
    let bytes = std::fs::read(&path).expect("read");
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let mut d = strata_layer::decompressor(BufReader::with_capacity(256 * 1024, &bytes[..])).expect("start");
        let mut buf = vec![0u8; 256 * 1024];
        let mut n = 0u64;
        loop {
            let r = d.read(&mut buf).expect("inflate");
            if r == 0 {
                break;
            }
            n += r as u64;
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "{} {} MB in {:.3} s: {:.0} MB/s",
            if strata_layer::inflates_with_igzip() {
                "igzip"
            } else {
                "zlib-rs"
            },
            n / 1_000_000,
            s,
            n as f64 / s / 1e6
        );
    }
}
