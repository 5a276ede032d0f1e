//! The Rust SDK's `first_attempt` promise ([S-7]) end to end: the resilient
//! `Client` flags only the first transmission of a `client_msg_id` it generated
//! itself, clears the flag on every resend, and never flags an id the
//! application chose.
//!
//! A TCP proxy between the SDK and the broker ([`AckDropProxy`]) records every
//! client→server `SendMessage` and loses the answer to the first one: it
//! forwards that request, waits for the broker's `Response` (so the message is
//! stored), drops it and closes both sockets. The client reconnects through the
//! proxy and resends the same id; the broker's deduplication answers with the
//! original ack.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use bytes::BytesMut;
use missive_protocol::pb::{self, frame, request, response};
use missive_protocol::{FrameCodec, LENGTH_PREFIX_LEN};
use missive_sdk::{Client, ClientConfig, ConnectOptions, LocalState};
use missive_tests::*;
use prost::Message as _;

/// What the proxy saw and did, shared by its threads.
#[derive(Default)]
struct Shared {
    /// `(client_msg_id, first_attempt)` of every `SendMessage`, in order.
    sends: Mutex<Vec<(String, bool)>>,
    /// Set once the first `SendMessage` was chosen to lose its answer.
    tripped: AtomicBool,
    /// The broker's answer to that `SendMessage`, which the client never got.
    dropped_ack: Mutex<Option<pb::SendAck>>,
    /// Every socket of every proxied connection (to shut them down on drop).
    sockets: Mutex<Vec<TcpStream>>,
    pumps: Mutex<Vec<JoinHandle<()>>>,
    stop: AtomicBool,
}

/// One proxied connection: the request id whose answer is being withheld.
#[derive(Default)]
struct Link {
    held: Mutex<Option<u64>>,
}

/// A frame-aware TCP proxy on `127.0.0.1:0` in front of a broker that loses
/// the answer to the first `SendMessage` it forwards (see the module docs).
struct AckDropProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl AckDropProxy {
    fn start(broker: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared::default());
        let sh = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name("ack-drop-proxy".to_owned())
            .spawn(move || {
                for client in listener.incoming() {
                    if sh.stop.load(Ordering::Acquire) {
                        return;
                    }
                    let Ok(client) = client else { continue };
                    let Ok(upstream) = TcpStream::connect(broker) else { continue };
                    let _ = client.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    let (Ok(c2), Ok(u2), Ok(c3), Ok(u3)) =
                        (client.try_clone(), upstream.try_clone(), client.try_clone(), upstream.try_clone())
                    else {
                        continue;
                    };
                    locked(&sh.sockets).extend([c3, u3]);
                    let link = Arc::new(Link::default());
                    let (sh_up, link_up) = (Arc::clone(&sh), Arc::clone(&link));
                    let up = std::thread::spawn(move || pump_up(client, upstream, &link_up, &sh_up));
                    let sh_down = Arc::clone(&sh);
                    let down = std::thread::spawn(move || pump_down(u2, c2, &link, &sh_down));
                    locked(&sh.pumps).extend([up, down]);
                }
            })
            .expect("spawn the proxy");
        Self { addr, shared, accept: Some(accept) }
    }

    fn sends(&self) -> Vec<(String, bool)> {
        locked(&self.shared.sends).clone()
    }

    fn dropped_ack(&self) -> Option<pb::SendAck> {
        locked(&self.shared.dropped_ack).clone()
    }
}

impl Drop for AckDropProxy {
    fn drop(&mut self) {
        // Stop accepting first (wake the loop so it sees `stop`), so that no
        // connection is added after the sockets are shut down below.
        self.shared.stop.store(true, Ordering::Release);
        drop(TcpStream::connect(self.addr));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for s in locked(&self.shared.sockets).drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        let pumps: Vec<_> = locked(&self.shared.pumps).drain(..).collect();
        for t in pumps {
            let _ = t.join();
        }
    }
}

/// A lock of the proxy's state (a panicked proxy thread leaves it readable).
fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn close_both(a: &TcpStream, b: &TcpStream) {
    let _ = a.shutdown(Shutdown::Both);
    let _ = b.shutdown(Shutdown::Both);
}

/// Reads `from` and calls `each` with every complete frame (prefix included)
/// and its decoded form, until EOF, an error, or `each` returns false.
fn for_each_frame(from: &mut TcpStream, mut each: impl FnMut(&[u8], Option<pb::Frame>) -> bool) {
    let codec = FrameCodec::default();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            let payload = match codec.split_payload(&mut buf) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(_) => return,
            };
            let mut raw = Vec::with_capacity(LENGTH_PREFIX_LEN + payload.len());
            raw.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            raw.extend_from_slice(&payload);
            if !each(&raw, pb::Frame::decode(payload).ok()) {
                return;
            }
        }
    }
}

/// Client → broker: records every `SendMessage`; the first one of the whole
/// proxy has its answer withheld on this link (marked before it is forwarded).
fn pump_up(mut client: TcpStream, mut upstream: TcpStream, link: &Link, shared: &Shared) {
    for_each_frame(&mut client, |raw, frame| {
        if let Some(pb::Frame { body: Some(frame::Body::Request(r)) }) = frame
            && let Some(request::Op::Send(s)) = &r.op
        {
            locked(&shared.sends).push((s.client_msg_id.clone(), s.first_attempt));
            if !shared.tripped.swap(true, Ordering::AcqRel) {
                *locked(&link.held) = Some(r.id);
            }
        }
        upstream.write_all(raw).is_ok()
    });
    close_both(&client, &upstream);
}

/// Broker → client: forwards frames until a request's answer is withheld;
/// from then on forwards nothing, and when that answer arrives records it
/// and closes both sockets.
fn pump_down(mut upstream: TcpStream, mut client: TcpStream, link: &Link, shared: &Shared) {
    for_each_frame(&mut upstream, |raw, frame| {
        let Some(held) = *locked(&link.held) else {
            return client.write_all(raw).is_ok();
        };
        match frame {
            Some(pb::Frame { body: Some(frame::Body::Response(r)) }) if r.id == held => {
                if let Some(response::Result::SendAck(ack)) = r.result {
                    *locked(&shared.dropped_ack) = Some(ack);
                }
                false
            }
            _ => true,
        }
    });
    close_both(&client, &upstream);
}

/// An SDK client of `user/device` dialing the broker through `proxy`, giving up
/// on a request after [`WAIT`].
fn client_via(proxy: &AckDropProxy, user: &str, device: &str) -> Client {
    let opts = ConnectOptions::new(proxy.addr.to_string(), mint(user), device);
    let config = ClientConfig { retry_timeout: WAIT, ..Default::default() };
    Client::connect_with(opts, LocalState::default(), config)
        .unwrap_or_else(|e| panic!("Client::connect_with as {user}/{device} via the proxy failed: {e}"))
}

/// The `SendMessage`s the proxy saw: at least two (the first one's answer was
/// lost, so the SDK resent), all of one `client_msg_id`.
fn resent_sends(proxy: &AckDropProxy) -> Vec<(String, bool)> {
    let sends = proxy.sends();
    assert!(sends.len() >= 2, "the SDK must resend after losing the ack; SendMessages seen: {sends:?}");
    assert!(
        sends.iter().all(|(i, _)| *i == sends[0].0),
        "every resend must keep the client_msg_id: {sends:?}"
    );
    sends
}

/// The conversation holds exactly one message with the sent id (seen by
/// another user), and the final ack is the original one the client never got:
/// deduplication answered the resend.
fn assert_stored_once(b: &BrokerProc, proxy: &AckDropProxy, conv: &str, ack: &pb::SendAck, id: &str) {
    let dropped = proxy.dropped_ack().unwrap_or_else(|| {
        panic!("the broker must have acked the first SendMessage; seen: {:?}", proxy.sends())
    });
    let mut bob = b.client("bob", "phone");
    let stored = bob.pull_all(conv);
    assert_eq!(stored.len(), 1, "the conversation must hold exactly one message: {stored:?}");
    let m = &stored[0];
    assert_eq!(m.client_msg_id, id);
    assert!(ack.seq > 0, "{ack:?}");
    assert_eq!(ack.seq, m.seq, "the ack must name the stored message: {ack:?} vs {m:?}");
    assert_eq!(ack.server_msg_id, m.server_msg_id, "{ack:?} vs {m:?}");
    assert_eq!((dropped.seq, dropped.server_msg_id), (ack.seq, ack.server_msg_id), "{dropped:?} vs {ack:?}");
    assert!(ack.duplicate, "the resend must be answered by deduplication: {ack:?}");
}

/// An SDK-generated id: `first_attempt` on its first transmission, never on a resend.
#[test]
fn sdk_send_sets_first_attempt_on_the_first_transmission_only() {
    let b = BrokerProc::start();
    let proxy = AckDropProxy::start(b.addr);
    let conv = direct("alice", "bob");
    let alice = client_via(&proxy, "alice", "phone");

    let ack = alice.send_text(&conv, "the ack of this is lost").expect("send_text finally succeeds");

    let sends = resent_sends(&proxy);
    assert!(sends[0].1, "the first transmission of a generated id must carry first_attempt: {sends:?}");
    assert!(
        sends[1..].iter().all(|(_, first)| !first),
        "every resend must clear first_attempt ([S-7]): {sends:?}"
    );
    assert_stored_once(&b, &proxy, &conv, &ack, &sends[0].0);
}

/// An id the application chose may have been sent before: never flagged, not
/// even on its first transmission.
#[test]
fn sdk_send_with_an_application_id_never_sets_first_attempt() {
    let b = BrokerProc::start();
    let proxy = AckDropProxy::start(b.addr);
    let conv = direct("alice", "bob");
    let alice = client_via(&proxy, "alice", "phone");

    let ack = alice
        .send_with_id(&conv, "app-chosen-id-1", text("an application-supplied id"))
        .expect("send_with_id finally succeeds");

    let sends = resent_sends(&proxy);
    assert_eq!(sends[0].0, "app-chosen-id-1");
    assert!(
        sends.iter().all(|(_, first)| !first),
        "an application-supplied id must never carry first_attempt: {sends:?}"
    );
    assert_stored_once(&b, &proxy, &conv, &ack, "app-chosen-id-1");
}
