//! A real HTTP receiver for webhook tests ([`HookReceiver`]), on 127.0.0.1:0.
//!
//! Role: accepts connections (one thread each, HTTP/1.1 keep-alive), reads
//! each POST (Content-Length bodies), records it ([`HookRequest`]: headers,
//! JSON body, arrival time, the status it was answered with) and answers what
//! the test's responder function decides (status, JSON body, delay). The
//! responder can be replaced at any time ([`HookReceiver::respond`]).
//!
//! Invariants: std only (no async runtime); every wait is bounded; a
//! responder's delay only holds that request's connection.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// One recorded request.
#[derive(Debug, Clone)]
pub struct HookRequest {
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub raw_body: Vec<u8>,
    pub body: Value,
    pub at: Instant,
    /// The status answered.
    pub status: u16,
}

impl HookRequest {
    /// The event's `type`.
    pub fn kind(&self) -> &str {
        self.body["type"].as_str().unwrap_or("")
    }

    /// The event's `id`.
    pub fn event_id(&self) -> &str {
        self.body["id"].as_str().unwrap_or("")
    }

    /// Whether `Missive-Signature` is `v1=hex(HMAC-SHA256(secret, ts "." body))`.
    pub fn signature_ok(&self, secret: &str) -> bool {
        let (Some(ts), Some(sig)) =
            (self.headers.get("missive-timestamp"), self.headers.get("missive-signature"))
        else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
        mac.update(ts.as_bytes());
        mac.update(b".");
        mac.update(&self.raw_body);
        *sig == format!("v1={}", hex::encode(mac.finalize().into_bytes()))
    }
}

/// What to answer: status, JSON body, and how long to wait first.
#[derive(Debug, Clone)]
pub struct HookAnswer {
    pub status: u16,
    pub body: Value,
    pub delay: Duration,
}

impl HookAnswer {
    pub fn ok(body: Value) -> Self {
        Self { status: 200, body, delay: Duration::ZERO }
    }

    pub fn status(status: u16) -> Self {
        Self { status, body: Value::Null, delay: Duration::ZERO }
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Responder = Arc<dyn Fn(&HookRequest) -> HookAnswer + Send + Sync>;

/// The receiver; it stops accepting when dropped (its threads end with their connections).
pub struct HookReceiver {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<HookRequest>>>,
    responder: Arc<Mutex<Responder>>,
}

impl std::fmt::Debug for HookReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookReceiver").field("addr", &self.addr).finish()
    }
}

impl HookReceiver {
    /// Starts a receiver answering 200 `{"action":"allow"}` until told otherwise.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let allow: Responder = Arc::new(|_| HookAnswer::ok(serde_json::json!({ "action": "allow" })));
        let responder = Arc::new(Mutex::new(allow));
        let (reqs, resp) = (Arc::clone(&requests), Arc::clone(&responder));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (reqs, resp) = (Arc::clone(&reqs), Arc::clone(&resp));
                std::thread::spawn(move || serve(conn, &reqs, &resp));
            }
        });
        Self { addr, requests, responder }
    }

    /// The URL to register.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Replaces the responder.
    pub fn respond(&self, f: impl Fn(&HookRequest) -> HookAnswer + Send + Sync + 'static) {
        *self.responder.lock().expect("lock") = Arc::new(f);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<HookRequest> {
        self.requests.lock().expect("lock").clone()
    }

    /// Requests of event type `kind`.
    pub fn of_kind(&self, kind: &str) -> Vec<HookRequest> {
        self.requests().into_iter().filter(|r| r.kind() == kind).collect()
    }

    /// Waits (≤ `timeout`) until `pred` holds for the recorded requests.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&[HookRequest]) -> bool) -> Vec<HookRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            let all = self.requests();
            if pred(&all) {
                return all;
            }
            assert!(
                Instant::now() < deadline,
                "webhook receiver: condition not met within {timeout:?}; got {all:#?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn serve(conn: TcpStream, reqs: &Mutex<Vec<HookRequest>>, resp: &Mutex<Responder>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(mut w) = conn.try_clone() else { return };
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line.trim().is_empty() {
            continue;
        }
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut raw_body = vec![0u8; len];
        if r.read_exact(&mut raw_body).is_err() {
            return;
        }
        let body = serde_json::from_slice(&raw_body).unwrap_or(Value::Null);
        let mut req = HookRequest { headers, raw_body, body, at: Instant::now(), status: 0 };
        let f = Arc::clone(&resp.lock().expect("lock"));
        let answer = f(&req);
        req.status = answer.status;
        if !answer.delay.is_zero() {
            std::thread::sleep(answer.delay);
        }
        reqs.lock().expect("lock").push(req);
        let body = if answer.body.is_null() { String::new() } else { answer.body.to_string() };
        let out = format!(
            "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{}",
            answer.status,
            body.len(),
            body
        );
        if w.write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}
