//! Webhooks: after-event delivery and `before.send` decisions
//! (spec/PROTOCOL.md "Webhooks").
//!
//! Role: the node's only outgoing HTTP. One `missive-hooks` tokio runtime
//! (2 threads, never a worker) runs
//! - the dispatcher ([`deliver`]): one task per endpoint scans its outbox
//!   (`ops/outbox`) in event-id order, a bounded window at a time, POSTs
//!   each event signed ([`sign`]), deletes it on 2xx, retries with
//!   exponential backoff and full jitter, and after `max_attempts` moves it
//!   to the dead letters in one batch;
//! - translations ([`translate`]): the query pool hands a cache miss here;
//!   the provider's text goes to the conversation's owner shard (cached,
//!   answered), a failure to the connection's worker;
//! - `before.send` ([`before`]): the I/O edge hands a routed send here
//!   instead of to its owner shard; the decision (allow, reject, modify, or
//!   the configured failure mode) is taken here and the op is forwarded to
//!   the owner's inbox, or the refusal goes to the connection's worker.
//!
//! Invariants: no worker ever waits for an endpoint; requests in flight per
//! endpoint ≤ `webhooks.max_concurrency`; attempts per event ≤
//! `webhooks.max_attempts` (persisted in the record, so restarts do not
//! reset them); pending `before.send` decisions ≤
//! `webhooks.before_send_max_pending`; a connection has at most one
//! `before.send` in flight (its sends keep their order); provider calls in
//! flight ≤ `translate.max_concurrency`.

pub(crate) mod before;
pub(crate) mod deliver;
pub(crate) mod sign;
pub(crate) mod translate;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Weak};
use std::time::Duration;

use missive_storage::OpsSpace;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::error::BrokerError;
use crate::net::Mesh;
use crate::node::Node;
use crate::node::directory::ConnRef;
use crate::node::hooks::{Endpoint, event_id_of};

/// Most endpoints a node keeps (the API refuses more).
pub(crate) const MAX_ENDPOINTS: usize = 100;

/// The webhook runtime's shared state.
#[derive(Debug)]
pub(crate) struct Hooks {
    pub(crate) node: Arc<Node>,
    mesh: Weak<Mesh>,
    rt: tokio::runtime::Handle,
    client: reqwest::Client,
    /// `before.send` jobs per connection, in arrival order (front = in flight).
    queues: Mutex<HashMap<ConnRef, VecDeque<before::Job>>>,
    /// `before.send` decisions pending node-wide.
    pending: AtomicUsize,
    /// The translation provider's client (`translate.timeout_ms`).
    translate_client: reqwest::Client,
    /// Provider calls in flight node-wide (≤ `translate.max_concurrency`).
    translating: AtomicUsize,
}

/// The running webhook runtime (its thread).
#[derive(Debug)]
pub(crate) struct HooksHandle {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HooksHandle {
    /// Stops the runtime (pending deliveries stay in the outbox).
    pub(crate) fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HooksHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Loads the stored endpoints into the node's registry.
pub(crate) fn load(node: &Node) -> Result<(), BrokerError> {
    let rows = node.store.ops_scan(OpsSpace::Hook, b"", None, MAX_ENDPOINTS * 2)?;
    let all = rows
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_slice::<Endpoint>(&v).ok())
        .map(Arc::new)
        .collect::<Vec<Arc<Endpoint>>>();
    // Event ids continue above every pending one (one reverse seek per endpoint and list).
    for e in &all {
        let mut prefix = e.id.as_bytes().to_vec();
        prefix.push(0);
        let mut end = e.id.as_bytes().to_vec();
        end.push(1);
        for space in [OpsSpace::Outbox, OpsSpace::Dead] {
            let last = node.store.ops_scan_rev(space, Some(&end), 1)?;
            if let Some(n) =
                last.first().filter(|(id, _)| id.starts_with(&prefix)).and_then(|(id, _)| event_id_of(id))
            {
                node.hooks.seed_event_id(n);
            }
        }
    }
    node.hooks.set(all);
    Ok(())
}

/// Starts the webhook runtime.
pub(crate) fn start(node: &Arc<Node>, mesh: &Arc<Mesh>) -> Result<(Arc<Hooks>, HooksHandle), BrokerError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("missive-hooks")
        .enable_all()
        .build()?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(node.config.webhooks.request_timeout_ms))
        .connect_timeout(Duration::from_millis(node.config.webhooks.request_timeout_ms.min(5000)))
        .user_agent(concat!("missive-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| BrokerError::Config(format!("webhooks: HTTP client: {e}")))?;
    let translate_client = translate::client(node.config.translate.timeout_ms)
        .map_err(|e| BrokerError::Config(format!("translate: HTTP client: {e}")))?;
    let hooks = Arc::new(Hooks {
        node: Arc::clone(node),
        mesh: Arc::downgrade(mesh),
        rt: rt.handle().clone(),
        client,
        queues: Mutex::new(HashMap::new()),
        pending: AtomicUsize::new(0),
        translate_client,
        translating: AtomicUsize::new(0),
    });
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let h = Arc::clone(&hooks);
    let thread = std::thread::Builder::new().name("missive-hooks".into()).spawn(move || {
        rt.block_on(async move {
            let dispatcher = tokio::spawn(deliver::run(h));
            let _ = stop_rx.await;
            dispatcher.abort();
        });
        rt.shutdown_timeout(Duration::from_millis(200));
    })?;
    Ok((hooks, HooksHandle { stop: Some(stop_tx), thread: Some(thread) }))
}

/// The headers of a signed webhook request.
pub(crate) fn signed_request(
    client: &reqwest::Client,
    ep: &Endpoint,
    event_id: &str,
    event_type: &str,
    body: Vec<u8>,
    replay_window_secs: u64,
) -> reqwest::RequestBuilder {
    let ts = crate::node::clock::now_ms() / 1000;
    let sig = sign::signature(ep.secret.as_bytes(), ts, &body);
    client
        .post(&ep.url)
        .header("content-type", "application/json")
        .header("Missive-Event-Id", event_id)
        .header("Missive-Event-Type", event_type)
        .header("Missive-Timestamp", ts.to_string())
        .header("Missive-Signature", sig)
        .header("Missive-Replay-Window", replay_window_secs.to_string())
        .body(body)
}
