//! ADD's local archives: whether a file is a tar (plain or compressed), and
//! the tar stream of one. Compression is told by the first bytes, as
//! BuildKit's `DecompressStream` tells it (not by the file's name): gzip and
//! zstd are left to strata-layer (as in layers), bzip2 and xz, which no image
//! layer uses, are decoded here.

use std::io::{BufRead, BufReader, Read};

use crate::error::{Ctx, Result};
use crate::tree::SourceTree;

const BZIP2_MAGIC: &[u8] = b"BZh";
const XZ_MAGIC: &[u8] = b"\xfd7zXZ\x00";

/// The stream to hand to strata-layer (which reads plain, gzip and zstd):
/// bzip2 and xz decoded, anything else as it is.
pub(super) fn archive_reader<R: BufRead + Send + 'static>(mut r: R) -> Result<Box<dyn Read + Send>> {
    let head = r.fill_buf().ctx(|| "reading the archive".to_string())?;
    Ok(if head.starts_with(BZIP2_MAGIC) {
        Box::new(bzip2::bufread::MultiBzDecoder::new(r))
    } else if head.starts_with(XZ_MAGIC) {
        Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(r))
    } else {
        Box::new(r)
    })
}

/// Whether a file is a tar archive (plain, gzip, bzip2, xz or zstd): its
/// first header checks out.
pub(super) fn is_archive(tree: &dyn SourceTree, rel: &str) -> Result<bool> {
    let f = tree.open_file(rel)?;
    let Ok(inner) = archive_reader(BufReader::new(f)) else {
        return Ok(false);
    };
    let Ok(mut r) = strata_layer::decompressor(BufReader::new(inner)) else {
        return Ok(false);
    };
    let mut block = [0u8; 512];
    let mut n = 0;
    while n < 512 {
        match r.read(&mut block[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return Ok(false),
        }
    }
    if n < 512 {
        return Ok(false);
    }
    Ok(is_tar_header(&block))
}

fn is_tar_header(block: &[u8; 512]) -> bool {
    if &block[257..262] == b"ustar" {
        return true;
    }
    // Old (v7) tar: check the header checksum.
    let stored = std::str::from_utf8(&block[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u32::from_str_radix(s, 8).ok());
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, b)| if (148..156).contains(&i) { 32 } else { *b as u32 })
        .sum();
    stored == Some(sum) && block[0] != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(5);
        b.append_data(&mut h, "dir/hello", &b"hello"[..]).unwrap();
        b.into_inner().unwrap()
    }

    fn read_all(data: Vec<u8>) -> Vec<u8> {
        let r = archive_reader(std::io::Cursor::new(data)).unwrap();
        let mut out = Vec::new();
        strata_layer::decompressor(BufReader::new(r))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn bzip2_and_xz_are_told_by_their_magic() {
        let plain = tar();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&plain).unwrap();
        let bz = bz.finish().unwrap();
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&plain).unwrap();
        let xz = xz.finish().unwrap();
        assert!(bz.starts_with(BZIP2_MAGIC) && xz.starts_with(XZ_MAGIC));
        assert_eq!(read_all(bz), plain);
        assert_eq!(read_all(xz), plain);
        assert_eq!(read_all(plain.clone()), plain);
    }
}
