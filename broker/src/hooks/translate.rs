//! The translation provider (spec 18.10, [TR-5]..[TR-8]).
//!
//! Role: the query pool hands a cache miss here ([`Hooks::translate`]); a
//! task on the webhook runtime POSTs `{"text", "target_language", "conv_id",
//! "seq"}` to `translate.url` (`Authorization: Bearer <translate.api_key>`
//! when set) and reads `{"text": "..."}`. The text goes to the conversation's
//! owner shard as a `TranslateOp`, which caches it and answers the request;
//! a failure (non-2xx, timeout, unreadable answer) answers `5005
//! TRANSLATION_FAILED` through the connection's worker, caching nothing.
//!
//! Invariants: no worker or pool thread waits for the provider; calls in
//! flight node-wide ≤ `translate.max_concurrency` (beyond: `5002
//! OVERLOADED` at once); one call takes at most `translate.timeout_ms`;
//! an answer body is read up to [`MAX_ANSWER_BYTES`]; every handed-over
//! request gets exactly one answer.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use missive_protocol::{DeviceId, ErrorCode, UserId};
use serde_json::{Value, json};

use crate::error::Reject;
use crate::services::ServiceOp;
use crate::services::translate::{Job, TranslateOp};
use crate::shard::{Origin, ShardOp};

use super::Hooks;
use super::before;

/// Largest provider answer read, bytes.
pub(crate) const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// The HTTP client of the provider (its own timeouts).
pub(crate) fn client(timeout_ms: u64) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(Duration::from_millis(timeout_ms))
        .connect_timeout(Duration::from_millis(timeout_ms))
        .user_agent(concat!("missive-translate/", env!("CARGO_PKG_VERSION")))
        .build()
}

fn failed(why: impl std::fmt::Display) -> Reject {
    Reject::new(ErrorCode::TranslationFailed, format!("the translation provider failed ({why}); retry later"))
}

impl Hooks {
    /// Starts the provider call for `job` of request `origin`; `Err` (the
    /// caller answers it) when `translate.max_concurrency` calls are in flight.
    pub(crate) fn translate(
        self: &Arc<Self>,
        origin: Origin,
        user: UserId,
        device: DeviceId,
        job: Job,
    ) -> Result<(), Reject> {
        let max = self.node.config.translate.max_concurrency;
        if self.translating.fetch_add(1, Ordering::AcqRel) >= max {
            self.translating.fetch_sub(1, Ordering::AcqRel);
            return Err(Reject::new(
                ErrorCode::Overloaded,
                format!("{max} translations are in progress (translate.max_concurrency); retry with backoff"),
            ));
        }
        let h = Arc::clone(self);
        self.rt.spawn(async move {
            let outcome = h.call_provider(&job).await;
            h.translating.fetch_sub(1, Ordering::AcqRel);
            match outcome {
                Ok(translated) => {
                    let op = TranslateOp { job, translated };
                    let owner = h.node.owner(op.owner());
                    let op = ShardOp { origin, user, device, op: ServiceOp::Translate(op) };
                    h.forward(before::Job { owner, op }).await;
                }
                Err(r) => {
                    let op = ShardOp {
                        origin,
                        user,
                        device,
                        op: ServiceOp::Translate(TranslateOp { job, translated: String::new() }),
                    };
                    h.answer(&op, Err(r)).await;
                }
            }
        });
        Ok(())
    }

    /// One POST to the provider; the translated text.
    async fn call_provider(&self, job: &Job) -> Result<String, Reject> {
        let cfg = &self.node.config.translate;
        let Some(url) = &cfg.url else {
            return Err(Reject::new(ErrorCode::TranslationDisabled, "no translate.url"));
        };
        let body = json!({
            "text": job.text,
            "target_language": job.language,
            "conv_id": job.conv.as_str(),
            "seq": job.seq,
        });
        let mut req = self
            .translate_client
            .post(url)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default());
        if let Some(key) = &cfg.api_key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        let limit = Duration::from_millis(cfg.timeout_ms);
        let call = async {
            let mut r =
                req.send().await.map_err(|e| if e.is_timeout() { failed("timeout") } else { failed(e) })?;
            if !r.status().is_success() {
                return Err(failed(format!("HTTP {}", r.status().as_u16())));
            }
            let mut bytes = Vec::new();
            while let Some(chunk) = r.chunk().await.map_err(failed)? {
                if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(failed(format!("answer larger than {MAX_ANSWER_BYTES} bytes")));
                }
                bytes.extend_from_slice(&chunk);
            }
            let v: Value = serde_json::from_slice(&bytes).map_err(|_| failed("answer is not JSON"))?;
            let text =
                v.get("text").and_then(Value::as_str).ok_or_else(|| failed("answer has no \"text\""))?;
            let max = self.node.config.limits.max_content_bytes;
            if text.len() > max {
                return Err(failed(format!("translation longer than {max} bytes")));
            }
            Ok(text.to_owned())
        };
        match tokio::time::timeout(limit, call).await {
            Ok(r) => r,
            Err(_) => Err(failed("timeout")),
        }
    }
}
