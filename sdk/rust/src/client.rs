//! Resilient high-level client.
//!
//! Role: what an application uses. A [`Client`] owns one background thread
//! (the supervisor) that holds the current [`Connection`], processes its
//! pushes, keeps it alive with pings, and reconnects with exponential backoff
//! and jitter when it drops. After every (re)connect it runs the sync
//! algorithm of spec/PROTOCOL.md section 9 from the stored sync token and
//! pulls every missing message. Application threads send typed requests
//! concurrently ([`Client::call`] with any [`Call`], or the methods that also
//! update the cached state); requests, sends included, are resent unchanged
//! (same `client_msg_id`) across timeouts, retryable errors and reconnects
//! until answered ([S-4], [Q-6]).
//!
//! Size: over 800 lines on purpose — the supervisor's connect, sync, resume
//! and retry steps share one private state (`Inner`) and one lock order;
//! splitting them across files would spread that invariant (see the
//! Invariants below) over several places.
//!
//! Invariants:
//! - per conversation, [`ClientEvent::Message`] events are emitted in
//!   ascending seq order, each seq at most once per [`LocalState`]; the
//!   contiguous seq `L` (`LocalState::max_seq`) only moves forward, and only
//!   under the tracker lock, together with the emission;
//! - the sync token in [`LocalState`] is stored only after its page was
//!   processed (states stored, missing messages pulled and emitted) ([Y-9]);
//! - only the supervisor thread emits message/state events; the event channel
//!   is unbounded (never blocks the supervisor), so the application must drain
//!   [`Client::events`];
//! - a `Close` with a non-retryable code (e.g. TOKEN_INVALID, TOKEN_EXPIRED,
//!   KICKED) stops the client for good ([C-11]): the last event is then
//!   [`ClientEvent::Kicked`] (authentication codes) or [`ClientEvent::Closed`].
//! - exception: a `Close{2005 KICKED}` within [`SELF_KICK_WINDOW`] of a
//!   handshake this client abandoned (timed out after `Hello` may have been
//!   sent) is taken as that late login of its own ending the newer session
//!   ([L-2] note): the client reconnects, once per abandoned handshake;
//! - a message the client sent itself is not emitted when its `SendAck` seq is
//!   `L + 1` (the caller has the ack; `L` advances); otherwise it arrives later
//!   through a pull, like any other message ([Y-10], [S-6]).

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, select, unbounded};
use missive_protocol::{Call, ClientMsgId, ErrorCode};
use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::conn::{ConnectOptions, Connection, Event};
use crate::error::{SdkError, close_code_retryable};
use crate::pb;

/// How long after an abandoned (timed-out) handshake a KICKED is taken as
/// that late login of this client's own ending its newer session. A `Hello`
/// retransmitted over a lossy link can land minutes later.
pub const SELF_KICK_WINDOW: Duration = Duration::from_secs(300);

/// What the application persists between runs (e.g. as JSON) to resume:
/// the sync token and, per conversation, the contiguous seq `L`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalState {
    /// Last processed sync token; `""` for a fresh device (sync from the start).
    #[serde(default)]
    pub sync_token: String,
    /// Per conversation id: every readable message up to this seq was delivered.
    #[serde(default)]
    pub max_seq: HashMap<String, u64>,
    /// Per conversation id: every message update up to this update seq was
    /// applied (spec [UP-2]); followed with `PullUpdates`.
    #[serde(default)]
    pub update_seq: HashMap<String, u64>,
}

/// Tuning of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// How long a request (send, history, ...) keeps retrying across timeouts,
    /// retryable errors and reconnects before giving up.
    pub retry_timeout: Duration,
    /// First reconnect / retry backoff; doubles up to `backoff_max` (with jitter).
    pub backoff_initial: Duration,
    /// Largest backoff.
    pub backoff_max: Duration,
    /// Messages per pull page when catching up (0 = server default).
    pub page_limit: u32,
    /// Conversations per sync page (0 = server default).
    pub sync_limit: u32,
    /// How every (re)connection is opened; `None` = TCP to `ConnectOptions::addr`
    /// (e.g. [`crate::quic::dialer`] for raw QUIC).
    pub dial: Option<Dial>,
}

/// Opens one handshaken [`Connection`] from [`ConnectOptions`]: the transport
/// a [`Client`] uses for each (re)connection.
#[derive(Clone)]
pub struct Dial(Arc<DialFn>);

/// The connect function inside a [`Dial`].
type DialFn = dyn Fn(&ConnectOptions) -> Result<Connection, SdkError> + Send + Sync;

impl Dial {
    /// Wraps a connect function.
    pub fn new(f: impl Fn(&ConnectOptions) -> Result<Connection, SdkError> + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Opens a connection.
    pub fn connect(&self, opts: &ConnectOptions) -> Result<Connection, SdkError> {
        (self.0)(opts)
    }
}

impl std::fmt::Debug for Dial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dial(..)")
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            retry_timeout: Duration::from_secs(30),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            page_limit: 100,
            sync_limit: 0,
            dial: None,
        }
    }
}

/// Events of a [`Client`].
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// A handshake succeeded (initially and after every reconnect); the
    /// catch-up sync follows.
    Connected {
        /// The server's handshake answer.
        hello: pb::HelloOk,
    },
    /// The connection dropped (code 0 = without a `Close`); the client reconnects.
    Disconnected {
        /// `Close` code, or 0.
        code: u32,
        /// Reason.
        message: String,
    },
    /// Closed for an authentication reason (TOKEN_INVALID, TOKEN_EXPIRED,
    /// TOKEN_DEVICE_MISMATCH, ACCOUNT_DISABLED, KICKED, ACCOUNT_NOT_FOUND,
    /// TOKEN_REVOKED). The client stopped.
    Kicked {
        /// `Close` code.
        code: u32,
        /// Reason.
        message: String,
    },
    /// Closed with another non-retryable code. The client stopped.
    Closed {
        /// `Close` code.
        code: u32,
        /// Reason.
        message: String,
    },
    /// A new message (pushed or pulled), in seq order per conversation.
    Message(pb::Message),
    /// A participant read a conversation.
    ReadReceipt(pb::ReadReceipt),
    /// This user's state of a conversation (from sync or another device).
    Conversation(pb::ConversationState),
    /// This user's settings (from sync or another device).
    Settings(pb::UserSettings),
    /// The server is ending this session (`Push{kicked}`); a `Kicked` or
    /// `Closed` event with the `Close` code follows.
    SessionKicked(pb::Kicked),
    /// A profile changed (the user's own on another device, or a friend's).
    Profile(pb::Profile),
    /// A relation changed (friend, request or blacklist), or one from sync.
    Relation(pb::Relation),
    /// A subscribed user's (or this user's own) presence changed.
    Presence(pb::Presence),
    /// A group application or invitation (see `Event::GroupApplication`).
    GroupApplication(pb::GroupApplication),
    /// A message was recalled, edited, deleted, reacted to or extended
    /// (spec section 18); from a push or from `PullUpdates` after a sync.
    MessageUpdate(pb::MessageUpdate),
    /// Someone is typing (transient, spec 18.7).
    Typing(pb::TypingEvent),
    /// The 1:1 peer received up to a seq (spec 18.7a).
    DeliveryReceipt(pb::DeliveryReceipt),
    /// The current form of a message that changed while this device was
    /// away (from `PullUpdates` after a sync or a conversation push, [UP-2]).
    MessageChanged(pb::Message),
}

fn is_auth_code(code: u32) -> bool {
    matches!(
        ErrorCode::from_u32(code),
        Some(
            ErrorCode::TokenInvalid
                | ErrorCode::TokenExpired
                | ErrorCode::TokenDeviceMismatch
                | ErrorCode::AccountDisabled
                | ErrorCode::Kicked
                | ErrorCode::AccountNotFound
                | ErrorCode::TokenRevoked
        )
    )
}

/// Where an incoming message stands relative to the contiguous seq `L` ([Y-10]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// `seq <= L`: already delivered.
    Duplicate,
    /// `seq == L + 1`.
    Next,
    /// `seq > L + 1`: `from..=to` must be pulled first.
    Gap { from: u64, to: u64 },
}

/// Local delivery state and caches. Pure logic, no I/O.
#[derive(Debug, Default)]
struct Tracker {
    state: LocalState,
    convs: HashMap<String, pb::ConversationState>,
    settings: Option<pb::UserSettings>,
    user_id: String,
}

impl Tracker {
    fn local(&self, conv: &str) -> u64 {
        self.state.max_seq.get(conv).copied().unwrap_or(0)
    }

    fn classify(&self, conv: &str, seq: u64) -> Delivery {
        let l = self.local(conv);
        if seq <= l {
            Delivery::Duplicate
        } else if seq == l + 1 {
            Delivery::Next
        } else {
            Delivery::Gap { from: l + 1, to: seq - 1 }
        }
    }

    /// `L = max(L, seq)`.
    fn skip_to(&mut self, conv: &str, seq: u64) {
        if seq > self.local(conv) {
            self.state.max_seq.insert(conv.to_owned(), seq);
        }
    }

    /// Takes a message whose gap (if any) was handled: returns whether it is
    /// new (then `L = seq` and the cached state reflects it).
    fn accept(&mut self, m: &pb::Message) -> bool {
        if m.seq <= self.local(&m.conv_id) {
            return false;
        }
        self.state.max_seq.insert(m.conv_id.clone(), m.seq);
        let s = self
            .convs
            .entry(m.conv_id.clone())
            .or_insert_with(|| pb::ConversationState { conv_id: m.conv_id.clone(), ..Default::default() });
        if m.seq > s.max_seq {
            s.max_seq = m.seq;
            s.last_message = Some(m.clone());
            s.hidden = false;
        }
        if m.sender == self.user_id {
            s.read_seq = s.read_seq.max(m.seq);
        }
        s.unread = s.max_seq.saturating_sub(s.read_seq.max(s.cleared_seq));
        true
    }

    /// Own send acknowledged: advance `L` only if it is the next seq.
    fn on_ack(&mut self, ack: &pb::SendAck) {
        if ack.seq == self.local(&ack.conv_id) + 1 {
            self.state.max_seq.insert(ack.conv_id.clone(), ack.seq);
        }
        if let Some(s) = self.convs.get_mut(&ack.conv_id) {
            s.max_seq = s.max_seq.max(ack.seq);
            s.read_seq = s.read_seq.max(ack.seq);
            s.hidden = false;
            s.unread = s.max_seq.saturating_sub(s.read_seq.max(s.cleared_seq));
        }
    }

    /// Stores a server state; history <= cleared_seq is unreadable, so `L`
    /// moves over it.
    fn apply_state(&mut self, s: &pb::ConversationState) {
        self.skip_to(&s.conv_id, s.cleared_seq);
        self.convs.insert(s.conv_id.clone(), s.clone());
    }

    fn apply_receipt(&mut self, r: &pb::ReadReceipt) {
        if let Some(s) = self.convs.get_mut(&r.conv_id) {
            if r.reader == self.user_id {
                s.read_seq = s.read_seq.max(r.read_seq);
                s.unread = s.max_seq.saturating_sub(s.read_seq.max(s.cleared_seq));
            } else {
                s.peer_read_seq = s.peer_read_seq.max(r.read_seq);
            }
        }
    }

    /// A 1:1 delivery receipt from the peer (spec [DR-3]): the cached
    /// state's `peer_delivered_seq` only moves forward.
    fn apply_delivery(&mut self, d: &pb::DeliveryReceipt) {
        if let Some(s) = self.convs.get_mut(&d.conv_id)
            && d.user_id != self.user_id
        {
            s.peer_delivered_seq = s.peer_delivered_seq.max(d.delivered_seq);
        }
    }

    /// Applies one pull page of the range `from..=to`. Returns the messages
    /// to emit (in order) and where to continue, `None` once the range is done.
    /// Seqs of the range the server did not return (below
    /// `min_readable_seq`, or roamed out) are unreadable and skipped.
    fn apply_page(
        &mut self,
        conv: &str,
        from: u64,
        to: u64,
        page: pb::Messages,
        page_limit: u32,
    ) -> (Vec<pb::Message>, Option<u64>) {
        if page.min_readable_seq > 1 {
            self.skip_to(conv, (page.min_readable_seq - 1).min(to));
        }
        let mut out = Vec::with_capacity(page.messages.len());
        let mut last = None;
        for m in page.messages {
            if m.conv_id != conv || m.seq < from || m.seq > to {
                continue;
            }
            last = Some(m.seq);
            if self.accept(&m) {
                out.push(m);
            }
        }
        if page.more {
            // Progress even on an empty page: continue after what it covered.
            let next = match last {
                Some(s) => s + 1,
                None => from.max(page.min_readable_seq) + u64::from(page_limit.max(1)),
            };
            if next <= to {
                return (out, Some(next.max(self.local(conv) + 1)));
            }
        }
        self.skip_to(conv, to.min(page.max_seq.max(last.unwrap_or(0))));
        (out, None)
    }
}

/// The current connection and the client's run state.
#[derive(Debug, Default)]
struct Link {
    conn: Option<Arc<Connection>>,
    hello: Option<pb::HelloOk>,
    /// Set when the client stopped for good: the terminal `(code, message)`.
    ended: Option<(u32, String)>,
    stopped: bool,
}

#[derive(Debug)]
struct Inner {
    opts: ConnectOptions,
    config: ClientConfig,
    /// When a handshake of this client last timed out (its `Hello` may still
    /// reach the server and end the next session: [L-2] note); taken by the
    /// first KICKED it explains.
    abandoned_handshake: Mutex<Option<Instant>>,
    link: Mutex<Link>,
    link_cv: Condvar,
    track: Mutex<Tracker>,
    events: Sender<ClientEvent>,
}

/// How serving one connection ended.
enum End {
    Stop,
    Closed(u32, String),
}

fn end_of(e: &SdkError) -> (u32, String) {
    match e {
        SdkError::Closed { code, message } => (*code, message.clone()),
        other => (0, other.to_string()),
    }
}

fn jitter(d: Duration) -> Duration {
    let ms = d.as_millis() as u64;
    Duration::from_millis(ms / 2 + rand::random_range(0..=ms / 2))
}

impl Inner {
    /// Opens a connection with the configured [`Dial`], or over TCP.
    fn dial(&self) -> Result<Connection, SdkError> {
        let res = match &self.config.dial {
            Some(d) => d.connect(&self.opts),
            None => Connection::connect(&self.opts),
        };
        if matches!(res, Err(SdkError::Timeout)) {
            *self.abandoned_handshake.lock() = Some(Instant::now());
        }
        res
    }

    /// Whether a close with `code` ends the client for good. A KICKED soon
    /// after an abandoned handshake is that late login of this same client
    /// (it names our own device, [L-2]), so it is retryable, once.
    fn is_terminal(&self, code: u32) -> bool {
        if close_code_retryable(code) {
            return false;
        }
        if code == ErrorCode::Kicked.as_u32() {
            let mut abandoned = self.abandoned_handshake.lock();
            if abandoned.is_some_and(|t| t.elapsed() < SELF_KICK_WINDOW) {
                *abandoned = None;
                warn!("kicked by a late login of an abandoned handshake of this client; reconnecting");
                return false;
            }
        }
        true
    }

    fn emit(&self, ev: ClientEvent) {
        let _ = self.events.send(ev);
    }

    /// Makes `conn` the current connection; refuses when the client stopped.
    fn publish(&self, conn: &Arc<Connection>) -> Result<(), SdkError> {
        {
            let mut link = self.link.lock();
            if link.stopped {
                conn.shutdown();
                return Err(SdkError::Closed { code: 0, message: "client closed".to_owned() });
            }
            link.conn = Some(Arc::clone(conn));
            link.hello = Some(conn.hello_ok().clone());
            self.link_cv.notify_all();
        }
        self.track.lock().user_id = conn.user_id().to_owned();
        self.emit(ClientEvent::Connected { hello: conn.hello_ok().clone() });
        Ok(())
    }

    fn unpublish(&self, conn: &Arc<Connection>) {
        let mut link = self.link.lock();
        if link.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            link.conn = None;
        }
        self.link_cv.notify_all();
    }

    /// Stops the client for good after a non-retryable close.
    fn terminate(&self, code: u32, message: String) {
        {
            let mut link = self.link.lock();
            link.conn = None;
            link.ended = Some((code, message.clone()));
            self.link_cv.notify_all();
        }
        warn!(code, %message, "connection closed for good");
        if is_auth_code(code) {
            self.emit(ClientEvent::Kicked { code, message });
        } else {
            self.emit(ClientEvent::Closed { code, message });
        }
    }

    /// Handshake, publish, catch up. On a catch-up failure the connection is
    /// dropped again (and `Disconnected` emitted).
    fn establish(&self) -> Result<Arc<Connection>, SdkError> {
        let conn = Arc::new(self.dial()?);
        self.publish(&conn)?;
        if let Err(e) = self.catch_up(&conn) {
            self.unpublish(&conn);
            conn.shutdown();
            let (code, message) = end_of(&e);
            if close_code_retryable(code) {
                self.emit(ClientEvent::Disconnected { code, message });
            }
            return Err(e);
        }
        Ok(conn)
    }

    /// The sync algorithm ([Y-9] steps 2..8).
    fn catch_up(&self, conn: &Connection) -> Result<(), SdkError> {
        let mut token = self.track.lock().state.sync_token.clone();
        loop {
            let req = pb::SyncRequest { sync_token: token.clone(), limit: self.config.sync_limit };
            let page = match conn.call(req) {
                Ok(p) => p,
                Err(SdkError::Server { code, .. })
                    if code == ErrorCode::InvalidSyncToken.as_u32() && !token.is_empty() =>
                {
                    debug!("sync token refused; syncing from the start");
                    token.clear();
                    continue;
                }
                Err(e) => return Err(e),
            };
            for s in page.conversations {
                let behind = {
                    let mut t = self.track.lock();
                    t.apply_state(&s);
                    s.max_seq > t.local(&s.conv_id)
                };
                let fresh = self.track.lock().local(&s.conv_id) == 0;
                if behind {
                    self.fill(conn, &s.conv_id, s.max_seq)?;
                }
                self.follow_updates(conn, &s.conv_id, s.update_seq, fresh)?;
                self.emit(ClientEvent::Conversation(s));
            }
            if let Some(settings) = page.settings {
                self.track.lock().settings = Some(settings);
                self.emit(ClientEvent::Settings(settings));
            }
            for r in page.relations {
                self.emit(ClientEvent::Relation(r));
            }
            for p in page.profiles {
                self.emit(ClientEvent::Profile(p));
            }
            self.track.lock().state.sync_token = page.sync_token.clone();
            token = page.sync_token;
            if !page.more {
                return Ok(());
            }
        }
    }

    /// Pulls and emits everything of `conv` after `L` up to `to`, in pages.
    fn fill(&self, conn: &Connection, conv: &str, to: u64) -> Result<(), SdkError> {
        let mut from = self.track.lock().local(conv) + 1;
        while from <= to {
            let req = pb::PullRequest {
                conv_id: conv.to_owned(),
                from_seq: from,
                to_seq: to,
                limit: self.config.page_limit,
            };
            let page = conn.call(req)?;
            let mut t = self.track.lock();
            let (msgs, next) = t.apply_page(conv, from, to, page, self.config.page_limit);
            for m in msgs {
                self.emit(ClientEvent::Message(m));
            }
            match next {
                Some(n) => from = n,
                None => break,
            }
        }
        Ok(())
    }

    /// Follows a conversation's update log ([UP-2]) up to `target`: pages of
    /// `PullUpdates`, each changed message emitted as
    /// [`ClientEvent::MessageChanged`]. A conversation this device never held
    /// (`fresh`) only records `target`: its pulls returned current forms.
    fn follow_updates(
        &self,
        conn: &Connection,
        conv: &str,
        target: u64,
        fresh: bool,
    ) -> Result<(), SdkError> {
        let mut after = self.track.lock().state.update_seq.get(conv).copied().unwrap_or(0);
        if after >= target {
            return Ok(());
        }
        if fresh {
            self.track.lock().state.update_seq.insert(conv.to_owned(), target);
            return Ok(());
        }
        // Bounded: each page moves `after` forward or ends the loop.
        for _ in 0..10_000 {
            let page = conn.call(pb::PullUpdates {
                conv_id: conv.to_owned(),
                after_update_seq: after,
                limit: self.config.page_limit,
            })?;
            for m in page.messages {
                self.emit(ClientEvent::MessageChanged(m));
            }
            let next = page.update_seq.max(after);
            self.track.lock().state.update_seq.insert(conv.to_owned(), next);
            if !page.more || next == after {
                break;
            }
            after = next;
        }
        Ok(())
    }

    /// A pushed message: gap rule, then emit.
    fn on_message(
        &self,
        conn: &Connection,
        m: pb::Message,
        acks: &mut HashMap<String, u64>,
    ) -> Result<(), SdkError> {
        if m.seq == 0 {
            // An online_only message ([MF-1]): never stored, outside the seq order.
            self.emit(ClientEvent::Message(m));
            return Ok(());
        }
        let delivery = self.track.lock().classify(&m.conv_id, m.seq);
        match delivery {
            Delivery::Duplicate => return Ok(()),
            Delivery::Next => {}
            Delivery::Gap { to, .. } => match self.fill(conn, &m.conv_id, to) {
                Ok(()) => {}
                // A non-retryable refusal will not heal: accept the hole.
                Err(e) if !e.is_retryable() => warn!(conv = %m.conv_id, error = %e, "gap pull failed"),
                Err(e) => return Err(e),
            },
        }
        let mut t = self.track.lock();
        if t.accept(&m) {
            acks.insert(m.conv_id.clone(), m.seq);
            self.emit(ClientEvent::Message(m));
        }
        Ok(())
    }

    fn handle(&self, conn: &Connection, ev: Event, acks: &mut HashMap<String, u64>) -> Result<(), SdkError> {
        match ev {
            Event::Message(m) => self.on_message(conn, m, acks)?,
            Event::ReadReceipt(r) => {
                self.track.lock().apply_receipt(&r);
                self.emit(ClientEvent::ReadReceipt(r));
            }
            Event::Conversation(s) => {
                let behind = {
                    let mut t = self.track.lock();
                    t.apply_state(&s);
                    s.max_seq > t.local(&s.conv_id)
                };
                if behind {
                    match self.fill(conn, &s.conv_id, s.max_seq) {
                        Ok(()) => {}
                        Err(e) if !e.is_retryable() => warn!(conv = %s.conv_id, error = %e, "pull failed"),
                        Err(e) => return Err(e),
                    }
                }
                match self.follow_updates(conn, &s.conv_id, s.update_seq, false) {
                    Ok(()) => {}
                    Err(e) if !e.is_retryable() => {
                        warn!(conv = %s.conv_id, error = %e, "pull updates failed")
                    }
                    Err(e) => return Err(e),
                }
                self.emit(ClientEvent::Conversation(s));
            }
            Event::Settings(s) => {
                self.track.lock().settings = Some(s);
                self.emit(ClientEvent::Settings(s));
            }
            Event::Kicked(k) => self.emit(ClientEvent::SessionKicked(k)),
            Event::Profile(p) => self.emit(ClientEvent::Profile(p)),
            Event::Relation(r) => self.emit(ClientEvent::Relation(r)),
            Event::Presence(p) => self.emit(ClientEvent::Presence(p)),
            Event::GroupApplication(a) => self.emit(ClientEvent::GroupApplication(a)),
            Event::MessageUpdate(u) => self.emit(ClientEvent::MessageUpdate(u)),
            Event::Typing(t) => self.emit(ClientEvent::Typing(t)),
            Event::DeliveryReceipt(d) => {
                self.track.lock().apply_delivery(&d);
                self.emit(ClientEvent::DeliveryReceipt(d));
            }
            Event::Closed { code, message } => return Err(SdkError::Closed { code, message }),
        }
        Ok(())
    }

    /// Processes one connection's events until it ends or the client stops.
    fn serve(&self, conn: &Connection, stop: &Receiver<()>) -> End {
        let hello = conn.hello_ok();
        let secs = |v: u32, default: u64| Duration::from_secs(if v == 0 { default } else { u64::from(v) });
        let ping_every = secs(hello.ping_interval_secs, 30);
        let idle = secs(hello.idle_timeout_secs, 90);
        let mut next_ping = Instant::now() + ping_every;
        let mut acks: HashMap<String, u64> = HashMap::new();
        loop {
            let wait = next_ping.saturating_duration_since(Instant::now());
            select! {
                recv(stop) -> _ => return End::Stop,
                recv(conn.events()) -> ev => {
                    let ev = match ev {
                        Ok(ev) => ev,
                        Err(_) => return End::Closed(0, "connection lost".to_owned()),
                    };
                    if let Err(e) = self.handle(conn, ev, &mut acks) {
                        let (code, message) = end_of(&e);
                        return End::Closed(code, message);
                    }
                }
                default(wait) => {}
            }
            if Instant::now() >= next_ping {
                // [K-4]: nothing received for the idle timeout although we ping.
                if conn.last_frame_age() > idle {
                    return End::Closed(0, "no frame from the server within the idle timeout".to_owned());
                }
                // [K-3]: keep the server's idle timer from expiring.
                if let Err(e) = conn.send_ping() {
                    let (code, message) = end_of(&e);
                    return End::Closed(code, message);
                }
                next_ping = Instant::now() + ping_every;
            }
            if !acks.is_empty() && conn.events().is_empty() {
                let delivered: Vec<(String, u64)> = acks.drain().collect();
                if let Err(e) = conn.push_ack(&delivered) {
                    debug!(error = %e, "push ack failed");
                }
            }
        }
    }

    /// Waits (until `deadline`) for a usable connection.
    fn wait_connection(&self, deadline: Instant) -> Result<Arc<Connection>, SdkError> {
        let mut link = self.link.lock();
        loop {
            if let Some((code, message)) = &link.ended {
                return Err(SdkError::Closed { code: *code, message: message.clone() });
            }
            if link.stopped {
                return Err(SdkError::Closed { code: 0, message: "client closed".to_owned() });
            }
            if let Some(c) = &link.conn
                && !c.is_closed()
            {
                return Ok(Arc::clone(c));
            }
            if self.link_cv.wait_until(&mut link, deadline).timed_out() {
                return Err(SdkError::Timeout);
            }
        }
    }

    /// Runs `f` on the current connection, retrying retryable failures
    /// (waiting for reconnects) until `retry_timeout` has passed.
    fn retry<T>(
        &self,
        retry_timeout: Duration,
        mut f: impl FnMut(&Connection) -> Result<T, SdkError>,
    ) -> Result<T, SdkError> {
        let deadline = Instant::now() + retry_timeout;
        let mut backoff = self.config.backoff_initial;
        loop {
            let conn = self.wait_connection(deadline)?;
            let err = match f(&conn) {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if matches!(err, SdkError::Timeout) {
                // Possibly a dead link: force a reconnect rather than wait for keep-alive.
                conn.shutdown();
            }
            drop(conn);
            // The server's retry-after (RATE_LIMITED) is a floor under the backoff.
            let pause = jitter(backoff).max(err.retry_after().unwrap_or_default());
            if !err.is_retryable() || Instant::now() + pause >= deadline {
                return Err(err);
            }
            debug!(error = %err, "retrying");
            std::thread::sleep(pause);
            backoff = (backoff * 2).min(self.config.backoff_max);
        }
    }
}

/// The supervisor thread: serve the current connection, reconnect when it
/// drops, stop on a terminal close or when the client is closed.
fn supervise(inner: Arc<Inner>, first: Arc<Connection>, stop: Receiver<()>) {
    let mut current = Some(first);
    let mut backoff = inner.config.backoff_initial;
    // Waits `d` unless the client is closed meanwhile (returns true then).
    let stopped_during = |d: Duration| !matches!(stop.recv_timeout(d), Err(RecvTimeoutError::Timeout));
    loop {
        let conn = match current.take() {
            Some(c) => c,
            None => match inner.establish() {
                Ok(c) => c,
                Err(e) => {
                    let (code, message) = end_of(&e);
                    if inner.is_terminal(code) {
                        inner.terminate(code, message);
                        return;
                    }
                    debug!(error = %e, "reconnect failed");
                    if stopped_during(jitter(backoff)) {
                        break;
                    }
                    backoff = (backoff * 2).min(inner.config.backoff_max);
                    continue;
                }
            },
        };
        let started = Instant::now();
        let end = inner.serve(&conn, &stop);
        inner.unpublish(&conn);
        conn.shutdown();
        drop(conn);
        match end {
            End::Stop => break,
            End::Closed(code, message) => {
                if inner.is_terminal(code) {
                    inner.terminate(code, message);
                    return;
                }
                debug!(code, %message, "disconnected; reconnecting");
                inner.emit(ClientEvent::Disconnected { code, message });
                if started.elapsed() > inner.config.backoff_max * 2 {
                    backoff = inner.config.backoff_initial;
                }
                if stopped_during(jitter(backoff)) {
                    break;
                }
                backoff = (backoff * 2).min(inner.config.backoff_max);
            }
        }
    }
    let mut link = inner.link.lock();
    link.stopped = true;
    link.conn = None;
    inner.link_cv.notify_all();
}

/// A resilient Missive client. See the module documentation.
pub struct Client {
    inner: Arc<Inner>,
    events: Receiver<ClientEvent>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.inner.opts.addr)
            .field("device", &self.inner.opts.device_id)
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl Client {
    /// Connects with the default [`ClientConfig`]. See [`Client::connect_with`].
    pub fn connect(opts: ConnectOptions, state: LocalState) -> Result<Client, SdkError> {
        Self::connect_with(opts, state, ClientConfig::default())
    }

    /// Connects, then catches up from `state` (sync from its token, `""` for
    /// a fresh device; pull every missing message) before returning: the
    /// events of the catch-up are already queued when this returns. Errors of
    /// this first connection (e.g. a `Close` with TOKEN_INVALID) are returned;
    /// later disconnects are handled in the background.
    pub fn connect_with(
        opts: ConnectOptions,
        state: LocalState,
        config: ClientConfig,
    ) -> Result<Client, SdkError> {
        if let Some(bad) = state.max_seq.keys().find(|c| c.is_empty()) {
            return Err(SdkError::InvalidArgument(format!(
                "local state has an empty conversation id {bad:?}"
            )));
        }
        let (tx, rx) = unbounded();
        let inner = Arc::new(Inner {
            opts,
            config,
            link: Mutex::new(Link::default()),
            link_cv: Condvar::new(),
            abandoned_handshake: Mutex::new(None),
            track: Mutex::new(Tracker { state, ..Default::default() }),
            events: tx,
        });
        let conn = Arc::new(inner.dial()?);
        inner.publish(&conn)?;
        if let Err(e) = inner.catch_up(&conn) {
            conn.shutdown();
            return Err(e);
        }
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let sup = Arc::clone(&inner);
        let thread = std::thread::Builder::new()
            .name("missive-sdk-client".to_owned())
            .spawn(move || supervise(sup, conn, stop_rx))?;
        Ok(Client { inner, events: rx, stop: Some(stop_tx), thread: Some(thread) })
    }

    /// The event stream (a clone of the one receiver; events go to whichever
    /// clone receives first).
    pub fn events(&self) -> Receiver<ClientEvent> {
        self.events.clone()
    }

    /// A copy of the state to persist for the next run.
    pub fn local_state(&self) -> LocalState {
        self.inner.track.lock().state.clone()
    }

    /// Cached conversation states (from sync, pushes and this client's requests).
    pub fn conversations(&self) -> HashMap<String, pb::ConversationState> {
        self.inner.track.lock().convs.clone()
    }

    /// Cached user settings, once known.
    pub fn settings(&self) -> Option<pb::UserSettings> {
        self.inner.track.lock().settings
    }

    /// The authenticated user id.
    pub fn user_id(&self) -> String {
        self.inner.track.lock().user_id.clone()
    }

    /// The `HelloOk` of the latest connection.
    pub fn hello(&self) -> Option<pb::HelloOk> {
        self.inner.link.lock().hello.clone()
    }

    /// Whether a live connection is currently established.
    pub fn is_connected(&self) -> bool {
        self.inner.link.lock().conn.as_ref().is_some_and(|c| !c.is_closed())
    }

    /// The current connection, if any (e.g. to inspect it, or to shut it down
    /// to exercise reconnects).
    pub fn connection(&self) -> Option<Arc<Connection>> {
        self.inner.link.lock().conn.clone()
    }

    /// Why the client stopped for good, if it did.
    pub fn ended(&self) -> Option<(u32, String)> {
        self.inner.link.lock().ended.clone()
    }

    /// Sends a typed request on the current connection and returns its typed
    /// reply, resending the same request across timeouts, retryable errors
    /// and reconnects until `retry_timeout` ([`ClientConfig`]) passes; every
    /// v1 request is safe to resend ([Q-6]). Non-retryable errors return at
    /// once. Does not touch the cached state: the methods below that update
    /// it (`send*`, `mark_read`, ...) are built on this.
    pub fn call<C: Call + Clone>(&self, req: C) -> Result<C::Reply, SdkError> {
        self.call_with_timeout(req, self.inner.config.retry_timeout)
    }

    /// [`Client::call`], retrying until `retry_timeout` instead of the configured one.
    pub fn call_with_timeout<C: Call + Clone>(
        &self,
        req: C,
        retry_timeout: Duration,
    ) -> Result<C::Reply, SdkError> {
        self.inner.retry(retry_timeout, |c| c.call(req.clone()))
    }

    /// Sends text with a fresh client message id, retrying until acknowledged.
    pub fn send_text(&self, conv_id: &str, text: &str) -> Result<pb::SendAck, SdkError> {
        self.send(conv_id, crate::text_content(text))
    }

    /// Sends content with a fresh client message id, retrying until acknowledged.
    pub fn send(&self, conv_id: &str, content: pb::Content) -> Result<pb::SendAck, SdkError> {
        self.send_inner(conv_id, &crate::new_client_msg_id(), content, None, true)
    }

    /// Sends with the given `client_msg_id`, resending the same id across
    /// timeouts, retryable errors and reconnects until a `SendAck` arrives or
    /// `retry_timeout` passes ([S-4]). Non-retryable errors return at once.
    /// The ack advances [`LocalState`] when it is the next seq.
    pub fn send_with_id(
        &self,
        conv_id: &str,
        client_msg_id: &str,
        content: pb::Content,
    ) -> Result<pb::SendAck, SdkError> {
        self.send_full(conv_id, client_msg_id, content, None)
    }

    /// Sends content with send flags (spec 18.8) and a fresh client message
    /// id, retrying until acknowledged. An `online_only` message is never
    /// stored: its ack has `seq = 0` and does not move [`LocalState`].
    pub fn send_with_flags(
        &self,
        conv_id: &str,
        content: pb::Content,
        flags: pb::MessageFlags,
    ) -> Result<pb::SendAck, SdkError> {
        self.send_inner(conv_id, &crate::new_client_msg_id(), content, Some(flags), true)
    }

    /// [`Client::send_with_id`] with optional send flags.
    pub fn send_full(
        &self,
        conv_id: &str,
        client_msg_id: &str,
        content: pb::Content,
        flags: Option<pb::MessageFlags>,
    ) -> Result<pb::SendAck, SdkError> {
        self.send_inner(conv_id, client_msg_id, content, flags, false)
    }

    /// One send, resent until acknowledged. `generated`: the SDK made the id
    /// just now, so its first transmission carries `first_attempt` and lets
    /// the server skip its dedup lookup ([S-7]); every resend clears it. An
    /// id from the application may have been sent before: never flagged.
    fn send_inner(
        &self,
        conv_id: &str,
        client_msg_id: &str,
        content: pb::Content,
        flags: Option<pb::MessageFlags>,
        generated: bool,
    ) -> Result<pb::SendAck, SdkError> {
        ClientMsgId::new(client_msg_id).map_err(|e| SdkError::InvalidArgument(e.to_string()))?;
        let mut req = pb::SendMessage {
            conv_id: conv_id.to_owned(),
            client_msg_id: client_msg_id.to_owned(),
            content: Some(content),
            flags,
            first_attempt: generated,
        };
        let ack = self.inner.retry(self.inner.config.retry_timeout, |c| {
            let r = c.call(req.clone());
            req.first_attempt = false;
            r
        })?;
        if ack.seq > 0 {
            self.inner.track.lock().on_ack(&ack);
        }
        Ok(ack)
    }

    /// Forwards messages `seqs` of `from_conv_id` into `to_conv_id` (spec
    /// 18.9): one message per seq, or one merged bubble titled `title`. The
    /// server copies the content. Retried with the same client message id
    /// until answered, so a retry stores nothing twice ([FW-7]).
    pub fn forward(
        &self,
        from_conv_id: &str,
        seqs: &[u64],
        to_conv_id: &str,
        merged: bool,
        title: &str,
    ) -> Result<pb::ForwardResult, SdkError> {
        let r = self.call(pb::ForwardMessages {
            from_conv_id: from_conv_id.to_owned(),
            seqs: seqs.to_vec(),
            to_conv_id: to_conv_id.to_owned(),
            merged,
            title: title.to_owned(),
            client_msg_id: crate::new_client_msg_id(),
        })?;
        let mut t = self.inner.track.lock();
        for ack in &r.acks {
            t.on_ack(ack);
        }
        Ok(r)
    }

    /// History page: up to `limit` messages with seq < `before_seq` (0 = latest + 1).
    /// Does not emit events or change [`LocalState`].
    pub fn history(&self, conv_id: &str, before_seq: u64, limit: u32) -> Result<pb::Messages, SdkError> {
        self.call(pb::HistoryRequest { conv_id: conv_id.to_owned(), before_seq, limit })
    }

    /// Pull `from_seq..=to_seq` (0 = latest). Does not emit events or change [`LocalState`].
    pub fn pull(
        &self,
        conv_id: &str,
        from_seq: u64,
        to_seq: u64,
        limit: u32,
    ) -> Result<pb::Messages, SdkError> {
        self.call(pb::PullRequest { conv_id: conv_id.to_owned(), from_seq, to_seq, limit })
    }

    /// Marks read up to `seq` (0 = latest); updates the cached state.
    pub fn mark_read(&self, conv_id: &str, seq: u64) -> Result<pb::ConversationState, SdkError> {
        self.call_state(pb::MarkRead { conv_id: conv_id.to_owned(), seq })
    }

    /// Sets per-user flags (unset ones stay); updates the cached state.
    pub fn update_conversation(
        &self,
        conv_id: &str,
        pinned: Option<bool>,
        muted: Option<bool>,
        hidden: Option<bool>,
    ) -> Result<pb::ConversationState, SdkError> {
        self.call_state(pb::UpdateConversation { conv_id: conv_id.to_owned(), pinned, muted, hidden })
    }

    /// Clears history up to `up_to_seq` (0 = all) for this user; updates the cached state.
    pub fn clear_history(&self, conv_id: &str, up_to_seq: u64) -> Result<pb::ConversationState, SdkError> {
        self.call_state(pb::ClearHistory { conv_id: conv_id.to_owned(), up_to_seq })
    }

    /// A request answered with the caller's new conversation state: caches it.
    fn call_state<C>(&self, req: C) -> Result<pb::ConversationState, SdkError>
    where
        C: Call<Reply = pb::ConversationState> + Clone,
    {
        let s = self.call(req)?;
        self.inner.track.lock().apply_state(&s);
        Ok(s)
    }

    /// Tells the other participants that this user is typing (`true`) or
    /// stopped (`false`) in `conv_id` (spec 18.6; never stored, best effort).
    pub fn typing(&self, conv_id: &str, typing: bool) -> Result<(), SdkError> {
        self.call(pb::Typing { conv_id: conv_id.to_owned(), typing })
    }

    /// Translates the text of message `seq` of `conv_id` into `language`
    /// (spec 18.10): `cached` tells whether the server had it already.
    pub fn translate(&self, conv_id: &str, seq: u64, language: &str) -> Result<pb::Translation, SdkError> {
        self.call(pb::TranslateMessage { conv_id: conv_id.to_owned(), seq, language: language.to_owned() })
    }

    /// Sets global do-not-disturb; updates the cached settings.
    pub fn set_global_dnd(&self, enabled: bool) -> Result<(), SdkError> {
        self.call(pb::SetGlobalDnd { enabled })?;
        self.inner.track.lock().settings = Some(pb::UserSettings { global_dnd: enabled });
        Ok(())
    }

    /// Recalls message `seq` (spec 18.1); returns its recalled form.
    pub fn recall(&self, conv_id: &str, seq: u64) -> Result<pb::Message, SdkError> {
        self.call(pb::RecallMessage { conv_id: conv_id.to_owned(), seq })
    }

    /// Replaces the content of one's own text or custom message (spec 18.2).
    pub fn edit(&self, conv_id: &str, seq: u64, content: pb::Content) -> Result<pb::Message, SdkError> {
        self.call(pb::EditMessage { conv_id: conv_id.to_owned(), seq, content: Some(content) })
    }

    /// Deletes 1..=100 messages for this user, or (group owner / admin) for
    /// everyone (spec 18.3).
    pub fn delete_messages(&self, conv_id: &str, seqs: &[u64], for_everyone: bool) -> Result<(), SdkError> {
        self.call(pb::DeleteMessages { conv_id: conv_id.to_owned(), seqs: seqs.to_vec(), for_everyone })?;
        Ok(())
    }

    /// Clears this user's history of every conversation (spec [DL-6]).
    pub fn clear_all_messages(&self) -> Result<(), SdkError> {
        self.call(pb::ClearAllMessages {})?;
        Ok(())
    }

    /// Stops the background thread and closes the connection.
    pub fn close(self) {
        drop(self);
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        {
            let mut link = self.inner.link.lock();
            link.stopped = true;
            if let Some(c) = &link.conn {
                c.shutdown();
            }
            self.inner.link_cv.notify_all();
        }
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(conv: &str, seq: u64, sender: &str) -> pb::Message {
        pb::Message {
            conv_id: conv.to_owned(),
            seq,
            sender: sender.to_owned(),
            content: Some(crate::text_content("x")),
            ..Default::default()
        }
    }

    fn page(conv: &str, seqs: &[u64], max_seq: u64, min_readable: u64, more: bool) -> pb::Messages {
        pb::Messages {
            conv_id: conv.to_owned(),
            messages: seqs.iter().map(|s| msg(conv, *s, "bob")).collect(),
            max_seq,
            min_readable_seq: min_readable,
            more,
        }
    }

    fn tracker() -> Tracker {
        Tracker { user_id: "alice".to_owned(), ..Default::default() }
    }

    const C: &str = "p:alice:bob";

    #[test]
    fn classify_follows_the_gap_rule() {
        let mut t = tracker();
        assert_eq!(t.classify(C, 1), Delivery::Next);
        assert_eq!(t.classify(C, 4), Delivery::Gap { from: 1, to: 3 });
        assert!(t.accept(&msg(C, 1, "bob")));
        assert_eq!(t.classify(C, 1), Delivery::Duplicate);
        assert_eq!(t.classify(C, 2), Delivery::Next);
        assert!(!t.accept(&msg(C, 1, "bob")), "duplicates are refused");
        assert_eq!(t.local(C), 1);
    }

    #[test]
    fn accept_updates_cached_state() {
        let mut t = tracker();
        t.apply_state(&pb::ConversationState {
            conv_id: C.into(),
            max_seq: 2,
            read_seq: 2,
            hidden: true,
            ..Default::default()
        });
        t.skip_to(C, 2);
        assert!(t.accept(&msg(C, 3, "bob")));
        assert!(t.accept(&msg(C, 4, "bob")));
        let s = &t.convs[C];
        assert_eq!((s.max_seq, s.unread, s.hidden), (4, 2, false));
        assert!(t.accept(&msg(C, 5, "alice")));
        assert_eq!((t.convs[C].read_seq, t.convs[C].unread), (5, 0));
    }

    #[test]
    fn ack_advances_only_when_next() {
        let mut t = tracker();
        t.skip_to(C, 4);
        t.on_ack(&pb::SendAck { conv_id: C.into(), seq: 5, ..Default::default() });
        assert_eq!(t.local(C), 5);
        t.on_ack(&pb::SendAck { conv_id: C.into(), seq: 7, ..Default::default() });
        assert_eq!(t.local(C), 5, "a gap before the ack is left for a pull");
    }

    #[test]
    fn pages_emit_in_order_and_continue() {
        let mut t = tracker();
        t.skip_to(C, 2);
        let (out, next) = t.apply_page(C, 3, 8, page(C, &[3, 4, 5], 8, 1, true), 3);
        assert_eq!(out.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![3, 4, 5]);
        assert_eq!(next, Some(6));
        let (out, next) = t.apply_page(C, 6, 8, page(C, &[5, 6, 7, 8], 8, 1, false), 3);
        assert_eq!(out.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![6, 7, 8]);
        assert_eq!(next, None);
        assert_eq!(t.local(C), 8);
    }

    #[test]
    fn unreadable_ranges_are_skipped() {
        let mut t = tracker();
        // History cleared up to 10: the server clamps the pull to 11.
        let (out, next) = t.apply_page(C, 1, 12, page(C, &[11, 12], 12, 11, false), 100);
        assert_eq!(out.len(), 2);
        assert_eq!((next, t.local(C)), (None, 12));
        // Roamed out: an empty final page still completes the range.
        let (out, next) = t.apply_page(C, 13, 15, page(C, &[], 15, 1, false), 100);
        assert!(out.is_empty());
        assert_eq!((next, t.local(C)), (None, 15));
        // An empty page with more=true still makes progress.
        let (_, next) = t.apply_page(C, 16, 500, page(C, &[], 500, 1, true), 100);
        assert_eq!(next, Some(116));
        // A state with a higher cleared_seq moves L over the cleared history.
        t.apply_state(&pb::ConversationState { conv_id: C.into(), cleared_seq: 40, ..Default::default() });
        assert_eq!(t.local(C), 40);
    }

    #[test]
    fn receipts_update_read_positions() {
        let mut t = tracker();
        t.apply_state(&pb::ConversationState {
            conv_id: C.into(),
            max_seq: 5,
            unread: 5,
            ..Default::default()
        });
        t.apply_receipt(&pb::ReadReceipt {
            conv_id: C.into(),
            reader: "bob".into(),
            read_seq: 3,
            ..Default::default()
        });
        t.apply_receipt(&pb::ReadReceipt {
            conv_id: C.into(),
            reader: "alice".into(),
            read_seq: 4,
            ..Default::default()
        });
        let s = &t.convs[C];
        assert_eq!((s.peer_read_seq, s.read_seq, s.unread), (3, 4, 1));
    }

    #[test]
    fn local_state_json_round_trip() {
        let mut s = LocalState { sync_token: "12.abcd".into(), ..Default::default() };
        s.max_seq.insert(C.into(), 7);
        let json = serde_json::to_string(&s).expect("serializes");
        let back: LocalState = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, s);
        let empty: LocalState = serde_json::from_str("{}").expect("defaults");
        assert_eq!(empty, LocalState::default());
    }
}
