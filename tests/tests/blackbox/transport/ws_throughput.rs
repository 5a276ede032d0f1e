//! WebSocket vs TCP throughput on the same broker (ignored by default: it
//! measures, it does not check behaviour). Run with
//! `cargo test --release --workspace --test blackbox -- --ignored --nocapture ws_throughput`.
//!
//! Each of `PAIRS` sender threads sends `PER_SENDER` text messages to its own
//! peer with `WINDOW` requests in flight; each peer drains the pushes. The
//! same harness code drives both transports, so the difference is the
//! broker's framing path. Durability is `buffered` so the disk does not hide it.

use std::time::{Duration, Instant};

use missive_protocol::pb::{self, frame, request};
use missive_tests::ws::WsClient;
use missive_tests::*;

const PAIRS: usize = 8;
const PER_SENDER: usize = 4000;
const WINDOW: usize = 64;

trait Wire: Send {
    fn send_req(&mut self, op: request::Op);
    fn recv(&mut self) -> Option<pb::Frame>;
}

impl Wire for RawClient {
    fn send_req(&mut self, op: request::Op) {
        self.send_request(op);
    }
    fn recv(&mut self) -> Option<pb::Frame> {
        self.recv_frame(WAIT)
    }
}

impl Wire for WsClient {
    fn send_req(&mut self, op: request::Op) {
        self.send_request(op);
    }
    fn recv(&mut self) -> Option<pb::Frame> {
        self.recv_frame(WAIT)
    }
}

fn run(sender: &mut dyn Wire, conv: &str, tag: &str) {
    let (mut sent, mut acked) = (0, 0);
    while acked < PER_SENDER {
        while sent < PER_SENDER && sent - acked < WINDOW {
            sender.send_req(request::Op::Send(pb::SendMessage {
                conv_id: conv.to_owned(),
                client_msg_id: format!("{tag}-{sent}"),
                content: Some(text("a typical short chat message, about this long")),
                flags: None,
                first_attempt: false,
            }));
            sent += 1;
        }
        match sender.recv().and_then(|f| f.body) {
            Some(frame::Body::Response(_)) => acked += 1,
            Some(_) => {}
            None => panic!("{tag}: stalled at {acked}"),
        }
    }
}

fn drain(peer: &mut dyn Wire, tag: &str) {
    let mut got = 0;
    while got < PER_SENDER {
        match peer.recv().and_then(|f| f.body) {
            Some(frame::Body::Push(_)) => got += 1,
            Some(_) => {}
            None => panic!("{tag}: peer stalled at {got}"),
        }
    }
}

/// Sender, peer, conversation, tag.
type Pair = (Box<dyn Wire>, Box<dyn Wire>, String, String);

fn measure(ws: bool) -> f64 {
    let b = BrokerOpts::default().durability("buffered").spawn();
    let mut clients: Vec<Pair> = Vec::new();
    for i in 0..PAIRS {
        let (s, r) = (format!("s{i}"), format!("r{i}"));
        let conv = direct(&s, &r);
        let (a, p): (Box<dyn Wire>, Box<dyn Wire>) = if ws {
            let addr = b.listening.ws();
            (Box::new(WsClient::login(addr, &s, "d")), Box::new(WsClient::login(addr, &r, "d")))
        } else {
            (Box::new(b.client(&s, "d")), Box::new(b.client(&r, "d")))
        };
        clients.push((a, p, conv, s));
    }
    let start = Instant::now();
    std::thread::scope(|scope| {
        for (a, p, conv, tag) in clients.iter_mut() {
            let (conv, tag) = (conv.clone(), tag.clone());
            let t2 = tag.clone();
            scope.spawn(move || run(a.as_mut(), &conv, &tag));
            scope.spawn(move || drain(p.as_mut(), &t2));
        }
    });
    let secs = start.elapsed().as_secs_f64();
    (PAIRS * PER_SENDER) as f64 / secs.max(1e-9)
}

#[test]
#[ignore = "measurement; run explicitly with --ignored --nocapture"]
fn websocket_throughput_is_close_to_tcp() {
    let mut rows = Vec::new();
    for round in 0..3 {
        let tcp = measure(false);
        let ws = measure(true);
        println!("round {round}: tcp {tcp:.0} msg/s, ws {ws:.0} msg/s, ws/tcp {:.2}", ws / tcp);
        rows.push((tcp, ws));
        std::thread::sleep(Duration::from_millis(200));
    }
    let (tcp, ws): (f64, f64) = rows.iter().fold((0.0, 0.0), |(a, b), (t, w)| (a + t, b + w));
    println!("mean: tcp {:.0} msg/s, ws {:.0} msg/s, ws/tcp {:.2}", tcp / 3.0, ws / 3.0, ws / tcp);
    assert!(ws / tcp > 0.8, "WebSocket throughput more than 20% below TCP");
}
