//! `before.send`: the app server decides a send before it reaches its owner.
//!
//! The I/O edge (`net/read.rs`) hands a routed `SendMessage` op here with
//! [`Hooks::submit`] when an enabled endpoint subscribes to `before.send`.
//! Each endpoint that does is asked in id order (POST, signed, answer within
//! `webhooks.before_send_timeout_ms` in all): `allow` passes the op on,
//! `modify` replaces its content (checked again like a client's content),
//! `reject` answers the sender `REJECTED_BY_APP` with the app's code and
//! message. A timeout, a non-2xx or an unreadable answer counts as failure:
//! with `before_send_on_failure = "open"` the op goes on unchanged, with
//! `"closed"` the sender gets `WEBHOOK_FAILED` (retryable).
//!
//! Invariants: a connection has at most one decision in flight; its later
//! sends queue behind it (FIFO), so they reach the owner shard in send order;
//! other connections are never held up by it. Every submitted op gets exactly
//! one outcome: forwarded to its owner (which answers) or answered here
//! through the connection's worker (`WorkerMsg::Reply` with the request's
//! cost, so the worker's in-flight accounting stays right). Pending
//! decisions node-wide ≤ `before_send_max_pending` (beyond: OVERLOADED).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::TrySendError;
use missive_protocol::ErrorCode;
use serde_json::{Value, json};

use crate::config::FailMode;
use crate::error::Reject;
use crate::net::mailbox::WorkerMsg;
use crate::node::directory::ConnRef;
use crate::services::ServiceOp;
use crate::services::events::{content_from_json, content_json};
use crate::services::messages::MessagesOp;
use crate::shard::{Origin, Reply, ShardOp};

use super::{Hooks, signed_request};

/// A send waiting for its decision.
#[derive(Debug)]
pub(crate) struct Job {
    owner: usize,
    op: ShardOp<ServiceOp>,
}

/// Whether `op` is a send `before.send` applies to.
pub(crate) fn applies(op: &ShardOp<ServiceOp>) -> bool {
    matches!(op.op, ServiceOp::Messages(MessagesOp::Send { .. }))
        && matches!(op.origin, Origin::Request { .. })
}

/// The outcome of asking the endpoints.
enum Decision {
    Forward,
    Refuse(Reject),
}

impl Hooks {
    /// Queues `op` (bound for shard `owner`) for its `before.send` decision.
    /// `Err(op)` when the node already has `before_send_max_pending` pending:
    /// the caller answers OVERLOADED.
    #[allow(clippy::result_large_err)]
    pub(crate) fn submit(
        self: &Arc<Self>,
        owner: usize,
        op: ShardOp<ServiceOp>,
    ) -> Result<(), ShardOp<ServiceOp>> {
        let max = self.node.config.webhooks.before_send_max_pending;
        if self.pending.fetch_add(1, Ordering::AcqRel) >= max {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            return Err(op);
        }
        let conn = op.origin.conn();
        let job = Job { owner, op };
        let mut queues = self.queues.lock();
        if let Some(q) = queues.get_mut(&conn) {
            // A decision of this connection is in flight: wait behind it.
            q.push_back(job);
            return Ok(());
        }
        queues.insert(conn, VecDeque::new());
        drop(queues);
        let h = Arc::clone(self);
        self.rt.spawn(async move { h.drain(conn, job).await });
        Ok(())
    }

    /// Decides `job`, then every job queued behind it on `conn`, in order.
    async fn drain(self: Arc<Self>, conn: ConnRef, mut job: Job) {
        loop {
            self.decide(job).await;
            self.pending.fetch_sub(1, Ordering::AcqRel);
            let mut queues = self.queues.lock();
            let next = queues.get_mut(&conn).and_then(VecDeque::pop_front);
            match next {
                Some(j) => job = j,
                None => {
                    queues.remove(&conn);
                    return;
                }
            }
        }
    }

    async fn decide(&self, mut job: Job) {
        let decision = self.ask(&mut job.op).await;
        match decision {
            Decision::Forward => self.forward(job).await,
            Decision::Refuse(r) => self.answer(&job.op, Err(r)).await,
        }
    }

    /// Asks every endpoint subscribed to `before.send`; may rewrite the content.
    async fn ask(&self, op: &mut ShardOp<ServiceOp>) -> Decision {
        let cfg = &self.node.config.webhooks;
        let deadline = Instant::now() + Duration::from_millis(cfg.before_send_timeout_ms);
        for ep in self.node.hooks.subscribers("before.send") {
            let ServiceOp::Messages(MessagesOp::Send { conv, client_msg_id, content, .. }) = &mut op.op
            else {
                return Decision::Forward;
            };
            let id = self.node.hooks.next_event_id(crate::node::clock::now_ms());
            let event = json!({
                "id": id.to_string(),
                "type": "before.send",
                "at_ms": crate::node::clock::now_ms(),
                "data": {
                    "sender": op.user.as_str(),
                    "device": op.device.as_str(),
                    "conv_id": conv.as_str(),
                    "client_msg_id": client_msg_id.as_str(),
                    "content": content_json(content),
                },
            });
            let body = serde_json::to_vec(&event).unwrap_or_default();
            let left = deadline.saturating_duration_since(Instant::now());
            let req = signed_request(
                &self.client,
                &ep,
                &id.to_string(),
                "before.send",
                body,
                cfg.replay_window_secs,
            )
            .timeout(left.max(Duration::from_millis(1)));
            let answer = async {
                let r = req
                    .send()
                    .await
                    .map_err(|e| if e.is_timeout() { "timeout".to_owned() } else { e.to_string() })?;
                if !r.status().is_success() {
                    return Err(format!("HTTP {}", r.status().as_u16()));
                }
                let bytes = r.bytes().await.map_err(|e| e.to_string())?;
                serde_json::from_slice::<Value>(&bytes).map_err(|_| "answer is not JSON".to_owned())
            };
            let answer = match tokio::time::timeout(left, answer).await {
                Ok(a) => a,
                Err(_) => Err("timeout".to_owned()),
            };
            let fail = |why: String| -> Option<Decision> {
                tracing::debug!(endpoint = %ep.id, %why, "webhooks: before.send failed");
                match cfg.before_send_on_failure {
                    FailMode::Open => None,
                    FailMode::Closed => Some(Decision::Refuse(Reject::new(
                        ErrorCode::WebhookFailed,
                        format!("the app server's before.send check failed ({why}); retry later"),
                    ))),
                }
            };
            let v = match answer {
                Ok(v) => v,
                Err(why) => match fail(why) {
                    Some(d) => return d,
                    None => continue,
                },
            };
            match v.get("action").and_then(Value::as_str) {
                Some("allow") => {}
                Some("reject") => {
                    let code = v.get("code").and_then(Value::as_i64).unwrap_or(0);
                    let message = v.get("message").and_then(Value::as_str).unwrap_or("");
                    let message: String = message.chars().take(512).collect();
                    return Decision::Refuse(Reject::new(
                        ErrorCode::RejectedByApp,
                        format!("{code}: {message}"),
                    ));
                }
                Some("modify") => {
                    let new = v
                        .get("content")
                        .ok_or_else(|| "modify without content".to_owned())
                        .and_then(|c| content_from_json(c, content))
                        .and_then(|c| {
                            crate::services::messages::check::content_ok(
                                &c,
                                self.node.config.limits.max_content_bytes,
                            )
                            .map(|()| c)
                            .map_err(|r| r.message)
                        });
                    match new {
                        Ok(c) => *content = c,
                        Err(why) => {
                            if let Some(d) = fail(format!("bad modify: {why}")) {
                                return d;
                            }
                        }
                    }
                }
                _ => {
                    if let Some(d) = fail("answer has no valid action".to_owned()) {
                        return d;
                    }
                }
            }
        }
        Decision::Forward
    }

    /// Sends the decided op to its owner's inbox (retrying while it is full,
    /// at most 2 s, then OVERLOADED).
    async fn forward(&self, job: Job) {
        let Some(mesh) = self.mesh.upgrade() else { return };
        let Job { owner, op } = job;
        let Some(sender) = mesh.senders.get(owner) else { return };
        let mut msg = WorkerMsg::Op(Box::new(op));
        let give_up = Instant::now() + Duration::from_secs(2);
        loop {
            match sender.try_send(msg) {
                Ok(()) => {
                    let _ = mesh.wakers[owner].wake();
                    return;
                }
                Err(TrySendError::Full(m)) if Instant::now() < give_up => {
                    msg = m;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(TrySendError::Full(m)) | Err(TrySendError::Disconnected(m)) => {
                    if let WorkerMsg::Op(op) = m {
                        let busy =
                            Reject::new(ErrorCode::Overloaded, "the broker is busy; retry with backoff");
                        self.answer(&op, Err(busy)).await;
                    }
                    return;
                }
            }
        }
    }

    /// Answers `op`'s request on its connection's worker.
    async fn answer(&self, op: &ShardOp<ServiceOp>, reply: Reply) {
        let Some(mesh) = self.mesh.upgrade() else { return };
        let Origin::Request { conn, request_id, cost } = op.origin else { return };
        let Some(sender) = mesh.senders.get(conn.worker) else { return };
        let mut msg = WorkerMsg::Reply { conn: conn.id, request_id, cost, reply: Box::new(reply) };
        loop {
            match sender.try_send(msg) {
                Ok(()) => {
                    let _ = mesh.wakers[conn.worker].wake();
                    return;
                }
                Err(TrySendError::Full(m)) => {
                    if mesh.shutdown.load(Ordering::Acquire) {
                        // The answer cannot be delivered: release its in-flight
                        // count so the shutdown does not wait for it.
                        mesh.in_flight_ops.fetch_sub(1, Ordering::AcqRel);
                        return;
                    }
                    msg = m;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }
}
