//! The black-box tests: one integration binary (`blackbox`), a module per
//! service or area, all against the real broker process over loopback
//! (harness: the `missive_tests` library in `tests/src`).
//!
//! | module | what it covers |
//! |---|---|
//! | `admin_messages` | admin REST API, tag messages: send as a user, notices, broadcast (stored once), NDJSON export, import |
//! | `transport::handshake` | connection, framing, handshake, timeouts (Foundation acceptance) |
//! | `transport::websocket` | the WebSocket/HTTP listener |
//! | `transport::quic` | raw QUIC with the Rust SDK, mixed with TCP and WebSocket |
//! | `transport::webtransport` | WebTransport sessions and the one-stream rule |
//! | `transport::ws_throughput` | WebSocket vs TCP throughput (ignored: a measurement) |
//! | `messaging::delivery` | delivery to every device, ordering, idempotent retries, SendMessage validation |
//! | `messaging::offline_sync` | offline catch-up, sync paging and tokens, pull and history |
//! | `messaging::content_depth` | merged content nesting: the deepest allowed content through every read path, deeper refused |
//! | `messaging::paging_bytes` | pull and history pages of large messages stop at the frame budget |
//! | `messaging::receipts_conversations` | read receipts, unread counts, pin/mute/hide/clear, DND |
//! | `users::accounts` | accounts: import, existence, disable, token revocation |
//! | `users::login_policy` | multi-device login policies and kicks |
//! | `users::presence` | presence, status text, subscriptions |
//! | `relations::friends` | profiles and friends |
//! | `relations::blacklist` | the blacklist |
//! | `groups::operations` | groups: roles × operations, modes, mute, transfer, dismiss, mentions, receipts |
//! | `groups::policy` | the blacklist across groups, closed groups refuse invitations and applications |
//! | `groups::large` | a 5 000-member group |
//! | `lifecycle::changes` | recall, edit, delete (for me, for everyone), ClearAllMessages, reactions and extensions; offline devices through sync and PullUpdates |
//! | `moderation::words` | sensitive-word lists: block / replace / flag over TCP, WebSocket, REST; live changes, restart, bad input, auth |
//! | `moderation::mutes` | global mutes: refused sends, expiry, unmute, paging |
//! | `admin_groups` | the admin REST API's group endpoints: auth, bad input, no-consent adds, effects seen by members, paging |
//! | `clients::sdk_client` | the Rust SDK's resilient `Client` |
//! | `clients::missivectl` | `missivectl` (tokens, messages, users, relations, presence) |
//! | `clients::missivectl_groups` | `missivectl group ...` |
//! | `robustness::crash` | durability across SIGKILL, clean SIGTERM |
//! | `robustness::slow_consumer` | a flooded reader is closed with bounded memory |
//! | `robustness::fd_limit` | refusal at the broker's open-file limit |
//! | `robustness::disk` | a full data disk (tmpfs), a corrupted table, online backup and restore |
//! | `admin_api` | the admin REST API: users, relations, conversations, stats; auth, rate limit, audit, OpenAPI document |
//! | `spec_coverage` | spec/PROTOCOL.md documents every code and kind of the schema |
//! | `spec_corrections` | the spec corrections of issue 13, each test citing its rule id |
//! | `webhooks` | before.send (reject, modify, timeouts, ordering), after-events across kill -9, retries, dead letters, replay, signatures, `/v1/webhooks` |
//! | `lifecycle` | the message lifecycle (spec section 18): send flags and content limits, forward |
//! | `config_cli` | the command line and configuration: one-line errors, `--check-config` (docs/CONFIG.md) |
//!
//! Run one area with a filter: `cargo test --release --workspace --test blackbox -- relations::`.
//!
//! Sharing one process: every test starts its own broker (its own temp dir,
//! ports 0 on loopback) and its own clients, so tests run in parallel like
//! they did as separate binaries. Nothing here changes process-wide state:
//! no environment variable is set, no rlimit of this process is changed
//! (`fd_limit` lowers the limit of its own broker child with `prlimit
//! --pid`), no signal handler, current directory or global logger is
//! installed. Keep it that way: a test that needs process-wide state belongs
//! in its own `[[test]]` binary.

mod admin_api;
mod admin_groups;
mod admin_messages;
mod clients;
mod config_cli;
mod groups;
mod lifecycle;
mod messaging;
mod moderation;
mod relations;
mod robustness;
mod spec_corrections;
mod spec_coverage;
mod transport;
mod users;
mod webhooks;
