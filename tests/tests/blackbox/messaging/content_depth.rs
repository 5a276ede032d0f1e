//! Poison content (issue 14, spec [M-5]): merged content nests at most 2
//! levels. The deepest allowed content is stored and read back through every
//! read path (push of the message, push of the conversation state, pull,
//! history, mark read, update, sync) by the harness and by the Rust SDK's
//! `Client`; one level more is refused with `3007 CONTENT_TOO_DEEP`, and so is
//! the attack of the issue (the deepest content the server's decoder accepts,
//! which no peer could decode once Sync wrapped it).

use missive_protocol::pb;
use missive_sdk::{Client, ConnectOptions, LocalState};
use missive_tests::*;

/// Levels allowed by the spec ([M-5]).
const MAX_LEVELS: usize = 2;

/// `levels` merged levels around a text (0 = the text itself). Every level
/// also holds a plain item, and the deepest text carries a quote and mentions
/// (the deepest leaves a client decodes).
fn nested(levels: usize) -> pb::Content {
    let mut c = pb::Content {
        body: Some(pb::content::Body::Text(pb::Text { text: "the innermost message".into() })),
        quote: Some(pb::Quote { seq: 1, server_msg_id: 2, sender: "carol".into(), preview: "q".into() }),
        mentions: Some(pb::Mentions { user_ids: vec!["bob".into()], all: false }),
        ..Default::default()
    };
    for i in 0..levels {
        let items = vec![
            pb::MergedItem { sender: "carol".into(), server_time_ms: 1, content: Some(text("side")) },
            pb::MergedItem { sender: "dave".into(), server_time_ms: 2, content: Some(c) },
        ];
        c = pb::Content {
            body: Some(pb::content::Body::Merged(pb::Merged { title: format!("level {i}"), items })),
            ..Default::default()
        };
    }
    c
}

/// Checks that `m` carries exactly the deepest allowed content.
fn assert_deep(m: &pb::Message, what: &str) {
    assert_eq!(m.content, Some(nested(MAX_LEVELS)), "{what}: the content is read back unchanged");
}

fn last_of(st: &pb::ConversationState, what: &str) -> pb::Message {
    st.last_message.clone().unwrap_or_else(|| panic!("{what}: no last_message in {st:?}"))
}

#[test]
fn deepest_allowed_content_reads_back_through_every_path() {
    let b = BrokerProc::start();
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    let mut bob2 = b.client("bob", "laptop");
    let conv = direct("alice", "bob");

    let ack = must(alice.send_content(&conv, "deep-1", nested(MAX_LEVELS)), "send the deepest content");
    // Push{message}.
    assert_deep(&bob.expect_message(&conv, ack.seq), "push");
    // Pull and history.
    let pulled = must(bob.pull(&conv, 1, 0, 0), "pull");
    assert_deep(&pulled.messages[0], "pull");
    let hist = must(bob.history(&conv, 0, 0), "history");
    assert_deep(&hist.messages[0], "history");
    // MarkRead, UpdateConversation (ConversationState.last_message), and the
    // Push{conversation} the other device gets.
    let st = must(bob.mark_read(&conv, 0), "mark read");
    assert_deep(&last_of(&st, "mark read"), "mark read");
    let pushed = bob2.expect_push("conversation state", WAIT, |e| match e {
        pb::push::Event::Conversation(s) if s.conv_id == conv && s.read_seq == ack.seq => Some(s.clone()),
        _ => None,
    });
    assert_deep(&last_of(&pushed, "push conversation"), "push conversation");
    let st = must(bob.update(&conv, Some(true), None, None), "update");
    assert_deep(&last_of(&st, "update"), "update");
    // Sync (the deepest wrapper).
    let all = bob.sync_all("");
    let st = all.conv(&conv).unwrap_or_else(|| panic!("sync lists {conv}"));
    assert_deep(&last_of(st, "sync"), "sync");

    // The same in a group, for every member.
    let g = gconv("deep");
    must(alice.create_group("deep", pb::GroupType::Work, &["bob"], None), "create group");
    let gack = must(alice.send_content(&g, "deep-g", nested(MAX_LEVELS)), "group send");
    assert_deep(&bob.expect_message(&g, gack.seq), "group push");
    assert_deep(
        &must(bob.pull(&g, 1, 0, 0), "group pull").messages.last().cloned().expect("one"),
        "group pull",
    );
    assert_deep(&must(bob.history(&g, 0, 1), "group history").messages[0], "group history");
    let st = must(bob.mark_read(&g, 0), "group mark read");
    assert_deep(&last_of(&st, "group mark read"), "group mark read");
    let st = bob.sync_all("").conv(&g).cloned().unwrap_or_else(|| panic!("sync lists {g}"));
    assert_deep(&last_of(&st, "group sync"), "group sync");

    // The Rust SDK's Client: catch-up sync and pull on connect, then history,
    // pull and mark read.
    let sdk = Client::connect(
        ConnectOptions::new(b.addr.to_string(), mint("bob"), "tablet"),
        LocalState::default(),
    )
    .unwrap_or_else(|e| panic!("the SDK connects and syncs the deep content: {e}"));
    for c in [&conv, &g] {
        let st = sdk.conversations().get(c.as_str()).cloned().unwrap_or_else(|| panic!("SDK synced {c}"));
        assert_deep(&last_of(&st, "SDK sync"), "SDK sync");
        let h = sdk.history(c, 0, 1).unwrap_or_else(|e| panic!("SDK history {c}: {e}"));
        assert_deep(&h.messages[0], "SDK history");
        let p = sdk.pull(c, 1, 0, 0).unwrap_or_else(|e| panic!("SDK pull {c}: {e}"));
        assert_deep(p.messages.last().expect("a message"), "SDK pull");
        let st = sdk.mark_read(c, 0).unwrap_or_else(|e| panic!("SDK mark read {c}: {e}"));
        assert_deep(&last_of(&st, "SDK mark read"), "SDK mark read");
    }
    assert!(sdk.is_connected(), "the SDK's connection survived every read");
    sdk.close();
}

#[test]
fn deeper_content_is_refused_and_stores_nothing() {
    let b = BrokerProc::start();
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    let conv = direct("alice", "bob");

    let e = assert_error(
        alice.send_content(&conv, "deep-3", nested(MAX_LEVELS + 1)),
        ErrorCode::ContentTooDeep,
        "one level more than [M-5] allows",
    );
    assert!(e.message.contains("merged"), "the message says what is wrong: {e:?}");
    // The attack of issue 14: the deepest content the server can decode at all
    // (32 levels: the text is the 100th nested message of the request frame).
    assert_error(
        alice.send_content(&conv, "deep-32", nested(32)),
        ErrorCode::ContentTooDeep,
        "the issue's poison content",
    );
    // In a group too.
    must(alice.create_group("g", pb::GroupType::Work, &["bob"], None), "create group");
    assert_error(
        alice.send_content(&gconv("g"), "deep-g3", nested(MAX_LEVELS + 1)),
        ErrorCode::ContentTooDeep,
        "group send",
    );
    // Nothing was stored: the pair has no message, the group only its tip, and
    // the connection stays usable.
    assert!(alice.is_alive(), "3007 does not close");
    assert_eq!(must(bob.pull(&conv, 1, 0, 0), "pull").max_seq, 0, "nothing stored in the pair");
    assert_eq!(must(bob.pull(&gconv("g"), 1, 0, 0), "group pull").max_seq, 1, "only the created tip");
    let ack = must(alice.send_content(&conv, "ok", nested(MAX_LEVELS)), "the allowed depth still works");
    assert_eq!(ack.seq, 1);
}
