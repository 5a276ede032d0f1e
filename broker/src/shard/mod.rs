//! The shard engine: transactional turns over one service set.
//!
//! Role: every owner shard (one per worker) runs an [`Engine`]. Each loop turn
//! the worker hands it the ops routed to this shard; the engine stages each op
//! inside a save point into ONE RocksDB batch ([`Engine::start_turn`]); the
//! batch is written (group commit; WAL fsync in `fsync` mode: then on the
//! worker's writer thread, so the I/O loop never waits for a disk), and only
//! after the write ([`Engine::finish_turn`]) come the effects:
//! replies, pushes, kicks, login decisions. Reads (pull, history, receipts)
//! are served after the write, so they observe every write before them.
//!
//! The engine is generic over [`Service`] and imports no service: the
//! services' op enum, cache undo records and dispatch live in `services/`.
//! Time is an argument (`run_turn(ops, now_ms)`), so unit tests drive it with
//! a fake clock.
//!
//! Invariants:
//! - an ack, push or directory change leaves only after the batch holding its
//!   op is durable;
//! - a refused op leaves no trace (see [`turn`]); every op gets exactly one
//!   answer of the kind its [`Origin`] asks for;
//! - on a failed write every answer becomes STORAGE (5001), nothing else is
//!   emitted, reservations are released and the services drop the cache
//!   entries the turn changed (they reload from storage);
//! - counters are settled and directory changes applied here, after the write;
//! - pipelined group commit: while turn N's batch is written (on the
//!   writer thread), turn N+1 may be staged, but only from ops the service
//!   calls [`Service::pipeline_safe`] (sends and delivery receipts: their
//!   staging reads only the services' caches, which already hold N's staged
//!   state, never storage that N changes) and only while
//!   [`Service::may_pipeline`]; the first other op stops the turn there and
//!   waits, with everything after it, for the pipeline to drain (answers
//!   keep request order). At most [`PIPELINE_DEPTH`] turns are in flight;
//!   their batches are written in order, and a batch staged on top of a
//!   failed one is never written ([`Started::Write`]'s `after`): it fails
//!   with it. Effects leave in turn order, each after its own batch is
//!   durable. The services' per-turn state ([`Service::end_turn`]) lives until
//!   the pipeline is empty;
//! - reads run for at most [`READ_TURN_BUDGET`] per turn (at least one read),
//!   so a flood of expensive reads cannot stall the worker's loop; reads left
//!   over are served first next turn, and while any remain no new op is
//!   staged, so answers keep request order ([Q-4]).

pub(crate) mod effect;
pub(crate) mod failpoint;
pub(crate) mod op;
pub(crate) mod turn;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use missive_protocol::pb::response;
use missive_protocol::{ErrorCode, UserId};

use missive_storage::{Batch, Store};

use crate::error::Reject;
use crate::node::Node;
use crate::node::clock::BatchVersions;
use crate::node::counters::Reservation;

pub(crate) use effect::{Effect, Reply};
pub(crate) use op::{Origin, ShardOp};
pub(crate) use turn::Turn;

/// What staging an op produced.
// Transient: returned once per op and matched at once.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Staged<O> {
    /// Staged; answer the origin with this once the batch is durable.
    Done(Answer),
    /// A read: serve it after the turn's write.
    Read(ShardOp<O>),
    /// Its key is claimed by an earlier op of this turn: run it next turn.
    Defer(ShardOp<O>),
}

impl<O> Staged<O> {
    /// The same outcome with the op (of a read or deferral) wrapped by `f`.
    pub(crate) fn map_op<P>(self, f: impl FnOnce(O) -> P) -> Staged<P> {
        match self {
            Staged::Done(a) => Staged::Done(a),
            Staged::Read(op) => Staged::Read(op.map(f)),
            Staged::Defer(op) => Staged::Defer(op.map(f)),
        }
    }
}

/// The answer a staged op gives its origin.
// Transient: returned once per op and matched at once.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Answer {
    /// To a request.
    Response(response::Result),
    /// To a login: it succeeded, with the device's stored sync token.
    LoginOk(String),
    /// To an internal event.
    None,
    /// Not yet: the op went on to another owner (an `Effect::Forward` of
    /// this turn), which answers the request.
    Forwarded,
}

/// The interface every service set implements for the engine.
pub(crate) trait Service {
    /// The op enum of the services.
    type Op: std::fmt::Debug;
    /// A record that undoes one cache change.
    type Undo;

    /// Stages `op` into `t`. Before changing a cache it must record the
    /// change's undo with [`Turn::undo`]; on `Err` the engine rolls the turn
    /// back to the op's save point and applies those records.
    fn stage(&mut self, op: ShardOp<Self::Op>, t: &mut Turn<Self::Undo>) -> Result<Staged<Self::Op>, Reject>;

    /// Undoes one cache change of a refused op.
    fn undo(&mut self, u: Self::Undo);

    /// Stages what the turn's ops left to write once per turn (coalesced
    /// records), after the last op and before the write. Cannot be refused.
    fn flush(&mut self, t: &mut Turn<Self::Undo>);

    /// Whether `op` may be staged while an earlier turn's batch is still
    /// being written (see the module docs): its staging must read nothing
    /// from storage that an in-flight batch may change.
    fn pipeline_safe(&self, op: &Self::Op) -> bool;

    /// Whether the per-turn state kept until the pipeline drains is small
    /// enough to stage one more turn on top of it.
    fn may_pipeline(&self) -> bool;

    /// Serves a read after the turn's write.
    fn read(&mut self, op: ShardOp<Self::Op>, now_ms: u64) -> Result<response::Result, Reject>;

    /// The turn's write failed: drop every cache entry this turn changed.
    fn write_failed(&mut self);

    /// The turn is over (written or not): forget per-turn state.
    fn end_turn(&mut self);
}

/// One worker's owner shard.
pub(crate) struct Engine<S: Service> {
    idx: usize,
    node: Arc<Node>,
    service: S,
    /// Ops put off to the next turn because their key was claimed in this one
    /// (or because reads of earlier turns are still waiting).
    deferred: Vec<ShardOp<S::Op>>,
    /// Reads whose write is done, waiting for their turn's read time.
    pending_reads: VecDeque<ShardOp<S::Op>>,
    /// Time reads may take per turn (tests lower it).
    read_budget: Duration,
    /// The turns whose batches are being written, oldest first.
    in_flight: VecDeque<InFlight<S::Op>>,
    /// A write failed while later turns were in flight: no turn is staged
    /// on top of those (they fail too) until the pipeline is empty.
    draining: bool,
    /// Turns in flight at most (1..=[`PIPELINE_DEPTH`]).
    depth: usize,
}

/// Turns in flight at most (`limits.commit_pipeline` ≤ this): one being
/// written, one staged behind it.
pub(crate) const PIPELINE_DEPTH: usize = 2;

/// What [`Engine::start_turn`] left to do.
#[derive(Debug)]
pub(crate) enum Started {
    /// The turn is over: emit these effects.
    Done(Vec<Effect>),
    /// Write this batch durably ([`write`]), then call [`Engine::finish_turn`].
    /// `after`: staged while an earlier batch was in flight, on top of its
    /// state: if that write fails, this batch must not be written.
    Write { batch: Batch, after: bool },
}

/// A turn between its staging and the end of its write.
#[derive(Debug)]
struct InFlight<O> {
    /// Effects already due (reads served before the turn's ops).
    out: Vec<Effect>,
    effects: Vec<Effect>,
    reservations: Vec<Reservation>,
    reads: Vec<ShardOp<O>>,
    versions: BatchVersions,
    now_ms: u64,
    /// Messages in the turn's batch (counted in `Node::stats` once written).
    messages: usize,
    /// Every op of the turn was pipeline-safe: a turn may be staged on top.
    all_safe: bool,
}

/// Writes a turn's batch (on the worker, or on its writer thread).
pub(crate) fn write(store: &Store, batch: Batch) -> Result<(), Reject> {
    failpoint::check("engine.write").and_then(|()| store.write(batch).map_err(Reject::from))
}

/// Time the reads of one turn may take before the rest wait for the next turn.
pub(crate) const READ_TURN_BUDGET: Duration = Duration::from_millis(1);

impl<S: Service> std::fmt::Debug for Engine<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("idx", &self.idx).field("deferred", &self.deferred.len()).finish()
    }
}

/// The answer for `origin` when its op failed with `r` (`user`: the login's user).
fn refusal(origin: Origin, user: Option<UserId>, r: Reject) -> Option<Effect> {
    match (origin, user) {
        (Origin::Request { conn, request_id, cost }, _) => {
            Some(Effect::Reply { conn, request_id, cost, reply: Box::new(Err(r)) })
        }
        (Origin::Login { conn }, Some(user)) => Some(Effect::LoginDone { conn, user, result: Err(r) }),
        (Origin::Login { .. }, None) | (Origin::Event { .. }, _) => None,
    }
}

/// The answer for `origin` of a staged op (`user`: the login's user); an
/// answer of the wrong form (a service bug) is an error, and the op is refused.
fn answer(origin: Origin, user: &Option<UserId>, a: Answer) -> Result<Option<Effect>, Reject> {
    match (origin, a, user) {
        (Origin::Request { conn, request_id, cost }, Answer::Response(r), _) => {
            Ok(Some(Effect::Reply { conn, request_id, cost, reply: Box::new(Ok(r)) }))
        }
        (Origin::Login { conn }, Answer::LoginOk(token), Some(user)) => {
            Ok(Some(Effect::LoginDone { conn, user: user.clone(), result: Ok(token) }))
        }
        (Origin::Event { .. }, Answer::None, _) => Ok(None),
        (Origin::Request { .. }, Answer::Forwarded, _) => Ok(None),
        (Origin::Request { .. } | Origin::Login { .. } | Origin::Event { .. }, _, _) => {
            Err(Reject::new(ErrorCode::Internal, "op answered in the wrong form"))
        }
    }
}

impl<S: Service> Engine<S> {
    pub(crate) fn new(idx: usize, node: Arc<Node>, service: S) -> Self {
        Self {
            idx,
            service,
            deferred: Vec::new(),
            pending_reads: VecDeque::new(),
            read_budget: READ_TURN_BUDGET,
            in_flight: VecDeque::new(),
            draining: false,
            depth: node.config.limits.commit_pipeline.clamp(1, PIPELINE_DEPTH),
            node,
        }
    }

    /// Whether ops or reads wait for the next turn.
    pub(crate) fn has_deferred(&self) -> bool {
        !self.deferred.is_empty() || !self.pending_reads.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn set_read_budget(&mut self, budget: Duration) {
        self.read_budget = budget;
    }

    #[cfg(test)]
    pub(crate) fn set_pipeline_depth(&mut self, depth: usize) {
        self.depth = depth.clamp(1, PIPELINE_DEPTH);
    }

    #[cfg(test)]
    pub(crate) fn service(&mut self) -> &mut S {
        &mut self.service
    }

    /// Stages `ops` (after the ones deferred last turn), writes them in one
    /// batch, and returns the effects to emit: [`Engine::start_turn`], the
    /// write on this thread, [`Engine::finish_turn`] (what the worker does,
    /// minus the writer thread).
    #[cfg(test)]
    pub(crate) fn run_turn(&mut self, ops: Vec<ShardOp<S::Op>>, now_ms: u64) -> Vec<Effect> {
        match self.start_turn(ops, now_ms) {
            Started::Done(effects) => effects,
            Started::Write { batch, .. } => {
                let written = write(&self.node.store, batch);
                self.finish_turn(written)
            }
        }
    }

    /// Whether a turn's batch is being written ([`Started::Write`] without
    /// its [`Engine::finish_turn`] yet).
    pub(crate) fn write_in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Whether [`Engine::start_turn`] would stage something now, given the
    /// worker's new `ops`: with nothing in flight, any op; while a batch is
    /// written, only a pipeline-safe op at the head of the queue (so a loop
    /// does not spin on ops that must wait for the write).
    pub(crate) fn wants_turn(&self, ops: &[ShardOp<S::Op>]) -> bool {
        if self.in_flight.is_empty() {
            return !ops.is_empty() || self.has_deferred();
        }
        if !self.may_stage_on_top() || !self.pending_reads.is_empty() {
            return false;
        }
        self.deferred.first().or(ops.first()).is_some_and(|op| self.service.pipeline_safe(&op.op))
    }

    /// Whether a turn may be staged on top of the ones in flight.
    fn may_stage_on_top(&self) -> bool {
        self.in_flight.len() < self.depth
            && !self.draining
            && self.in_flight.iter().all(|f| f.all_safe)
            && self.service.may_pipeline()
    }

    /// Stages `ops` (after the ones deferred last turn) into one batch. If
    /// the batch is empty the turn is over at once; otherwise the caller
    /// writes it ([`write`], on any thread) and hands the outcome to
    /// [`Engine::finish_turn`], which emits the turn's effects.
    pub(crate) fn start_turn(&mut self, ops: Vec<ShardOp<S::Op>>, now_ms: u64) -> Started {
        let after = !self.in_flight.is_empty();
        if after && !self.may_stage_on_top() {
            // Not expected (callers check `wants_turn`): keep the ops for later.
            self.deferred.extend(ops);
            return Started::Done(Vec::new());
        }
        let mut out = Vec::new();
        if !self.pending_reads.is_empty() {
            self.serve_reads(&mut out, now_ms);
            if !self.pending_reads.is_empty() {
                // Earlier reads still wait: new ops wait behind them ([Q-4]).
                self.deferred.extend(ops);
                return Started::Done(out);
            }
        }
        let mut ops = if self.deferred.is_empty() {
            ops
        } else {
            let mut all = std::mem::take(&mut self.deferred);
            all.extend(ops);
            all
        };
        // Pipelined: the safe prefix now, the rest (in order, behind any op
        // of the prefix that defers itself) once drained.
        let rest = if after {
            let safe = ops.iter().take_while(|op| self.service.pipeline_safe(&op.op)).count();
            ops.split_off(safe)
        } else {
            Vec::new()
        };
        if ops.is_empty() {
            self.deferred = rest;
            return Started::Done(out);
        }
        let all_safe = ops.iter().all(|op| self.service.pipeline_safe(&op.op));
        let node = Arc::clone(&self.node);
        let mut t: Turn<S::Undo> = Turn::new(now_ms, node.store.batch_for(self.idx), ops.len());
        let mut reads = Vec::new();
        for op in ops {
            let origin = op.origin;
            // Only a login's answer names its user: no copy per message.
            let user = matches!(origin, Origin::Login { .. }).then(|| op.user.clone());
            let sp = t.save_point();
            match self.service.stage(op, &mut t) {
                Ok(Staged::Done(a)) => match answer(origin, &user, a) {
                    Ok(e) => t.effects_extend(e),
                    Err(r) => {
                        self.rollback(&mut t, sp);
                        t.effects_extend(refusal(origin, user, r));
                    }
                },
                Ok(Staged::Read(op)) => {
                    self.rollback(&mut t, sp);
                    reads.push(op);
                }
                Ok(Staged::Defer(op)) => {
                    self.rollback(&mut t, sp);
                    self.deferred.push(op);
                }
                Err(r) => {
                    self.rollback(&mut t, sp);
                    t.effects_extend(refusal(origin, user, r));
                }
            }
        }
        self.deferred.extend(rest);
        self.service.flush(&mut t);
        let (effects, reservations) = t.finish();
        let messages = t.batch.messages();
        let flight =
            InFlight { out, effects, reservations, reads, versions: t.versions, now_ms, messages, all_safe };
        if t.batch.is_empty() && !after {
            self.in_flight.push_back(flight);
            return Started::Done(self.finish_turn(Ok(())));
        }
        // A pipelined turn goes through the writer even when empty, so its
        // effects (acks of duplicates, pushes of online-only sends) keep
        // their place behind the batch in flight.
        if flight.versions.max != 0 {
            t.batch.put_version_mark(self.idx as u32, flight.versions.max);
        }
        self.in_flight.push_back(flight);
        Started::Write { batch: t.batch, after }
    }

    /// Ends the turn whose batch was written with outcome `written`: settles
    /// counters, applies directory changes, serves reads, and returns the
    /// effects (on a failed write every answer becomes that error).
    pub(crate) fn finish_turn(&mut self, written: Result<(), Reject>) -> Vec<Effect> {
        let Some(InFlight { mut out, effects, reservations, reads, versions, now_ms, messages, .. }) =
            self.in_flight.pop_front()
        else {
            return Vec::new();
        };
        let node = Arc::clone(&self.node);
        node.clock.release(&versions);
        for r in reservations {
            node.counters.settle(r, written.is_ok());
        }
        out.reserve(effects.len() + reads.len());
        match written {
            Ok(()) => {
                node.stats.messages_committed(messages);
                for e in effects {
                    match e {
                        Effect::SessionAdd { user, presence } => {
                            node.directory.add(&user, presence);
                        }
                        Effect::SessionRemove { user, conn } => {
                            node.directory.remove(&user, conn);
                        }
                        other => out.push(other),
                    }
                }
            }
            Err(r) => {
                self.service.write_failed();
                // The turns behind this one were staged on its state: they
                // fail too (the writer does not write them); stage nothing
                // more until they are back.
                self.draining = !self.in_flight.is_empty();
                out.extend(effects.into_iter().filter_map(|eff| match eff {
                    Effect::Reply { conn, request_id, cost, .. } => {
                        Some(Effect::Reply { conn, request_id, cost, reply: Box::new(Err(r.clone())) })
                    }
                    Effect::LoginDone { conn, user, .. } => {
                        Some(Effect::LoginDone { conn, user, result: Err(r.clone()) })
                    }
                    Effect::Forward { op, .. } => match op.origin {
                        Origin::Request { conn, request_id, cost } => {
                            Some(Effect::Reply { conn, request_id, cost, reply: Box::new(Err(r.clone())) })
                        }
                        Origin::Login { .. } | Origin::Event { .. } => None,
                    },
                    Effect::Kick { .. }
                    | Effect::Fanout { .. }
                    | Effect::FanoutAll { .. }
                    | Effect::SessionAdd { .. }
                    | Effect::SessionRemove { .. } => None,
                }));
            }
        }
        if self.in_flight.is_empty() {
            self.draining = false;
            self.service.end_turn();
        }
        self.pending_reads.extend(reads);
        self.serve_reads(&mut out, now_ms);
        out
    }

    /// Serves waiting reads, oldest first, until the turn's read time is used
    /// (always at least one).
    fn serve_reads(&mut self, out: &mut Vec<Effect>, now_ms: u64) {
        let started = Instant::now();
        while let Some(op) = self.pending_reads.pop_front() {
            let origin = op.origin;
            let user = matches!(origin, Origin::Login { .. }).then(|| op.user.clone());
            let e = match self.service.read(op, now_ms) {
                Ok(res) => answer(origin, &user, Answer::Response(res)),
                Err(r) => Err(r),
            };
            out.extend(e.unwrap_or_else(|r| refusal(origin, user, r)));
            if started.elapsed() >= self.read_budget {
                break;
            }
        }
    }

    /// Rolls `t` back to `sp`: releases the op's reservations and undoes its
    /// cache changes, newest first.
    fn rollback(&mut self, t: &mut Turn<S::Undo>, sp: turn::SavePoint) {
        let (reservations, undo) = t.rollback(sp);
        for r in reservations {
            self.node.counters.settle(r, false);
        }
        for u in undo {
            self.service.undo(u);
        }
    }
}
