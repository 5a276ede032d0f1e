//! Offline catch-up, sync paging, stored sync tokens, roaming history (pull
//! and history paging) and sync token validation.

use std::collections::HashSet;

use missive_protocol::pb;
use missive_tests::*;

/// Checks one pull page against the effective range `from..=to` (already
/// clamped) of a conversation whose messages all exist: ascending, contiguous,
/// starting at `from`, at most `limit`, and `more` exactly when messages of the
/// range remain after the page ([P-2], [P-3], [Q-10]).
fn check_pull_page(page: &pb::Messages, from: u64, to: u64, limit: usize, what: &str) {
    let n = page.messages.len();
    assert!(n <= limit, "{what}: {n} messages for limit {limit}");
    if from > to {
        assert_eq!(n, 0, "{what}: messages for the empty range {from}..={to}: {:?}", page.messages);
        assert!(!page.more, "{what}: more=true for an empty range");
        return;
    }
    for (i, m) in page.messages.iter().enumerate() {
        assert_eq!(m.seq, from + i as u64, "{what}: ascending contiguous from {from}");
    }
    let last = page.messages.last().map(|m| m.seq).unwrap_or(from.saturating_sub(1));
    assert!(last <= to, "{what}: seq {last} beyond the range end {to}");
    let remaining = last < to;
    assert_eq!(page.more, remaining, "{what}: more={} but last returned {last} of range end {to}", page.more);
    if from <= to {
        assert!(n > 0, "{what}: an empty page for a non-empty range");
    }
}

/// Checks one history page: the newest readable messages below `before`,
/// ascending and contiguous, ending at `before - 1`, `more` exactly when older
/// readable messages (>= `min`) remain ([HI-1], [HI-2]).
fn check_history_page(page: &pb::Messages, before: u64, min: u64, limit: usize, what: &str) {
    let n = page.messages.len();
    assert!(n <= limit, "{what}: {n} messages for limit {limit}");
    if before <= min {
        assert_eq!(n, 0, "{what}: nothing readable below {before}");
        assert!(!page.more, "{what}: more with nothing older");
        return;
    }
    assert!(n > 0, "{what}: empty page although seqs {min}..{before} are readable");
    let first = page.messages[0].seq;
    for (i, m) in page.messages.iter().enumerate() {
        assert_eq!(m.seq, first + i as u64, "{what}: ascending contiguous");
    }
    assert_eq!(first + n as u64, before, "{what}: page must end right below before_seq {before}");
    assert!(first >= min, "{what}: returned {first} below the readable floor {min}");
    assert_eq!(page.more, first > min, "{what}: more={} with first={first}, floor={min}", page.more);
}

#[test]
fn offline_device_catches_up_in_order() {
    let b = BrokerProc::start();
    let ab = direct("alice", "bob");
    let bc = direct("bob", "carol");
    let ac = direct("alice", "carol");

    // Some earlier activity on the server, unrelated to Bob.
    b.client("dave", "phone").send_ok(&direct("dave", "erin"), "d-0", "hi");

    let mut bob = b.client("bob", "phone");
    let first = bob.sync("", 0).expect("initial sync");
    assert!(first.conversations.is_empty());
    assert!(!first.more);
    assert!(first.settings.is_some(), "settings always present for \"\"");
    let t1 = first.sync_token.clone();
    assert!(!t1.is_empty());
    drop(bob);

    // While Bob is offline.
    let mut alice = b.client("alice", "phone");
    let mut carol = b.client("carol", "phone");
    let acks = alice.send_many(&ab, "ab-", 30, 8);
    assert_eq!(acks.last().map(|a| a.seq), Some(30));
    for i in 0..3 {
        carol.send_ok(&bc, &format!("cb-{i}"), &format!("carol {i}"));
    }
    alice.send_ok(&ac, "ac-0", "not bob's business");

    let mut bob = b.client("bob", "phone");
    let hello_ok = bob.hello_ok.clone().expect("hello ok");
    assert_eq!(hello_ok.sync_token, t1, "HelloOk.sync_token is the last token issued to this device");

    let page = bob.sync(&t1, 0).expect("sync from stored token");
    assert!(!page.more);
    let ids: Vec<&str> = page.conversations.iter().map(|c| c.conv_id.as_str()).collect();
    assert_eq!(ids, [ab.as_str(), bc.as_str()], "changed conversations, in change order, none other");
    assert!(page.settings.is_none(), "settings did not change since t1");
    let s_ab = &page.conversations[0];
    assert_eq!((s_ab.max_seq, s_ab.read_seq, s_ab.unread), (30, 0, 30), "{s_ab:?}");
    assert_eq!(s_ab.last_message.as_ref().map(|m| m.seq), Some(30));
    let s_bc = &page.conversations[1];
    assert_eq!((s_bc.max_seq, s_bc.unread), (3, 3), "{s_bc:?}");
    assert_eq!(s_bc.last_message.as_ref().map(|m| m.client_msg_id.as_str()), Some("cb-2"));

    // Pull the missing ranges in pages of 7.
    let mut got = Vec::new();
    let mut from = 1;
    loop {
        let p = bob.pull(&ab, from, s_ab.max_seq, 7).expect("pull");
        check_pull_page(&p, from, 30, 7, "catch-up pull");
        assert_eq!(p.max_seq, 30);
        let more = p.more;
        if let Some(m) = p.messages.last() {
            from = m.seq + 1;
        }
        got.extend(p.messages);
        if !more {
            break;
        }
    }
    assert_dense(&got, 1, 30, "caught-up messages");
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.client_msg_id, format!("ab-{i}"));
        assert_eq!(text_of(m), format!("ab-{i}"));
        assert_eq!(m.sender, "alice");
    }
    let from_carol = bob.pull_all(&bc);
    assert_dense(&from_carol, 1, 3, "bob/carol");

    // Nothing new since: empty page, and the next login reports the newest token.
    let t2 = page.sync_token.clone();
    let again = bob.sync(&t2, 0).expect("sync again");
    assert!(again.conversations.is_empty(), "{again:?}");
    assert!(!again.more);
    let t3 = again.sync_token;
    drop(bob);
    let bob = b.client("bob", "phone");
    assert_eq!(bob.hello_ok.as_ref().map(|h| h.sync_token.as_str()), Some(t3.as_str()));
}

#[test]
fn sync_pages_with_limit_skip_and_repeat_nothing() {
    const CONVS: usize = 25;
    let b = BrokerProc::start();
    let mut alice = b.client("alice", "phone");
    let mut order = Vec::new();
    for i in 0..CONVS {
        let conv = direct("alice", &format!("u{i:02}"));
        alice.send_ok(&conv, "hello", "hi");
        order.push(conv);
    }
    let mut tablet = b.client("alice", "tablet");
    let mut token = String::new();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = tablet.sync(&token, 7).expect("sync page");
        pages += 1;
        assert!(page.conversations.len() <= 7, "page over the limit: {}", page.conversations.len());
        if pages == 1 {
            assert!(page.settings.is_some(), "settings on the first page from \"\"");
        }
        for c in &page.conversations {
            assert_eq!(c.max_seq, 1);
            assert_eq!(c.read_seq, 1, "sending marks read");
            assert_eq!(c.unread, 0);
        }
        seen.extend(page.conversations.iter().map(|c| c.conv_id.clone()));
        assert_ne!(page.sync_token, token, "a page with changes moves the token");
        token = page.sync_token;
        if !page.more {
            break;
        }
        assert!(!page.conversations.is_empty(), "more=true with an empty page");
        assert!(pages < 100, "sync paging does not end");
    }
    assert!(pages >= CONVS.div_ceil(7), "{pages} pages for {CONVS} conversations with limit 7");
    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "a conversation repeated across pages: {seen:?}");
    assert_eq!(seen, order, "every conversation once, in change order");

    // One more change: only that conversation comes back.
    let mut u03 = b.client("u03", "phone");
    u03.send_ok(&order[3], "back", "hello again");
    let page = tablet.sync(&token, 7).expect("incremental sync");
    let ids: Vec<&str> = page.conversations.iter().map(|c| c.conv_id.as_str()).collect();
    assert_eq!(ids, [order[3].as_str()]);
    assert_eq!(page.conversations[0].max_seq, 2);
    assert_eq!(page.conversations[0].unread, 1);
    assert!(!page.more);

    // limit 0 = default page (100): everything in one page.
    let all = tablet.sync("", 0).expect("default limit");
    assert_eq!(all.conversations.len(), CONVS);
    assert!(!all.more);
}

#[test]
fn hello_ok_returns_the_last_token_issued_to_the_device() {
    let mut b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut bob = b.client("bob", "phone");
    bob.send_ok(&conv, "b-0", "hi");

    let mut tablet = b.client("alice", "tablet");
    assert_eq!(tablet.hello_ok.as_ref().map(|h| h.sync_token.as_str()), Some(""), "never seen device");
    let s1 = tablet.sync("", 0).expect("sync").sync_token;
    drop(tablet);
    let mut tablet = b.client("alice", "tablet");
    assert_eq!(tablet.hello_ok.as_ref().map(|h| h.sync_token.clone()), Some(s1.clone()));

    bob.send_ok(&conv, "b-1", "more");
    let page = tablet.sync(&s1, 0).expect("sync");
    assert_eq!(page.conversations.len(), 1);
    let s2 = page.sync_token;
    assert_ne!(s2, s1);
    drop(tablet);
    let tablet = b.client("alice", "tablet");
    assert_eq!(tablet.hello_ok.as_ref().map(|h| h.sync_token.clone()), Some(s2.clone()));

    // Tokens are per device: another device of Alice that never synced gets "".
    let mut phone = b.client("alice", "phone");
    assert_eq!(phone.hello_ok.as_ref().map(|h| h.sync_token.as_str()), Some(""));
    // [Y-1] but a token issued to one device is valid on every device of the user.
    let page = phone.sync(&s1, 0).expect("tablet's token on the phone");
    assert_eq!(page.conversations.len(), 1);
    // The token survives a restart.
    drop(phone);
    drop(tablet);
    b.terminate();
    b.restart();
    let tablet = b.client("alice", "tablet");
    assert_eq!(tablet.hello_ok.as_ref().map(|h| h.sync_token.clone()), Some(s2));
}

#[test]
fn new_device_roams_full_history_with_pull_and_history_paging() {
    const N: u64 = 25;
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let acks = alice.send_many(&conv, "h-", N as usize, 5);
    assert_eq!(acks.last().map(|a| a.seq), Some(N));

    let mut tablet = b.client("alice", "tablet");
    let state = tablet.sync("", 0).expect("sync").conversations;
    assert_eq!(state.len(), 1);
    assert_eq!(state[0].max_seq, N);

    // Pull.
    let all = tablet.pull_all(&conv);
    assert_dense(&all, 1, N, "roamed history");
    for (from, to, limit, what) in [
        (0u64, 0u64, 10u32, "from 0 clamps to 1"),
        (1, 0, 10, "first page"),
        (5, 9, 0, "closed range, default limit"),
        (16, 0, 10, "exactly limit remaining"),
        (21, 0, 10, "tail"),
        (1, 100, 500, "to beyond max"),
        (26, 0, 10, "beyond the end"),
        (9, 5, 10, "empty range"),
    ] {
        let p = tablet.pull(&conv, from, to, limit).expect(what);
        let eff_from = from.max(1);
        let eff_to = if to == 0 || to > N { N } else { to };
        let lim = if limit == 0 { 100 } else { limit as usize };
        check_pull_page(&p, eff_from, eff_to, lim, what);
        assert_eq!(p.max_seq, N, "{what}");
        assert!(p.min_readable_seq <= 1, "{what}: no floor without clear/roaming: {}", p.min_readable_seq);
        assert_eq!(p.conv_id, conv);
    }

    // History, backwards from the latest.
    let mut before = 0;
    let mut collected: Vec<pb::Message> = Vec::new();
    for round in 0..10 {
        let p = tablet.history(&conv, before, 10).expect("history");
        let eff_before = if before == 0 { N + 1 } else { before };
        check_history_page(&p, eff_before, 1, 10, &format!("history page {round}"));
        assert_eq!(p.max_seq, N);
        let more = p.more;
        if let Some(first) = p.messages.first() {
            before = first.seq;
        }
        let mut page = p.messages;
        page.extend(collected);
        collected = page;
        if !more {
            break;
        }
    }
    assert_dense(&collected, 1, N, "history paged backwards");
    // Arbitrary before_seq values.
    for (before, what) in
        [(13u64, "middle"), (1, "before the first"), (2, "only seq 1"), (N + 1, "max+1"), (1000, "beyond")]
    {
        let p = tablet.history(&conv, before, 4).expect(what);
        let eff = before.min(N + 1);
        check_history_page(&p, eff, 1, 4, what);
    }
    let p = tablet.history(&conv, 0, 0).expect("default limit");
    check_history_page(&p, N + 1, 1, 100, "default limit");
    assert_eq!(p.messages.len() as u64, N);
}

#[test]
fn foreign_or_garbage_sync_token_is_invalid() {
    let b = BrokerProc::start();
    let mut bob = b.client("bob", "phone");
    bob.send_ok(&direct("alice", "bob"), "b-0", "hi");
    let bobs = bob.sync("", 0).expect("bob sync").sync_token;
    let mut alice = b.client("alice", "phone");
    assert_error(alice.sync(&bobs, 0), ErrorCode::InvalidSyncToken, "another user's token");
    for garbage in ["garbage", "1.deadbeefdeadbeef", "-1", "99999999999999999999", "1.2.3"] {
        assert_error(alice.sync(garbage, 0), ErrorCode::InvalidSyncToken, &format!("token {garbage:?}"));
    }
    // The connection stays usable and "" works.
    let fresh = alice.sync("", 0).expect("sync from \"\"");
    assert_eq!(fresh.conversations.len(), 1);
    // Alice's own token works.
    assert!(alice.sync(&fresh.sync_token, 0).is_ok());
}

#[test]
fn pull_and_sync_frames_fit_in_max_frame_size() {
    // [F-5]: the server never sends a frame larger than max_frame_size, even
    // for pages of large messages ([Q-10]: a page may hold fewer than `limit`).
    // Texts of 60 KiB: above the text kind's default limit ([MF-6]), raised here.
    let b = BrokerOpts::default().config("[messages]\nmax_text_bytes = 65536\n").spawn();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let big = "x".repeat(60 * 1024);
    for i in 0..40 {
        alice.send_ok(&conv, &format!("big-{i}"), &big);
    }
    let mut bob = b.client("bob", "phone");
    let max = bob.hello_ok.as_ref().map(|h| h.max_frame_size as usize).expect("hello ok");

    let mut got = Vec::new();
    let mut from = 1;
    for _ in 0..100 {
        let p = bob.pull(&conv, from, 0, 500).expect("pull");
        assert!(
            bob.last_frame_len <= max,
            "pull response of {} bytes > max_frame_size {max}",
            bob.last_frame_len
        );
        check_pull_page(&p, from, 40, 500, "pull of big messages");
        let more = p.more;
        if let Some(m) = p.messages.last() {
            from = m.seq + 1;
        }
        got.extend(p.messages);
        if !more {
            break;
        }
    }
    assert_dense(&got, 1, 40, "all big messages");

    let p = bob.history(&conv, 0, 500).expect("history");
    assert!(
        bob.last_frame_len <= max,
        "history response of {} bytes > max_frame_size {max}",
        bob.last_frame_len
    );
    check_history_page(&p, 41, 1, 500, "history of big messages");

    // Sync: 20 conversations whose last message is ~60 KiB.
    for i in 0..20 {
        alice.send_ok(&direct("alice", &format!("peer{i:02}")), "big", &big);
    }
    let mut tablet = b.client("alice", "tablet");
    let mut token = String::new();
    let mut convs = HashSet::new();
    for _ in 0..100 {
        let page = tablet.sync(&token, 0).expect("sync");
        assert!(
            tablet.last_frame_len <= max,
            "sync response of {} bytes > max_frame_size {max}",
            tablet.last_frame_len
        );
        for c in &page.conversations {
            assert!(convs.insert(c.conv_id.clone()), "repeated {}", c.conv_id);
        }
        token = page.sync_token;
        if !page.more {
            break;
        }
    }
    assert_eq!(convs.len(), 21);
    assert!(bob.max_frame_len <= max && tablet.max_frame_len <= max);
}

#[test]
fn token_issued_by_a_fresh_server_is_not_treated_as_empty() {
    // [Y-4]: settings are returned for "" and when they changed after the
    // token; a token is never the same as "", even when issued before any
    // change was ever written on the server.
    let b = BrokerProc::start();
    let mut bob = b.client("bob", "phone");
    let first = bob.sync("", 0).expect("first sync on a fresh server");
    assert!(first.settings.is_some());
    let t1 = first.sync_token;
    b.client("alice", "phone").send_ok(&direct("alice", "bob"), "a-0", "hi");
    let page = bob.sync(&t1, 0).expect("sync from t1");
    assert_eq!(page.conversations.len(), 1);
    assert!(page.settings.is_none(), "settings did not change after t1 but were returned: {page:?}");
}
