//! Pull and history pages of large messages (spec, issue 14): a page
//! with `limit` 500 over ~60 KB messages stops at the frame's byte budget,
//! sets `more`, and paging on `more` returns every message exactly once, in
//! order, forwards and backwards. (That the scan stops there too, reading at
//! most one row it does not return, is the storage unit test
//! `pages_stop_at_the_byte_budget`.)

use missive_protocol::pb;
use missive_tests::*;
use prost::Message as _;

/// Messages sent, and their text size: about 2.4 MB, well over two frames.
const COUNT: usize = 40;
const TEXT_BYTES: usize = 60_000;
/// The default `limits.max_frame_size`.
const MAX_FRAME: usize = 1 << 20;

fn check_page(page: &pb::Messages, what: &str) {
    let resp =
        pb::Response { id: 1, error: None, result: Some(pb::response::Result::Messages(page.clone())) };
    let frame = frame_of(pb::frame::Body::Response(resp));
    assert!(frame.encoded_len() <= MAX_FRAME, "{what}: {} bytes over the frame limit", frame.encoded_len());
    assert!(page.messages.len() >= 2, "{what}: a 1 MiB frame holds more than one 60 KB message");
    assert!(page.messages.len() < COUNT, "{what}: cut by bytes, not by the limit of 500");
    assert!(page.messages.iter().all(|m| text_of(m).len() >= TEXT_BYTES), "{what}: whole messages");
}

#[test]
fn large_message_pages_stop_at_the_frame_budget_without_gaps_or_repeats() {
    let b = BrokerOpts::default().config("[messages]\nmax_text_bytes = 65536\n").spawn();
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    let conv = direct("alice", "bob");
    let acks = alice.send_many_padded(&conv, "big", COUNT, 8, TEXT_BYTES);
    assert_eq!(acks.last().map(|a| a.seq), Some(COUNT as u64));

    // Forwards: pull with limit 500, continue from the last seq + 1 while `more`.
    let (mut got, mut from, mut pages) = (Vec::new(), 1, 0);
    loop {
        let page = must(bob.pull(&conv, from, 0, 500), "pull");
        pages += 1;
        if page.more {
            check_page(&page, &format!("pull page {pages}"));
        }
        let more = page.more;
        from = page.messages.last().map_or(from, |m| m.seq + 1);
        got.extend(page.messages);
        if !more {
            break;
        }
        assert!(pages < COUNT, "pull pages do not end");
    }
    assert!(pages >= 3, "{COUNT} messages of {TEXT_BYTES} bytes need at least 3 pages, got {pages}");
    assert_dense(&got, 1, COUNT as u64, "pull pages");
    for (m, i) in got.iter().zip(0..) {
        assert!(text_of(m).starts_with(&format!("big{i}")), "seq {} holds message {i}", m.seq);
    }

    // Backwards: history with limit 500, continue before the first seq while `more`.
    let (mut back, mut before, mut pages) = (Vec::new(), 0, 0);
    loop {
        let page = must(bob.history(&conv, before, 500), "history");
        pages += 1;
        if page.more {
            check_page(&page, &format!("history page {pages}"));
        }
        assert!(page.messages.windows(2).all(|w| w[0].seq + 1 == w[1].seq), "a page is ascending");
        before = page.messages.first().map_or(before, |m| m.seq);
        let more = page.more;
        let mut chunk = page.messages;
        chunk.extend(back);
        back = chunk;
        if !more {
            break;
        }
        assert!(pages < COUNT, "history pages do not end");
    }
    assert!(pages >= 3, "history needs at least 3 pages, got {pages}");
    assert_dense(&back, 1, COUNT as u64, "history pages");
    // The newest page of history holds the newest messages.
    let newest = must(bob.history(&conv, 0, 500), "history");
    assert_eq!(newest.messages.last().map(|m| m.seq), Some(COUNT as u64));
}
