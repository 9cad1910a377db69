//! Every byte a sink is handed is checked against the digest it was asked for.

use std::pin::Pin;
use std::task::{Context, Poll};

use strata_oci::{Descriptor, Digest, Hasher};
use tokio::io::{AsyncRead, ReadBuf};

use crate::{Result, TransferError};

/// Wraps a blob stream: hashes and counts what passes, and turns the end of
/// the stream into an error when the bytes are not `expected`'s (so a sink
/// that commits on a clean end never commits a lie). Also refuses to read
/// past the expected size.
pub struct VerifyingReader<R> {
    inner: R,
    expected: Descriptor,
    /// `None` for a source that vouches for its content (sizes only).
    hasher: Option<Hasher>,
    read: u64,
    ended: bool,
}

impl<R> VerifyingReader<R> {
    pub fn new(inner: R, expected: &Descriptor) -> VerifyingReader<R> {
        VerifyingReader {
            inner,
            hasher: Some(expected.digest.algorithm().hasher()),
            expected: expected.clone(),
            read: 0,
            ended: false,
        }
    }

    /// Checks the size only: for a source whose blobs were verified when
    /// they were written and are never written again (see
    /// [`crate::Source::vouches_for_digests`]).
    pub fn size_only(inner: R, expected: &Descriptor) -> VerifyingReader<R> {
        VerifyingReader {
            hasher: None,
            ..VerifyingReader::new(inner, expected)
        }
    }
}

fn invalid(e: TransferError) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

impl<R: AsyncRead + Unpin> AsyncRead for VerifyingReader<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if new.is_empty() {
                    // The end: the whole blob must have been what was asked for.
                    if std::mem::replace(&mut this.ended, true) {
                        return Poll::Ready(Ok(()));
                    }
                    if this.read != this.expected.size {
                        return Poll::Ready(Err(invalid(TransferError::SizeMismatch {
                            digest: this.expected.digest.clone(),
                            expected: this.expected.size,
                            actual: this.read,
                        })));
                    }
                    let Some(hasher) = this.hasher.take() else {
                        return Poll::Ready(Ok(()));
                    };
                    let actual = hasher.finish();
                    if actual != this.expected.digest {
                        return Poll::Ready(Err(invalid(TransferError::DigestMismatch {
                            digest: this.expected.digest.clone(),
                            actual,
                            size: this.read,
                        })));
                    }
                    return Poll::Ready(Ok(()));
                }
                this.read += new.len() as u64;
                if this.read > this.expected.size {
                    return Poll::Ready(Err(invalid(TransferError::SizeMismatch {
                        digest: this.expected.digest.clone(),
                        expected: this.expected.size,
                        actual: this.read,
                    })));
                }
                if let Some(h) = this.hasher.as_mut() {
                    h.update(new);
                }
                Poll::Ready(Ok(()))
            }
        }
    }
}

/// Checks a document read from a source: at most 4 MiB, the size and digest its descriptor says.
pub fn read_document_verified(desc: &Descriptor, bytes: Vec<u8>) -> Result<Vec<u8>> {
    if bytes.len() as u64 > crate::MAX_DOCUMENT_SIZE {
        return Err(TransferError::DocumentTooLarge {
            digest: desc.digest.clone(),
        });
    }
    let actual = Digest::of(desc.digest.algorithm(), &bytes);
    if actual != desc.digest {
        return Err(TransferError::DigestMismatch {
            digest: desc.digest.clone(),
            actual,
            size: bytes.len() as u64,
        });
    }
    if bytes.len() as u64 != desc.size {
        return Err(TransferError::SizeMismatch {
            digest: desc.digest.clone(),
            expected: desc.size,
            actual: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// The error a sink saw while reading a verified stream, unwrapped back to
/// the [`TransferError`] the verifier raised (so it names the blob).
pub fn from_io(e: std::io::Error, what: &str) -> TransferError {
    if e.get_ref().is_some_and(|inner| inner.is::<TransferError>()) {
        let inner = e.into_inner().expect("checked");
        return *inner.downcast::<TransferError>().expect("checked");
    }
    TransferError::io(what, e)
}
