//! The worker's writer thread: in `fsync` mode it writes the shard's turn
//! batches, so the event loop keeps serving sockets while the disk syncs.
//!
//! Role: [`Writer::submit`] hands over one batch; the thread writes it
//! (`shard::write`), reports the outcome on `done` and wakes the worker,
//! which then calls `Engine::finish_turn`.
//!
//! Invariants: at most one batch is in flight per worker (the engine starts
//! no turn while one is written), so both channels hold at most one item;
//! the thread ends when the worker drops its `Writer`.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, bounded};
use mio::Waker;
use missive_protocol::ErrorCode;
use missive_storage::{Batch, Store};

use crate::error::Reject;
use crate::shard;

/// One worker's writer thread.
#[derive(Debug)]
pub(super) struct Writer {
    tx: Sender<Batch>,
    /// The outcome of the batch in flight.
    pub(super) done: Receiver<Result<(), Reject>>,
}

impl Writer {
    pub(super) fn spawn(idx: usize, store: Store, waker: Arc<Waker>) -> std::io::Result<Self> {
        let (tx, rx) = bounded::<Batch>(1);
        let (done_tx, done) = bounded(1);
        std::thread::Builder::new().name(format!("missive-wal{idx}")).spawn(move || {
            while let Ok(batch) = rx.recv() {
                let written = shard::write(&store, batch);
                if done_tx.send(written).is_err() {
                    return;
                }
                let _ = waker.wake();
            }
        })?;
        Ok(Self { tx, done })
    }

    /// Hands `batch` to the thread; `Err` (the thread is gone) is the
    /// outcome to finish the turn with.
    pub(super) fn submit(&self, batch: Batch) -> Result<(), Reject> {
        self.tx.send(batch).map_err(|_| Reject::new(ErrorCode::Storage, "the storage writer thread stopped"))
    }
}
