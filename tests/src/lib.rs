//! Black-box test harness for Missive: a real broker process on loopback and a
//! minimal synchronous protocol client.
//!
//! Role: the integration tests in `tests/tests/blackbox/` (one test binary,
//! `blackbox`, a module per service) start the real broker CLI (the
//! `missive-under-test` binary of this package, same code as `missive`) on
//! `127.0.0.1:0` with RocksDB in a temporary directory, and talk to it over
//! TCP with [`RawClient`], which only uses `missive_protocol` (codec, prost
//! types, tokens) — never the SDK and never the broker's internals. Storage is
//! never mocked.
//!
//! Modules (every public name is re-exported here, so tests `use missive_tests::*`):
//! - `broker`: [`BrokerProc`] spawns the broker ([`broker_binary`]), waits
//!   (bounded) for its `missive listening tcp=ADDR` line on stdout, captures
//!   stderr (printed when a test panics), can `kill9` (SIGKILL), `terminate`
//!   (SIGTERM, asserts a clean exit) and `restart` on the same data directory;
//!   dropping it kills the process. Also logins on a broker (`client_on`, `admin`).
//! - `tokens`: [`mint`] / [`mint_with`] / [`mint_claims`]: access tokens signed
//!   with the secret the broker uses.
//! - `values`: builders and readers of protocol values (conversation ids,
//!   contents, frames, Hello).
//! - `assertions`: [`assert_error`], [`assert_dense`], [`must`], ...
//! - `client`: [`RawClient`], one TCP connection: frames in and out, `hello`,
//!   requests with response matching by id (pushes that arrive meanwhile are
//!   kept in [`RawClient::pushes`]), pipelining; its submodules hold the typed
//!   helpers of each request group (messages, conversations, sync, accounts,
//!   presence, relations, groups) and the waits for pushes.
//! - [`api`]: [`api::Api`], a blocking client of the admin REST API.
//! - [`netns`]: [`netns::NetLab`], two network namespaces joined by a lossy,
//!   delaying, reordering user-space relay (the weak-network test).
//! - [`translate_provider`]: a real translation provider (spec 18.10) on loopback.
//! - [`ws`]: the same client over WebSocket (or WSS); [`wt`]: WebTransport / raw QUIC
//!   probes; [`tls`]: test certificates and TLS client streams.
//!
//! Invariants: every wait is bounded by a timeout ([`WAIT`] unless told) and
//! returns as soon as its condition holds; nothing here sleeps for a fixed time
//! to "let things settle"; no timing is asserted (performance is measured by
//! the bench crate).

use std::time::Duration;

pub mod api;
pub mod hook_receiver;
pub mod netns;
pub mod tls;
pub mod translate_provider;
pub mod ws;
pub mod wt;

mod assertions;
mod broker;
mod client;
mod tokens;
mod values;

pub use missive_protocol::ErrorCode;
pub use missive_protocol::pb::Platform;

pub use assertions::{assert_batch_bounds, assert_dense, assert_error, must, presence_of};
pub use broker::{
    ADMIN_USER, BrokerOpts, BrokerProc, Listening, LogHandle, STARTUP_TIMEOUT, broker_binary, dir_bytes,
};
pub use client::{RawClient, Recv, SyncAll, SyncFull, outcome};
pub use tokens::{SECRET, mint, mint_admin, mint_claims, mint_issued_at, mint_with, now_ms, now_secs};
pub use values::{direct, ex_map, frame_of, gconv, hello_msg, platforms_of, text, text_of};

/// Default bound for a wait on the broker (responses, pushes, closes). Generous
/// because tests run in parallel on small, loaded machines; waits return as
/// soon as their condition holds.
pub const WAIT: Duration = Duration::from_secs(20);

/// How long a negative check ("no such push arrives") listens. Only used
/// where no positive barrier can prove absence.
pub const QUIET: Duration = Duration::from_millis(1500);
