//! Durability: an acknowledged message survives SIGKILL (durability = fsync),
//! retries after the crash are stored exactly once, and SIGTERM is a clean
//! shutdown that keeps everything.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use missive_tests::*;

use super::load::{SendPlan, send_loop};

const DEVICE: &str = "crash-phone";

#[test]
fn acked_messages_survive_sigkill_and_retries_are_stored_once() {
    sigkill_under_load(BrokerProc::start()); // durability fsync (default)
}

/// The same crash with the pipelined group commit (`limits.commit_pipeline
/// = 2`, issue #17): turns of sends staged while a batch is written must keep
/// every invariant through a SIGKILL.
#[test]
fn acked_messages_survive_sigkill_with_the_pipelined_commit() {
    sigkill_under_load(BrokerOpts::default().config("[limits]\ncommit_pipeline = 2\n").spawn());
}

/// Sends under load, SIGKILL, restart: every acked message is stored at its
/// seq, the log is dense, and resending everything stores each id once.
fn sigkill_under_load(mut b: BrokerProc) {
    let conv = direct("alice", "bob");
    let acked_count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let plan = SendPlan {
            user: "alice".into(),
            device: DEVICE.into(),
            conv: conv.clone(),
            resend: Vec::new(),
            fresh: Box::new(|i| format!("m-{i:07}")),
            max_fresh: 1_000_000,
            window: 16,
        };
        let (addr, n, stop) = (b.addr, Arc::clone(&acked_count), Arc::clone(&stop));
        std::thread::spawn(move || send_loop(addr, plan, n, stop))
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    while acked_count.load(Ordering::Acquire) < 200 {
        assert!(Instant::now() < deadline, "fewer than 200 acks within 90 s");
        assert!(!sender.is_finished(), "sender stopped before the crash");
        std::thread::sleep(Duration::from_millis(5));
    }
    b.kill9();
    stop.store(true, Ordering::Release);
    let log = sender.join().expect("sender thread");
    assert!(log.acked.len() >= 200, "acked {}", log.acked.len());
    assert!(
        matches!(log.ended.as_str(), "eof") || log.ended.starts_with("write failed"),
        "sender ended: {}",
        log.ended
    );

    b.restart();
    let mut bob = b.client("bob", "phone");
    let stored = bob.pull_all(&conv);
    let max = stored.last().map(|m| m.seq).unwrap_or(0);
    eprintln!("sent {}, acked {}, stored after SIGKILL {}", log.sent.len(), log.acked.len(), stored.len());
    assert_dense(&stored, 1, max, "log after crash");
    let by_cmid: HashMap<&str, u64> = stored.iter().map(|m| (m.client_msg_id.as_str(), m.seq)).collect();
    assert_eq!(by_cmid.len(), stored.len(), "a client_msg_id stored twice before any retry");
    let mut lost = Vec::new();
    for (cmid, seq) in &log.acked {
        match by_cmid.get(cmid.as_str()) {
            Some(s) if s == seq => {}
            other => lost.push(format!("{cmid}: acked seq {seq}, stored {other:?}")),
        }
    }
    lost.sort();
    assert!(
        lost.is_empty(),
        "{} acked messages lost or moved after SIGKILL: {:?}",
        lost.len(),
        &lost[..lost.len().min(20)]
    );
    let sent: HashSet<&str> = log.sent.iter().map(String::as_str).collect();
    for m in &stored {
        assert!(sent.contains(m.client_msg_id.as_str()), "stored a message never sent: {}", m.client_msg_id);
        assert_eq!(m.sender_device, DEVICE);
    }

    // Retry everything from the same device (the client's outbox after reconnect).
    let mut alice = b.client("alice", DEVICE);
    let mut final_seq: BTreeMap<String, u64> = BTreeMap::new();
    for cmid in &log.sent {
        let ack = alice.send_text(&conv, cmid, cmid).unwrap_or_else(|e| panic!("retry {cmid}: {e:?}"));
        if let Some(seq) = log.acked.get(cmid) {
            assert!(ack.duplicate, "retry of acked {cmid} not flagged duplicate: {ack:?}");
            assert_eq!(ack.seq, *seq, "retry of acked {cmid} got another seq");
        } else if let Some(seq) = by_cmid.get(cmid.as_str()) {
            assert!(ack.duplicate, "{cmid} was stored (unacked) but the retry stored it again: {ack:?}");
            assert_eq!(ack.seq, *seq);
        } else {
            assert!(!ack.duplicate, "{cmid} was not stored but the retry says duplicate: {ack:?}");
            assert!(ack.seq > max);
        }
        final_seq.insert(cmid.clone(), ack.seq);
    }

    let all = bob.pull_all(&conv);
    assert_dense(&all, 1, log.sent.len() as u64, "final log: every sent message exactly once");
    let mut seen = HashSet::new();
    for m in &all {
        assert!(seen.insert(m.client_msg_id.clone()), "stored twice: {}", m.client_msg_id);
        assert_eq!(final_seq.get(&m.client_msg_id), Some(&m.seq));
    }
}

#[test]
fn sigterm_is_a_clean_shutdown_that_keeps_everything() {
    let mut b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let acks = alice.send_many(&conv, "t-", 120, 32);
    let mut idle = b.client("bob", "phone");
    let state = alice.update(&conv, Some(true), None, None).expect("pin");
    assert!(state.pinned);

    b.terminate(); // asserts exit status 0
    // Connected clients are told why (SERVER_SHUTDOWN) before the connection ends.
    for (who, c) in [("alice", &mut alice), ("bob", &mut idle)] {
        match c.expect_closed(WAIT) {
            Some(close) => assert_eq!(close.code, ErrorCode::ServerShutdown.as_u32(), "{who}: {close:?}"),
            None => panic!("{who}: connection closed without Close{{1009}}"),
        }
    }

    b.restart();
    let mut bob = b.client("bob", "phone");
    let all = bob.pull_all(&conv);
    assert_dense(&all, 1, 120, "after SIGTERM + restart");
    for (a, m) in acks.iter().zip(&all) {
        assert_eq!((a.seq, a.server_msg_id), (m.seq, m.server_msg_id));
    }
    let mut alice = b.client("alice", "phone");
    assert!(alice.sync("", 0).expect("sync").conversations[0].pinned);
    // Seqs continue after the restart; dedup state survived.
    assert!(alice.send_text(&conv, "t-0", "again").expect("retry").duplicate);
    assert_eq!(alice.send_ok(&conv, "t-new", "after restart").seq, 121);
}
