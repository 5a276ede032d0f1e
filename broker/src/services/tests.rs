//! Regression tests of the services on the real engine, a real RocksDB in a
//! temp dir and a fake clock: one test per defect the transactional turn
//! fixed. Each arms a failpoint after partial staging and proves that nothing
//! of the op commits, that the op is answered exactly once, and that a retry
//! behaves as if the failed attempt never happened.

use std::sync::Arc;

use missive_protocol::pb::{self, response};
use missive_protocol::token::Role;
use missive_protocol::{ClientMsgId, ConvId, DeviceId, ErrorCode, GroupId, Seq, UserId};
use missive_storage::{Store, StoreOptions};

use super::*;
use crate::config::Config;
use crate::node::directory::ConnRef;
use crate::shard::{Effect, Engine, Origin, failpoint};

struct Fixture {
    _dir: tempfile::TempDir,
    node: Arc<Node>,
    engine: Engine<Services>,
    next_id: u64,
    now: u64,
}

const T0: u64 = 1_800_000_000_000;

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), &StoreOptions::default()).expect("open");
    let config = Config { secret: "0123456789abcdef".into(), ..Config::default() };
    let node = Arc::new(Node::new(Arc::new(config), store, 0, 1));
    let engine = Engine::new(0, Arc::clone(&node), Services::new(0, Arc::clone(&node)));
    Fixture { _dir: dir, node, engine, next_id: 1, now: T0 }
}

fn user(s: &str) -> UserId {
    UserId::new(s).expect("valid")
}

fn device() -> DeviceId {
    DeviceId::new("phone").expect("valid")
}

impl Fixture {
    fn op(&mut self, u: &str, op: ServiceOp) -> ShardOp<ServiceOp> {
        let id = self.next_id;
        self.next_id += 1;
        ShardOp {
            origin: Origin::Request { conn: ConnRef { worker: 0, id }, request_id: id, cost: 0 },
            user: user(u),
            device: device(),
            op,
        }
    }

    /// Runs one turn with `ops`; the fake clock moves 1 ms per turn.
    fn turn(&mut self, ops: Vec<ShardOp<ServiceOp>>) -> Vec<Effect> {
        self.now += 1;
        self.engine.run_turn(ops, self.now)
    }

    /// Runs one op alone; returns its one reply (panics if not exactly one).
    fn call(&mut self, u: &str, op: ServiceOp) -> Result<response::Result, ErrorCode> {
        let op = self.op(u, op);
        let effects = self.turn(vec![op]);
        let replies: Vec<_> = effects
            .into_iter()
            .filter_map(|e| match e {
                Effect::Reply { reply, .. } => Some((*reply).map_err(|r| r.code)),
                _ => None,
            })
            .collect();
        assert_eq!(replies.len(), 1, "exactly one reply per op");
        replies.into_iter().next().expect("one reply")
    }

    fn import(&mut self, u: &str) {
        let op = ServiceOp::Accounts(accounts::AccountsOp::ImportUser {
            target: user(u),
            patch: pb::ProfilePatch::default(),
        });
        self.call("admin", op).expect("import");
    }

    fn create_group(&mut self, owner: &str, g: &str, members: &[&str]) {
        let req = pb::CreateGroup { group_id: g.into(), ..Default::default() };
        let op = groups::GroupsOp::new(
            group_conv(g),
            groups::GroupOp::Create { req, members: members.iter().map(|m| user(m)).collect() },
        );
        self.call(owner, ServiceOp::Groups(op)).expect("create");
    }
}

fn group_conv(g: &str) -> ConvId {
    ConvId::parse(&format!("g:{g}")).expect("valid")
}

fn send(conv: &ConvId, cmid: &str, text: &str) -> ServiceOp {
    ServiceOp::Messages(messages::MessagesOp::Send {
        conv: conv.clone(),
        client_msg_id: ClientMsgId::new(cmid).expect("valid"),
        content: pb::Content {
            body: Some(pb::content::Body::Text(pb::Text { text: text.into() })),
            ..Default::default()
        },
        flags: None,
        fresh: None,
    })
}

fn ack(r: Result<response::Result, ErrorCode>) -> pb::SendAck {
    match r {
        Ok(response::Result::SendAck(a)) => a,
        other => panic!("expected a SendAck, got {other:?}"),
    }
}

/// Defect: a group send appended the message, then a later `?` failed; the
/// client got an error but the message committed without its dedup record,
/// so a retry stored it twice.
#[test]
fn group_send_failing_after_append_commits_nothing_and_the_retry_is_stored_once() {
    let mut f = fixture();
    for u in ["alice", "bob"] {
        f.import(u);
    }
    f.create_group("alice", "team", &["bob"]);
    let conv = group_conv("team");
    let created_tip = f.node.store.max_seq(&conv).expect("read").0;
    failpoint::arm("groups.send.after_append");
    assert_eq!(f.call("alice", send(&conv, "m1", "hi")).err(), Some(ErrorCode::Storage));
    failpoint::disarm_all();
    assert_eq!(f.node.store.max_seq(&conv).expect("read").0, created_tip, "nothing appended");
    assert!(
        f.node.store.dedup(&conv, "alice", "phone", "m1", f.now).expect("read").is_none(),
        "no dedup record"
    );
    // The retry gets the next seq (the cache did not keep the failed append) and is stored once.
    let a = ack(f.call("alice", send(&conv, "m1", "hi")));
    assert_eq!((a.seq, a.duplicate), (created_tip + 1, false));
    let again = ack(f.call("alice", send(&conv, "m1", "hi")));
    assert_eq!((again.seq, again.duplicate), (created_tip + 1, true));
    assert_eq!(f.node.store.max_seq(&conv).expect("read").0, created_tip + 1);
}

/// The same defect for 1:1 sends: a failure after the message was staged.
#[test]
fn direct_send_failing_before_its_dedup_record_commits_nothing() {
    let mut f = fixture();
    let conv = ConvId::parse("p:alice:bob").expect("valid");
    failpoint::arm("messages.send.before_dedup");
    assert_eq!(f.call("alice", send(&conv, "c1", "hello")).err(), Some(ErrorCode::Storage));
    failpoint::disarm_all();
    assert_eq!(f.node.store.max_seq(&conv).expect("read"), Seq(0));
    let a = ack(f.call("alice", send(&conv, "c1", "hello")));
    assert_eq!((a.seq, a.duplicate, a.server_time_ms), (1, false, f.now), "fake clock stamps the message");
    assert!(ack(f.call("alice", send(&conv, "c1", "hello"))).duplicate);
    assert_eq!(f.node.store.max_seq(&conv).expect("read"), Seq(1));
}

/// Dedup retention ([I-2]) on the engine's fake clock: a retry inside the
/// window gets the original ack; once the record is past the window (not yet
/// compacted) the same client_msg_id is a new send, and that new send is
/// deduplicated again from then on.
#[test]
fn a_retry_after_the_dedup_retention_window_is_a_new_send() {
    let mut f = fixture();
    let window = f.node.store.dedup_retention_ms();
    assert_eq!(window, 7 * 86_400_000, "default retention");
    let conv = ConvId::parse("p:alice:bob").expect("valid");
    let first = ack(f.call("alice", send(&conv, "r1", "hello")));
    assert_eq!((first.seq, first.duplicate), (1, false));
    f.now = first.server_time_ms + window - 2; // the next turn runs at window - 1
    let inside = ack(f.call("alice", send(&conv, "r1", "hello")));
    assert_eq!((inside.seq, inside.duplicate, inside.server_time_ms), (1, true, first.server_time_ms));
    f.now = first.server_time_ms + window - 1; // the next turn runs exactly at the window's end
    let after = ack(f.call("alice", send(&conv, "r1", "hello")));
    assert_eq!((after.seq, after.duplicate), (2, false), "expired key: stored as a new message");
    let again = ack(f.call("alice", send(&conv, "r1", "hello")));
    assert_eq!((again.seq, again.duplicate), (2, true), "the new record deduplicates");
    assert_eq!(f.node.store.max_seq(&conv).expect("read"), Seq(2));
}

/// Defect: `finish` of a group op appended the tip and changed members, then
/// a later `?` failed and left them staged.
#[test]
fn group_op_failing_in_finish_changes_nothing() {
    let mut f = fixture();
    for u in ["alice", "bob", "carol"] {
        f.import(u);
    }
    f.create_group("alice", "team", &["bob"]);
    let conv = group_conv("team");
    let gid = GroupId::new("team").expect("valid");
    let before = f.node.store.max_seq(&conv).expect("read").0;
    let invite = |who: &str| {
        ServiceOp::Groups(groups::GroupsOp::new(
            group_conv("team"),
            groups::GroupOp::Invite { targets: vec![user(who)] },
        ))
    };
    failpoint::arm("groups.finish.after_tip");
    assert_eq!(f.call("alice", invite("carol")).err(), Some(ErrorCode::Storage));
    failpoint::disarm_all();
    assert_eq!(f.node.store.max_seq(&conv).expect("read").0, before, "no tip");
    assert!(f.node.store.group_member(&gid, "carol").expect("read").is_none(), "no member");
    assert_eq!(f.node.store.joined_count(&user("carol")).expect("read"), 0);
    // The cache kept neither the tip nor carol: the retry's tip is the next seq.
    f.call("alice", invite("carol")).expect("invite");
    assert_eq!(f.node.store.max_seq(&conv).expect("read").0, before + 1);
    assert!(f.node.store.group_member(&gid, "carol").expect("read").is_some());
    let info = f.node.store.group(&gid).expect("read").expect("group");
    assert_eq!(info.member_count, 3);
}

/// [GR-30]: an admin op acts with the owner's rights without being a member,
/// adds into a closed group needing consent at once, is undone whole when
/// `finish` fails, and is refused for ops about the caller itself.
#[test]
fn admin_group_ops_act_as_owner_and_roll_back_whole() {
    let mut f = fixture();
    for u in ["alice", "bob", "carol"] {
        f.import(u);
    }
    f.create_group("alice", "team", &["bob"]);
    let conv = group_conv("team");
    let gid = GroupId::new("team").expect("valid");
    let closed = pb::GroupPatch {
        join_mode: Some(pb::JoinMode::Nobody as i32),
        invitee_consent: Some(true),
        ..Default::default()
    };
    let update = groups::GroupsOp::new(conv.clone(), groups::GroupOp::Update { patch: closed });
    f.call("alice", ServiceOp::Groups(update)).expect("owner closes the group");
    let add = |admin: bool| {
        let op = groups::admin::add(conv.clone(), vec!["carol".into()]).expect("op");
        ServiceOp::Groups(if admin { op } else { groups::GroupsOp { admin: false, ..op } })
    };
    assert_eq!(f.call("system", add(false)).err(), Some(ErrorCode::NotGroupMember), "a client");
    assert_eq!(f.call("alice", add(false)).err(), Some(ErrorCode::JoinDenied), "even the owner");
    let before = f.node.store.max_seq(&conv).expect("read").0;
    failpoint::arm("groups.finish.after_tip");
    assert_eq!(f.call("system", add(true)).err(), Some(ErrorCode::Storage));
    failpoint::disarm_all();
    assert_eq!(f.node.store.max_seq(&conv).expect("read").0, before, "no tip");
    assert!(f.node.store.group_member(&gid, "carol").expect("read").is_none());
    f.call("system", add(true)).expect("the operator adds without consent");
    assert!(f.node.store.group_member(&gid, "carol").expect("read").is_some());
    assert!(f.node.store.group_member(&gid, "system").expect("read").is_none(), "not a member");
    let tip = f.node.store.message(&conv, Seq(before + 1)).expect("read").expect("tip");
    let tip = <pb::Message as prost::Message>::decode(tip.as_slice()).expect("decode");
    assert_eq!(tip.sender, "system");
    // The owner is spared; ops about the caller itself are not admin ops.
    let kick = groups::admin::remove(conv.clone(), vec!["alice".into()]).expect("op");
    assert_eq!(f.call("system", ServiceOp::Groups(kick)).err(), Some(ErrorCode::GroupPermissionDenied));
    let quit = groups::GroupsOp::new(conv.clone(), groups::GroupOp::Quit).by_admin();
    assert_eq!(f.call("system", ServiceOp::Groups(quit)).err(), Some(ErrorCode::Internal));
    assert_eq!(f.node.store.group(&gid).expect("read").expect("group").member_count, 3);
}

/// Defect: a profile change staged the profile, then failed while moving the
/// friends' feed entries, and the profile still committed.
#[test]
fn profile_change_failing_midway_commits_nothing() {
    let mut f = fixture();
    for u in ["alice", "bob"] {
        f.import(u);
    }
    let pair =
        relations::RelationsOp::new(user("alice"), user("bob"), relations::PairOp::Import).expect("pair");
    f.call("admin", ServiceOp::Relations(pair)).expect("friends");
    let patch = pb::ProfilePatch { nickname: Some("Al".into()), ..Default::default() };
    let set = || ServiceOp::Accounts(accounts::AccountsOp::SetProfile { patch: patch.clone() });
    failpoint::arm("accounts.profile.friend_feed");
    assert_eq!(f.call("alice", set()).err(), Some(ErrorCode::Storage));
    failpoint::disarm_all();
    assert_eq!(
        f.node.store.profile(&user("alice")).expect("read").map(|p| p.nickname).unwrap_or_default(),
        ""
    );
    f.call("alice", set()).expect("profile");
    assert_eq!(f.node.store.profile(&user("alice")).expect("read").map(|p| p.nickname), Some("Al".into()));
}

fn login(f: &mut Fixture, u: &str, conn_id: u64) -> Vec<Effect> {
    let op = ShardOp {
        origin: Origin::Login { conn: ConnRef { worker: 0, id: conn_id } },
        user: user(u),
        device: device(),
        op: ServiceOp::Accounts(accounts::AccountsOp::Login {
            platform: pb::Platform::Ios,
            role: Role::User,
            issued_at_ms: 0,
        }),
    };
    f.turn(vec![op])
}

fn login_results(effects: &[Effect]) -> Vec<Result<String, ErrorCode>> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::LoginDone { result, .. } => Some(result.clone().map_err(|r| r.code)),
            _ => None,
        })
        .collect()
}

/// Defect: `stage_login` added the session to the directory before a read
/// that could fail: a ghost online session with no connection.
#[test]
fn a_login_failing_after_its_session_was_staged_leaves_no_ghost_session() {
    let mut f = fixture();
    failpoint::arm("accounts.login.after_session_add");
    let effects = login(&mut f, "alice", 7);
    failpoint::disarm_all();
    assert_eq!(login_results(&effects), vec![Err(ErrorCode::Storage)]);
    assert!(f.node.directory.sessions(&user("alice")).is_empty(), "no ghost session");
    assert!(f.node.store.account(&user("alice")).expect("read").is_none(), "auto-registration rolled back");
    let effects = login(&mut f, "alice", 8);
    assert_eq!(login_results(&effects), vec![Ok(String::new())]);
    assert_eq!(f.node.directory.sessions(&user("alice")).len(), 1);
}

/// Defect: publishing presence could fail after `LoginDone Ok` was queued: a
/// second `LoginDone` was sent and the in-flight count went down twice.
#[test]
fn a_login_whose_presence_push_fails_is_answered_once() {
    let mut f = fixture();
    failpoint::arm("presence.publish");
    let effects = login(&mut f, "alice", 7);
    failpoint::disarm_all();
    assert_eq!(login_results(&effects), vec![Err(ErrorCode::Storage)], "exactly one LoginDone: {effects:?}");
    assert!(f.node.directory.sessions(&user("alice")).is_empty());
    assert!(effects.iter().all(|e| !matches!(e, Effect::Fanout { .. } | Effect::Kick { .. })));
}

/// Defect: every Sync wrote the device record with fsync on the connection's
/// worker. Now `sync::serve` only reads, and the owner records the token.
#[test]
fn sync_reads_only_and_the_owner_records_the_token() {
    let mut f = fixture();
    let conv = ConvId::parse("p:alice:bob").expect("valid");
    ack(f.call("alice", send(&conv, "c1", "hello")));
    let res = sync::serve(&f.node, &user("alice"), &pb::SyncRequest::default(), f.now).expect("sync");
    assert_eq!(res.conversations.len(), 1);
    assert!(f.node.store.device(&user("alice"), "phone").expect("read").is_none(), "serve wrote nothing");
    let token = res.sync_token.clone();
    let record = ServiceOp::Sync(sync::SyncOp::RecordToken { page: Box::new(res.clone()) });
    match f.call("alice", record) {
        Ok(response::Result::Sync(page)) => assert_eq!(page, res, "the owner answers with the page"),
        other => panic!("expected the sync page, got {other:?}"),
    }
    let stored = f.node.store.device(&user("alice"), "phone").expect("read").expect("recorded");
    assert_eq!(stored.sync_token, token);
    // The next login hands that token back.
    assert_eq!(login_results(&login(&mut f, "alice", 5)), vec![Ok(token)]);
}

/// A refused op in the middle of a turn does not disturb its neighbours'
/// cached state: two sends around a blocked one get dense seqs.
#[test]
fn refused_send_between_two_accepted_sends_keeps_seqs_dense() {
    let mut f = fixture();
    let conv = ConvId::parse("p:alice:bob").expect("valid");
    let ops = vec![
        f.op("alice", send(&conv, "a", "1")),
        f.op("carol", send(&conv, "b", "2")),
        f.op("bob", send(&conv, "c", "3")),
    ];
    let effects = f.turn(ops);
    let codes: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Reply { reply, .. } => Some(
                (**reply)
                    .as_ref()
                    .map(|r| match r {
                        response::Result::SendAck(a) => a.seq,
                        _ => 0,
                    })
                    .map_err(|r| r.code),
            ),
            _ => None,
        })
        .collect();
    assert_eq!(codes, vec![Ok(1), Err(ErrorCode::NotParticipant), Ok(2)]);
    assert_eq!(f.node.store.max_seq(&conv).expect("read"), Seq(2));
}

fn broadcast_op(cmid: &str) -> ServiceOp {
    send(&ConvId::broadcast_all(), cmid, "news")
}

/// Broadcasts ([AM-2]): a failure before the dedup record commits nothing
/// (no row, no version record); two broadcasts in one turn get dense seqs
/// (the second waits for the next turn: seqs come from the committed log);
/// the push goes to every online session.
#[test]
fn broadcast_failing_commits_nothing_and_broadcasts_keep_seqs_dense() {
    let mut f = fixture();
    let all = ConvId::broadcast_all();
    failpoint::arm("messages.send.before_dedup");
    assert_eq!(f.call("system", broadcast_op("b1")).err(), Some(ErrorCode::Storage));
    failpoint::disarm_all();
    assert_eq!(f.node.store.max_seq(&all).expect("read"), Seq(0));
    assert_eq!(f.node.store.broadcast_version(&all).expect("read"), 0, "no version record");
    let (o1, o2) = (f.op("system", broadcast_op("b1")), f.op("system", broadcast_op("b2")));
    let mut effects = f.turn(vec![o1, o2]);
    effects.extend(f.turn(vec![]));
    let mut seqs: Vec<u64> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Reply { reply, .. } => match &**reply {
                Ok(response::Result::SendAck(a)) => Some(a.seq),
                other => panic!("expected a SendAck, got {other:?}"),
            },
            _ => None,
        })
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, vec![1, 2], "one answer each, dense seqs");
    assert_eq!(effects.iter().filter(|e| matches!(e, Effect::FanoutAll { .. })).count(), 2);
    assert_eq!(f.node.store.max_seq(&all).expect("read"), Seq(2));
    assert!(f.node.store.broadcast_version(&all).expect("read") > 0);
    let again = ack(f.call("system", broadcast_op("b1")));
    assert_eq!((again.seq, again.duplicate), (1, true));
}

/// Imports ([AM-1]): the original sender and time are stored, and the dedup
/// record of an old message is not already expired (retention counts from
/// the import).
#[test]
fn import_keeps_the_original_time_and_deduplicates_old_messages() {
    let mut f = fixture();
    let conv = ConvId::parse("p:alice:bob").expect("valid");
    let import = || {
        ServiceOp::Messages(messages::MessagesOp::Import {
            conv: conv.clone(),
            client_msg_id: ClientMsgId::new("old-1").expect("valid"),
            content: pb::Content {
                body: Some(pb::content::Body::Text(pb::Text { text: "2001".into() })),
                ..Default::default()
            },
            time_ms: 1_000,
        })
    };
    let a = ack(f.call("bob", import()));
    assert_eq!((a.seq, a.server_time_ms, a.duplicate), (1, 1_000, false));
    let stored = f.node.store.message(&conv, Seq(1)).expect("read").expect("row");
    let m = <pb::Message as prost::Message>::decode(stored.as_slice()).expect("decode");
    assert_eq!((m.sender.as_str(), m.server_time_ms), ("bob", 1_000));
    let again = ack(f.call("bob", import()));
    assert_eq!((again.seq, again.server_time_ms, again.duplicate), (1, 1_000, true));
    assert_eq!(f.node.store.max_seq(&conv).expect("read"), Seq(1));
}

/// The admin Kick ([A-7]) ends only the named sessions (directory changes are
/// effects of the turn); no device named ends every session.
#[test]
fn kick_ends_the_named_sessions_as_effects() {
    use crate::node::directory::Presence;
    let mut f = fixture();
    f.import("alice");
    let alice = user("alice");
    let phone = ConnRef { worker: 0, id: 100 };
    let web = ConnRef { worker: 0, id: 101 };
    for (conn, d, platform) in [(phone, "phone", pb::Platform::Ios), (web, "web", pb::Platform::Web)] {
        let p =
            Presence { conn, device: DeviceId::new(d).expect("valid"), platform, since_ms: T0, admin: false };
        f.node.directory.add(&alice, p);
    }
    let kicked = |effects: &[Effect]| -> Vec<u64> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Kick { conn, code, .. } if *code == ErrorCode::Kicked => Some(conn.id),
                _ => None,
            })
            .collect()
    };
    let kick = |devices: Vec<&str>| {
        ServiceOp::Accounts(accounts::AccountsOp::Kick {
            target: user("alice"),
            devices: devices.into_iter().map(|d| DeviceId::new(d).expect("valid")).collect(),
        })
    };
    let op = f.op("admin", kick(vec!["web", "nowhere"]));
    let effects = f.turn(vec![op]);
    assert_eq!(kicked(&effects), vec![101]);
    let left: Vec<u64> = f.node.directory.sessions(&alice).iter().map(|s| s.conn.id).collect();
    assert_eq!(left, vec![100]);
    assert_eq!(f.node.directory.online(&alice).platforms, vec![pb::Platform::Ios]);

    let op = f.op("admin", kick(vec![]));
    let effects = f.turn(vec![op]);
    assert_eq!(kicked(&effects), vec![100]);
    assert!(f.node.directory.sessions(&alice).is_empty());
}

/// `Node::stats` counts messages of written turns only: refused sends and a
/// failed write add nothing.
#[test]
fn committed_message_counter_counts_written_messages_only() {
    let mut f = fixture();
    let conv = ConvId::parse("p:alice:bob").expect("valid");
    let ops = vec![
        f.op("alice", send(&conv, "a", "1")),
        f.op("carol", send(&conv, "b", "2")),
        f.op("bob", send(&conv, "c", "3")),
    ];
    f.turn(ops);
    assert_eq!(f.node.stats.messages_total(), 2);
    failpoint::arm("engine.write");
    let op = f.op("alice", send(&conv, "d", "4"));
    f.turn(vec![op]);
    failpoint::disarm_all();
    assert_eq!(f.node.stats.messages_total(), 2);
    ack(f.call("alice", send(&conv, "e", "5")));
    assert_eq!(f.node.stats.messages_total(), 3);
}

/// Webhooks [WH-8]: an after-event is staged in the op's batch, so a send
/// refused after staging it leaves no outbox record, an accepted send leaves
/// exactly one per subscribed endpoint, and a duplicate leaves none.
#[test]
fn after_send_event_commits_with_the_message_and_rolls_back_with_it() {
    use missive_storage::OpsSpace;
    let mut f = fixture();
    let ep = |id: &str, events: &[&str]| {
        Arc::new(crate::node::hooks::Endpoint {
            id: id.into(),
            url: "http://127.0.0.1:9/".into(),
            secret: "0123456789abcdef".into(),
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            enabled: true,
            created_ms: 0,
            updated_ms: 0,
        })
    };
    f.node.hooks.set(vec![ep("a", &["after.send"]), ep("b", &["*"]), ep("c", &["group.*"])]);
    let conv = ConvId::parse("p:alice:bob").expect("valid");
    let outbox = |f: &Fixture, id: &str| {
        f.node.store.ops_scan(OpsSpace::Outbox, format!("{id}\0").as_bytes(), None, 100).expect("scan")
    };
    failpoint::arm("messages.send.before_dedup");
    assert_eq!(f.call("alice", send(&conv, "c1", "hello")).err(), Some(ErrorCode::Storage));
    failpoint::disarm_all();
    assert!(outbox(&f, "a").is_empty() && outbox(&f, "b").is_empty(), "a refused send has no event");
    let a = ack(f.call("alice", send(&conv, "c1", "hello")));
    assert!(ack(f.call("alice", send(&conv, "c1", "hello"))).duplicate);
    for id in ["a", "b"] {
        let rows = outbox(&f, id);
        assert_eq!(rows.len(), 1, "endpoint {id}");
        let rec: events::OutboxRecord = serde_json::from_slice(&rows[0].1).expect("json");
        assert_eq!(rec.event["type"], "after.send");
        assert_eq!(rec.event["data"]["seq"], a.seq);
        assert_eq!(rec.event["at_ms"], f.now - 1);
        assert_eq!(
            crate::node::hooks::event_id_of(&rows[0].0).map(|n| n.to_string()).as_deref(),
            rec.event["id"].as_str()
        );
    }
    assert!(outbox(&f, "c").is_empty(), "not subscribed");
}

fn typing_op(conv: &ConvId) -> ServiceOp {
    ServiceOp::Signals(signals::SignalsOp::Typing { conv: conv.clone(), typing: true })
}

/// [TY-4]: a turn of typing ops (1:1 and group) stages nothing, so the
/// engine writes no batch at all; each op is still answered and pushed.
#[test]
fn a_turn_of_typing_ops_writes_nothing() {
    let mut f = fixture();
    for u in ["alice", "bob"] {
        f.import(u);
    }
    f.create_group("alice", "team", &["bob"]);
    let direct = ConvId::parse("p:alice:bob").expect("valid");
    ack(f.call("alice", send(&direct, "m1", "hi")));
    let ops = vec![f.op("alice", typing_op(&direct)), f.op("bob", typing_op(&group_conv("team")))];
    f.now += 1;
    let effects = match f.engine.start_turn(ops, f.now) {
        crate::shard::Started::Done(effects) => effects,
        crate::shard::Started::Write { batch: b, .. } => {
            panic!("typing staged a batch of {} entries", b.len())
        }
    };
    let replies = effects.iter().filter(|e| matches!(e, Effect::Reply { .. })).count();
    let pushes = effects.iter().filter(|e| matches!(e, Effect::Fanout { .. })).count();
    assert_eq!((replies, pushes), (2, 2));
}

/// [DR-6]: several acks of one conversation in one turn make one record
/// write and one feed version; the delivered seq is the highest, clamped.
#[test]
fn acks_of_one_turn_share_one_feed_version() {
    let mut f = fixture();
    let conv = ConvId::parse("p:alice:bob").expect("valid");
    for i in 0..3 {
        ack(f.call("alice", send(&conv, &format!("m{i}"), "hi")));
    }
    let versions_before = f.node.store.max_version().expect("max");
    let delivered = |seq| ShardOp {
        origin: Origin::Event { conn: ConnRef { worker: 0, id: 99 } },
        user: user("bob"),
        device: device(),
        op: ServiceOp::Signals(signals::SignalsOp::Delivered { conv: conv.clone(), seq }),
    };
    let outsider = ShardOp { user: user("carol"), ..delivered(3) };
    let effects = f.turn(vec![delivered(1), delivered(2), delivered(9), delivered(2), outsider]);
    assert!(effects.iter().all(|e| !matches!(e, Effect::Reply { .. })), "acks get no answer");
    assert_eq!(effects.iter().filter(|e| matches!(e, Effect::Fanout { .. })).count(), 3, "one push per move");
    assert_eq!(f.node.store.max_version().expect("max"), versions_before + 1, "one feed version");
    let rec = f.node.store.user_conv(&user("alice"), &conv).expect("read").expect("alice's record");
    assert_eq!(rec.peer_delivered_seq, 3, "clamped to max_seq");
    let bob = f.node.store.user_conv(&user("bob"), &conv).expect("read").expect("bob's record");
    assert_eq!(bob.peer_delivered_seq, 0, "alice acked nothing");
    let feed = f.node.store.feed(&user("alice"), 0, u64::MAX, 100).expect("feed");
    assert_eq!(feed.len(), 1, "one live feed entry: {feed:?}");
}

/// [TR-4]: a recall takes the message's cached translations with its
/// content; another message's stay.
#[test]
fn a_recall_removes_the_messages_cached_translations() {
    let mut f = fixture();
    let conv = ConvId::parse("p:alice:bob").expect("valid");
    let first = ack(f.call("alice", send(&conv, "c1", "hello")));
    let second = ack(f.call("alice", send(&conv, "c2", "world")));
    let id = |seq: u64, lang: &str| {
        let mut id = conv.as_str().as_bytes().to_vec();
        id.push(0);
        id.extend_from_slice(&seq.to_be_bytes());
        id.extend_from_slice(lang.as_bytes());
        id
    };
    let space = missive_storage::OpsSpace::Translation;
    let mut b = f.node.store.batch();
    for (seq, lang) in [(first.seq, "en"), (first.seq, "fr"), (second.seq, "en")] {
        b.put_ops(space, &id(seq, lang), b"{}");
    }
    f.node.store.write(b).expect("write");
    let recall = ServiceOp::Messages(messages::MessagesOp::Change {
        conv: conv.clone(),
        seq: first.seq,
        change: messages::Change::Recall,
        admin: false,
    });
    match f.call("alice", recall) {
        Ok(response::Result::Message(m)) => assert!(m.recalled.is_some() && m.content.is_none()),
        other => panic!("recall: {other:?}"),
    }
    let store = &f.node.store;
    assert_eq!(store.ops_get(space, &id(first.seq, "en")).expect("read"), None);
    assert_eq!(store.ops_get(space, &id(first.seq, "fr")).expect("read"), None);
    assert!(store.ops_get(space, &id(second.seq, "en")).expect("read").is_some(), "another message's stays");
}

fn send_fresh(conv: &ConvId, cmid: &str, since: std::time::Instant) -> ServiceOp {
    match send(conv, cmid, "x") {
        ServiceOp::Messages(messages::MessagesOp::Send { conv, client_msg_id, content, flags, .. }) => {
            ServiceOp::Messages(messages::MessagesOp::Send {
                conv,
                client_msg_id,
                content,
                flags,
                fresh: Some(since),
            })
        }
        other => other,
    }
}

/// Issue #17: k sends of one conversation in one turn stage each member's
/// record once, with one feed version each (not 2k), and both records hold
/// the turn's final state.
#[test]
fn sends_of_one_turn_write_each_member_record_once() {
    let mut f = fixture();
    let conv = ConvId::parse("p:alice:bob").expect("valid");
    ack(f.call("alice", send(&conv, "warm", "load the entry")));
    let before = f.node.clock.watermark();
    let ops: Vec<_> = (0..5).map(|i| f.op("alice", send(&conv, &format!("k{i}"), "x"))).collect();
    let acks = f.turn(ops).into_iter().filter(|e| matches!(e, Effect::Reply { .. })).count();
    assert_eq!(acks, 5);
    assert_eq!(f.node.clock.watermark() - before, 2, "one feed version per member for the whole turn");
    let rec = f.node.store.user_conv(&user("alice"), &conv).expect("read").expect("stored");
    assert_eq!(rec.read_seq, 6, "the sender's record holds the turn's last send");
    let bob = f.node.store.user_conv(&user("bob"), &conv).expect("read").expect("stored");
    assert_eq!(bob.feed_version, before + 2);
    assert_eq!(rec.feed_version, before + 1);
}

/// [S-7]: a first attempt skips the durable lookup only when no send of its
/// key without the promise was stored; a late first attempt whose retry was
/// stored first (on a newer session) is still answered as a duplicate.
#[test]
fn a_late_first_attempt_behind_its_stored_retry_is_a_duplicate() {
    let mut f = fixture();
    let conv = ConvId::parse("p:alice:bob").expect("valid");
    let old_session = std::time::Instant::now();
    let retry = ack(f.call("alice", send(&conv, "late", "x")));
    assert!(!retry.duplicate);
    let late = ack(f.call("alice", send_fresh(&conv, "late", old_session)));
    assert!(late.duplicate, "{late:?}");
    assert_eq!(late.seq, retry.seq);
    // A fresh id with the promise is stored; its own resend finds it durably.
    let a = ack(f.call("alice", send_fresh(&conv, "new", old_session)));
    assert!(!a.duplicate);
    let again = ack(f.call("alice", send(&conv, "new", "x")));
    assert_eq!((again.seq, again.duplicate), (a.seq, true));
}
