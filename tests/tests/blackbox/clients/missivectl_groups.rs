//! `missivectl group ...` as a black box (spec section 14): the real binary
//! against a broker spawned on port 0. Checks the stable `--json` fields (enums
//! as lowercase names), the human output, exit status 2 with the error name
//! for refused operations, and the effects as seen by raw protocol clients.
//!
//! The binary is looked up next to the broker binary (`target/release`);
//! build it first with `cargo build --release -p missive-tools --bins`.
//! `$MISSIVECTL` overrides the path.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use missive_protocol::pb::{self, request::Op, response};
use missive_tests::*;
use serde_json::{Value, json};

/// Bound on one missivectl run (its request timeout is 10 s).
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

fn missivectl() -> PathBuf {
    if let Some(p) = std::env::var_os("MISSIVECTL") {
        return PathBuf::from(p);
    }
    let bin = broker_binary()
        .parent()
        .expect("broker binary directory")
        .join(format!("missivectl{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "no {}: cargo build --release -p missive-tools --bins", bin.display());
    bin
}

/// One finished run: exit code, stdout, stderr.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self, what: &str) -> Self {
        assert_eq!(self.code, Some(0), "{what}: {self:#?}");
        self
    }

    fn json_lines(&self) -> Vec<Value> {
        let parse =
            |l: &str| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} not JSON ({e}): {self:#?}"));
        self.stdout.lines().filter(|l| !l.trim().is_empty()).map(parse).collect()
    }

    fn json(&self) -> Value {
        let lines = self.json_lines();
        assert_eq!(lines.len(), 1, "one JSON line expected: {self:#?}");
        lines.into_iter().next().unwrap_or_default()
    }

    /// A server refusal: status 2, `NAME (code)` on stderr, nothing on stdout.
    fn refused(&self, code: ErrorCode) {
        let needle = format!("error: {} ({})", code.name(), code.as_u32());
        assert_eq!(self.code, Some(2), "{self:#?}");
        assert!(self.stderr.contains(&needle), "stderr lacks {needle:?}: {self:#?}");
        assert!(self.stdout.trim().is_empty(), "{self:#?}");
    }
}

/// `missivectl group <sub> [--json] --addr .. --token <user's> <args..>`.
fn ctl(b: &BrokerProc, user: &str, json: bool, sub: &str, args: &[&str]) -> Run {
    let mut cmd = Command::new(missivectl());
    cmd.args(["group", sub, "--addr", &b.addr.to_string(), "--token", &mint(user), "--device", "cli"]);
    if json {
        cmd.arg("--json");
    }
    cmd.args(args).stdin(Stdio::null());
    for var in ["MISSIVE_ADDR", "MISSIVE_TOKEN", "MISSIVE_SECRET"] {
        cmd.env_remove(var);
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(cmd.output());
    });
    let out: Output = rx
        .recv_timeout(RUN_TIMEOUT)
        .unwrap_or_else(|_| panic!("group {sub} {args:?} still running after {RUN_TIMEOUT:?}"))
        .expect("spawn missivectl");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `ctl` with `--json`, expected to succeed with exactly one line.
fn one(b: &BrokerProc, user: &str, sub: &str, args: &[&str]) -> Value {
    ctl(b, user, true, sub, args).ok(&format!("{user}: group {sub} {args:?}")).json()
}

/// The fields `keys` of `v`, for one comparison.
fn pick(v: &Value, keys: &[&str]) -> Value {
    keys.iter().map(|k| ((*k).to_owned(), v.get(*k).cloned().unwrap_or(Value::Null))).collect()
}

/// (user, role) of the members of `g` as `c` sees them.
fn raw_members(c: &mut RawClient, g: &str) -> Result<Vec<(String, i32)>, pb::Error> {
    let op =
        Op::ListGroupMembers(pb::ListGroupMembers { group_id: g.into(), cursor: String::new(), limit: 0 });
    match c.call(op)? {
        response::Result::GroupMembers(p) => Ok(p.members.into_iter().map(|m| (m.user_id, m.role)).collect()),
        other => panic!("ListGroupMembers: {other:?}"),
    }
}

fn raw_joined(c: &mut RawClient) -> Vec<String> {
    match c.call(Op::ListJoinedGroups(pb::ListJoinedGroups { cursor: String::new(), limit: 0 })) {
        Ok(response::Result::JoinedGroups(p)) => p.groups.into_iter().map(|g| g.group_id).collect(),
        other => panic!("ListJoinedGroups: {other:?}"),
    }
}

/// The next tip pushed to `c` for `conv`: (kind, params).
fn next_tip(c: &mut RawClient, conv: &str) -> (String, Value) {
    c.expect_push("a tip", WAIT, |ev| match ev {
        pb::push::Event::Message(m) if m.conv_id == conv => match m.content.as_ref()?.body.as_ref()? {
            pb::content::Body::Tip(t) => Some((t.kind.clone(), json!(t.params))),
            _ => None,
        },
        _ => None,
    })
}

const OWNER: i32 = pb::GroupRole::Owner as i32;
const ADMIN: i32 = pb::GroupRole::Admin as i32;
const MEMBER: i32 = pb::GroupRole::Member as i32;

fn roles(list: &[(&str, i32)]) -> Vec<(String, i32)> {
    list.iter().map(|(u, r)| ((*u).to_owned(), *r)).collect()
}

#[test]
fn group_commands_create_invite_send_mute_kick_transfer_quit_dismiss() {
    let b = BrokerProc::start();
    // Logging in registers the users; bob and carol also watch pushes.
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    let mut carol = b.client("carol", "phone");
    let conv = "g:team";

    let v = one(&b, "alice", "create", &["team", "--name", "Team", "--member", "bob"]);
    let want = json!({
        "group": "team", "type": "work", "name": "Team", "owner": "alice", "member_count": 2,
        "join_mode": "invite_only", "invite_mode": "any_member", "edit_mode": "everyone",
        "history_visibility": "from_join", "mute_all": false, "dismissed": false, "invitee_consent": false,
    });
    let keys: Vec<&str> =
        want.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
    assert_eq!(pick(&v, &keys), want, "{v}");
    assert!(v["created_ms"].as_u64() > Some(0) && v["max_members"].as_u64() >= Some(2), "{v}");
    assert_eq!(next_tip(&mut bob, conv).0, "group.created");

    // Info by anyone; unknown ids are left out. Human output is one line.
    let info = ctl(&b, "carol", true, "info", &["team", "nope"]).ok("info").json_lines();
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(pick(&info[0], &["group", "member_count"]), json!({ "group": "team", "member_count": 2 }));
    let human = ctl(&b, "carol", false, "info", &["team"]).ok("info (human)");
    assert_eq!(
        human.stdout.trim(),
        format!("team \"Team\" (work, owner alice, 2/{} members, join invite_only)", v["max_members"]),
        "{human:#?}"
    );

    // Any member of a work group invites; carol joins at once.
    let v = one(&b, "bob", "invite", &["team", "carol"]);
    assert_eq!(v, json!({ "group": "team", "invited": ["carol"], "pending": false }));
    assert_eq!(
        next_tip(&mut bob, conv),
        ("group.members_invited".into(), json!({ "by": "bob", "users": "carol" }))
    );
    let m = raw_members(&mut carol, "team").expect("carol is a member");
    assert_eq!(m, roles(&[("alice", OWNER), ("bob", MEMBER), ("carol", MEMBER)]));

    // members: one object per member, ascending; joined: with the total.
    let lines = ctl(&b, "carol", true, "members", &["team"]).ok("members").json_lines();
    let got: Vec<Value> =
        lines.iter().map(|l| pick(l, &["group", "user", "role", "notify", "mute_until_ms"])).collect();
    let row = |u: &str, r: &str| json!({ "group": "team", "user": u, "role": r, "notify": "notify", "mute_until_ms": 0 });
    assert_eq!(got, vec![row("alice", "owner"), row("bob", "member"), row("carol", "member")]);
    assert!(lines.iter().all(|l| l["join_seq"].as_u64() >= Some(1)), "{lines:?}");
    let human = ctl(&b, "carol", false, "members", &["team"]).ok("members (human)");
    assert_eq!(human.stdout.lines().next(), Some("alice owner joined at #1"), "{human:#?}");
    let v = one(&b, "bob", "joined", &[]);
    assert_eq!(
        pick(&v, &["group", "name", "member_count", "total"]),
        json!({ "group": "team", "name": "Team", "member_count": 3, "total": 1 })
    );

    // send: the ack, and the message as bob's device receives it.
    let ack = one(&b, "alice", "send", &["team", "hello team"]);
    assert_eq!(pick(&ack, &["conv", "duplicate"]), json!({ "conv": conv, "duplicate": false }));
    let msg = bob.next_message_push(WAIT).expect("bob gets the group message");
    assert_eq!((msg.conv_id.as_str(), text_of(&msg), msg.sender.as_str()), (conv, "hello team", "alice"));
    assert_eq!(Some(msg.seq), ack["seq"].as_u64(), "{ack}");

    // admin, then mute one member and the whole group.
    let v = one(&b, "alice", "admin", &["team", "bob"]);
    let m = raw_members(&mut carol, "team").expect("carol lists");
    assert_eq!(m, roles(&[("alice", OWNER), ("bob", ADMIN), ("carol", MEMBER)]));

    assert_eq!(
        pick(&v, &["group", "user", "role"]),
        json!({ "group": "team", "user": "bob", "role": "admin" })
    );
    let v = one(&b, "bob", "mute", &["team", "carol", "600"]);
    assert_eq!(v["user"], "carol");
    assert!(v["mute_until_ms"].as_u64() > Some(now_ms() + 500_000), "{v}");
    assert_error(carol.send_text(conv, "c1", "muted?"), ErrorCode::MemberMuted, "muted member sends");
    assert_eq!(one(&b, "bob", "mute", &["team", "carol", "0"])["mute_until_ms"], 0);
    carol.send_ok(conv, "c2", "unmuted");
    assert_eq!(one(&b, "alice", "mute-all", &["team"])["mute_all"], true);
    assert_error(carol.send_text(conv, "c3", "all muted?"), ErrorCode::GroupMuted, "send under mute-all");
    bob.send_ok(conv, "b1", "admins still send");
    assert_eq!(one(&b, "alice", "mute-all", &["team", "--off"])["mute_all"], false);
    carol.send_ok(conv, "c4", "unmuted again");

    // Refused: the owner cannot quit; a member cannot kick; a non-member cannot send.
    ctl(&b, "alice", true, "quit", &["team"]).refused(ErrorCode::OwnerCannotQuit);
    ctl(&b, "carol", true, "kick", &["team", "bob"]).refused(ErrorCode::GroupPermissionDenied);
    ctl(&b, "dave", true, "send", &["team", "hi"]).refused(ErrorCode::NotParticipant);
    ctl(&b, "carol", false, "admin", &["team", "bob"]).refused(ErrorCode::GroupPermissionDenied);

    // kick: carol is no member any more.
    assert_eq!(one(&b, "alice", "kick", &["team", "carol"]), json!({ "group": "team", "kicked": ["carol"] }));
    assert_error(raw_members(&mut carol, "team"), ErrorCode::NotGroupMember, "kicked member lists");

    // transfer: bob owns the group, alice is a member; then alice quits.
    let v = one(&b, "alice", "transfer", &["team", "bob"]);
    assert_eq!(pick(&v, &["owner", "member_count"]), json!({ "owner": "bob", "member_count": 2 }));
    assert_eq!(
        raw_members(&mut bob, "team").expect("bob lists"),
        roles(&[("alice", MEMBER), ("bob", OWNER)])
    );
    assert_eq!(one(&b, "alice", "quit", &["team"]), json!({ "group": "team", "quit": true }));
    assert!(raw_joined(&mut alice).is_empty(), "alice left team");
    assert_eq!(raw_members(&mut bob, "team").expect("bob lists"), roles(&[("bob", OWNER)]));

    // dismiss: info says so; sending is refused.
    assert_eq!(one(&b, "bob", "dismiss", &["team"]), json!({ "group": "team", "dismissed": true }));
    let v = one(&b, "carol", "info", &["team"]);
    assert_eq!(pick(&v, &["dismissed", "member_count"]), json!({ "dismissed": true, "member_count": 0 }));
    ctl(&b, "bob", true, "send", &["team", "anyone?"]).refused(ErrorCode::NotParticipant);
    assert!(raw_joined(&mut bob).is_empty(), "no member after dismiss");
    ctl(&b, "bob", true, "mute-all", &["team"]).refused(ErrorCode::GroupNotFound);
}

#[test]
fn group_commands_public_join_approve_reject() {
    let b = BrokerProc::start();
    let _reg: Vec<RawClient> = ["alice", "dave", "erin"].iter().map(|u| b.client(u, "phone")).collect();
    let mut dave = b.client("dave", "laptop");

    let v = one(&b, "alice", "create", &["pub", "--type", "public", "--name", "Open"]);
    let keys = ["type", "join_mode", "invite_mode", "edit_mode", "member_count"];
    let want = json!({ "type": "public", "join_mode": "approval", "invite_mode": "admins", "edit_mode": "admins", "member_count": 1 });
    assert_eq!(pick(&v, &keys), want, "{v}");

    // An application, then approval: dave is a member.
    let v = one(&b, "dave", "join", &["pub", "--reason", "hi"]);
    assert_eq!(pick(&v, &["group", "status"]), json!({ "group": "pub", "status": "applied" }));
    assert!(v["info"].is_null() || v["info"]["group"] == "pub", "{v}");
    ctl(&b, "dave", true, "join", &["pub"]).ok("a second application");
    ctl(&b, "dave", true, "approve", &["pub", "erin"]).refused(ErrorCode::NotGroupMember);
    let v = one(&b, "alice", "approve", &["pub", "dave"]);
    assert_eq!(v, json!({ "group": "pub", "user": "dave", "accepted": true }));
    assert_eq!(raw_joined(&mut dave), vec!["pub".to_owned()]);
    ctl(&b, "dave", true, "join", &["pub"]).refused(ErrorCode::AlreadyGroupMember);

    // A rejected application leaves erin out; approving it again is refused.
    assert_eq!(one(&b, "erin", "join", &["pub"])["status"], "applied");
    let v = one(&b, "alice", "approve", &["pub", "erin", "--reject"]);
    assert_eq!(v, json!({ "group": "pub", "user": "erin", "accepted": false }));
    ctl(&b, "alice", true, "approve", &["pub", "erin"]).refused(ErrorCode::NoPendingApplication);
    let users: Vec<Value> = ctl(&b, "dave", true, "members", &["pub"])
        .ok("members")
        .json_lines()
        .iter()
        .map(|l| pick(l, &["user", "role"]))
        .collect();
    assert_eq!(
        users,
        vec![json!({ "user": "alice", "role": "owner" }), json!({ "user": "dave", "role": "member" })]
    );

    // Invite-only groups refuse JoinGroup.
    one(&b, "alice", "create", &["closed"]);
    ctl(&b, "erin", true, "join", &["closed"]).refused(ErrorCode::JoinDenied);
}

/// `group decline` answers the caller's own invitation ([GR-9a]): REJECTED,
/// pushed to the inviter; declining again, or with nothing pending, exits 2
/// with NO_PENDING_APPLICATION.
#[test]
fn group_decline_answers_the_callers_invitation() {
    let b = BrokerProc::start();
    let mut alice = b.client("alice", "phone");
    let _bob = b.client("bob", "phone");
    let consent = pb::GroupPatch { invitee_consent: Some(true), ..Default::default() };
    must(alice.create_group("inv", pb::GroupType::Work, &[], Some(consent)), "create");
    let v = one(&b, "alice", "invite", &["inv", "bob"]);
    assert_eq!(v["pending"], true, "{v}");

    let v = one(&b, "bob", "decline", &["inv"]);
    assert_eq!(v, json!({ "group": "inv", "declined": true }));
    let a = alice.wait_push("bob's answer", WAIT, |ev| match ev {
        pb::push::Event::GroupApplication(a) if a.group_id == "inv" => Some(a.clone()),
        _ => None,
    });
    assert_eq!(
        (a.user_id.as_str(), a.state, a.handled_by.as_str()),
        ("bob", pb::ApplicationState::Rejected as i32, "bob")
    );
    let human = ctl(&b, "bob", false, "decline", &["inv"]);
    human.refused(ErrorCode::NoPendingApplication);
    ctl(&b, "alice", true, "decline", &["inv"]).refused(ErrorCode::NoPendingApplication);
    assert_eq!(raw_members(&mut alice, "inv").expect("members"), roles(&[("alice", OWNER)]));
}
