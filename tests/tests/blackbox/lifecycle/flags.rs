//! Send flags and content limits (spec 18.8, [MF-1]..[MF-7]): online_only is
//! never stored (also across a restart), no_history placeholders, no_unread
//! and the bounded uncounted list, no_push stored, per-kind size limits and
//! allow lists (3010), and the admin REST send's `flags`.

use std::time::Duration;

use missive_protocol::ErrorCode;
use missive_protocol::pb;
use missive_tests::api::Api;
use missive_tests::*;
use serde_json::json;

fn flags(online_only: bool, no_history: bool, no_unread: bool, no_push: bool) -> pb::MessageFlags {
    pb::MessageFlags { online_only, no_history, no_unread, no_push }
}

fn send_flagged(
    c: &mut RawClient,
    conv: &str,
    cmid: &str,
    body: &str,
    f: pb::MessageFlags,
) -> Result<pb::SendAck, pb::Error> {
    c.call(pb::SendMessage {
        conv_id: conv.to_owned(),
        client_msg_id: cmid.to_owned(),
        content: Some(text(body)),
        flags: Some(f),
        first_attempt: false,
    })
}

fn unread_of(c: &mut RawClient, conv: &str) -> u64 {
    let s = c.sync("", 0).expect("sync").conversations;
    s.iter().find(|s| s.conv_id == conv).unwrap_or_else(|| panic!("{conv} not in sync: {s:?}")).unread
}

#[test]
fn online_only_reaches_online_devices_and_is_never_stored() {
    let mut b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let mut alice_laptop = b.client("alice", "laptop");
    let mut bob = b.client("bob", "phone");
    alice.send_ok(&conv, "m1", "stored one");
    bob.expect_message(&conv, 1);
    alice_laptop.expect_message(&conv, 1);

    let ack =
        must(send_flagged(&mut alice, &conv, "o1", "ephemeral", flags(true, false, false, false)), "online");
    assert_eq!((ack.seq, ack.duplicate), (0, false), "{ack:?}");
    assert!(ack.server_msg_id > 0);
    for c in [&mut bob, &mut alice_laptop] {
        let m = c.expect_message(&conv, 0);
        assert_eq!(text_of(&m), "ephemeral");
        assert_eq!(m.sender, "alice");
        assert!(m.flags.is_some_and(|f| f.online_only), "{m:?}");
    }
    // No dedup: a retry is delivered again, still seq 0.
    let again =
        must(send_flagged(&mut alice, &conv, "o1", "ephemeral", flags(true, false, false, false)), "retry");
    assert_eq!((again.seq, again.duplicate), (0, false));
    bob.expect_message(&conv, 0);
    // The seq was not taken.
    assert_eq!(alice.send_ok(&conv, "m2", "stored two").seq, 2);

    // A blacklist holds for messages never stored too ([B-2]).
    must(bob.call(pb::AddToBlacklist { user_id: "alice".into() }), "block");
    assert_error(
        send_flagged(&mut alice, &conv, "o2", "x", flags(true, false, false, false)),
        ErrorCode::BlockedByUser,
        "blocked online_only",
    );
    must(bob.call(pb::RemoveFromBlacklist { user_id: "alice".into() }), "unblock");

    // Groups: members online get it; the log does not move; outsiders are refused.
    let g = must(alice.create_group("og", pb::GroupType::Work, &["bob"], None), "create");
    let gc = gconv(&g.group_id);
    let ack =
        must(send_flagged(&mut alice, &gc, "go1", "group ephemeral", flags(true, false, false, false)), "g");
    assert_eq!(ack.seq, 0);
    let m = bob.expect_message(&gc, 0);
    assert_eq!(text_of(&m), "group ephemeral");
    let mut carol = b.client("carol", "phone");
    assert_error(
        send_flagged(&mut carol, &gc, "c1", "x", flags(true, false, false, false)),
        ErrorCode::NotParticipant,
        "outsider online_only",
    );
    let gmax = bob.pull(&gc, 1, 0, 0).expect("pull group").max_seq;

    // After a restart on the same data dir: nothing of it anywhere.
    drop((alice, alice_laptop, bob, carol));
    b.restart();
    let mut tablet = b.client("bob", "tablet");
    let sync = tablet.sync("", 0).expect("sync").conversations;
    let st = sync.iter().find(|s| s.conv_id == conv).expect("direct in sync");
    assert_eq!((st.max_seq, st.unread), (2, 2), "{st:?}");
    let pulled = tablet.pull_all(&conv);
    assert_dense(&pulled, 1, 2, "pull after restart");
    assert!(pulled.iter().all(|m| text_of(m) != "ephemeral"), "{pulled:?}");
    let hist = tablet.history(&conv, 0, 0).expect("history").messages;
    assert_eq!(hist.len(), 2);
    assert!(hist.iter().all(|m| m.flags.is_none()));
    let gpulled = tablet.pull_all(&gc);
    assert_eq!(tablet.pull(&gc, 1, 0, 0).expect("pull").max_seq, gmax);
    assert!(gpulled.iter().all(|m| m.seq > 0 && text_of(m) != "group ephemeral"), "{gpulled:?}");
}

#[test]
fn no_history_is_a_placeholder_once_read_and_in_history() {
    let mut b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    alice.send_ok(&conv, "m1", "one");
    let ack = must(send_flagged(&mut alice, &conv, "m2", "secret", flags(false, true, false, false)), "nh");
    assert_eq!(ack.seq, 2);
    alice.send_ok(&conv, "m3", "three");
    // Pushed whole.
    let pushed = bob.expect_message(&conv, 2);
    assert_eq!(text_of(&pushed), "secret");

    // Unread for bob: pull returns it whole; history never does.
    let pulled = bob.pull_all(&conv);
    assert_dense(&pulled, 1, 3, "pull");
    assert_eq!(text_of(&pulled[1]), "secret");
    assert!(pulled[1].flags.is_some_and(|f| f.no_history));
    let hist = bob.history(&conv, 0, 0).expect("history").messages;
    assert_dense(&hist, 1, 3, "history");
    assert!(hist[1].content.is_none(), "history placeholder: {:?}", hist[1]);
    assert!(hist[1].flags.is_some_and(|f| f.no_history));
    assert_eq!((hist[1].sender.as_str(), hist[1].server_msg_id), ("alice", ack.server_msg_id));
    // The sender has read it (its own message): a placeholder for alice.
    let mine = alice.pull_all(&conv);
    assert!(mine[1].content.is_none(), "{:?}", mine[1]);

    // Once bob read it: a placeholder in pull too; last_message follows.
    let nh4 =
        must(send_flagged(&mut alice, &conv, "m4", "last secret", flags(false, true, false, false)), "nh4");
    let st = bob.sync("", 0).expect("sync").conversations;
    let last = st[0].last_message.clone().expect("last");
    assert_eq!((last.seq, text_of(&last)), (4, "last secret"));
    let st = bob.mark_read(&conv, 0).expect("read");
    let last = st.last_message.expect("last after read");
    assert_eq!(last.seq, nh4.seq);
    assert!(last.content.is_none(), "{last:?}");
    let pulled = bob.pull_all(&conv);
    assert_dense(&pulled, 1, 4, "pull after read");
    assert!(pulled[1].content.is_none() && pulled[3].content.is_none(), "{pulled:?}");
    assert_eq!(text_of(&pulled[2]), "three");

    // A restart changes nothing.
    drop((alice, bob));
    b.restart();
    let mut bob = b.client("bob", "laptop");
    let pulled = bob.pull_all(&conv);
    assert_dense(&pulled, 1, 4, "pull after restart");
    assert!(pulled[1].content.is_none() && pulled[3].content.is_none());
    assert_eq!(text_of(&pulled[0]), "one");
}

#[test]
fn no_unread_is_not_counted_and_the_list_is_bounded() {
    let opts = BrokerOpts::default().config("[messages]\nuncounted_max = 3\n");
    let mut b = opts.spawn();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    let nu = flags(false, false, true, false);
    alice.send_ok(&conv, "m1", "counted");
    must(send_flagged(&mut alice, &conv, "m2", "quiet", nu), "nu2");
    alice.send_ok(&conv, "m3", "counted");
    must(send_flagged(&mut alice, &conv, "m4", "quiet", nu), "nu4");
    assert_eq!(unread_of(&mut bob, &conv), 2);
    let st = bob.mark_read(&conv, 1).expect("read 1");
    assert_eq!((st.max_seq, st.unread), (4, 1), "{st:?}");
    let pulled = bob.pull_all(&conv);
    assert!(pulled[1].flags.is_some_and(|f| f.no_unread));

    // Groups: one list for the group.
    let mut carol = b.client("carol", "phone");
    let g = must(alice.create_group("nu", pb::GroupType::Work, &["bob", "carol"], None), "create");
    let gc = gconv(&g.group_id);
    let before = unread_of(&mut bob, &gc);
    must(send_flagged(&mut alice, &gc, "g1", "quiet", nu), "g nu");
    assert_eq!(unread_of(&mut bob, &gc), before);
    assert_eq!(unread_of(&mut carol, &gc), before);
    alice.send_ok(&gc, "g2", "counted");
    assert_eq!(unread_of(&mut carol, &gc), before + 1);

    // Restart: the list is stored.
    drop((alice, bob, carol));
    b.restart();
    let mut bob = b.client("bob", "tablet");
    assert_eq!(unread_of(&mut bob, &conv), 1);
    // Bounded at 3: two more uncounted seqs push seq 2 and 4 out... of the oldest, one.
    let mut alice = b.client("alice", "phone");
    must(send_flagged(&mut alice, &conv, "m5", "quiet", nu), "nu5");
    must(send_flagged(&mut alice, &conv, "m6", "quiet", nu), "nu6");
    // List = [4, 5, 6]: seq 2 counts again; bob's floor is 1 → 2 and 3 count.
    assert_eq!(unread_of(&mut bob, &conv), 2);
}

#[test]
fn no_push_is_stored_and_flags_need_no_check() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    let all = flags(false, true, true, true);
    must(send_flagged(&mut alice, &conv, "p1", "x", flags(false, false, false, true)), "no_push");
    must(send_flagged(&mut alice, &conv, "p2", "y", all), "three flags");
    // All false is the same as none: not stored.
    must(send_flagged(&mut alice, &conv, "p3", "z", pb::MessageFlags::default()), "no flags");
    let pulled = bob.pull_all(&conv);
    assert_eq!(pulled[0].flags, Some(flags(false, false, false, true)));
    assert_eq!(pulled[1].flags, Some(all));
    assert_eq!(pulled[2].flags, None);
}

#[test]
fn kind_limits_and_allow_lists_refuse_with_3010() {
    let opts = BrokerOpts::default().config(
        "[messages]\nmax_text_bytes = 64\nmax_custom_bytes = 100\nallowed_kinds_direct = [\"text\", \"custom\"]\nallowed_kinds_group = [\"text\"]\n",
    );
    let b = opts.spawn();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let _bob = b.client("bob", "phone"); // registered (auto-registration at login)
    alice.send_ok(&conv, "ok", &"a".repeat(40));
    let e = assert_error(
        alice.send_text(&conv, "big", &"a".repeat(80)),
        ErrorCode::ContentKindNotAllowed,
        "long text",
    );
    assert!(e.message.contains("text") && e.message.contains("64"), "{}", e.message);
    let custom = |n: usize| pb::Content {
        body: Some(pb::content::Body::Custom(pb::Custom { r#type: "poll".into(), data: vec![7; n] })),
        ..Default::default()
    };
    must(alice.send_content(&conv, "c1", custom(20)), "small custom");
    let e = assert_error(
        alice.send_content(&conv, "c2", custom(200)),
        ErrorCode::ContentKindNotAllowed,
        "big custom",
    );
    assert!(e.message.contains("custom") && e.message.contains("100"), "{}", e.message);
    let image = pb::Content {
        body: Some(pb::content::Body::Image(pb::Image {
            url: "https://x/y.png".into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let e = assert_error(
        alice.send_content(&conv, "i1", image.clone()),
        ErrorCode::ContentKindNotAllowed,
        "image 1:1",
    );
    assert!(e.message.contains("image"), "{}", e.message);
    // Groups allow text only.
    let g = must(alice.create_group("k", pb::GroupType::Work, &["bob"], None), "create");
    let gc = gconv(&g.group_id);
    alice.send_ok(&gc, "gt", "hello");
    assert_error(
        alice.send_content(&gc, "gc", custom(10)),
        ErrorCode::ContentKindNotAllowed,
        "custom in group",
    );
    assert_error(alice.send_content(&gc, "gi", image), ErrorCode::ContentKindNotAllowed, "image in group");
    // The general limit is checked first (3003).
    let huge = "a".repeat(70_000);
    assert_error(alice.send_text(&conv, "huge", &huge), ErrorCode::ContentTooLarge, "over max_content_bytes");
}

#[test]
fn admin_rest_send_takes_flags() {
    let b = BrokerProc::start();
    let api = Api::new(b.listening.api());
    let mut bob = b.client("bob", "phone");
    let conv = direct("alice", "bob");
    let body = json!({"from": "alice", "to_user_id": "bob", "content": {"text": {"text": "rest"}},
        "client_msg_id": "r1", "flags": {"no_history": true, "no_push": true}});
    let ack = api.post("/v1/messages", &body).ok();
    assert_eq!(ack["seq"], 1, "{ack}");
    let pulled = bob.pull_all(&conv);
    assert_eq!(pulled[0].flags, Some(flags(false, true, false, true)));
    let online = json!({"from": "alice", "to_user_id": "bob", "content": {"text": {"text": "live"}}, "flags": {"online_only": true}});
    let ack = api.post("/v1/messages", &online).ok();
    assert_eq!(ack["seq"], 0, "{ack}");
    let m = bob.expect_message(&conv, 0);
    assert_eq!(text_of(&m), "live");
    let bad = json!({"from": "alice", "to_user_id": "bob", "content": {"text": {"text": "x"}}, "flags": {"loud": true}});
    assert_eq!(api.post("/v1/messages", &bad).status, 400);
    let bad = json!({"from": "alice", "to_user_id": "bob", "content": {"text": {"text": "x"}}, "flags": {"no_push": "yes"}});
    assert_eq!(api.post("/v1/messages", &bad).status, 400);
    assert_eq!(bob.pull(&conv, 1, 0, 0).expect("pull").max_seq, 1);
    bob.assert_no_push("nothing more", Duration::from_millis(200), |e| {
        matches!(e, pb::push::Event::Message(_))
    });
}
