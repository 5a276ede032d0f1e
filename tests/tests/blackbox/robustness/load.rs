//! Load and checks shared by the crash tests (`crash`, `soak`): a windowed
//! sender that survives the broker dying under it, a request helper that
//! reports a dead connection instead of panicking, and the check of a stored
//! conversation log against what was acked.
//!
//! Invariants: every wait is bounded; a send is recorded as sent before its
//! bytes are written (it may be stored even if the write fails half-way); a
//! fresh `client_msg_id` acked as a duplicate, or any non-retryable error, is
//! a test failure, not a crash effect.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use missive_protocol::Call;
use missive_protocol::pb::{self, frame, request, response};
use missive_tests::*;

/// What one sender connection did.
#[derive(Debug, Default)]
pub(super) struct SenderLog {
    /// client_msg_ids sent (acked or not), in order.
    pub(super) sent: Vec<String>,
    /// client_msg_id → acked seq.
    pub(super) acked: HashMap<String, u64>,
    /// Why the loop ended.
    pub(super) ended: String,
}

/// What a sender sends: first `resend` (ids sent before and maybe stored:
/// the outbox after a reconnect, may be acked as duplicates), then up to
/// `max_fresh` new ids `fresh(0)`, `fresh(1)`, ... (never duplicates).
pub(super) struct SendPlan {
    pub(super) user: String,
    pub(super) device: String,
    pub(super) conv: String,
    pub(super) resend: Vec<String>,
    pub(super) fresh: Box<dyn Fn(usize) -> String + Send>,
    pub(super) max_fresh: usize,
    pub(super) window: usize,
}

/// Sends `plan` (up to `window` in flight) until the connection dies, `stop`
/// is set or everything is acked; counts acks in `acked_count`.
pub(super) fn send_loop(
    addr: SocketAddr,
    plan: SendPlan,
    acked_count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> SenderLog {
    let mut c = RawClient::login(addr, &plan.user, &plan.device);
    let mut log = SenderLog::default();
    let retried: HashSet<String> = plan.resend.iter().cloned().collect();
    let mut queue = plan.resend.into_iter();
    let mut pending: HashMap<u64, String> = HashMap::new();
    let mut next = 0usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if Instant::now() > deadline {
            log.ended = "deadline".into();
            return log;
        }
        while pending.len() < plan.window && !stop.load(Ordering::Acquire) {
            let cmid = match queue.next() {
                Some(id) => id,
                None if next < plan.max_fresh => {
                    next += 1;
                    (plan.fresh)(next - 1)
                }
                None => break,
            };
            let op = request::Op::Send(pb::SendMessage {
                conv_id: plan.conv.clone(),
                client_msg_id: cmid.clone(),
                content: Some(text(&cmid)),
                flags: None,
                first_attempt: false,
            });
            // Record before writing: a send may be stored even if the write errors half-way.
            log.sent.push(cmid.clone());
            match c.try_send_request(op) {
                Ok(id) => {
                    pending.insert(id, cmid);
                }
                Err(e) => {
                    log.ended = format!("write failed: {e}");
                    return log;
                }
            }
        }
        if pending.is_empty() {
            log.ended = "stopped".into();
            return log;
        }
        match c.recv(Duration::from_secs(30)) {
            Recv::Frame(pb::Frame { body: Some(frame::Body::Response(r)) }) => {
                let cmid = pending.remove(&r.id).expect("response to a pending request");
                match outcome(r) {
                    Ok(response::Result::SendAck(a)) => {
                        assert!(
                            !a.duplicate || retried.contains(&cmid),
                            "fresh send acked as duplicate: {a:?}"
                        );
                        log.acked.insert(cmid, a.seq);
                        acked_count.fetch_add(1, Ordering::AcqRel);
                    }
                    other => panic!("send {cmid} failed before the crash: {other:?}"),
                }
            }
            Recv::Frame(f) => {
                if let Some(frame::Body::Close(cl)) = f.body {
                    log.ended = format!("close {cl:?}");
                    return log;
                }
            }
            Recv::Eof => {
                log.ended = "eof".into();
                return log;
            }
            Recv::Timeout => {
                log.ended = "timeout waiting for a response".into();
                return log;
            }
        }
    }
}

/// Sends one request and waits for its response; `None` if the connection
/// ended first (the broker was killed). Pushes meanwhile are dropped.
pub(super) fn try_call<C: Call>(c: &mut RawClient, req: C) -> Option<pb::Response> {
    let id = c.try_send_request(req).ok()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match c.recv(left) {
            Recv::Frame(pb::Frame { body: Some(frame::Body::Response(r)) }) if r.id == id => return Some(r),
            Recv::Frame(pb::Frame { body: Some(frame::Body::Close(_)) }) => return None,
            Recv::Frame(_) => {}
            Recv::Eof | Recv::Timeout => return None,
        }
    }
}

/// Counts of a stored log checked against the acks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct LogCheck {
    /// Acked messages missing or stored at another seq.
    pub(super) lost: usize,
    /// Seqs missing in 1..=max.
    pub(super) gaps: usize,
    /// client_msg_ids stored more than once.
    pub(super) duplicates: usize,
    /// Stored messages never sent.
    pub(super) unknown: usize,
}

/// Checks `stored` (a whole conversation, ascending) against `acked`
/// (client_msg_id → seq) and the ids ever sent; returns the counts and up to
/// 20 examples of each problem.
pub(super) fn check_log(
    stored: &[pb::Message],
    acked: &HashMap<String, u64>,
    sent: &HashSet<String>,
) -> (LogCheck, Vec<String>) {
    let mut chk = LogCheck::default();
    let mut examples = Vec::new();
    let mut note = |s: String| {
        if examples.len() < 20 {
            examples.push(s);
        }
    };
    let mut expect = 1;
    for m in stored {
        if m.seq != expect {
            chk.gaps += m.seq.saturating_sub(expect) as usize;
            note(format!("gap before seq {} (expected {expect})", m.seq));
        }
        expect = m.seq + 1;
    }
    let mut by_cmid: HashMap<&str, u64> = HashMap::with_capacity(stored.len());
    // Messages without a client_msg_id are the server's own (group events).
    for m in stored.iter().filter(|m| !m.client_msg_id.is_empty()) {
        if by_cmid.insert(m.client_msg_id.as_str(), m.seq).is_some() {
            chk.duplicates += 1;
            note(format!("{} stored twice", m.client_msg_id));
        }
        if !sent.contains(&m.client_msg_id) {
            chk.unknown += 1;
            note(format!("{} stored but never sent", m.client_msg_id));
        }
    }
    for (cmid, seq) in acked {
        match by_cmid.get(cmid.as_str()) {
            Some(s) if s == seq => {}
            other => {
                chk.lost += 1;
                note(format!("{cmid}: acked seq {seq}, stored {other:?}"));
            }
        }
    }
    (chk, examples)
}
