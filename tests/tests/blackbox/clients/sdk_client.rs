//! The Rust SDK's resilient [`Client`] against a real broker: resuming from a
//! saved [`LocalState`] (exactly once, in seq order), reconnecting after a lost
//! connection, idempotent sends with a fixed `client_msg_id`, refusal of a
//! forged token, read receipts / conversation state events, and surviving the
//! KICKED of a late login from its own abandoned handshake ([L-2] note).
//!
//! The client's `ConnectOptions::addr` is fixed for its lifetime and a
//! restarted test broker listens on a new port, so "reconnect across a broker
//! restart" is exercised by persisting the `LocalState` and connecting a new
//! `Client` to the restarted broker, as an application would after a restart.

use std::time::Instant;

use missive_protocol::pb;
use missive_sdk::{Client, ClientEvent, ConnectOptions, LocalState, SdkError, text_content};
use missive_tests::*;

fn options(b: &BrokerProc, user: &str, device: &str) -> ConnectOptions {
    ConnectOptions::new(b.addr.to_string(), mint(user), device)
}

fn connect(b: &BrokerProc, user: &str, device: &str, state: LocalState) -> Client {
    Client::connect(options(b, user, device), state)
        .unwrap_or_else(|e| panic!("Client::connect as {user}/{device} failed: {e}"))
}

/// Every event of `c` up to and including the first one matching `pred`
/// (bounded by [`WAIT`]); panics with what was seen on timeout.
fn events_until(c: &Client, what: &str, mut pred: impl FnMut(&ClientEvent) -> bool) -> Vec<ClientEvent> {
    let rx = c.events();
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(ev) => {
                let done = pred(&ev);
                seen.push(ev);
                if done {
                    return seen;
                }
            }
            Err(e) => panic!("no event matching {what} within {WAIT:?} ({e}); events seen: {seen:#?}"),
        }
    }
}

/// Every `Message` event of `c` up to and including `conv#seq`.
fn messages_until(c: &Client, conv: &str, seq: u64) -> Vec<pb::Message> {
    messages_of(&events_until(
        c,
        &format!("message {conv}#{seq}"),
        |e| matches!(e, ClientEvent::Message(m) if m.conv_id == conv && m.seq == seq),
    ))
}

fn messages_of(events: &[ClientEvent]) -> Vec<pb::Message> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Message(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn seqs(msgs: &[pb::Message]) -> Vec<u64> {
    msgs.iter().map(|m| m.seq).collect()
}

fn range(first: u64, last: u64) -> Vec<u64> {
    (first..=last).collect()
}

/// Sends `count` texts `"{prefix}{i}"` (client_msg_id the same) one by one and
/// asserts they get seqs `first_seq..`.
fn send_texts(c: &mut RawClient, conv: &str, prefix: &str, count: u64, first_seq: u64) {
    for i in 0..count {
        let id = format!("{prefix}{i}");
        let ack = c.send_ok(conv, &id, &id);
        assert_eq!(ack.seq, first_seq + i, "ack of {id}");
    }
}

/// Asserts `msgs` are texts `"{prefix}{i}"` for i = 0.. from `sender`.
fn assert_texts(msgs: &[pb::Message], prefix: &str, sender: &str) {
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(text_of(m), format!("{prefix}{i}"), "text of {}#{}", m.conv_id, m.seq);
        assert_eq!(m.sender, sender, "sender of {}#{}", m.conv_id, m.seq);
    }
}

/// Persists a state the way an application would (JSON) and reads it back.
fn persist(state: &LocalState) -> LocalState {
    let json = serde_json::to_string(state).expect("LocalState serializes");
    let back: LocalState = serde_json::from_str(&json).expect("LocalState parses");
    assert_eq!(&back, state, "LocalState JSON round trip");
    back
}

#[test]
fn resume_after_disconnect_delivers_every_message_once_in_order() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let bob = connect(&b, "bob", "phone", LocalState::default());
    let mut alice = b.client("alice", "phone");

    send_texts(&mut alice, &conv, "first-", 20, 1);
    let got = messages_until(&bob, &conv, 20);
    assert_eq!(seqs(&got), range(1, 20), "bob's first 20 messages");
    assert_texts(&got, "first-", "alice");

    let state = bob.local_state();
    assert_eq!(state.max_seq.get(&conv), Some(&20), "bob's contiguous seq: {state:?}");
    assert!(!state.sync_token.is_empty(), "a sync token is stored after the catch-up");
    drop(bob);
    let state = persist(&state);

    // 30 more while bob is offline.
    send_texts(&mut alice, &conv, "second-", 30, 21);

    // The catch-up runs before connect returns; seq 51 (sent afterwards) is a
    // barrier: every message event before it must be exactly 21..=50.
    let bob = connect(&b, "bob", "phone", state);
    let ack = alice.send_ok(&conv, "barrier", "barrier");
    assert_eq!(ack.seq, 51);
    let got = messages_until(&bob, &conv, 51);
    assert_eq!(seqs(&got), range(21, 51), "after resuming, bob gets 21..=50 (then the barrier) once");
    assert_texts(&got[..30], "second-", "alice");
    assert_eq!(text_of(&got[30]), "barrier");
    assert_eq!(bob.local_state().max_seq.get(&conv), Some(&51));
}

#[test]
fn resume_from_saved_state_across_broker_restart() {
    let mut b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let bob = connect(&b, "bob", "phone", LocalState::default());
    let mut alice = b.client("alice", "phone");
    send_texts(&mut alice, &conv, "before-", 10, 1);
    let got = messages_until(&bob, &conv, 10);
    assert_eq!(seqs(&got), range(1, 10));
    let state = persist(&bob.local_state());
    assert_eq!(state.max_seq.get(&conv), Some(&10));
    drop(bob);
    drop(alice);

    b.terminate();
    b.restart();

    let mut alice = b.client("alice", "phone");
    send_texts(&mut alice, &conv, "after-", 15, 11);
    let bob = connect(&b, "bob", "phone", state);
    let ack = alice.send_ok(&conv, "barrier", "barrier");
    assert_eq!(ack.seq, 26);
    let got = messages_until(&bob, &conv, 26);
    assert_eq!(seqs(&got), range(11, 26), "after the restart, bob gets only 11..=25 (then the barrier)");
    assert_texts(&got[..15], "after-", "alice");
}

#[test]
fn reconnect_after_connection_loss_fills_the_gap_exactly_once() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let bob = connect(&b, "bob", "phone", LocalState::default());
    let mut alice = b.client("alice", "phone");
    send_texts(&mut alice, &conv, "a-", 5, 1);
    assert_eq!(seqs(&messages_until(&bob, &conv, 5)), range(1, 5));

    // Cut bob's connection, then send while the client is reconnecting.
    let conn = bob.connection().expect("bob is connected");
    conn.shutdown();
    drop(conn);
    send_texts(&mut alice, &conv, "b-", 10, 6);

    let events = events_until(&bob, "message 15", |e| matches!(e, ClientEvent::Message(m) if m.seq == 15));
    let got = messages_of(&events);
    assert_eq!(seqs(&got), range(6, 15), "messages after the reconnect; events: {events:#?}");
    assert_texts(&got, "b-", "alice");
    let disconnected = events.iter().position(|e| matches!(e, ClientEvent::Disconnected { .. }));
    let connected = events.iter().position(|e| matches!(e, ClientEvent::Connected { .. }));
    let first_msg = events.iter().position(|e| matches!(e, ClientEvent::Message(_)));
    match (disconnected, connected, first_msg) {
        (Some(d), Some(c), Some(m)) => {
            assert!(d < c && c < m, "expected Disconnected, Connected, then messages: {events:#?}")
        }
        other => panic!("missing Disconnected/Connected/Message events {other:?}: {events:#?}"),
    }

    // Still live afterwards, and no duplicate of 6..=15 shows up before 16.
    let ack = alice.send_ok(&conv, "barrier", "barrier");
    assert_eq!(ack.seq, 16);
    assert_eq!(seqs(&messages_until(&bob, &conv, 16)), vec![16]);
    assert_eq!(bob.local_state().max_seq.get(&conv), Some(&16));
}

#[test]
fn send_retries_same_client_msg_id_until_acked() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let alice = connect(&b, "alice", "phone", LocalState::default());

    let first = alice.send_with_id(&conv, "retry-1", text_content("once")).expect("first send");
    assert_eq!(first.seq, 1);
    assert!(!first.duplicate, "{first:?}");
    let again = alice.send_with_id(&conv, "retry-1", text_content("once")).expect("resend");
    assert!(again.duplicate, "the resend must be acked as a duplicate: {again:?}");
    assert_eq!(
        (again.conv_id.as_str(), again.seq, again.server_msg_id),
        (first.conv_id.as_str(), first.seq, first.server_msg_id)
    );

    // A send issued right after the connection is cut is retried on the new
    // connection and still stored once.
    let conn = alice.connection().expect("alice is connected");
    conn.shutdown();
    drop(conn);
    let second =
        alice.send_with_id(&conv, "retry-2", text_content("twice?")).expect("send across a reconnect");
    assert_eq!(second.seq, 2, "{second:?}");
    let second_again = alice.send_with_id(&conv, "retry-2", text_content("twice?")).expect("resend 2");
    assert!(second_again.duplicate, "{second_again:?}");
    assert_eq!(second_again.seq, 2);

    // Stored exactly once each: through the client and through a raw connection.
    let page = alice.pull(&conv, 1, 0, 100).expect("pull through the client");
    assert_eq!(seqs(&page.messages), vec![1, 2], "{page:?}");
    assert_eq!(page.max_seq, 2);
    let mut bob = b.client("bob", "phone");
    let all = bob.pull_all(&conv);
    assert_dense(&all, 1, 2, "bob's pull");
    let ids: Vec<&str> = all.iter().map(|m| m.client_msg_id.as_str()).collect();
    assert_eq!(ids, vec!["retry-1", "retry-2"]);
    assert_eq!((text_of(&all[0]), text_of(&all[1])), ("once", "twice?"));
}

#[test]
fn kicked_on_invalid_token() {
    let b = BrokerProc::start();
    let forged = mint_with("not-the-broker-secret-0123456789abcdef", "alice", 3600, None, None);
    let opts = ConnectOptions::new(b.addr.to_string(), forged, "phone");
    match Client::connect(opts, LocalState::default()) {
        Ok(c) => panic!("a forged token was accepted: {c:?}"),
        Err(e) => {
            assert_eq!(e.code(), Some(ErrorCode::TokenInvalid.as_u32()), "{e:?}");
            assert_eq!(e.code(), Some(2000), "{e:?}");
            assert!(matches!(e, SdkError::Closed { code: 2000, .. }), "{e:?}");
            assert!(!e.is_retryable(), "TOKEN_INVALID must not be retried: {e:?}");
        }
    }

    let expired = mint_with(SECRET, "alice", -60, None, None);
    let opts = ConnectOptions::new(b.addr.to_string(), expired, "phone");
    match Client::connect(opts, LocalState::default()) {
        Ok(c) => panic!("an expired token was accepted: {c:?}"),
        Err(e) => assert_eq!(e.error_code(), Some(ErrorCode::TokenExpired), "{e:?}"),
    }
}

#[test]
fn read_receipt_and_conversation_events() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let alice = connect(&b, "alice", "phone", LocalState::default());
    let bob_phone = connect(&b, "bob", "phone", LocalState::default());
    let bob_laptop = connect(&b, "bob", "laptop", LocalState::default());

    for i in 1..=3u64 {
        let ack = alice.send_text(&conv, &format!("hello {i}")).expect("alice sends");
        assert_eq!(ack.seq, i);
    }
    for c in [&bob_phone, &bob_laptop] {
        let got = messages_until(c, &conv, 3);
        assert_eq!(seqs(&got), range(1, 3));
        assert_eq!(text_of(&got[2]), "hello 3");
    }

    let st = bob_phone.mark_read(&conv, 3).expect("bob marks read");
    assert_eq!((st.conv_id.as_str(), st.read_seq, st.unread), (conv.as_str(), 3, 0), "{st:?}");
    let cached = bob_phone.conversations().get(&conv).cloned().expect("bob/phone caches the state");
    assert_eq!((cached.read_seq, cached.unread), (3, 0), "{cached:?}");

    let events = events_until(&alice, "read receipt", |e| matches!(e, ClientEvent::ReadReceipt(_)));
    match events.last() {
        Some(ClientEvent::ReadReceipt(r)) => {
            assert_eq!(
                (r.conv_id.as_str(), r.reader.as_str(), r.read_seq),
                (conv.as_str(), "bob", 3),
                "{r:?}"
            );
            assert_eq!(r.reader_device, "phone");
        }
        other => panic!("expected a ReadReceipt, got {other:?}"),
    }

    let events = events_until(
        &bob_laptop,
        "bob's conversation state with read_seq 3",
        |e| matches!(e, ClientEvent::Conversation(s) if s.conv_id == conv && s.read_seq == 3),
    );
    match events.last() {
        Some(ClientEvent::Conversation(s)) => {
            assert_eq!((s.max_seq, s.unread), (3, 0), "{s:?}");
        }
        other => panic!("expected a Conversation event, got {other:?}"),
    }
    let cached = bob_laptop.conversations().get(&conv).cloned().expect("bob/laptop caches the state");
    assert_eq!((cached.read_seq, cached.unread), (3, 0), "{cached:?}");
    assert!(messages_of(&events).is_empty(), "no message may be re-emitted to bob/laptop: {events:#?}");
}

/// A lossy link can make the client give up on a handshake whose `Hello` still
/// reaches the server after the next login; that late login kicks the live
/// session (same device). The client takes that one KICKED as its own doing
/// and reconnects ([L-2] note); a KICKED with no abandoned handshake before it
/// still ends the client.
#[test]
fn a_late_login_of_an_abandoned_handshake_does_not_stop_the_client() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use missive_sdk::{ClientConfig, Connection, Dial};

    let b = BrokerProc::start();
    let addr = b.addr;
    let dials = Arc::new(AtomicUsize::new(0));
    let d2 = Arc::clone(&dials);
    // Dial #2 "times out"; its Hello lands 300 ms later (a raw login on the same device).
    let dial = Dial::new(move |opts: &ConnectOptions| {
        if d2.fetch_add(1, Ordering::AcqRel) == 1 {
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(300));
                let late = RawClient::login(addr, "alice", "phone");
                std::thread::sleep(std::time::Duration::from_secs(5));
                drop(late);
            });
            return Err(SdkError::Timeout);
        }
        Connection::connect(opts)
    });
    let config = ClientConfig { dial: Some(dial), ..Default::default() };
    let c = Client::connect_with(options(&b, "alice", "phone"), LocalState::default(), config)
        .expect("first connection");
    let conn = c.connection().expect("connected");
    conn.shutdown(); // dial #2 (abandoned), then dial #3 (live), then the late login kicks it
    events_until(&c, "the kick of the live session", |e| matches!(e, ClientEvent::SessionKicked(_)));
    events_until(&c, "a reconnect after the self-inflicted kick", |e| {
        matches!(e, ClientEvent::Connected { .. })
    });
    assert_eq!(c.ended(), None, "the client stopped after its own late login kicked it");
    assert!(dials.load(Ordering::Acquire) >= 4, "reconnected after the kick");
    let ack = c.send_text(&direct("alice", "bob"), "still here").expect("send after the reconnect");
    assert_eq!(ack.seq, 1);

    // Once per abandoned handshake: a real second login on the same device ends it.
    let _other = RawClient::login(addr, "alice", "phone");
    let evs = events_until(&c, "the client stops", |e| matches!(e, ClientEvent::Kicked { .. }));
    assert!(matches!(evs.last(), Some(ClientEvent::Kicked { code: 2005, .. })), "{evs:?}");
}
