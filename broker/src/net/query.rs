//! The query pool: read-only queries and sync pages, served off the I/O loops.
//!
//! Role: `limits.query_threads` threads share one job channel. A worker hands
//! a connection's read-only request (`session::Query`: the list and search
//! queries, sync) to the pool instead of serving it inside its event loop, so
//! one client's expensive reads cannot delay other clients' frames on that
//! worker. The thread reads committed storage (`session::serve_query`) and
//! sends the result back to the connection's worker as
//! [`WorkerMsg::QueryDone`]; a sync page first goes to the user's owner
//! shard, which records the token and answers like any owner op.
//!
//! Invariants:
//! - pool threads never write storage and never block a worker: they block
//!   only on their own job channel and on a worker's bounded inbox, which the
//!   worker drains every turn;
//! - the jobs in the channel are bounded: each worker dispatches at most
//!   [`jobs_per_worker`] at once, taking connections round robin, and keeps
//!   the rest queued on their connection (counted in `max_in_flight`);
//! - pool threads run at a lower scheduling priority than the I/O loops
//!   ([`POOL_NICE`]), so a query flood leaves CPU to the loops.

use std::sync::Arc;

use crossbeam_channel::Receiver;
use missive_protocol::{DeviceId, UserId};
use tracing::warn;

use super::{Mesh, WorkerMsg};
use crate::node::Node;
use crate::node::clock::now_ms;
use crate::node::directory::ConnRef;
use crate::session::{self, Query, Served};
use crate::shard::Origin;

/// `nice` value of pool threads (the I/O loops run at 0).
pub(crate) const POOL_NICE: i32 = 5;

/// One query of a connection.
#[derive(Debug)]
pub(crate) struct QueryJob {
    pub(crate) conn: ConnRef,
    pub(crate) request_id: u64,
    /// The write-queue space reserved for the answer (`session::reply_cost`).
    pub(crate) cost: u32,
    pub(crate) user: UserId,
    pub(crate) device: DeviceId,
    pub(crate) query: Query,
}

/// Jobs one worker may have in the pool at once.
pub(crate) fn jobs_per_worker(node: &Node) -> usize {
    node.config.query_thread_count().max(1)
}

/// Starts the pool's threads; they end when every job sender is dropped.
pub(crate) fn spawn(
    node: &Arc<Node>,
    mesh: &Arc<Mesh>,
    jobs: &Receiver<QueryJob>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    (0..node.config.query_thread_count())
        .map(|i| {
            let (node, mesh, jobs) = (Arc::clone(node), Arc::clone(mesh), jobs.clone());
            std::thread::Builder::new().name(format!("missive-q{i}")).spawn(move || run(&node, &mesh, &jobs))
        })
        .collect()
}

fn run(node: &Node, mesh: &Mesh, jobs: &Receiver<QueryJob>) {
    lower_priority();
    while let Ok(job) = jobs.recv() {
        let QueryJob { conn, request_id, cost, user, device, query } = job;
        let origin = Origin::Request { conn, request_id, cost };
        let reply = match session::serve_query(node, &user, &device, origin, query, now_ms()) {
            Served::Reply(r) => Some(Box::new(r)),
            Served::Op((owner, op)) => {
                deliver(mesh, owner, WorkerMsg::Op(Box::new(op)));
                None
            }
            // The provider's answer (or its failure) answers the request later.
            Served::Translate(job) => match mesh.hooks.get() {
                Some(h) => h.translate(origin, user, device, job).err().map(|r| Box::new(Err(r))),
                None => Some(Box::new(Err(crate::error::Reject::new(
                    missive_protocol::ErrorCode::Internal,
                    "the translation runtime is not running",
                )))),
            },
        };
        deliver(mesh, conn.worker, WorkerMsg::QueryDone { conn: conn.id, request_id, cost, reply });
    }
}

/// Sends `msg` to worker `w` and wakes it (blocks while its inbox is full;
/// the worker drains it every turn).
fn deliver(mesh: &Mesh, w: usize, msg: WorkerMsg) {
    if mesh.senders[w].send(msg).is_ok() {
        let _ = mesh.wakers[w].wake();
    }
}

/// Lowers this thread's scheduling priority (Linux: per-thread nice).
fn lower_priority() {
    // gettid and setpriority take no pointers; PRIO_PROCESS with a thread id
    // changes only this thread's nice value on Linux.
    #[allow(unsafe_code)]
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, POOL_NICE)
    };
    if rc != 0 {
        warn!(error = %std::io::Error::last_os_error(), "could not lower the query pool's priority");
    }
}
