//! A file as a blob stream, read ahead on a blocking thread: while the
//! verifier hashes one chunk, the next ones are being read (a
//! `tokio::fs::File` reads only when asked, so reading and hashing would
//! take turns).

use std::io::Read;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, ReadBuf};

use crate::BlobStream;

/// Bytes read at once.
const CHUNK: u64 = 1 << 20;
/// Chunks read ahead of the reader.
const AHEAD: usize = 4;

/// `file`, from where it stands, read ahead (see the module documentation).
pub(crate) fn stream(file: std::fs::File) -> BlobStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut file = file;
        loop {
            let mut chunk = Vec::with_capacity(CHUNK as usize);
            let r = (&mut file).take(CHUNK).read_to_end(&mut chunk);
            let last = !matches!(r, Ok(n) if n as u64 == CHUNK);
            let item = r.map(|_| Bytes::from(chunk));
            // The reader went away: stop.
            if tx.blocking_send(item).is_err() || last {
                return;
            }
        }
    });
    Box::pin(ReadAhead { rx, cur: Bytes::new() })
}

struct ReadAhead {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    cur: Bytes,
}

impl AsyncRead for ReadAhead {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        while self.cur.is_empty() {
            match self.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                // The end of the file.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(Some(Ok(b))) => {
                    if b.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                    self.cur = b;
                }
            }
        }
        let n = buf.remaining().min(self.cur.len());
        buf.put_slice(&self.cur[..n]);
        self.cur.advance(n);
        Poll::Ready(Ok(()))
    }
}
