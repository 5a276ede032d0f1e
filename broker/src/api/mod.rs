//! The admin REST API: the app server's door (spec/openapi.yaml).
//!
//! Role: a new edge over the same routes and services as the socket
//! protocol. A handler turns one REST call into protocol requests made as a
//! named user ([`Api::call`]: `route::route`, then the owner shard or the
//! query pool, exactly as for a client) or into service ops no client may
//! send ([`Api::op`]); answers come back through [`Replies`]. Nothing here
//! stages storage for a service: the only records this edge writes itself
//! are its audit log and its own settings (`ops` family).
//!
//! Threads: one `missive-api` tokio runtime (2 threads) running axum; it never
//! runs on a worker. A call waits on a oneshot, never blocking a worker.
//!
//! Invariants:
//! - every route but `/healthz`, `/readyz` and `/openapi.json` is authorized
//!   first (an API key of `[api] keys` or an admin-role token), then rate
//!   limited per principal (`api.max_requests_per_sec`, 429 + `Retry-After`);
//! - every successful write (any method but GET/HEAD) appends one audit
//!   record (who, what, when) before its answer is returned;
//! - every error is JSON `{code, message}` with the protocol's numeric code;
//!   bad input is a 4xx, never a 5xx;
//! - ops are injected with `try_send` into the owner's bounded inbox: a full
//!   inbox is 503 OVERLOADED, never a blocked thread.

pub(crate) mod audit;
pub(crate) mod conversations;
pub(crate) mod groups;
pub(crate) mod hooks;
pub(crate) mod lifecycle;
mod listen;
pub(crate) mod messages;
pub(crate) mod moderation;
pub(crate) mod relations;
pub(crate) mod stats;
pub(crate) mod users;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use crossbeam_channel::TrySendError;
use missive_protocol::pb::{self, request::Op};
use missive_protocol::token::{self, Role};
use missive_protocol::{DeviceId, ErrorCode, UserId};
use tokio::sync::oneshot;

use crate::error::{BrokerError, Reject};
use crate::net::Mesh;
use crate::net::mailbox::{Replies, WorkerMsg};
use crate::node::Node;
use crate::node::directory::ConnRef;
use crate::node::ratelimit::KeyedBuckets;
use crate::route::{self, Caller, Route};
use crate::services::{ServiceOp, serve_local};
use crate::shard::{Origin, Reply, ShardOp};

pub(crate) use wire::{
    ApiError, ApiResult, Body, Cursor, Page, Path, Query, blocking, page_limit, run_blocking, storage,
};

/// The pseudo worker index of API calls: an op whose origin connection has
/// this worker is answered through [`Replies`], not a socket.
pub(crate) const API_WORKER: usize = usize::MAX;

/// The device id API calls act with (`ShardOp::device`).
pub(crate) const API_DEVICE: &str = "rest-api";

/// The OpenAPI document, as committed (`spec/openapi.yaml`).
const OPENAPI_YAML: &str = include_str!("../../../spec/openapi.yaml");

/// An op submitted to an owner shard, not yet answered ([`Api::submit`]).
#[derive(Debug)]
pub(crate) struct Pending {
    ticket: u64,
    rx: oneshot::Receiver<Reply>,
}

/// Who made an API call (for the audit log and the rate limit).
#[derive(Debug, Clone)]
pub(crate) struct Principal(pub(crate) String);

/// Most principals tracked by the rate limiter (keys + admin users); beyond,
/// a table shard starts over (a burst more for some, never unbounded memory).
const MAX_BUCKETS: usize = 10_000;

/// Shared state of every handler.
#[derive(Debug)]
pub(crate) struct Api {
    pub(crate) node: Arc<Node>,
    pub(crate) mesh: Arc<Mesh>,
    buckets: KeyedBuckets<String>,
    /// The OpenAPI document as JSON (converted once at start).
    openapi: serde_json::Value,
    pub(crate) audit: audit::AuditLog,
}

/// The handle of a running API: its address and thread.
#[derive(Debug)]
pub(crate) struct ApiHandle {
    pub(crate) addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ApiHandle {
    /// Stops the listener and waits for its thread.
    pub(crate) fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ApiHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The OpenAPI document (spec/openapi.yaml) as JSON.
pub(crate) fn openapi_json() -> Result<serde_json::Value, String> {
    serde_yaml_ng::from_str(OPENAPI_YAML).map_err(|e| format!("spec/openapi.yaml: {e}"))
}

/// Binds `[api] listen` and starts the API thread; `None` when it is off.
pub(crate) fn start(node: &Arc<Node>, mesh: &Arc<Mesh>) -> Result<Option<ApiHandle>, BrokerError> {
    let Some(addr) = node.config.api.listen else { return Ok(None) };
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let bound = std_listener.local_addr()?;
    let openapi = openapi_json().map_err(BrokerError::Config)?;
    let api = Arc::new(Api {
        node: Arc::clone(node),
        mesh: Arc::clone(mesh),
        buckets: KeyedBuckets::new(MAX_BUCKETS),
        openapi,
        audit: audit::AuditLog::new(node.store.clone()),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("missive-api")
        .enable_all()
        .build()?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let max_connections = node.config.api.max_connections;
    let app = router(Arc::clone(&api));
    let thread = std::thread::Builder::new().name("missive-api".into()).spawn(move || {
        rt.block_on(async move {
            let listener = match tokio::net::TcpListener::from_std(std_listener) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "api: cannot register the listener");
                    return;
                }
            };
            let listener = listen::Bounded::new(listener, max_connections);
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "api: server failed");
            }
        });
    })?;
    Ok(Some(ApiHandle { addr: bound, stop: Some(stop_tx), thread: Some(thread) }))
}

fn router(api: Arc<Api>) -> Router {
    let v1 = Router::new()
        .merge(users::routes())
        .merge(messages::routes())
        .merge(lifecycle::routes())
        .merge(conversations::routes())
        .merge(relations::routes())
        .merge(groups::routes())
        .merge(moderation::routes())
        .merge(stats::routes())
        .merge(hooks::routes())
        .merge(audit::routes())
        .layer(middleware::from_fn_with_state(Arc::clone(&api), guard));
    Router::new()
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }))
        .route("/readyz", get(ready))
        .route("/openapi.json", get(openapi))
        .merge(v1)
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, ErrorCode::UnknownRequest, "no such endpoint")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::UnknownRequest,
                "method not allowed here",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(api.node.config.api.max_body_bytes))
        .with_state(api)
}

async fn openapi(State(api): State<Arc<Api>>) -> impl IntoResponse {
    axum::Json(api.openapi.clone())
}

async fn ready(State(api): State<Arc<Api>>) -> Response {
    if api.mesh.shutdown.load(Ordering::Acquire) {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::ServerShutdown, "shutting down")
            .into_response();
    }
    axum::Json(serde_json::json!({ "status": "ready", "workers": api.node.workers })).into_response()
}

/// Authorizes, rate-limits and audits every `/v1` call.
async fn guard(State(api): State<Arc<Api>>, mut req: Request, next: Next) -> Response {
    let principal = match authorize(&api, req.headers().get(header::AUTHORIZATION)) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Err(retry_ms) =
        api.buckets.take(&principal.0, api.node.config.api.max_requests_per_sec, Instant::now())
    {
        return ApiError::rate_limited(retry_ms, "too many API requests for this key").into_response();
    }
    let method = req.method().clone();
    let what = format!("{} {}", method, req.uri().path_and_query().map_or("", |p| p.as_str()));
    req.extensions_mut().insert(principal.clone());
    let resp = next.run(req).await;
    if method != axum::http::Method::GET && method != axum::http::Method::HEAD && resp.status().is_success() {
        let status = resp.status().as_u16();
        let audit = api.audit.clone();
        let who = principal.0;
        // The audit write is one small RocksDB write: off the async threads.
        let done = tokio::task::spawn_blocking(move || audit.append(&who, &what, status)).await;
        if !matches!(done, Ok(Ok(()))) {
            tracing::error!("api: audit record not written");
        }
    }
    resp
}

fn authorize(api: &Api, value: Option<&HeaderValue>) -> Result<Principal, ApiError> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::TokenInvalid, m);
    let Some(given) =
        value.and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::trim)
    else {
        return Err(unauthorized("send Authorization: Bearer <API key or admin token>"));
    };
    for k in &api.node.config.api.keys {
        if constant_time_eq(given.as_bytes(), k.key.as_bytes()) {
            return Ok(Principal(format!("key:{}", k.name)));
        }
    }
    let now_s = crate::node::clock::now_ms() / 1000;
    match token::verify(api.node.config.secret.as_bytes(), given, now_s) {
        Ok(c) if c.role == Role::Admin => Ok(Principal(format!("admin:{}", c.user))),
        Ok(_) => {
            Err(ApiError::new(StatusCode::FORBIDDEN, ErrorCode::PermissionDenied, "admin token required"))
        }
        Err(e) => Err(ApiError::new(StatusCode::UNAUTHORIZED, e.code(), e.to_string())),
    }
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Api {
    /// Makes protocol request `op` as `user` (an admin caller when `admin`),
    /// through the route table, and waits for its answer.
    pub(crate) async fn call(&self, user: &UserId, admin: bool, op: Op) -> Reply {
        match route::route(&self.node, Caller { user, admin, since: None }, op)? {
            Route::Owner(owner, op) => self.op(owner, user, op).await,
            Route::Local(q) => {
                let node = Arc::clone(&self.node);
                let user = user.clone();
                tokio::task::spawn_blocking(move || serve_local(&node, &user, q))
                    .await
                    .map_err(|_| Reject::new(ErrorCode::Internal, "query failed"))?
            }
            Route::Sync(_) => Err(Reject::new(ErrorCode::UnknownRequest, "sync is for devices, not the API")),
            Route::Translate(_) => {
                Err(Reject::new(ErrorCode::UnknownRequest, "translation is for devices, not the API"))
            }
            Route::Forward(req) => {
                let node = Arc::clone(&self.node);
                let who = user.clone();
                let now = crate::node::clock::now_ms();
                let planned = tokio::task::spawn_blocking(move || {
                    crate::session::forward::plan(&node, &who, &req, now)
                })
                .await
                .map_err(|_| Reject::new(ErrorCode::Internal, "forward failed"))??;
                self.op(planned.0, user, planned.1).await
            }
        }
    }

    /// Sends service op `op` to shard `owner` acting as `user` and waits for
    /// its answer (at most 30 s: an owner answers every op, so this only
    /// fires if the broker is stopping).
    pub(crate) async fn op(&self, owner: usize, user: &UserId, op: ServiceOp) -> Reply {
        let pending = self.submit(owner, user, op)?;
        self.wait(pending).await
    }

    /// Enqueues service op `op` for shard `owner` without waiting: ops
    /// submitted one after the other reach the owner in that order (one FIFO
    /// inbox), so a batch can be pipelined and then awaited ([`Api::wait`]).
    pub(crate) fn submit(&self, owner: usize, user: &UserId, op: ServiceOp) -> Result<Pending, Reject> {
        let (ticket, rx) = self.node_replies().register();
        let device = DeviceId::new(API_DEVICE.to_owned())
            .map_err(|_| Reject::new(ErrorCode::Internal, "api device id"))?;
        let shard_op = ShardOp {
            origin: Origin::Request {
                conn: ConnRef { worker: API_WORKER, id: ticket },
                request_id: 0,
                cost: 0,
            },
            user: user.clone(),
            device,
            op,
        };
        let Some(sender) = self.mesh.senders.get(owner) else {
            self.node_replies().forget(ticket);
            return Err(Reject::new(ErrorCode::Internal, "no such shard"));
        };
        match sender.try_send(WorkerMsg::Op(Box::new(shard_op))) {
            Ok(()) => {
                let _ = self.mesh.wakers[owner].wake();
                Ok(Pending { ticket, rx })
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.node_replies().forget(ticket);
                Err(Reject::new(ErrorCode::Overloaded, "the broker is busy; retry with backoff"))
            }
        }
    }

    /// Waits for the answer of a submitted op (at most 30 s).
    pub(crate) async fn wait(&self, p: Pending) -> Reply {
        match tokio::time::timeout(Duration::from_secs(30), p.rx).await {
            Ok(Ok(reply)) => reply,
            _ => {
                self.node_replies().forget(p.ticket);
                Err(Reject::new(ErrorCode::Overloaded, "no answer from the owner shard; retry"))
            }
        }
    }

    fn node_replies(&self) -> &Replies {
        &self.mesh.api
    }

    /// The user id of `s`, validated (400 otherwise).
    pub(crate) fn user(&self, s: &str, field: &str) -> ApiResult<UserId> {
        UserId::new(s.to_owned()).map_err(|e| ApiError::invalid(format!("{field}: {e}")))
    }

    /// The system user (`api.system_user`).
    pub(crate) fn system_user(&self) -> ApiResult<UserId> {
        self.user(&self.node.config.api.system_user, "api.system_user")
    }
}

/// A protocol `Ok` result, or the reject as an API error.
pub(crate) fn expect_ok(reply: Reply) -> ApiResult<pb::response::Result> {
    reply.map_err(ApiError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_document_parses() {
        let doc = openapi_json().expect("yaml");
        assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.1")), Some(true));
    }
}
