//! Files written on a thread of their own while the caller reads and
//! hashes what goes into them (an archive's unpacking): the two overlap.
//! Files are created and written in the order asked; [`WriteBehind::finish`]
//! waits for all of it and gives the first error.

use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Bytes the caller reads at once into a buffer of [`WriteBehind::buffer`].
pub(crate) const CHUNK: usize = 256 * 1024;

enum Op {
    Create(PathBuf),
    Write(Vec<u8>),
}

pub(crate) struct WriteBehind {
    tx: Option<SyncSender<Op>>,
    spent: Receiver<Vec<u8>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl WriteBehind {
    pub(crate) fn start() -> std::io::Result<WriteBehind> {
        let (tx, rx) = sync_channel::<Op>(16);
        let (spent_tx, spent) = sync_channel::<Vec<u8>>(32);
        let thread =
            std::thread::Builder::new()
                .name("unpack-write".into())
                .spawn(move || -> std::io::Result<()> {
                    let mut file: Option<std::fs::File> = None;
                    for op in rx {
                        match op {
                            Op::Create(p) => file = Some(std::fs::File::create(p)?),
                            Op::Write(b) => {
                                if let Some(f) = &mut file {
                                    f.write_all(&b)?;
                                }
                                let _ = spent_tx.try_send(b);
                            }
                        }
                    }
                    Ok(())
                })?;
        Ok(WriteBehind {
            tx: Some(tx),
            spent,
            thread: Some(thread),
        })
    }

    fn send(&mut self, op: Op) -> std::io::Result<()> {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(op).is_ok());
        if sent {
            return Ok(());
        }
        // The thread stopped: its error says why.
        self.wait()?;
        Err(std::io::Error::other("the writing thread stopped"))
    }

    /// Creates (or truncates) `path`: what is written next goes there.
    pub(crate) fn create(&mut self, path: PathBuf) -> std::io::Result<()> {
        self.send(Op::Create(path))
    }

    /// A buffer of [`CHUNK`] bytes to read into (one the thread is done with, when there is one).
    pub(crate) fn buffer(&mut self) -> Vec<u8> {
        let mut b = self.spent.try_recv().unwrap_or_default();
        b.resize(CHUNK, 0);
        b
    }

    /// Appends `chunk` to the file created last.
    pub(crate) fn write(&mut self, chunk: Vec<u8>) -> std::io::Result<()> {
        self.send(Op::Write(chunk))
    }

    fn wait(&mut self) -> std::io::Result<()> {
        self.tx.take();
        match self.thread.take().map(|t| t.join()) {
            None => Ok(()),
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(std::io::Error::other("the writing thread panicked")),
        }
    }

    /// Waits until everything is written.
    pub(crate) fn finish(mut self) -> std::io::Result<()> {
        self.wait()
    }
}

impl Drop for WriteBehind {
    /// Nothing is written after the caller gave up (its directory may be removed next).
    fn drop(&mut self) {
        let _ = self.wait();
    }
}
