//! A real translation provider for tests ([`TranslateProvider`]), on
//! 127.0.0.1:0: the HTTP endpoint spec 18.10 [TR-6] describes.
//!
//! Role: answers `POST {"text", "target_language", "conv_id", "seq"}` with
//! `{"text": "[<target_language>] <text>"}` until told otherwise
//! ([`TranslateProvider::respond`]: a status, another body, a delay), and
//! records every call (headers and JSON body) so a test can count provider
//! calls and check the `Authorization` header.
//!
//! Invariants: built on [`HookReceiver`] (std threads, HTTP/1.1, every wait
//! bounded); the broker is configured with [`TranslateProvider::url`].

use std::time::Duration;

use serde_json::json;

use crate::hook_receiver::{HookAnswer, HookReceiver, HookRequest};

/// The provider; it stops accepting when dropped.
#[derive(Debug)]
pub struct TranslateProvider {
    inner: HookReceiver,
}

impl Default for TranslateProvider {
    fn default() -> Self {
        Self::start()
    }
}

impl TranslateProvider {
    /// Starts a provider that translates `text` into `"[lang] text"`.
    pub fn start() -> Self {
        let inner = HookReceiver::start();
        let p = Self { inner };
        p.respond(|r| HookAnswer::ok(json!({ "text": Self::fake(r) })));
        p
    }

    /// What the default responder answers for request `r`.
    pub fn fake(r: &HookRequest) -> String {
        format!(
            "[{}] {}",
            r.body["target_language"].as_str().unwrap_or(""),
            r.body["text"].as_str().unwrap_or("")
        )
    }

    /// The URL for `translate.url`.
    pub fn url(&self) -> String {
        format!("http://{}/translate", self.inner.addr)
    }

    /// Replaces the responder.
    pub fn respond(&self, f: impl Fn(&HookRequest) -> HookAnswer + Send + Sync + 'static) {
        self.inner.respond(f);
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<HookRequest> {
        self.inner.requests()
    }

    /// Waits (≤ `timeout`) until at least `n` calls arrived.
    pub fn wait_calls(&self, n: usize, timeout: Duration) -> Vec<HookRequest> {
        self.inner.wait_until(timeout, |all| all.len() >= n)
    }
}
