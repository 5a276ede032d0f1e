//! The worker's writer thread: in `fsync` mode it writes the shard's turn
//! batches, so the event loop keeps serving sockets while the disk syncs.
//!
//! Role: [`Writer::submit`] hands over one batch; the thread writes it
//! (`shard::write`), reports the outcome on `done` and wakes the worker,
//! which then calls `Engine::finish_turn`.
//!
//! Invariants: at most `shard::PIPELINE_DEPTH` batches are in flight per
//! worker (the engine stages no more), so both channels have room for all
//! of them; batches are written in submission order; a batch staged on top
//! of the previous one (`after`) is not written when that one failed, and
//! fails too; an empty batch (a pipelined turn with nothing to store) is
//! not written, only ordered; the thread ends when the worker drops its
//! `Writer`.

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
    tx: Sender<(Batch, bool)>,
    /// The outcome of the batch in flight.
    pub(super) done: Receiver<Result<(), Reject>>,
}

impl Writer {
    pub(super) fn spawn(idx: usize, store: Store, waker: Arc<Waker>) -> std::io::Result<Self> {
        let (tx, rx) = bounded::<(Batch, bool)>(shard::PIPELINE_DEPTH);
        let (done_tx, done) = bounded(shard::PIPELINE_DEPTH);
        std::thread::Builder::new().name(format!("missive-wal{idx}")).spawn(move || {
            let mut previous_failed = false;
            while let Ok((batch, after)) = rx.recv() {
                let written = if after && previous_failed {
                    Err(Reject::new(ErrorCode::Storage, "an earlier write of this shard failed"))
                } else if batch.is_empty() {
                    Ok(())
                } else {
                    shard::write(&store, batch)
                };
                previous_failed = written.is_err();
                if done_tx.send(written).is_err() {
                    return;
                }
                let _ = waker.wake();
            }
        })?;
        Ok(Self { tx, done })
    }

    /// Hands `batch` to the thread (`after`: staged on top of the batch
    /// before it); `Err` (the thread is gone) is the outcome to finish the
    /// turn with.
    pub(super) fn submit(&self, batch: Batch, after: bool) -> Result<(), Reject> {
        self.tx
            .send((batch, after))
            .map_err(|_| Reject::new(ErrorCode::Storage, "the storage writer thread stopped"))
    }
}
