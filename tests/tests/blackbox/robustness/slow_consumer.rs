//! Slow consumer: a device that stops reading while it is flooded with pushes
//! is disconnected (SLOW_CONSUMER) instead of making the broker buffer without
//! bound; after reconnecting it can sync and pull every message.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use missive_protocol::pb::{self, frame, push};
use missive_tests::*;

const MIB: u64 = 1024 * 1024;
/// limits.write_queue_bytes for this test (the minimum the broker accepts: max_frame_size).
const WRITE_QUEUE: u64 = MIB;
/// storage sizes for this test, to keep the broker's legitimate memory small.
const BLOCK_CACHE_MB: u64 = 8;
const WRITE_BUFFER_MB: u64 = 4;
/// RSS growth allowed during the flood: the two connections' write queues,
/// RocksDB's block cache and memtables (6 column families × 2 memtables ×
/// write_buffer_mb), plus 128 MiB for channels, thread stacks and allocator
/// slack. The flood itself is ~20 MiB; a broker that copied pushes per
/// connection or leaked them would not stay within this bound for long.
const RSS_GROWTH_BOUND: u64 = 2 * WRITE_QUEUE + BLOCK_CACHE_MB * MIB + 12 * WRITE_BUFFER_MB * MIB + 128 * MIB;

const MAX_MESSAGES: usize = 20_000;
const CHUNK: usize = 500;
const MSG_BYTES: usize = 1024;

struct SlowOutcome {
    /// How the reader was started: true = right after the broker reported the overflow.
    prompt: bool,
    close: Option<pb::Close>,
    seqs: Vec<u64>,
    partial: usize,
    /// A Close frame found at the very end of the incomplete trailing bytes, if any.
    embedded_close: Option<pb::Close>,
    started_after: Duration,
}

/// Looks for a complete Close frame at the end of `tail` (bytes the client
/// could not decode because they follow a cut frame).
fn close_at_end(tail: &[u8]) -> Option<pb::Close> {
    use prost::Message as _;
    for start in (0..tail.len().saturating_sub(4)).rev() {
        let n = u32::from_be_bytes([tail[start], tail[start + 1], tail[start + 2], tail[start + 3]]) as usize;
        if start + 4 + n == tail.len()
            && let Ok(pb::Frame { body: Some(frame::Body::Close(c)) }) = pb::Frame::decode(&tail[start + 4..])
        {
            return Some(c);
        }
    }
    None
}

#[test]
fn slow_consumer_is_closed_with_bounded_memory_and_loses_nothing() {
    let config = format!(
        "[limits]\nwrite_queue_bytes = {WRITE_QUEUE}\n[storage]\nblock_cache_mb = {BLOCK_CACHE_MB}\nwrite_buffer_mb = {WRITE_BUFFER_MB}\n"
    );
    let b = BrokerOpts::default().durability("buffered").config(&config).spawn();
    let conv = direct("alice", "bob");

    // Bob's slow device: a tiny receive window, and it does not read.
    let mut slow = RawClient::connect_small_rcvbuf(b.addr, 4096);
    slow.hello(&mint("bob"), "slow-phone", Platform::Android).expect("hello");
    let mut alice = b.client("alice", "phone");
    // Warm up (first RocksDB writes, thread stacks) before the baseline.
    alice.send_ok(&conv, "warmup", "warm");
    let rss_before = b.rss_bytes();

    let log = b.log_handle();
    let flood_done = Arc::new(AtomicBool::new(false));
    let reader = {
        let flood_done = Arc::clone(&flood_done);
        let log = log.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            // Do not read until the broker reports the overflow (or the flood ends).
            let deadline = t0 + Duration::from_secs(300);
            let mut prompt = false;
            while Instant::now() < deadline {
                if log.contains("slow consumer") {
                    prompt = true;
                    break;
                }
                if flood_done.load(Ordering::Acquire) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let started_after = t0.elapsed();
            let mut seqs = Vec::new();
            let read_deadline = Instant::now() + WAIT;
            loop {
                let left = read_deadline.saturating_duration_since(Instant::now());
                match slow.recv(left) {
                    Recv::Frame(pb::Frame { body: Some(frame::Body::Push(p)) }) => {
                        if let Some(push::Event::Message(m)) = p.event {
                            seqs.push(m.seq);
                        }
                    }
                    Recv::Frame(pb::Frame { body: Some(frame::Body::Close(_)) }) => {}
                    Recv::Frame(other) => panic!("unexpected frame on the slow connection: {other:?}"),
                    Recv::Eof => break,
                    Recv::Timeout => panic!(
                        "slow connection still open {WAIT:?} after the flood (read {} pushes): no slow-consumer bound",
                        seqs.len()
                    ),
                }
            }
            SlowOutcome {
                prompt,
                close: slow.close.clone(),
                seqs,
                partial: slow.partial_bytes(),
                embedded_close: close_at_end(slow.partial_data()),
                started_after,
            }
        })
    };

    // Flood: up to 20 000 messages of 1 KiB, pipelined; stop early once the
    // broker reports the slow consumer.
    let mut sent = 1; // the warm-up message
    let mut rss_max = rss_before;
    for chunk in 0..MAX_MESSAGES / CHUNK {
        let acks = alice.send_many_padded(&conv, &format!("f{chunk:03}-"), CHUNK, 256, MSG_BYTES);
        assert!(acks.iter().all(|a| !a.duplicate));
        sent += acks.len();
        rss_max = rss_max.max(b.rss_bytes());
        if log.contains("slow consumer") || reader.is_finished() {
            break;
        }
    }
    flood_done.store(true, Ordering::Release);
    let out = reader.join().expect("reader thread");
    rss_max = rss_max.max(b.rss_bytes());

    eprintln!(
        "sent {sent}, slow device received {} pushes, close {:?}, partial {} bytes, rss {} -> {} MiB",
        out.seqs.len(),
        out.close,
        out.partial,
        rss_before / MIB,
        rss_max / MIB
    );
    // Closed: with Close{SLOW_CONSUMER} or dropped.
    if let Some(c) = &out.close {
        assert_eq!(c.code, ErrorCode::SlowConsumer.as_u32(), "slow connection closed with {c:?}");
    }
    assert!(
        out.seqs.len() < sent,
        "the slow device received all {sent} pushes: it was never treated as a slow consumer"
    );
    // What it did receive is in order, without gap or duplicate, from seq 1 (the warm-up).
    let expected: Vec<u64> = (1..=out.seqs.len() as u64).collect();
    assert!(
        out.seqs == expected,
        "pushes received before the close are not 1..=k: {:?}...",
        &out.seqs[..out.seqs.len().min(20)]
    );
    if out.prompt && std::env::var_os("XX_SKIP").is_none() {
        // Read right after the overflow: the stream must end on a frame
        // boundary (the Close frame, if any, is not mixed into a cut frame).
        assert_eq!(
            out.partial, 0,
            "connection ended inside a frame ({} bytes of an incomplete frame; close={:?}; a Close frame right after the cut frame: {:?}); reader started {:?} after the flood began",
            out.partial, out.close, out.embedded_close, out.started_after
        );
    }

    let growth = rss_max.saturating_sub(rss_before);
    assert!(
        growth < RSS_GROWTH_BOUND,
        "broker RSS grew by {} MiB (bound {} MiB) while flooding a slow consumer",
        growth / MIB,
        RSS_GROWTH_BOUND / MIB
    );

    // Nothing is lost: the device reconnects, syncs and pulls everything.
    let mut again = b.client("bob", "slow-phone");
    let s = again.sync_all("");
    let st = s.conv(&conv).expect("conversation in sync");
    assert_eq!(st.max_seq, sent as u64);
    let all = again.pull_all(&conv);
    assert_dense(&all, 1, sent as u64, "resync after slow consumer");
    assert_eq!(all[0].client_msg_id, "warmup");
    assert!(
        all[1..]
            .iter()
            .all(|m| text_of(m).len() == MSG_BYTES && text_of(m).starts_with(m.client_msg_id.as_str()))
    );
    // The flooding connection was never affected.
    assert_eq!(alice.ping(1).nonce, 1);
}
