//! Reactions and extensions (spec 18.4, 18.5) and the update log they share
//! with every change ([UP-1]..[UP-5]): pushes to online members, sync and
//! PullUpdates for offline devices, limits, bad input, and O(1) storage in
//! a 5 000-member group.

use missive_protocol::pb::{self, message_update::Kind, request::Op};
use missive_tests::*;

fn react(
    c: &mut RawClient,
    conv: &str,
    seq: u64,
    key: &str,
    remove: bool,
) -> Result<pb::Reactions, pb::Error> {
    c.call(pb::React { conv_id: conv.to_owned(), seq, key: key.to_owned(), remove })
}

fn extensions(
    c: &mut RawClient,
    conv: &str,
    seq: u64,
    set: &[(&str, &str)],
    remove: &[&str],
    if_version: Option<u64>,
) -> Result<pb::Extensions, pb::Error> {
    c.call(pb::SetExtensions {
        conv_id: conv.to_owned(),
        seq,
        set: ex_map(set),
        remove: remove.iter().map(|s| (*s).to_owned()).collect(),
        if_version,
    })
}

fn pull_updates(c: &mut RawClient, conv: &str, after: u64) -> pb::MessageUpdates {
    must(
        c.call(pb::PullUpdates { conv_id: conv.to_owned(), after_update_seq: after, limit: 0 }),
        "pull updates",
    )
}

fn expect_update(c: &mut RawClient, conv: &str, seq: u64, kind: Kind) -> pb::MessageUpdate {
    c.expect_push(&format!("{kind:?} of {conv}#{seq}"), WAIT, |e| match e {
        pb::push::Event::MessageUpdate(u) if u.conv_id == conv && u.seq == seq && u.kind == kind as i32 => {
            Some(u.clone())
        }
        _ => None,
    })
}

fn summary<'a>(r: &'a [pb::ReactionSummary], key: &str) -> Option<&'a pb::ReactionSummary> {
    r.iter().find(|s| s.key == key)
}

#[test]
fn reactions_are_counted_pushed_and_listed() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "d1");
    let mut bob = b.client("bob", "d1");
    let seq = alice.send_ok(&conv, "m1", "hello").seq;
    bob.expect_message(&conv, seq);

    let r = must(react(&mut bob, &conv, seq, "👍", false), "bob reacts");
    let s = summary(&r.reactions, "👍").expect("summary");
    assert_eq!((s.count, s.me, s.users.clone()), (1, true, vec!["bob".to_owned()]));
    assert!(r.update_seq > 0);
    let u = expect_update(&mut alice, &conv, seq, Kind::Reactions);
    assert_eq!(u.by, "bob");
    let m = u.message.expect("message");
    assert_eq!(summary(&m.reactions, "👍").map(|s| (s.count, s.me)), Some((1, false)));
    assert_eq!(u.update_seq, r.update_seq);

    // Idempotent: the same reaction again changes nothing.
    let again = must(react(&mut bob, &conv, seq, "👍", false), "again");
    assert_eq!(again.update_seq, r.update_seq);
    assert_eq!(summary(&again.reactions, "👍").map(|s| s.count), Some(1));

    let r2 = must(react(&mut alice, &conv, seq, "👍", false), "alice reacts");
    assert_eq!(summary(&r2.reactions, "👍").map(|s| (s.count, s.me)), Some((2, true)));
    must(react(&mut alice, &conv, seq, "🎉", false), "second key");

    // GetReactions: `me` is per caller; pull and history carry the summaries.
    let list = must(bob.call(pb::GetReactions { conv_id: conv.clone(), seqs: vec![seq] }), "get reactions");
    let mine = &list.messages[0].reactions;
    assert_eq!(summary(mine, "👍").map(|s| (s.count, s.me)), Some((2, true)));
    assert_eq!(summary(mine, "🎉").map(|s| (s.count, s.me)), Some((1, false)));
    let pulled = bob.pull(&conv, seq, seq, 0).expect("pull").messages;
    assert_eq!(summary(&pulled[0].reactions, "🎉").map(|s| s.count), Some(1));
    let hist = alice.history(&conv, 0, 10).expect("history").messages;
    assert_eq!(summary(&hist[0].reactions, "👍").map(|s| (s.count, s.me)), Some((2, true)));

    // Detail: a paged list of users.
    let page = must(
        bob.call(pb::ListReactionUsers {
            conv_id: conv.clone(),
            seq,
            key: "👍".into(),
            cursor: String::new(),
            limit: 1,
        }),
        "users page 1",
    );
    assert_eq!((page.users.len(), page.total), (1, 2));
    assert_eq!(page.users[0].user_id, "alice");
    let page2 = must(
        bob.call(pb::ListReactionUsers {
            conv_id: conv.clone(),
            seq,
            key: "👍".into(),
            cursor: page.next_cursor.clone(),
            limit: 1,
        }),
        "users page 2",
    );
    assert_eq!(page2.users.iter().map(|u| u.user_id.as_str()).collect::<Vec<_>>(), ["bob"]);
    assert!(page2.next_cursor.is_empty());

    // Removing: counts go down, a key at zero disappears.
    let r3 = must(react(&mut bob, &conv, seq, "👍", true), "bob removes");
    assert_eq!(
        summary(&r3.reactions, "👍").map(|s| (s.count, s.me, s.users.clone())),
        Some((1, false, vec!["alice".to_owned()]))
    );
    let r4 = must(react(&mut alice, &conv, seq, "🎉", true), "alice removes");
    assert!(summary(&r4.reactions, "🎉").is_none());
}

#[test]
fn reaction_requests_refuse_bad_input_and_strangers() {
    let b = BrokerProc::spawn_with(
        BrokerOpts::default().config("[messages]\nmax_reactions_per_user = 2\nmax_reaction_keys = 3\n"),
    );
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "d1");
    let mut bob = b.client("bob", "d1");
    let mut eve = b.client("eve", "d1");
    let seq = alice.send_ok(&conv, "m1", "hello").seq;
    assert_error(react(&mut bob, &conv, seq, "", false), ErrorCode::InvalidArgument, "empty key");
    assert_error(react(&mut bob, &conv, seq, &"x".repeat(33), false), ErrorCode::InvalidArgument, "long key");
    assert_error(react(&mut bob, &conv, seq, "a\u{7}", false), ErrorCode::InvalidArgument, "control char");
    assert_error(react(&mut bob, &conv, 0, "👍", false), ErrorCode::MessageNotFound, "seq 0");
    assert_error(react(&mut bob, &conv, seq + 1, "👍", false), ErrorCode::MessageNotFound, "unknown seq");
    assert_error(react(&mut eve, &conv, seq, "👍", false), ErrorCode::NotParticipant, "stranger");
    assert_error(react(&mut bob, "x:1", seq, "👍", false), ErrorCode::InvalidConvId, "bad conv");
    // A message of another conversation cannot be named: its seq is out of this one's range.
    let other = direct("bob", "carol");
    assert_error(react(&mut bob, &other, seq, "👍", false), ErrorCode::MessageNotFound, "empty conversation");
    // Limits: 2 keys per user, 3 keys per message.
    must(react(&mut bob, &conv, seq, "a", false), "a");
    must(react(&mut bob, &conv, seq, "b", false), "b");
    assert_error(react(&mut bob, &conv, seq, "c", false), ErrorCode::ReactionLimit, "per-user limit");
    must(react(&mut alice, &conv, seq, "c", false), "c");
    assert_error(react(&mut alice, &conv, seq, "d", false), ErrorCode::ReactionLimit, "per-message limit");
    // Reads refuse bad input too.
    assert_error(
        bob.call(pb::GetReactions { conv_id: conv.clone(), seqs: vec![] }),
        ErrorCode::InvalidArgument,
        "no seqs",
    );
    assert_error(
        bob.call(pb::GetReactions { conv_id: conv.clone(), seqs: vec![seq + 5] }),
        ErrorCode::MessageNotFound,
        "unknown seq in get",
    );
    assert_error(
        eve.call(pb::PullUpdates { conv_id: conv.clone(), after_update_seq: 0, limit: 0 }),
        ErrorCode::NotParticipant,
        "stranger pulls updates",
    );
    assert_error(
        bob.call(pb::PullUpdates { conv_id: "x:1".into(), after_update_seq: 0, limit: 0 }),
        ErrorCode::InvalidConvId,
        "pull updates of a bad conversation id",
    );
    let users = |key: &str, cursor: &str| pb::ListReactionUsers {
        conv_id: conv.clone(),
        seq,
        key: key.into(),
        cursor: cursor.into(),
        limit: 0,
    };
    assert_error(eve.call(users("a", "")), ErrorCode::NotParticipant, "stranger lists reaction users");
    assert_error(bob.call(users("", "")), ErrorCode::InvalidArgument, "empty key in the user list");
    assert_error(bob.call(users("a", &"u".repeat(65))), ErrorCode::InvalidArgument, "foreign cursor");
    assert_error(
        eve.call(pb::GetReactions { conv_id: conv.clone(), seqs: vec![seq] }),
        ErrorCode::NotParticipant,
        "stranger gets reactions",
    );
}

#[test]
fn an_offline_device_learns_of_reactions_and_extensions_by_sync_alone() {
    let mut b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "d1");
    let seq = alice.send_ok(&conv, "m1", "poll: lunch?").seq;
    let mut bob = b.client("bob", "phone");
    let st = bob.sync_all("");
    let token = st.token.clone();
    let before = st.conv(&conv).expect("conv").update_seq;
    drop(bob);
    must(react(&mut alice, &conv, seq, "❤️", false), "react");
    let x = must(extensions(&mut alice, &conv, seq, &[("votes", "3")], &[], None), "extensions");
    assert_eq!(x.version, 1);
    drop(alice);
    b.restart();
    // Bob's phone comes back: the conversation is in its sync with a higher
    // update seq, and PullUpdates returns the current form once.
    let mut bob = b.client("bob", "phone");
    let st = bob.sync_all(&token);
    let state = st.conv(&conv).cloned().expect("the conversation moved");
    assert!(state.update_seq > before, "{state:?}");
    let ups = pull_updates(&mut bob, &conv, before);
    assert_eq!(ups.messages.len(), 1, "{ups:?}");
    let m = &ups.messages[0];
    assert_eq!(m.seq, seq);
    assert_eq!(summary(&m.reactions, "❤️").map(|s| s.count), Some(1));
    assert_eq!(m.extensions.get("votes").map(|v| v.value.as_str()), Some("3"));
    assert_eq!(ups.update_seq, state.update_seq);
    assert_eq!(m.update_seq, state.update_seq);
    assert!(pull_updates(&mut bob, &conv, ups.update_seq).messages.is_empty());
}

#[test]
fn extensions_are_last_writer_wins_with_compare_and_set_and_limits() {
    let b = BrokerProc::spawn_with(
        BrokerOpts::default().config("[messages]\nmax_extension_keys = 3\nmax_extension_value_bytes = 8\n"),
    );
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "d1");
    let mut bob = b.client("bob", "d1");
    let seq = alice.send_ok(&conv, "m1", "red packet").seq;
    let x = must(extensions(&mut alice, &conv, seq, &[("state", "open")], &[], Some(0)), "create");
    assert_eq!(x.version, 1);
    let u = expect_update(&mut bob, &conv, seq, Kind::Extensions);
    assert_eq!(
        u.message.and_then(|m| m.extensions.get("state").map(|v| v.value.clone())).as_deref(),
        Some("open")
    );
    // Compare-and-set: the second claimer at the same version loses.
    let won = must(
        extensions(&mut bob, &conv, seq, &[("state", "taken"), ("by", "bob")], &[], Some(1)),
        "bob claims",
    );
    assert_eq!(won.version, 2);
    assert_eq!(
        won.extensions.get("by").map(|v| (v.value.as_str(), v.by.as_str(), v.version)),
        Some(("bob", "bob", 2))
    );
    assert_error(
        extensions(&mut alice, &conv, seq, &[("state", "taken"), ("by", "alice")], &[], Some(1)),
        ErrorCode::ExtensionConflict,
        "stale version",
    );
    // Last writer wins without a version; removal.
    let x = must(extensions(&mut alice, &conv, seq, &[("note", "x")], &["by"], None), "write + remove");
    assert_eq!(x.version, 3);
    assert!(!x.extensions.contains_key("by"));
    assert_eq!(x.extensions.get("state").map(|v| v.value.as_str()), Some("taken"));
    // Limits and bad input.
    assert_error(
        extensions(&mut alice, &conv, seq, &[("k", "123456789")], &[], None),
        ErrorCode::ExtensionLimit,
        "long value",
    );
    assert_error(
        extensions(&mut alice, &conv, seq, &[(&"k".repeat(33), "v")], &[], None),
        ErrorCode::ExtensionLimit,
        "long key",
    );
    assert_error(
        extensions(&mut alice, &conv, seq, &[("a", "1"), ("b", "2")], &[], None),
        ErrorCode::ExtensionLimit,
        "too many keys",
    );
    assert_error(extensions(&mut alice, &conv, seq, &[], &[], None), ErrorCode::InvalidArgument, "nothing");
    assert_error(
        extensions(&mut alice, &conv, seq, &[("a", "1")], &["a"], None),
        ErrorCode::InvalidArgument,
        "both",
    );
    assert_error(
        extensions(&mut alice, &conv, seq + 1, &[("a", "1")], &[], None),
        ErrorCode::MessageNotFound,
        "unknown seq",
    );
    // The map is returned with the message everywhere.
    let m = &alice.pull(&conv, seq, seq, 0).expect("pull").messages[0];
    let keys: Vec<&str> = m.extensions.keys().map(String::as_str).collect();
    assert_eq!(keys, ["note", "state"]);
}

#[test]
fn a_reaction_in_a_5000_member_group_writes_o1_not_per_member() {
    const MEMBERS: usize = 5_000;
    let b = BrokerProc::spawn_with(BrokerOpts::default().durability("buffered"));
    let mut admin = RawClient::login_admin(b.addr, "ops");
    let imported: Vec<String> = (0..MEMBERS - 3).map(|i| format!("u{i:05}")).collect();
    admin.import_users(&imported);
    let mut owner = b.client("owner", "d1");
    let mut on1 = b.client("on1", "d");
    drop(b.client("off", "d"));
    let g = "big";
    let conv = gconv(g);
    owner.create_group(g, pb::GroupType::Work, &["on1", "off"], None).expect("create");
    let invites: Vec<Op> = imported
        .chunks(100)
        .map(|c| Op::InviteToGroup(pb::InviteToGroup { group_id: g.to_owned(), user_ids: c.to_vec() }))
        .collect();
    owner.call_all_ok(invites, 8);
    let seq = owner.send_ok(&conv, "m1", "vote with emoji").seq;
    on1.expect_message(&conv, seq);
    let mut off = b.client("off", "d");
    let token = off.sync_all("").token;
    drop(off);
    // 40 reaction changes: two users x 10 keys, added then removed.
    let before = dir_bytes(b.root());
    let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    for round in 0..2 {
        for k in &keys {
            must(react(&mut owner, &conv, seq, k, round == 1), "owner");
            must(react(&mut on1, &conv, seq, k, round == 1), "on1");
        }
    }
    let grown = dir_bytes(b.root()).saturating_sub(before);
    // Anything per member per reaction would add >= 40 * 5 000 * 20 bytes (4 MB).
    assert!(grown < 256 * 1024, "storage grew {grown} bytes for 40 reactions in a {MEMBERS}-member group");
    let u = expect_update(&mut on1, &conv, seq, Kind::Reactions);
    assert_eq!(u.by, "owner");
    // An offline member learns of the change by sync: the group's version moved.
    let mut off = b.client("off", "d");
    let st = off.sync_all(&token);
    let state = st.conv(&conv).cloned().expect("group in the sync");
    assert!(state.update_seq > 0);
    let ups = pull_updates(&mut off, &conv, 0);
    assert_eq!(ups.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [seq]);
    assert!(ups.messages[0].reactions.is_empty(), "every reaction was removed again");
}

#[test]
fn the_app_server_sets_extensions_through_the_rest_api() {
    use missive_tests::api::Api;
    use serde_json::json;
    let b = BrokerProc::start();
    let api = Api::new(b.listening.api());
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "d1");
    let mut bob = b.client("bob", "d1");
    let seq = alice.send_ok(&conv, "m1", "red packet: 3 shares").seq;
    bob.expect_message(&conv, seq);
    let path = format!("/v1/conversations/{conv}/messages/{seq}/extensions");
    let v = api.put(&path, &json!({ "set": { "left": "2" }, "if_version": 0 })).ok();
    assert_eq!(v["version"], 1);
    assert_eq!(v["extensions"]["left"]["value"], "2");
    assert_eq!(v["extensions"]["left"]["by"], "system");
    let u = expect_update(&mut bob, &conv, seq, Kind::Extensions);
    assert_eq!(u.by, "system");
    // Compare-and-set, limits, bad input, unknown message.
    api.put(&path, &json!({ "set": { "left": "1" }, "if_version": 0 }))
        .refused(409, ErrorCode::ExtensionConflict as u32);
    api.put(&path, &json!({})).refused(400, ErrorCode::InvalidArgument as u32);
    api.put(&path, &json!({ "set": { "k": "x".repeat(5000) } }))
        .refused(422, ErrorCode::ExtensionLimit as u32);
    api.put(&path, &json!({ "sett": {} })).refused(400, ErrorCode::InvalidArgument as u32);
    api.put(&format!("/v1/conversations/{conv}/messages/99/extensions"), &json!({ "set": { "a": "1" } }))
        .refused(404, ErrorCode::MessageNotFound as u32);
    api.put("/v1/conversations/nope/messages/1/extensions", &json!({ "set": { "a": "1" } }))
        .refused(400, ErrorCode::InvalidConvId as u32);
    // The clients see it in their reads.
    let m = &bob.pull(&conv, seq, seq, 0).expect("pull").messages[0];
    assert_eq!(m.extensions.get("left").map(|x| x.value.as_str()), Some("2"));
}
