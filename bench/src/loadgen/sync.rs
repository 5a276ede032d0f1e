//! `sync`: catch-up of a fresh device after a long absence.
//!
//! Fill: user U is offline (never connected) while C peers each send their
//! share of M messages to U (one direct conversation per peer, `window`
//! pipelined sends each); every `SendAck` goes into the [`Ledger`]. The peers
//! then disconnect.
//!
//! Measure: a fresh device of U connects and follows the client algorithm of
//! spec/PROTOCOL.md §9: `SyncRequest{""}` pages (limit 500) and, for every
//! conversation state, `PullRequest` pages (limit 500) until it holds every
//! seq up to `max_seq`; up to `--pulls-in-flight` pulls are pipelined and the
//! next sync page is requested while pulls run. `sync_ms` runs from the TCP
//! connect to the last message stored.
//!
//! Series: the per-second samples are those of the fill (acks per second,
//! p99 send → ack latency of each second); the catch-up itself usually takes
//! less than a second. `broker_cpu_us_per_msg` is the broker's CPU during the
//! catch-up divided by the messages it served.
//!
//! Invariants: every pulled message is checked against the acks (lost,
//! duplicate, order, mismatch); every conversation state must name one of the
//! run's conversations with `max_seq` equal to its acked count; both phases
//! are bounded by `--timeout-secs`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use missive_protocol::pb::{self, frame};

use super::Ctx;
use super::broker::CpuWindow;
use super::cli::SyncArgs;
use super::ledger::{ConvIdx, Ledger};
use super::net::{Event, Net};
use super::proto::{self, now_ns};
use super::report::Report;
use super::session;
use super::stats::{Counters, Hist, Main, Progress, Series, Totals};

/// Page sizes asked of the server (its maximum for both).
const PAGE: u32 = 500;
/// How often the fill publishes its counters to the progress line.
const HOUSEKEEPING: Duration = Duration::from_millis(100);

/// One peer's sending state during the fill.
#[derive(Debug)]
struct Peer {
    conn: usize,
    quota: u32,
    next_msg: u32,
    /// (request id → (message number, send time ns)) unanswered.
    in_flight: HashMap<u64, (u32, u64)>,
}

/// What the syncing device is waiting for, by request id.
#[derive(Debug)]
enum Pending {
    Sync,
    Pull { conv: ConvIdx, to: u64 },
}

pub(crate) fn run(ctx: &mut Ctx<'_>, a: &SyncArgs) -> anyhow::Result<Report> {
    let mut r = Report::new("sync");
    r.param("convs", a.convs).param("msgs", a.msgs).param("window", a.window).param("size", a.size);
    r.param("pulls_in_flight", a.pulls_in_flight);
    let timeout = Duration::from_secs_f64(a.timeout_secs);
    let user = format!("{}u", ctx.prefix);
    let peers: Vec<String> = (0..a.convs).map(|i| format!("{}p{i}", ctx.prefix)).collect();
    let convs: Vec<String> = peers.iter().map(|p| proto::direct_conv(&user, p)).collect();
    let mut ledger = Ledger::new(convs.len());

    let fill_start = Instant::now();
    let errors = fill(ctx, a, &peers, &convs, &mut ledger, timeout, &mut r)?;
    let fill_secs = fill_start.elapsed().as_secs_f64();
    r.metric("fill_ms", (fill_secs * 1000.0).round())
        .metric("fill_msgs_per_s", (f64::from(a.msgs) / fill_secs).round());
    if errors > 0 {
        r.problem(format!("{errors} sends failed while filling"));
    }

    let t0 = Instant::now();
    let cpu = CpuWindow::start(ctx.broker.pid());
    let outcome = catch_up(ctx, &user, &convs, &mut ledger, a.pulls_in_flight as usize, timeout)?;
    let sync_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let broker_cpu_s = cpu.secs();
    let v = ledger.verdict();
    r.metric("sync_ms", (sync_ms * 10.0).round() / 10.0)
        .metric("messages", v.delivered)
        .metric("acked", v.acked)
        .metric("convs_synced", outcome.convs_seen)
        .metric("sync_pages", outcome.sync_pages)
        .metric("pull_requests", outcome.pulls)
        .metric("state_mismatches", outcome.state_mismatches)
        .metric("errors", errors + outcome.errors.len() as u64)
        .metric("broker_sync_cpu_s", broker_cpu_s)
        .metric("broker_cpu_us_per_msg", CpuWindow::per_unit_us(broker_cpu_s, v.delivered));
    r.verdict(&v);
    if outcome.convs_seen != u64::from(a.convs) {
        r.problem(format!("sync listed {} of {} conversations", outcome.convs_seen, a.convs));
    }
    if outcome.state_mismatches > 0 {
        r.problem(format!(
            "{} conversation states disagree with the acks (max_seq)",
            outcome.state_mismatches
        ));
    }
    if v.acked != u64::from(a.msgs) {
        r.problem(format!("{} of {} messages acknowledged", v.acked, a.msgs));
    }
    for e in outcome.errors.iter().take(3) {
        r.problem(e.clone());
    }
    Ok(r)
}

/// Sends every peer's quota; returns the number of failed sends. The fill's
/// time series goes into `r`.
fn fill(
    ctx: &Ctx<'_>,
    a: &SyncArgs,
    peers: &[String],
    convs: &[String],
    ledger: &mut Ledger,
    timeout: Duration,
    r: &mut Report,
) -> anyhow::Result<u64> {
    let mut net = Net::new()?;
    let users: Vec<(String, String)> = peers.iter().map(|p| (p.clone(), "d1".to_owned())).collect();
    let mut early = Vec::new();
    let ids = session::login_all(&mut net, ctx.addr, &ctx.secret, &users, &mut early)?;
    let n = peers.len() as u32;
    let mut state: Vec<Peer> = ids
        .iter()
        .enumerate()
        .map(|(i, &conn)| Peer {
            conn,
            quota: a.msgs / n + u32::from((i as u32) < a.msgs % n),
            next_msg: 0,
            in_flight: HashMap::new(),
        })
        .collect();
    let by_conn: HashMap<usize, usize> = ids.iter().enumerate().map(|(i, &c)| (c, i)).collect();
    let counters = Arc::new(Counters::default());
    let progress = Progress::start("sync fill", Progress::rates(Arc::clone(&counters), Main::Acked));
    let size = a.size as usize;
    let window = a.window as usize;
    let mut next_req = 1u64;
    let mut totals = Totals::default();
    let mut send_more = |p: &mut Peer, conv: &str, net: &mut Net, totals: &mut Totals| {
        while p.in_flight.len() < window && p.next_msg < p.quota {
            let t = now_ns();
            let f = proto::send_text(next_req, conv, p.next_msg.to_string(), proto::stamp_text(t, size));
            net.send(p.conn, &f);
            p.in_flight.insert(next_req, (p.next_msg, t));
            next_req += 1;
            p.next_msg += 1;
            totals.sent += 1;
        }
    };
    for (i, p) in state.iter_mut().enumerate() {
        send_more(p, &convs[i], &mut net, &mut totals);
    }
    let deadline = Instant::now() + timeout;
    let mut events = Vec::new();
    let mut remaining: u64 = u64::from(a.msgs);
    let (mut published, mut interval) = (Totals::default(), Hist::new());
    let mut next_housekeeping = Instant::now() + HOUSEKEEPING;
    while remaining > 0 {
        if Instant::now() >= next_housekeeping {
            next_housekeeping += HOUSEKEEPING;
            counters.publish(totals, &mut published, &mut interval);
        }
        let now = Instant::now();
        if now >= deadline {
            bail!("filling: {remaining} sends unanswered after {timeout:?}");
        }
        net.poll(Some((deadline - now).min(HOUSEKEEPING)), &mut events)?;
        let recv_ns = now_ns();
        for ev in events.drain(..) {
            match ev {
                // Raw pushes are off on this loop; peers get no pushes anyway.
                Event::Push(..) | Event::Readable(_) => {}
                Event::Frame(id, f) => {
                    let Some(&i) = by_conn.get(&id) else { continue };
                    let Some(frame::Body::Response(resp)) = f.body else { continue };
                    let Some((msg, sent)) = state[i].in_flight.remove(&resp.id) else { continue };
                    remaining -= 1;
                    match proto::reply::<pb::SendMessage>(resp) {
                        Ok(ack) => {
                            ledger.ack(i, ack.seq, msg);
                            interval.record_ns(recv_ns.saturating_sub(sent));
                            totals.acked += 1;
                        }
                        Err(_) => totals.errors += 1,
                    }
                    send_more(&mut state[i], &convs[i], &mut net, &mut totals);
                }
                Event::Closed(id, reason) => bail!("filling: peer connection {id} closed: {reason}"),
            }
        }
    }
    counters.publish(totals, &mut published, &mut interval);
    r.series(Series { rate_of: "acked/s", latency_of: "ack", samples: progress.finish() });
    // The peers go offline; `net` closes every connection when dropped.
    Ok(totals.errors)
}

#[derive(Debug, Default)]
struct CatchUp {
    convs_seen: u64,
    sync_pages: u64,
    pulls: u64,
    state_mismatches: u64,
    errors: Vec<String>,
}

/// A fresh device of `user` syncs and pulls everything.
fn catch_up(
    ctx: &Ctx<'_>,
    user: &str,
    convs: &[String],
    ledger: &mut Ledger,
    max_pulls: usize,
    timeout: Duration,
) -> anyhow::Result<CatchUp> {
    let index: HashMap<&str, ConvIdx> = convs.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    let mut out = CatchUp::default();
    let mut net = Net::new()?;
    let conn = net.connect(ctx.addr, None)?;
    net.send(conn, &proto::hello(proto::mint(&ctx.secret, user)?, "fresh"));
    let deadline = Instant::now() + timeout;
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let mut queue: VecDeque<(ConvIdx, u64, u64)> = VecDeque::new();
    let mut pulls_in_flight = 0usize;
    let mut next_req = 1u64;
    let mut ready = false;
    let mut sync_done = false;
    let mut events = Vec::new();
    let mut seen_conv = vec![false; convs.len()];
    loop {
        while pulls_in_flight < max_pulls
            && let Some((c, from, to)) = queue.pop_front()
        {
            net.send(conn, &proto::pull(next_req, &convs[c], from, to, PAGE));
            pending.insert(next_req, Pending::Pull { conv: c, to });
            next_req += 1;
            pulls_in_flight += 1;
            out.pulls += 1;
        }
        if ready && sync_done && pending.is_empty() && queue.is_empty() {
            return Ok(out);
        }
        let now = Instant::now();
        if now >= deadline {
            bail!("sync not finished after {timeout:?} ({} requests unanswered)", pending.len());
        }
        net.poll(Some(deadline - now), &mut events)?;
        for ev in events.drain(..) {
            let f = match ev {
                Event::Frame(_, f) => f,
                Event::Push(..) | Event::Readable(_) => continue,
                Event::Closed(_, reason) => bail!("syncing device's connection closed: {reason}"),
            };
            let resp = match f.body {
                Some(frame::Body::HelloOk(_)) => {
                    ready = true;
                    net.send(conn, &proto::sync(next_req, String::new(), PAGE));
                    pending.insert(next_req, Pending::Sync);
                    next_req += 1;
                    continue;
                }
                Some(frame::Body::Close(c)) => {
                    bail!("syncing device closed by the server: {} {}", c.code, c.message)
                }
                Some(frame::Body::Response(r)) => r,
                _ => continue,
            };
            let Some(what) = pending.remove(&resp.id) else {
                out.errors.push(format!("response to unknown request {}", resp.id));
                continue;
            };
            if let Some(e) = resp.error {
                out.errors.push(format!("request failed: {} {}", e.code, e.message));
                if matches!(what, Pending::Sync) {
                    sync_done = true;
                } else {
                    pulls_in_flight -= 1;
                }
                continue;
            }
            match what {
                Pending::Sync => match proto::reply::<pb::SyncRequest>(resp) {
                    Ok(s) => {
                        out.sync_pages += 1;
                        for st in &s.conversations {
                            on_state(st, &index, ledger, &mut seen_conv, &mut queue, &mut out);
                        }
                        if s.more {
                            net.send(conn, &proto::sync(next_req, s.sync_token, PAGE));
                            pending.insert(next_req, Pending::Sync);
                            next_req += 1;
                        } else {
                            sync_done = true;
                        }
                    }
                    Err(e) => {
                        out.errors.push(format!("sync: {e}"));
                        sync_done = true;
                    }
                },
                Pending::Pull { conv, to } => {
                    pulls_in_flight -= 1;
                    match proto::reply::<pb::PullRequest>(resp) {
                        Ok(m) => on_page(conv, to, &m, ledger, &mut queue, &mut out),
                        Err(e) => out.errors.push(format!("pull: {e}")),
                    }
                }
            }
        }
    }
}

fn on_state(
    st: &pb::ConversationState,
    index: &HashMap<&str, ConvIdx>,
    ledger: &Ledger,
    seen: &mut [bool],
    queue: &mut VecDeque<(ConvIdx, u64, u64)>,
    out: &mut CatchUp,
) {
    let Some(&c) = index.get(st.conv_id.as_str()) else {
        out.errors.push(format!("sync listed a conversation of another run: {}", st.conv_id));
        return;
    };
    if !std::mem::replace(&mut seen[c], true) {
        out.convs_seen += 1;
    }
    if st.max_seq != ledger.acked_count(c) {
        out.state_mismatches += 1;
    }
    if st.max_seq > 0 {
        queue.push_back((c, 1, st.max_seq));
    }
}

fn on_page(
    conv: ConvIdx,
    to: u64,
    m: &pb::Messages,
    ledger: &mut Ledger,
    queue: &mut VecDeque<(ConvIdx, u64, u64)>,
    out: &mut CatchUp,
) {
    for msg in &m.messages {
        let n = msg.client_msg_id.parse::<u32>().unwrap_or(u32::MAX - 1);
        ledger.deliver(conv, msg.seq, n);
    }
    if m.more {
        match m.messages.last() {
            Some(last) if last.seq < to => queue.push_back((conv, last.seq + 1, to)),
            _ => out.errors.push(format!("pull page with more=true but no progress in {}", m.conv_id)),
        }
    }
}
