//! Weak networks: messages sent through a lossy, delaying, reordering link
//! arrive exactly once and in order, through the Rust SDK over TCP and raw
//! QUIC and through the TypeScript SDK (sdk/web, run by node) over WebSocket.
//!
//! Setup ([`missive_tests::netns::NetLab`]): the broker runs in a server
//! network namespace, the clients in a client namespace, joined by
//! `netem-relay`, which drops, delays and reorders IP packets in user space
//! (this kernel has no netem qdisc; the relay's header says why and how).
//! Per loss level, one broker; the three transports run side by side, each
//! with its own sender and receiver (`alice-T` → `bob-T`, both in the client
//! namespace, so every message crosses the lossy link twice). The sender
//! sends sequentially, one `client_msg_id` per message, through the SDK's
//! retrying send; the receiver is the SDK's resilient client. Checks: every
//! send is acked; the receiver gets seqs 1..=N in order, each once, carrying
//! the sent ids in send order; nothing more arrives afterwards.
//! Time-to-delivery = send start → receive on the peer; p50/p90/p99/max are
//! printed per level and transport (README "Weak networks").
//!
//! Skips with a printed reason when namespaces cannot be made (not root, no
//! /dev/net/tun), unless `WEAKNET_REQUIRED` is set (`make soak`): then it
//! fails. `WEAKNET_MSGS` sets the messages per transport and level
//! (default 20; `make soak` uses more); the TypeScript part needs
//! sdk/web/dist (`make web`), else it is skipped with a message.

use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use missive_sdk::quic::{self, Trust};
use missive_sdk::{Client, ClientConfig, ClientEvent, ConnectOptions, LocalState};
use missive_tests::netns::{Impairment, NetLab, RelayStats, SERVER_IP};
use missive_tests::*;

/// Hard bound for one transport's run at one loss level: 4 minutes plus 6 s a message
/// (the slowest run seen, QUIC at 70 %, took 7.4 s a message for 50 messages).
fn run_deadline() -> Duration {
    Duration::from_secs(240 + 6 * msgs() as u64)
}

struct Level {
    name: &'static str,
    imp: Impairment,
}

fn levels() -> [Level; 2] {
    [
        Level {
            name: "30% loss each way, 40+0..40 ms delay",
            imp: Impairment { loss_up: 0.30, loss_down: 0.30, delay_ms: 40, jitter_ms: 40, seed: 30 },
        },
        Level {
            name: "70% loss client->server, 40+0..40 ms delay",
            imp: Impairment { loss_up: 0.70, loss_down: 0.0, delay_ms: 40, jitter_ms: 40, seed: 70 },
        },
    ]
}

fn msgs() -> usize {
    std::env::var("WEAKNET_MSGS").ok().and_then(|v| v.parse().ok()).unwrap_or(20)
}

/// One transport's result at one level: time-to-delivery per message, ms.
struct RunResult {
    transport: &'static str,
    latencies_ms: Vec<f64>,
    wall: Duration,
    /// Sessions after the first one, sender and receiver together.
    reconnects: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

/// Connects a resilient Rust client, retrying the first connect (it may time out under loss).
fn connect(addr: &str, user: &str, config: &ClientConfig) -> Client {
    let deadline = Instant::now() + run_deadline();
    for attempt in 0.. {
        // A new Client per attempt is a fresh install: a new device id, so the
        // abandoned attempt's late Hello cannot end this one's session ([L-2]).
        let mut opts = ConnectOptions::new(addr, mint(user), format!("phone-{attempt}"));
        opts.connect_timeout = Duration::from_secs(30);
        match Client::connect_with(opts, LocalState::default(), config.clone()) {
            Ok(c) => return c,
            Err(e) if Instant::now() < deadline => eprintln!("{user}: first connect failed ({e}); retrying"),
            Err(e) => panic!("{user}: no connection within {:?}: {e}", run_deadline()),
        }
    }
    unreachable!("the connect loop returns or panics")
}

/// The Rust SDK: alice sends `n` messages sequentially, bob receives. Runs in the client namespace.
fn run_rust(lab: &NetLab, b: &BrokerProc, over_quic: bool, n: usize, level: usize) -> RunResult {
    lab.enter_client();
    let transport = if over_quic { "rust-quic" } else { "rust-tcp" };
    let (alice_id, bob_id) = (format!("alice-{transport}-{level}"), format!("bob-{transport}-{level}"));
    let conv = direct(&alice_id, &bob_id);
    let mut config = ClientConfig { retry_timeout: run_deadline(), ..Default::default() };
    if over_quic {
        let addr = b.listening.quic.expect("broker printed quic=");
        let hash = b.listening.fields.get("cert_sha256").expect("broker printed cert_sha256=").clone();
        config.dial = Some(quic::dialer(addr, Trust::Sha256(hash)));
    }
    let addr = b.addr.to_string();
    let bob = connect(&addr, &bob_id, &config);
    let alice = connect(&addr, &alice_id, &config);
    let events = bob.events();
    let ids: Vec<String> = (0..n).map(|i| format!("wn-{level}-{i:05}")).collect();
    let started = Instant::now();
    let mut sent_at = Vec::with_capacity(n);
    let ((received, bob_sessions), acks) = std::thread::scope(|s| {
        let receiver = s.spawn(|| {
            let mut got: Vec<(u64, String, Instant)> = Vec::new();
            let mut reconnects = 0usize;
            let deadline = Instant::now() + run_deadline();
            while got.len() < n {
                let left = deadline.saturating_duration_since(Instant::now());
                assert!(
                    !left.is_zero(),
                    "{transport}: bob got {} of {n} within {:?}",
                    got.len(),
                    run_deadline()
                );
                match events.recv_timeout(left) {
                    Ok(ClientEvent::Message(m)) if m.conv_id == conv => {
                        got.push((m.seq, m.client_msg_id.clone(), Instant::now()));
                    }
                    Ok(ClientEvent::Connected { .. }) => reconnects += 1,
                    Ok(ClientEvent::Kicked { code, message } | ClientEvent::Closed { code, message }) => {
                        panic!("{transport}: bob's client stopped: {code} {message}")
                    }
                    Ok(_) | Err(_) => {}
                }
            }
            (got, reconnects)
        });
        let mut acks = Vec::with_capacity(n);
        for id in &ids {
            sent_at.push(Instant::now());
            let ack = alice
                .send_with_id(&conv, id, text(id))
                .unwrap_or_else(|e| panic!("{transport}: send {id} not acked: {e}"));
            acks.push(ack.seq);
        }
        (receiver.join().expect("receiver thread"), acks)
    });
    let wall = started.elapsed();
    // Anything arriving after the N-th message is a duplicate.
    let extra_deadline = Instant::now() + Duration::from_secs(1);
    while let Ok(ev) = events.recv_timeout(extra_deadline.saturating_duration_since(Instant::now())) {
        if let ClientEvent::Message(m) = &ev {
            assert_ne!(
                m.conv_id, conv,
                "{transport}: message delivered again: seq {} {}",
                m.seq, m.client_msg_id
            );
        }
    }
    let expected: Vec<u64> = (1..=n as u64).collect();
    assert_eq!(acks, expected, "{transport}: acked seqs");
    let seqs: Vec<u64> = received.iter().map(|r| r.0).collect();
    assert_eq!(seqs, expected, "{transport}: received seqs (exactly once, in order)");
    let got_ids: Vec<&str> = received.iter().map(|r| r.1.as_str()).collect();
    let want_ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(got_ids, want_ids, "{transport}: received ids in send order");
    let latencies_ms =
        received.iter().zip(&sent_at).map(|(r, t0)| r.2.duration_since(*t0).as_secs_f64() * 1e3).collect();
    let alice_sessions =
        alice.events().try_iter().filter(|e| matches!(e, ClientEvent::Connected { .. })).count();
    let reconnects = alice_sessions.saturating_sub(1) + bob_sessions.saturating_sub(1);
    alice.close();
    bob.close();
    RunResult { transport, latencies_ms, wall, reconnects }
}

/// The built TypeScript SDK's driver script, if sdk/web/dist exists.
fn web_driver() -> Result<PathBuf, String> {
    let web = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sdk/web");
    let dist = web.join("dist/src/index.js");
    if !dist.exists() {
        return Err(format!("{} not built (make web)", dist.display()));
    }
    Ok(web.join("e2e/weaknet.mjs"))
}

/// Node 20 and 21 need a flag for the global WebSocket.
fn node_flags() -> Vec<&'static str> {
    let v = Command::new("node").arg("--version").output().map(|o| o.stdout).unwrap_or_default();
    let major: u32 = String::from_utf8_lossy(&v)
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 22 { vec!["--experimental-websocket"] } else { vec![] }
}

/// The TypeScript SDK over WebSocket, in node inside the client namespace.
fn run_web(lab: &NetLab, b: &BrokerProc, driver: &PathBuf, n: usize, level: usize) -> RunResult {
    let (alice_id, bob_id) = (format!("alice-web-{level}"), format!("bob-web-{level}"));
    let url = format!("ws://{}/ws", b.listening.ws());
    let started = Instant::now();
    let mut child = lab
        .command_in_client("node")
        .args(node_flags())
        .arg(driver)
        .args([
            &url,
            &alice_id,
            &mint(&alice_id),
            &bob_id,
            &mint(&bob_id),
            &n.to_string(),
            &format!("wn-{level}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let deadline = Instant::now() + run_deadline();
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait node") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("web: node did not finish within {:?}; its log:\n{err}", run_deadline());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let wall = started.elapsed();
    let (mut out, mut err) = (String::new(), String::new());
    child.stdout.take().expect("stdout").read_to_string(&mut out).expect("read node stdout");
    child.stderr.take().expect("stderr").read_to_string(&mut err).expect("read node stderr");
    assert!(status.success(), "web: node driver failed ({status}):\n{out}\n{err}");
    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("web: no result:\n{out}\n{err}"));
    let v: serde_json::Value = serde_json::from_str(line).expect("web: result JSON");
    let errors = v["errors"].as_array().cloned().unwrap_or_default();
    assert!(errors.is_empty(), "web: {errors:?}\n{err}");
    let latencies_ms: Vec<f64> = v["latencies_ms"]
        .as_array()
        .expect("latencies_ms")
        .iter()
        .filter_map(serde_json::Value::as_f64)
        .collect();
    assert_eq!(latencies_ms.len(), n, "web: one latency per message");
    let reconnects = v["reconnects"].as_u64().unwrap_or(0) as usize;
    RunResult { transport: "web-ws", latencies_ms, wall, reconnects }
}

fn report(level: &str, r: &RunResult, relay: RelayStats) {
    let mut s = r.latencies_ms.clone();
    s.sort_by(f64::total_cmp);
    eprintln!(
        "weak network | {level} | {:<9} | {} msgs | time-to-delivery ms p50 {:.0} p90 {:.0} p99 {:.0} max {:.0} | run {:.1} s | {} reconnects | relay {:?}",
        r.transport,
        s.len(),
        percentile(&s, 50.0),
        percentile(&s, 90.0),
        percentile(&s, 99.0),
        percentile(&s, 100.0),
        r.wall.as_secs_f64(),
        r.reconnects,
        relay,
    );
}

#[test]
fn messages_arrive_exactly_once_in_order_over_lossy_links() {
    let n = msgs();
    for (i, level) in levels().iter().enumerate() {
        let lab = match NetLab::new(level.imp) {
            Ok(l) => l,
            Err(why) => {
                assert!(
                    std::env::var_os("WEAKNET_REQUIRED").is_none(),
                    "weak-network test required (WEAKNET_REQUIRED) but namespaces are unavailable: {why}"
                );
                eprintln!(
                    "SKIPPED weak-network test: cannot build the network namespaces ({why}); it needs root, \
                     `ip netns add` and /dev/net/tun"
                );
                return;
            }
        };
        let b = BrokerOpts::default()
            .in_netns(&lab.server_ns, SERVER_IP)
            .config(&format!("quic = \"{SERVER_IP}:0\"\n"))
            .spawn();
        assert_eq!(b.addr.ip().to_string(), SERVER_IP);
        let driver = web_driver();
        // Every run finishes (or hits its deadline) before a failure is raised,
        // so the other transports' results are still reported.
        let outcomes: Vec<std::thread::Result<RunResult>> = std::thread::scope(|s| {
            let mut runs =
                vec![s.spawn(|| run_rust(&lab, &b, false, n, i)), s.spawn(|| run_rust(&lab, &b, true, n, i))];
            match &driver {
                Ok(d) => runs.push(s.spawn(|| run_web(&lab, &b, d, n, i))),
                Err(why) => {
                    assert!(
                        std::env::var_os("WEAKNET_REQUIRED").is_none(),
                        "TypeScript SDK part required: {why}"
                    );
                    eprintln!("SKIPPED the TypeScript SDK part of the weak-network test: {why}");
                }
            }
            runs.into_iter().map(|h| h.join()).collect()
        });
        let mut results = Vec::new();
        let mut failure = None;
        for o in outcomes {
            match o {
                Ok(r) => results.push(r),
                Err(p) => failure = failure.or(Some(p)),
            }
        }
        let relay = lab.stats();
        for r in &results {
            report(level.name, r, relay);
        }
        if let Some(p) = failure {
            std::panic::resume_unwind(p);
        }
        let seen: HashSet<&str> = results.iter().map(|r| r.transport).collect();
        assert!(seen.contains("rust-tcp") && seen.contains("rust-quic"));
    }
}
