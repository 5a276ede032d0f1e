//! A blocking client of the admin REST API for tests ([`Api`]).
//!
//! Role: `call(method, path, body)` returns the status and the JSON body,
//! whatever the status (4xx and 5xx are answers to assert on, not errors);
//! only a transport failure panics. The credential is an admin-role token
//! signed with [`crate::SECRET`] unless told otherwise.
//!
//! Invariants: every request has a timeout ([`crate::WAIT`]); nothing here
//! knows the broker's internals.

use std::net::SocketAddr;

use serde_json::Value;

use crate::tokens;

/// A REST client bound to one broker's API address.
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    bearer: Option<String>,
    agent: ureq::Agent,
}

/// One answer: status, headers of interest and JSON body (`Value::Null` if none).
#[derive(Debug, Clone)]
pub struct ApiAnswer {
    pub status: u16,
    pub body: Value,
    /// `Retry-After`, if sent.
    pub retry_after: Option<String>,
}

impl ApiAnswer {
    /// Panics unless the status is 2xx; returns the body.
    #[track_caller]
    pub fn ok(self) -> Value {
        assert!((200..300).contains(&self.status), "expected 2xx, got {} {}", self.status, self.body);
        self.body
    }

    /// Panics unless status and error code match.
    #[track_caller]
    pub fn refused(&self, status: u16, code: u32) {
        assert_eq!(self.status, status, "status; body {}", self.body);
        assert_eq!(self.body["code"].as_u64(), Some(u64::from(code)), "code; body {}", self.body);
        assert!(self.body["message"].as_str().is_some_and(|m| !m.is_empty()), "message; body {}", self.body);
    }
}

impl Api {
    /// A client with an admin-role token (user `admin`).
    pub fn new(addr: SocketAddr) -> Self {
        Self::with_bearer(addr, Some(tokens::mint_admin("admin")))
    }

    /// A client sending `Authorization: Bearer BEARER` (or nothing).
    pub fn with_bearer(addr: SocketAddr, bearer: Option<String>) -> Self {
        let agent = ureq::AgentBuilder::new().timeout(crate::WAIT).build();
        Self { base: format!("http://{addr}"), bearer, agent }
    }

    /// `METHOD path` with an optional JSON body.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> ApiAnswer {
        let mut req = self.agent.request(method, &format!("{}{path}", self.base));
        if let Some(b) = &self.bearer {
            req = req.set("Authorization", &format!("Bearer {b}"));
        }
        let res = match body {
            Some(b) => req.send_json(b.clone()),
            None => req.call(),
        };
        let resp = match res {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: transport error {e}"),
        };
        let status = resp.status();
        let retry_after = resp.header("Retry-After").map(str::to_owned);
        let text = resp.into_string().unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        ApiAnswer { status, body, retry_after }
    }

    pub fn get(&self, path: &str) -> ApiAnswer {
        self.call("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> ApiAnswer {
        self.call("POST", path, Some(body))
    }

    pub fn put(&self, path: &str, body: &Value) -> ApiAnswer {
        self.call("PUT", path, Some(body))
    }

    pub fn delete(&self, path: &str) -> ApiAnswer {
        self.call("DELETE", path, None)
    }

    /// `GET path`, answered as raw text with its headers (NDJSON exports).
    pub fn get_text(&self, path: &str) -> TextAnswer {
        let mut req = self.agent.get(&format!("{}{path}", self.base));
        if let Some(b) = &self.bearer {
            req = req.set("Authorization", &format!("Bearer {b}"));
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("GET {path}: transport error {e}"),
        };
        let status = resp.status();
        let headers = resp
            .headers_names()
            .into_iter()
            .filter_map(|n| resp.header(&n).map(|v| (n.to_ascii_lowercase(), v.to_owned())))
            .collect();
        let text = resp.into_string().unwrap_or_default();
        TextAnswer { status, headers, text }
    }
}

/// A raw answer: status, every header (lower-case names) and the body text.
#[derive(Debug, Clone)]
pub struct TextAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
}

impl TextAnswer {
    /// The value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as NDJSON: one JSON value per non-empty line.
    #[track_caller]
    pub fn ndjson(&self) -> Vec<Value> {
        self.text
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("line {l:?}: {e}")))
            .collect()
    }
}
