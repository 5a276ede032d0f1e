//! `pairs` and `latency`: sender→receiver pairs, one direct conversation each.
//!
//! `pairs` is closed-loop: each sender keeps at most `window` sends
//! unacknowledged and sends the next one when an ack arrives. `latency` is
//! open-loop: messages leave on a fixed schedule (`rate` per second in total,
//! round robin over the pairs) whatever the broker's speed; the schedule lag
//! is reported so a generator that cannot keep up is visible.
//!
//! Measurement: ack latency = send → `SendAck` on the sender; delivery latency
//! = send → `Push{message}` on the receiver (the send time travels in the
//! text, see `proto::stamp_text`; both ends share the process clock). Rates
//! count acks and deliveries that arrive during the sending window only.
//! The per-second series counts acks (`pairs`, `mixed`) or deliveries
//! (`latency`) with the p99 delivery latency of each second;
//! `broker_cpu_us_per_msg` is the broker's CPU from the start of sending to
//! the end of the drain divided by the messages acked (login excluded).
//!
//! Invariants:
//! - each generator thread owns whole pairs (both connections on its event
//!   loop), so its [`Ledger`] sees both the acks and the deliveries;
//! - after sending stops, the drain phase waits (bounded by `--drain-secs`)
//!   until every send is answered and every acked message is delivered; what
//!   is still missing then is counted as lost;
//! - a connection closed mid-run, an error response or a `Close` is an
//!   error: the run fails, it is never retried silently.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::Context;
use missive_protocol::pb::{self, frame, push};

use super::Ctx;
use super::broker::CpuWindow;
use super::cli::{LatencyArgs, LoadArgs, MixedArgs, PairsArgs};
use super::ledger::{Ledger, Verdict};
use super::net::{ConnId, Event, Net};
use super::proto::{self, now_ns};
use super::report::Report;
use super::session;
use super::stats::{Counters, Hist, Main, Progress, Series, Totals};
use super::wire::{self, MsgView, RawPush};

/// Sends a sender may have unanswered in open-loop mode (the broker refuses
/// more than 1024 per connection).
const RATE_MAX_IN_FLIGHT: usize = 1000;
/// How often receivers send a cumulative `PushAck`, and counters are published.
const HOUSEKEEPING: Duration = Duration::from_millis(100);
/// Request ids of lifecycle requests (`mixed`) carry this bit, so their
/// answers are told apart from the sends' (whose ids count up from 1).
const LIFE_BIT: u64 = 1 << 62;

/// How sends are paced.
#[derive(Debug, Clone, Copy)]
enum Pace {
    /// Closed loop: at most this many unacked sends per sender.
    Window(usize),
    /// Open loop: this many sends per second for the thread's pairs.
    Rate(f64),
}

#[derive(Debug, Clone)]
struct Plan {
    pace: Pace,
    size: usize,
    secs: Duration,
    drain: Duration,
    /// Percent of acked messages followed by a reaction, a recall, an edit.
    mix: [u32; 3],
}

#[derive(Debug)]
struct Pair {
    conv: String,
    sender: ConnId,
    receiver: ConnId,
    next_msg: u32,
    next_req: u64,
    /// (request id, message number, send time ns), in send order.
    in_flight: VecDeque<(u64, u32, u64)>,
    last_seen: u64,
    last_push_acked: u64,
    alive: bool,
}

/// What one generator thread measured.
#[derive(Debug)]
struct ThreadOut {
    verdict: Verdict,
    ack: Hist,
    deliver: Hist,
    lag: Hist,
    sent: u64,
    acked_in_window: u64,
    delivered_in_window: u64,
    window: Duration,
    errors: BTreeMap<String, u64>,
    backlog_skips: u64,
    /// Lifecycle requests answered ok (react, recall, edit), and their latency.
    life_ok: [u64; 3],
    life: Hist,
    /// Tips (recall notices) received, not counted as messages.
    tips: u64,
    /// Broker CPU seconds from the start of sending to the end of the drain.
    broker_cpu_s: Option<f64>,
}

/// `mixed`: `pairs` plus lifecycle requests on acked messages.
pub(crate) fn run_mixed(ctx: &mut Ctx<'_>, a: &MixedArgs) -> anyhow::Result<Report> {
    let mix = [a.react_pct, a.recall_pct, a.edit_pct];
    if mix.iter().sum::<u32>() > 100 {
        anyhow::bail!("--react-pct + --recall-pct + --edit-pct must be at most 100");
    }
    let p = &a.pairs;
    let mut plan = plan(&p.load, Pace::Window(p.window as usize), 1.0);
    plan.mix = mix;
    let mut r = Report::new("mixed");
    r.param("pairs", p.pairs)
        .param("window", p.window)
        .param("react_pct", a.react_pct)
        .param("recall_pct", a.recall_pct)
        .param("edit_pct", a.edit_pct);
    let out = drive(ctx, p.pairs as usize, &p.load, &plan, &mut r)?;
    let secs = out.window.as_secs_f64().max(1e-9);
    let ops: u64 = out.life_ok.iter().sum();
    r.metric("acked_per_s", (out.acked_in_window as f64 / secs).round())
        .metric("delivered_per_s", (out.delivered_in_window as f64 / secs).round())
        .metric("lifecycle_ops_per_s", (ops as f64 / secs).round())
        .metric("reactions", out.life_ok[0])
        .metric("recalls", out.life_ok[1])
        .metric("edits", out.life_ok[2])
        .metric("recall_tips", out.tips)
        .quantile("ack_p50_us", &out.ack, 0.5)
        .quantile("ack_p99_us", &out.ack, 0.99)
        .quantile("lifecycle_p99_us", &out.life, 0.99)
        .quantile("deliver_p50_us", &out.deliver, 0.5)
        .quantile("deliver_p99_us", &out.deliver, 0.99);
    finish(&mut r, &out);
    Ok(r)
}

/// `pairs`: closed-loop throughput.
pub(crate) fn run_pairs(ctx: &mut Ctx<'_>, a: &PairsArgs) -> anyhow::Result<Report> {
    let plan = plan(&a.load, Pace::Window(a.window as usize), 1.0);
    let mut r = Report::new("pairs");
    r.param("pairs", a.pairs).param("window", a.window);
    let out = drive(ctx, a.pairs as usize, &a.load, &plan, &mut r)?;
    let secs = out.window.as_secs_f64().max(1e-9);
    r.metric("acked_per_s", (out.acked_in_window as f64 / secs).round())
        .metric("delivered_per_s", (out.delivered_in_window as f64 / secs).round())
        .quantile("ack_p50_us", &out.ack, 0.5)
        .quantile("ack_p99_us", &out.ack, 0.99)
        .quantile("deliver_p50_us", &out.deliver, 0.5)
        .quantile("deliver_p99_us", &out.deliver, 0.99);
    finish(&mut r, &out);
    Ok(r)
}

/// `latency`: open-loop delivery latency at a fixed rate.
pub(crate) fn run_latency(ctx: &mut Ctx<'_>, a: &LatencyArgs) -> anyhow::Result<Report> {
    let threads = a.load.threads.min(a.pairs);
    let plan = plan(&a.load, Pace::Rate(f64::from(a.rate)), f64::from(threads));
    let mut r = Report::new("latency");
    r.param("rate", a.rate).param("pairs", a.pairs);
    let out = drive(ctx, a.pairs as usize, &a.load, &plan, &mut r)?;
    let secs = out.window.as_secs_f64().max(1e-9);
    r.metric("sent_per_s", (out.sent as f64 / secs).round())
        .quantile("deliver_p50_us", &out.deliver, 0.5)
        .quantile("deliver_p99_us", &out.deliver, 0.99)
        .quantile("deliver_p999_us", &out.deliver, 0.999)
        .quantile("deliver_max_us", &out.deliver, 1.0)
        .quantile("ack_p50_us", &out.ack, 0.5)
        .quantile("ack_p99_us", &out.ack, 0.99)
        .quantile("send_lag_p99_us", &out.lag, 0.99)
        .metric("backlog_skips", out.backlog_skips);
    if out.backlog_skips > 0 {
        r.problem(format!(
            "{} scheduled sends skipped: a sender had {RATE_MAX_IN_FLIGHT} unacked",
            out.backlog_skips
        ));
    }
    finish(&mut r, &out);
    Ok(r)
}

fn plan(l: &LoadArgs, pace: Pace, threads: f64) -> Plan {
    let pace = match pace {
        Pace::Rate(total) => Pace::Rate(total / threads),
        w => w,
    };
    Plan {
        pace,
        size: l.size as usize,
        secs: Duration::from_secs_f64(l.secs),
        drain: Duration::from_secs_f64(l.drain_secs),
        mix: [0; 3],
    }
}

fn finish(r: &mut Report, out: &ThreadOut) {
    r.metric("sent", out.sent).metric("latency_samples", out.deliver.count());
    r.metric("broker_load_cpu_s", out.broker_cpu_s)
        .metric("broker_cpu_us_per_msg", CpuWindow::per_unit_us(out.broker_cpu_s, out.verdict.acked));
    r.outcome(&out.verdict, &out.errors);
}

/// Logs in every pair on `threads` event loops, runs them in step, merges.
fn drive(
    ctx: &mut Ctx<'_>,
    pairs: usize,
    l: &LoadArgs,
    plan: &Plan,
    r: &mut Report,
) -> anyhow::Result<ThreadOut> {
    let threads = (l.threads as usize).min(pairs);
    r.param("secs", l.secs).param("size", l.size).param("threads", threads as u64);
    let counters = Arc::new(Counters::default());
    let barrier = Arc::new(Barrier::new(threads + 1));
    let mut handles = Vec::new();
    for t in 0..threads {
        let mine: Vec<usize> = (t..pairs).step_by(threads).collect();
        let (addr, secret, prefix) = (ctx.addr, ctx.secret.clone(), ctx.prefix.clone());
        let (plan, counters, barrier) = (plan.clone(), Arc::clone(&counters), Arc::clone(&barrier));
        let h = std::thread::Builder::new()
            .name(format!("loadgen-{t}"))
            .spawn(move || run_thread(addr, &secret, &prefix, &mine, &plan, &counters, &barrier))
            .context("starting a generator thread")?;
        handles.push(h);
    }
    // Everyone logged in (or failed) before the clock starts.
    barrier.wait();
    let cpu = CpuWindow::start(ctx.broker.pid());
    let (main, rate_of) = match plan.pace {
        Pace::Rate(_) => (Main::Delivered, "delivered/s"),
        Pace::Window(_) => (Main::Acked, "acked/s"),
    };
    let progress = Progress::start(r.scenario(), Progress::rates(Arc::clone(&counters), main));
    let mut merged: Option<ThreadOut> = None;
    let mut failure = None;
    for h in handles {
        match h.join() {
            Ok(Ok(out)) => merged = Some(merge(merged, out)),
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some(anyhow::anyhow!("a generator thread panicked")),
        }
    }
    let broker_cpu_s = cpu.secs();
    r.series(Series { rate_of, latency_of: "deliver", samples: progress.finish() });
    if let Some(e) = failure {
        return Err(e);
    }
    let mut out = merged.context("no generator thread ran")?;
    out.broker_cpu_s = broker_cpu_s;
    Ok(out)
}

fn merge(acc: Option<ThreadOut>, mut o: ThreadOut) -> ThreadOut {
    let Some(mut a) = acc else { return o };
    a.verdict += o.verdict;
    a.ack.merge(&o.ack);
    a.deliver.merge(&o.deliver);
    a.lag.merge(&o.lag);
    a.sent += o.sent;
    a.acked_in_window += o.acked_in_window;
    a.delivered_in_window += o.delivered_in_window;
    a.window = a.window.max(o.window);
    for (k, v) in std::mem::take(&mut o.errors) {
        *a.errors.entry(k).or_default() += v;
    }
    a.backlog_skips += o.backlog_skips;
    a.life.merge(&o.life);
    a.tips += o.tips;
    for i in 0..3 {
        a.life_ok[i] += o.life_ok[i];
    }
    a
}

/// Which pair a connection belongs to, and whether it is the sender.
#[derive(Debug, Clone, Copy)]
struct Role {
    pair: usize,
    sender: bool,
}

struct Thread<'a> {
    plan: &'a Plan,
    net: Net,
    pairs: Vec<Pair>,
    roles: Vec<Role>,
    ledger: Ledger,
    out: ThreadOut,
    /// Delivery latencies since the last housekeeping (the progress line's p99).
    interval: Hist,
    /// While true, acks trigger new sends (window mode) and the schedule runs.
    sending: bool,
    start: Instant,
    /// `start` on the stamp clock.
    start_ns: u64,
    end: Instant,
    in_flight: usize,
    rr: usize,
    /// Lifecycle requests unanswered, by request id: (op, send time ns).
    life_in_flight: BTreeMap<u64, (proto::LifeOp, u64)>,
    next_life: u64,
    /// xorshift state for the mix.
    rng: u64,
}

fn run_thread(
    addr: SocketAddr,
    secret: &str,
    prefix: &str,
    mine: &[usize],
    plan: &Plan,
    counters: &Counters,
    barrier: &Barrier,
) -> anyhow::Result<ThreadOut> {
    // Log in first; whatever happens, reach the barrier exactly once.
    let setup = setup(addr, secret, prefix, mine);
    barrier.wait();
    let (net, pairs, roles) = setup?;
    let now = Instant::now();
    let mut t = Thread {
        plan,
        net,
        ledger: Ledger::new(pairs.len()),
        pairs,
        roles,
        out: ThreadOut {
            verdict: Verdict::default(),
            ack: Hist::new(),
            deliver: Hist::new(),
            lag: Hist::new(),
            sent: 0,
            acked_in_window: 0,
            delivered_in_window: 0,
            window: plan.secs,
            errors: BTreeMap::new(),
            backlog_skips: 0,
            life_ok: [0; 3],
            life: Hist::new(),
            tips: 0,
            broker_cpu_s: None,
        },
        interval: Hist::new(),
        sending: true,
        start: now,
        start_ns: now_ns(),
        end: now + plan.secs,
        in_flight: 0,
        rr: 0,
        life_in_flight: BTreeMap::new(),
        next_life: 0,
        rng: 0x9E37_79B9_7F4A_7C15 ^ (mine.first().copied().unwrap_or(0) as u64 + 1),
    };
    t.run(counters)?;
    t.out.verdict = t.ledger.verdict();
    Ok(t.out)
}

type Setup = (Net, Vec<Pair>, Vec<Role>);

fn setup(addr: SocketAddr, secret: &str, prefix: &str, mine: &[usize]) -> anyhow::Result<Setup> {
    let mut net = Net::new()?;
    let mut users = Vec::with_capacity(mine.len() * 2);
    for &i in mine {
        users.push((format!("{prefix}s{i}"), "d1".to_owned()));
        users.push((format!("{prefix}r{i}"), "d1".to_owned()));
    }
    let mut early = Vec::new();
    let ids = session::login_all(&mut net, addr, secret, &users, &mut early)?;
    net.raw_pushes(true);
    let mut pairs = Vec::with_capacity(mine.len());
    let mut roles = vec![Role { pair: usize::MAX, sender: false }; ids.iter().max().map_or(0, |m| m + 1)];
    for (k, ch) in ids.chunks_exact(2).enumerate() {
        let (s, rc) = (ch[0], ch[1]);
        roles[s] = Role { pair: k, sender: true };
        roles[rc] = Role { pair: k, sender: false };
        pairs.push(Pair {
            conv: proto::direct_conv(&users[2 * k].0, &users[2 * k + 1].0),
            sender: s,
            receiver: rc,
            next_msg: 0,
            next_req: 1,
            in_flight: VecDeque::new(),
            last_seen: 0,
            last_push_acked: 0,
            alive: true,
        });
    }
    Ok((net, pairs, roles))
}

impl Thread<'_> {
    fn run(&mut self, counters: &Counters) -> anyhow::Result<()> {
        let mut events = Vec::new();
        let mut next_housekeeping = self.start + HOUSEKEEPING;
        let mut published = Totals::default();
        let mut drain_deadline = None;
        if let Pace::Window(w) = self.plan.pace {
            for p in 0..self.pairs.len() {
                for _ in 0..w {
                    self.send(p, now_ns());
                }
            }
        }
        loop {
            let now = Instant::now();
            if self.sending && now >= self.end {
                self.sending = false;
                self.out.window = now - self.start;
                drain_deadline = Some(now + self.plan.drain);
            }
            if let Some(d) = drain_deadline
                && ((self.in_flight == 0 && self.ledger.outstanding() == 0 && self.life_in_flight.is_empty())
                    || now >= d)
            {
                break;
            }
            let mut timeout = next_housekeeping.saturating_duration_since(now);
            if self.sending {
                timeout = timeout.min(self.end - now);
                if let Pace::Rate(rate) = self.plan.pace {
                    timeout = timeout.min(self.send_due(rate, now));
                }
            }
            self.net.poll(Some(timeout), &mut events)?;
            let recv_ns = now_ns();
            for ev in events.drain(..) {
                self.on_event(ev, recv_ns);
            }
            if Instant::now() >= next_housekeeping {
                next_housekeeping += HOUSEKEEPING;
                self.push_acks();
                let now_counts = Totals {
                    sent: self.out.sent,
                    acked: self.out.acked_in_window,
                    delivered: self.out.delivered_in_window,
                    errors: self.out.errors.values().sum(),
                };
                counters.publish(now_counts, &mut published, &mut self.interval);
            }
            if self.net.open_count() == 0 {
                break;
            }
        }
        if !self.life_in_flight.is_empty() {
            self.error(
                "lifecycle requests unanswered after the drain".to_owned(),
                self.life_in_flight.len() as u64,
            );
        }
        // Whatever is still unanswered now will never be: count it.
        if self.in_flight > 0 {
            self.error(
                format!("sends unanswered after the drain ({:?})", self.plan.drain),
                self.in_flight as u64,
            );
        }
        Ok(())
    }

    /// Open loop: sends everything due by `now`; returns the time to the next one.
    fn send_due(&mut self, rate: f64, now: Instant) -> Duration {
        let elapsed = (now - self.start).as_secs_f64();
        let due = (elapsed * rate) as u64;
        while self.out.sent + self.out.backlog_skips < due {
            let k = self.out.sent + self.out.backlog_skips;
            let scheduled = self.start_ns + (k as f64 / rate * 1e9) as u64;
            let p = self.rr % self.pairs.len();
            self.rr += 1;
            if !self.pairs[p].alive || self.pairs[p].in_flight.len() >= RATE_MAX_IN_FLIGHT {
                self.out.backlog_skips += 1;
                continue;
            }
            let t = now_ns();
            self.out.lag.record_ns(t.saturating_sub(scheduled));
            self.send(p, t);
        }
        let next = (due + 1) as f64 / rate;
        Duration::from_secs_f64((next - elapsed).max(0.0))
    }

    fn send(&mut self, p: usize, t_ns: u64) {
        let size = self.plan.size;
        let pair = &mut self.pairs[p];
        if !pair.alive {
            return;
        }
        let (req, msg) = (pair.next_req, pair.next_msg);
        pair.next_req += 1;
        pair.next_msg += 1;
        pair.in_flight.push_back((req, msg, t_ns));
        let f = proto::send_text(req, &pair.conv, msg.to_string(), proto::stamp_text(t_ns, size));
        self.net.send(pair.sender, &f);
        self.in_flight += 1;
        self.out.sent += 1;
    }

    fn push_acks(&mut self) {
        for p in &mut self.pairs {
            if p.alive && p.last_seen > p.last_push_acked {
                p.last_push_acked = p.last_seen;
                self.net.send(p.receiver, &proto::push_ack(&p.conv, p.last_seen));
            }
        }
    }

    fn error(&mut self, kind: String, n: u64) {
        *self.out.errors.entry(kind).or_default() += n;
    }

    fn on_event(&mut self, ev: Event, recv_ns: u64) {
        match ev {
            Event::Frame(id, f) => {
                let Some(&role) = self.roles.get(id) else { return };
                match f.body {
                    Some(frame::Body::Response(resp)) if role.sender => {
                        self.on_response(role.pair, resp, recv_ns)
                    }
                    Some(frame::Body::Push(pb::Push { event: Some(push::Event::Message(m)) }))
                        if !role.sender =>
                    {
                        self.on_message(role.pair, MsgView::of(&m), recv_ns);
                    }
                    Some(frame::Body::Close(c)) => self.error(format!("Close {}", c.code), 1),
                    // Other pushes (receipts, states) and pongs are not measured.
                    _ => {}
                }
            }
            Event::Push(id, payload) => {
                let Some(&role) = self.roles.get(id) else { return };
                match wire::read_push(&payload) {
                    Ok(RawPush::Message(v)) if !role.sender => self.on_message(role.pair, v, recv_ns),
                    Ok(_) => {}
                    Err(e) => self.error(e, 1),
                }
            }
            // Raw loops only; this one decodes frames.
            Event::Readable(_) => {}
            Event::Closed(id, reason) => {
                let Some(&role) = self.roles.get(id) else { return };
                let p = &mut self.pairs[role.pair];
                if p.alive {
                    p.alive = false;
                    let lost_sends = p.in_flight.len();
                    p.in_flight.clear();
                    self.in_flight -= lost_sends;
                    let (s, r) = (p.sender, p.receiver);
                    self.net.close(s);
                    self.net.close(r);
                    self.error(format!("connection closed: {reason}"), 1);
                }
            }
        }
    }

    /// After an ack: maybe one lifecycle request on the acked message.
    fn maybe_lifecycle(&mut self, p: usize, seq: u64) {
        if self.plan.mix == [0; 3] {
            return;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let roll = (self.rng % 100) as u32;
        let [react, recall, edit] = self.plan.mix;
        let op = if roll < react {
            proto::LifeOp::React
        } else if roll < react + recall {
            proto::LifeOp::Recall
        } else if roll < react + recall + edit {
            proto::LifeOp::Edit
        } else {
            return;
        };
        self.next_life += 1;
        let id = LIFE_BIT | self.next_life;
        let pair = &self.pairs[p];
        self.net.send(pair.sender, &proto::lifecycle(id, &pair.conv, seq, op));
        self.life_in_flight.insert(id, (op, now_ns()));
    }

    fn on_life_response(&mut self, resp: pb::Response, recv_ns: u64) {
        let Some((op, sent)) = self.life_in_flight.remove(&resp.id) else {
            self.error("response to an unknown lifecycle request".to_owned(), 1);
            return;
        };
        if let Some(e) = resp.error {
            self.error(format!("{op:?}: error {}", e.code), 1);
            return;
        }
        self.out.life.record_ns(recv_ns.saturating_sub(sent));
        let i = match op {
            proto::LifeOp::React => 0,
            proto::LifeOp::Recall => 1,
            proto::LifeOp::Edit => 2,
        };
        self.out.life_ok[i] += 1;
    }

    fn on_response(&mut self, p: usize, resp: pb::Response, recv_ns: u64) {
        if resp.id & LIFE_BIT != 0 {
            self.on_life_response(resp, recv_ns);
            return;
        }
        let pair = &mut self.pairs[p];
        // Same conversation: answers come in request order; search otherwise.
        let pos = pair.in_flight.iter().position(|e| e.0 == resp.id);
        let Some((_, msg, sent_ns)) = pos.and_then(|i| pair.in_flight.remove(i)) else {
            self.error("response to an unknown request id".to_owned(), 1);
            return;
        };
        self.in_flight -= 1;
        match proto::reply::<pb::SendMessage>(resp) {
            Err(kind) => self.error(kind, 1),
            Ok(ack) => {
                if ack.duplicate {
                    self.error("SendAck duplicate=true for a first send".to_owned(), 1);
                }
                self.ledger.ack(p, ack.seq, msg);
                self.out.ack.record_ns(recv_ns.saturating_sub(sent_ns));
                if self.sending {
                    self.maybe_lifecycle(p, ack.seq);
                }
                if self.sending {
                    self.out.acked_in_window += 1;
                    if matches!(self.plan.pace, Pace::Window(_)) {
                        self.send(p, now_ns());
                    }
                }
            }
        }
    }

    fn on_message(&mut self, p: usize, m: MsgView<'_>, recv_ns: u64) {
        if self.plan.mix != [0; 3] && m.text.is_none() && m.client_msg_id.is_empty() {
            // A recall's tip (server-generated, no client_msg_id): not a send of ours.
            self.out.tips += 1;
            let pair = &mut self.pairs[p];
            pair.last_seen = pair.last_seen.max(m.seq);
            return;
        }
        if m.conv_id != self.pairs[p].conv.as_bytes() {
            self.error("push for a conversation the receiver is not in".to_owned(), 1);
            return;
        }
        self.ledger.deliver(p, m.seq, m.msg_number());
        let pair = &mut self.pairs[p];
        pair.last_seen = pair.last_seen.max(m.seq);
        if let Some(sent) = m.text.and_then(proto::parse_stamp) {
            let ns = recv_ns.saturating_sub(sent);
            self.out.deliver.record_ns(ns);
            self.interval.record_ns(ns);
        }
        if self.sending {
            self.out.delivered_in_window += 1;
        }
    }
}
