//! Engine unit tests: a toy service over a real RocksDB in a temp dir, a fake
//! clock, and assertions on the effects. Every test stages an op that fails
//! after partial staging (a put, a cache change, an effect, a reservation, a
//! directory change, a claim) and proves that nothing of it survives while
//! the other ops of the same turn commit.

use std::collections::HashMap;
use std::sync::Arc;

use missive_protocol::pb::{self, response};
use missive_protocol::{DeviceId, ErrorCode, UserId};
use missive_storage::{StatusRecord, Store, StoreOptions};

use super::*;
use crate::config::Config;
use crate::node::counters::Counted;
use crate::node::directory::{ConnRef, Presence};

/// One toy op: set `user`'s status text to `text` (storage and cache), with
/// a reservation on the user's friend count and a session for the user; then
/// fail if `fail`.
#[derive(Debug)]
struct SetText {
    text: String,
    fail: bool,
}

#[derive(Default)]
struct Toy {
    node: Option<Arc<Node>>,
    cache: HashMap<UserId, String>,
    reads: usize,
    failed_writes: usize,
}

impl Service for Toy {
    type Op = SetText;
    type Undo = (UserId, Option<String>);

    fn stage(&mut self, op: ShardOp<SetText>, t: &mut Turn<Self::Undo>) -> Result<Staged<SetText>, Reject> {
        let node = Arc::clone(self.node.as_ref().expect("node"));
        if op.op.text == "read" {
            return Ok(Staged::Read(op));
        }
        if !t.claim(op.user.to_string()) {
            return Ok(Staged::Defer(op));
        }
        t.batch.put_status(&op.user, &StatusRecord { text: op.op.text.clone(), changed_ms: t.now_ms });
        t.undo((op.user.clone(), self.cache.get(&op.user).cloned()));
        self.cache.insert(op.user.clone(), op.op.text.clone());
        if let Some(r) = node.counters.reserve(&node.store, &op.user, Counted::Friends, 1, 1)? {
            t.reservation(r);
        } else {
            return Err(Reject::new(ErrorCode::FriendLimit, "full"));
        }
        let conn = op.origin.conn();
        let presence = Presence {
            conn,
            device: op.device.clone(),
            platform: pb::Platform::Linux,
            since_ms: t.now_ms,
            admin: false,
        };
        t.effect(Effect::SessionAdd { user: op.user.clone(), presence });
        t.effect(Effect::Fanout {
            users: vec![op.user.clone()].into(),
            exclude: None,
            frame: bytes::Bytes::new(),
        });
        if op.op.fail {
            return Err(Reject::new(ErrorCode::Storage, "injected"));
        }
        Ok(Staged::Done(Answer::Response(response::Result::Ok(pb::Ok {}))))
    }

    fn undo(&mut self, (user, before): Self::Undo) {
        match before {
            Some(v) => self.cache.insert(user, v),
            None => self.cache.remove(&user),
        };
    }

    fn flush(&mut self, _t: &mut Turn<Self::Undo>) {}

    fn pipeline_safe(&self, op: &SetText) -> bool {
        op.text.starts_with("pipe")
    }

    fn may_pipeline(&self) -> bool {
        true
    }

    fn read(&mut self, _op: ShardOp<SetText>, _now_ms: u64) -> Result<response::Result, Reject> {
        self.reads += 1;
        Ok(response::Result::Ok(pb::Ok {}))
    }

    fn write_failed(&mut self) {
        self.failed_writes += 1;
        self.cache.clear();
    }

    fn end_turn(&mut self) {}
}

struct Fixture {
    _dir: tempfile::TempDir,
    node: Arc<Node>,
    engine: Engine<Toy>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), &StoreOptions::default()).expect("open");
    let config = Config { secret: "0123456789abcdef".into(), ..Config::default() };
    let node = Arc::new(Node::new(Arc::new(config), store, 0, 1));
    let toy = Toy { node: Some(Arc::clone(&node)), ..Toy::default() };
    let engine = Engine::new(0, Arc::clone(&node), toy);
    Fixture { _dir: dir, node, engine }
}

fn user(s: &str) -> UserId {
    UserId::new(s).expect("valid")
}

fn op(u: &str, id: u64, text: &str, fail: bool) -> ShardOp<SetText> {
    ShardOp {
        origin: Origin::Request { conn: ConnRef { worker: 0, id }, request_id: id, cost: 0 },
        user: user(u),
        device: DeviceId::new("d1").expect("valid"),
        op: SetText { text: text.into(), fail },
    }
}

/// (request_id → the reply's error code, or None for Ok), one entry per reply.
fn replies(effects: &[Effect]) -> Vec<(u64, Option<ErrorCode>)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Reply { request_id, reply, .. } => {
                Some((*request_id, (**reply).as_ref().err().map(|r| r.code)))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_refused_op_leaves_no_trace_and_its_neighbours_commit() {
    let mut f = fixture();
    const NOW: u64 = 1_700_000_000_123;
    let effects = f.engine.run_turn(
        vec![op("alice", 1, "a1", false), op("bob", 2, "b1", true), op("carol", 3, "c1", false)],
        NOW,
    );
    // Exactly one answer per op: the refused one an error, the others Ok.
    assert_eq!(replies(&effects), vec![(1, None), (2, Some(ErrorCode::Storage)), (3, None)]);
    // Storage: the neighbours' puts landed (with the fake clock's time), bob's did not.
    let store = &f.node.store;
    assert_eq!(
        store.status(&user("alice")).expect("read").map(|s| (s.text, s.changed_ms)),
        Some(("a1".into(), NOW))
    );
    assert_eq!(store.status(&user("carol")).expect("read").map(|s| s.text), Some("c1".into()));
    assert_eq!(store.status(&user("bob")).expect("read"), None);
    // Cache: bob's change undone.
    let toy = f.engine.service();
    assert_eq!(toy.cache.get(&user("alice")).map(String::as_str), Some("a1"));
    assert_eq!(toy.cache.get(&user("bob")), None);
    // Effects: no push or session of bob's op survives; the others' sessions are applied after the write.
    let fanouts: Vec<&UserId> = effects
        .iter()
        .filter_map(|e| if let Effect::Fanout { users, .. } = e { users.first() } else { None })
        .collect();
    assert_eq!(fanouts, vec![&user("alice"), &user("carol")]);
    assert!(effects.iter().all(|e| !matches!(e, Effect::SessionAdd { .. } | Effect::SessionRemove { .. })));
    assert_eq!(f.node.directory.sessions(&user("alice")).len(), 1);
    assert!(f.node.directory.sessions(&user("bob")).is_empty());
    // Reservation: bob's was released at once (limit 1: reserving again works), alice's settled.
    let store = &f.node.store;
    let again = f.node.counters.reserve(store, &user("bob"), Counted::Friends, 1, 1).expect("reserve");
    assert!(again.is_some(), "the refused op's reservation must be released");
    let full = f.node.counters.reserve(store, &user("alice"), Counted::Friends, 1, 1).expect("reserve");
    assert!(full.is_none(), "a committed op's reservation stays counted");
}

#[test]
fn a_refused_op_releases_its_claim_and_a_second_op_on_the_key_waits() {
    let mut f = fixture();
    let effects = f
        .engine
        .run_turn(vec![op("alice", 1, "x", true), op("alice", 2, "y", false), op("alice", 3, "z", false)], 1);
    // Op 1's claim was released by its rollback, so op 2 runs in this turn; op 3 waits.
    assert_eq!(replies(&effects), vec![(1, Some(ErrorCode::Storage)), (2, None)]);
    assert!(f.engine.has_deferred());
    assert_eq!(f.node.store.status(&user("alice")).expect("read").map(|s| s.text), Some("y".into()));
    // Op 3 runs next turn (its reservation hits the limit of 1 held by op 2).
    let effects = f.engine.run_turn(Vec::new(), 2);
    assert_eq!(replies(&effects), vec![(3, Some(ErrorCode::FriendLimit))]);
    assert!(!f.engine.has_deferred());
}

#[test]
fn reads_run_after_the_write_and_answer_once() {
    let mut f = fixture();
    let effects = f.engine.run_turn(vec![op("alice", 1, "read", false), op("alice", 2, "a", false)], 5);
    assert_eq!(replies(&effects), vec![(2, None), (1, None)]);
    assert_eq!(f.engine.service().reads, 1);
}

#[test]
fn a_failed_write_turns_every_answer_into_storage_and_emits_nothing_else() {
    let mut f = fixture();
    failpoint::arm("engine.write");
    let effects = f.engine.run_turn(vec![op("alice", 1, "a", false), op("bob", 2, "b", false)], 7);
    failpoint::disarm_all();
    assert_eq!(replies(&effects), vec![(1, Some(ErrorCode::Storage)), (2, Some(ErrorCode::Storage))]);
    assert_eq!(effects.len(), 2, "no push, kick or session survives a failed write: {effects:?}");
    assert!(f.node.directory.sessions(&user("alice")).is_empty());
    assert_eq!(f.node.store.status(&user("alice")).expect("read"), None);
    assert_eq!(f.engine.service().failed_writes, 1);
    // Both reservations were released.
    let store = &f.node.store;
    assert!(
        f.node.counters.reserve(store, &user("alice"), Counted::Friends, 1, 1).expect("reserve").is_some()
    );
}

#[test]
fn a_login_is_answered_exactly_once_even_when_it_fails() {
    let mut f = fixture();
    let login = |u: &str, id: u64, fail: bool| ShardOp {
        origin: Origin::Login { conn: ConnRef { worker: 0, id } },
        ..op(u, id, "t", fail)
    };
    // A login op answered with a Response is a service bug: refused, once.
    let effects = f.engine.run_turn(vec![login("alice", 1, true), login("bob", 2, false)], 9);
    let logins: Vec<(u64, bool)> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::LoginDone { conn, result, .. } => Some((conn.id, result.is_ok())),
            _ => None,
        })
        .collect();
    assert_eq!(logins, vec![(1, false), (2, false)]);
    assert!(effects.iter().all(|e| matches!(e, Effect::LoginDone { .. })), "{effects:?}");
    assert!(f.node.directory.sessions(&user("bob")).is_empty(), "a refused login leaves no session");
}

#[test]
fn reads_over_the_turn_budget_wait_and_later_ops_wait_behind_them() {
    let mut f = fixture();
    // A zero budget: one read per turn.
    f.engine.set_read_budget(Duration::ZERO);
    let effects = f.engine.run_turn(
        vec![op("alice", 1, "read", false), op("bob", 2, "read", false), op("carol", 3, "read", false)],
        1,
    );
    assert_eq!(replies(&effects), vec![(1, None)]);
    assert!(f.engine.has_deferred(), "two reads wait");
    // A write arriving now waits behind the reads left over ([Q-4]).
    let effects = f.engine.run_turn(vec![op("dave", 4, "w", false)], 2);
    assert_eq!(replies(&effects), vec![(2, None)]);
    assert_eq!(f.node.store.status(&user("dave")).expect("read"), None, "not staged yet");
    // The last read, then (in the same turn, after it) the write.
    let effects = f.engine.run_turn(Vec::new(), 3);
    assert_eq!(replies(&effects), vec![(3, None), (4, None)]);
    assert!(!f.engine.has_deferred());
    assert_eq!(f.engine.service().reads, 3);
}

fn write_of(s: Started) -> (Batch, bool) {
    match s {
        Started::Write { batch, after } => (batch, after),
        Started::Done(e) => panic!("expected a write, got effects {e:?}"),
    }
}

/// Pipelined group commit: a safe op is staged while a batch is written and
/// marked `after`; the first unsafe op and everything behind it wait for the
/// pipeline to drain, in order; effects leave in turn order.
#[test]
fn safe_ops_stage_behind_a_write_and_others_wait_for_it() {
    let mut f = fixture();
    f.engine.set_pipeline_depth(2);
    let (b1, after1) = write_of(f.engine.start_turn(vec![op("a", 1, "pipe-a", false)], 10));
    assert!(!after1);
    assert!(f.engine.wants_turn(&[op("b", 2, "pipe-b", false)]));
    assert!(!f.engine.wants_turn(&[op("c", 3, "plain-c", false)]), "an unsafe head waits");
    let staged = f.engine.start_turn(
        vec![op("b", 2, "pipe-b", false), op("c", 3, "plain-c", false), op("d", 4, "pipe-d", false)],
        11,
    );
    let (b2, after2) = write_of(staged);
    assert!(after2, "staged on top of the batch in flight");
    assert_eq!(b2.len(), 1, "only the safe prefix: pipe-b");
    assert!(!f.engine.wants_turn(&[]), "depth reached, and plain-c heads the queue");
    let e1 = f.engine.finish_turn(write(&f.node.store, b1));
    assert_eq!(replies(&e1), vec![(1, None)]);
    assert!(!f.engine.wants_turn(&[]), "plain-c waits until nothing is in flight");
    let e2 = f.engine.finish_turn(write(&f.node.store, b2));
    assert_eq!(replies(&e2), vec![(2, None)]);
    assert!(f.engine.wants_turn(&[]));
    let (b3, after3) = write_of(f.engine.start_turn(Vec::new(), 12));
    assert!(!after3);
    let e3 = f.engine.finish_turn(write(&f.node.store, b3));
    assert_eq!(replies(&e3), vec![(3, None), (4, None)], "the waiting ops, in request order");
    assert_eq!(f.node.store.status(&user("d")).expect("read").map(|s| s.text), Some("pipe-d".into()));
}

/// A failed write fails the turn staged on top of it (the writer never
/// writes it) and nothing more is staged until both are back.
#[test]
fn a_failed_write_fails_the_pipelined_turn_behind_it() {
    let mut f = fixture();
    f.engine.set_pipeline_depth(2);
    let (_b1, _) = write_of(f.engine.start_turn(vec![op("a", 1, "pipe-a", false)], 10));
    let (_b2, after) = write_of(f.engine.start_turn(vec![op("b", 2, "pipe-b", false)], 11));
    assert!(after);
    let e1 = f.engine.finish_turn(Err(Reject::new(ErrorCode::Storage, "disk")));
    assert_eq!(replies(&e1), vec![(1, Some(ErrorCode::Storage))]);
    assert!(
        !f.engine.wants_turn(&[op("c", 3, "pipe-c", false)]),
        "draining: nothing staged on a failed state"
    );
    // What the writer answers for a batch staged on top of a failed one.
    let e2 = f.engine.finish_turn(Err(Reject::new(ErrorCode::Storage, "an earlier write failed")));
    assert_eq!(replies(&e2), vec![(2, Some(ErrorCode::Storage))]);
    assert_eq!(f.engine.service().failed_writes, 2);
    assert!(f.engine.wants_turn(&[op("c", 3, "pipe-c", false)]), "drained: staging resumes");
    let e3 = f.engine.run_turn(vec![op("c", 3, "pipe-c", false)], 12);
    assert_eq!(replies(&e3), vec![(3, None)]);
    for u in ["a", "b"] {
        assert_eq!(
            f.node.store.status(&user(u)).expect("read"),
            None,
            "{u}: nothing of a failed turn stored"
        );
    }
}

/// The default depth (1) stages nothing while a batch is written.
#[test]
fn without_the_pipeline_no_turn_starts_during_a_write() {
    let mut f = fixture();
    let (b1, _) = write_of(f.engine.start_turn(vec![op("a", 1, "pipe-a", false)], 10));
    assert!(!f.engine.wants_turn(&[op("b", 2, "pipe-b", false)]));
    let e1 = f.engine.finish_turn(write(&f.node.store, b1));
    assert_eq!(replies(&e1), vec![(1, None)]);
    assert!(f.engine.wants_turn(&[op("b", 2, "pipe-b", false)]));
}
