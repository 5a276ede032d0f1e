//! Owner-shard conversation service.
//!
//! Role: every conversation is owned by exactly one worker
//! (`hash(conv_id) % workers`); that worker alone assigns its seqs, writes
//! its log and the per-user state of its participants. Per-user settings are
//! owned the same way by `hash(user_id)`. Requests reach the owner as
//! [`ShardOp`]s; each loop turn the owner stages every op it has into one
//! RocksDB batch (group commit), writes it once, and only then emits acks,
//! replies and deliveries ([`Effect`]s).
//!
//! Invariants:
//! - a SendAck or delivery leaves only after the batch holding it is durable;
//! - seqs are dense: the cache's `max_seq` only advances while staging, and a
//!   failed write drops every touched cache entry so it reloads from the log;
//! - (conv, sender, device, client_msg_id) maps to one stored message: checked
//!   against this turn's staged sends and then the durable `dedup` keyspace;
//! - reads (pull, history) run after the turn's write, so they observe every
//!   write requested before them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use missive_protocol::pb::{self, push, response};
use missive_protocol::token::Role;
use missive_protocol::{ClientMsgId, ConvId, ConvKind, DeviceId, ErrorCode, Seq, UserId};
use missive_storage::{Batch, BlockRecord, DedupRecord, RelKind, SettingsRecord, Store, UserConvRecord};
use prost::Message as _;

use crate::Shared;
use crate::clock::{BatchVersions, MsgIdGen, VersionClock, now_ms, roam_floor_ms};
use crate::config::Config;
use crate::counters::Reservation;
use crate::directory::ConnRef;
use crate::error::Reject;
use crate::frames;

/// A request routed to its owner shard.
#[derive(Debug)]
pub(crate) struct ShardOp {
    /// Connection that asked, for the reply.
    pub(crate) origin: ConnRef,
    pub(crate) request_id: u64,
    pub(crate) user: UserId,
    pub(crate) device: DeviceId,
    pub(crate) kind: OpKind,
}

#[derive(Debug)]
pub(crate) enum OpKind {
    Send {
        conv: ConvId,
        client_msg_id: ClientMsgId,
        content: pb::Content,
    },
    Pull {
        conv: ConvId,
        req: pb::PullRequest,
    },
    History {
        conv: ConvId,
        req: pb::HistoryRequest,
    },
    MarkRead {
        conv: ConvId,
        seq: u64,
    },
    Update {
        conv: ConvId,
        req: pb::UpdateConversation,
    },
    Clear {
        conv: ConvId,
        up_to: u64,
    },
    GlobalDnd {
        enabled: bool,
    },
    // Owned by the user's shard (`user` is the subject).
    /// A handshake passed the token checks; decide the account checks and the login policy.
    Login {
        platform: pb::Platform,
        role: Role,
        issued_at: u64,
    },
    /// A session of `user` ended (no reply; `origin` is the ended connection).
    Logout,
    /// Admin ops: `target` is the subject (and routing key), `user` the admin.
    ImportUser {
        target: UserId,
        patch: pb::ProfilePatch,
    },
    SetDisabled {
        target: UserId,
        disabled: bool,
        reason: String,
    },
    RevokeTokens {
        target: UserId,
    },
    SetProfile {
        patch: pb::ProfilePatch,
    },
    Subscribe {
        targets: Vec<UserId>,
    },
    Unsubscribe {
        targets: Vec<UserId>,
    },
    SetStatus {
        text: String,
    },
    // Owned by the shard of the direct conversation of the pair.
    /// A relation change between `me` and `peer` (`me` acts).
    Pair {
        me: UserId,
        peer: UserId,
        op: crate::relations::PairOp,
    },
    // Owned by the shard of the group's conversation `g:{group}`.
    /// A group management op (or receipt query) by `user`.
    Group {
        conv: ConvId,
        op: crate::groups::GroupOp,
    },
}

/// Something to do once the turn's batch is durable.
#[derive(Debug)]
pub(crate) enum Effect {
    /// Answer a request.
    Reply { conn: ConnRef, request_id: u64, frame: Bytes },
    /// Deliver a push to every online device of `users`, except `exclude`
    /// (shared: a group's recipient list is built once, not per message).
    Fanout { users: Arc<[UserId]>, exclude: Option<ConnRef>, frame: Bytes },
    /// End a session: push `frame` (a `Kicked`), then Close{code, message}.
    Kick { conn: ConnRef, frame: Bytes, code: ErrorCode, message: String },
    /// Finish a handshake: HelloOk with this sync token, or Close with the reject.
    LoginDone { conn: ConnRef, user: UserId, result: Result<String, Reject> },
}

/// One participant's cached state.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    user: UserId,
    rec: UserConvRecord,
}

/// Cached committed (or, while staging, staged) state of a conversation.
#[derive(Debug, Clone)]
pub(crate) struct ConvEntry {
    max_seq: u64,
    /// Encoded message at `max_seq`, for `last_message`.
    last: Option<Bytes>,
    members: Vec<Member>,
    /// Direct conversations: `blocked[i]` = members[i] blacklisted the other member.
    pub(crate) blocked: [bool; 2],
}

impl ConvEntry {
    pub(crate) fn member(&self, user: &UserId) -> Option<usize> {
        self.members.iter().position(|m| &m.user == user)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DedupKey {
    conv: ConvId,
    sender: UserId,
    device: DeviceId,
    client_msg_id: String,
}

/// The owner-shard state of one worker.
pub(crate) struct Shard {
    pub(crate) idx: usize,
    pub(crate) store: Store,
    pub(crate) clock: Arc<VersionClock>,
    pub(crate) config: Arc<Config>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) cache: HashMap<ConvId, ConvEntry>,
    /// Cached groups (bounded by `groups.cache_entries`).
    pub(crate) groups: HashMap<ConvId, crate::groups::GroupEntry>,
    pub(crate) ids: MsgIdGen,
    /// Ops put off to the next turn because their key was already written in
    /// this one (read-modify-write of stored records, see [`Turn::claim`]).
    deferred: Vec<ShardOp>,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard").field("idx", &self.idx).field("cached", &self.cache.len()).finish()
    }
}

/// Per-turn staging area.
pub(crate) struct Turn {
    pub(crate) batch: Batch,
    pub(crate) versions: BatchVersions,
    pub(crate) effects: Vec<Effect>,
    pub(crate) reads: Vec<ShardOp>,
    pub(crate) touched: Vec<ConvId>,
    dedup: HashMap<DedupKey, DedupRecord>,
    settings: HashMap<UserId, SettingsRecord>,
    /// Keys (users, pairs) whose stored records this turn already changes.
    busy: HashSet<String>,
    /// Ops that found their key busy: they run next turn, in order.
    pub(crate) deferred: Vec<ShardOp>,
    /// Counter reservations to settle after the write.
    pub(crate) reservations: Vec<Reservation>,
    /// Sessions added to the directory by logins of this turn (undone on failure).
    pub(crate) added_sessions: Vec<(UserId, ConnRef)>,
}

impl Turn {
    /// Claims `key` for this turn. Ops that read-modify-write stored records
    /// (accounts, profiles, relations) claim their key first; a second op on
    /// the same key in one turn is deferred, so every op reads committed state.
    pub(crate) fn claim(&mut self, key: String) -> bool {
        self.busy.insert(key)
    }
}

impl Shard {
    pub(crate) fn new(idx: usize, shared: Arc<Shared>) -> Self {
        Self {
            idx,
            store: shared.store.clone(),
            clock: Arc::clone(&shared.clock),
            config: Arc::clone(&shared.config),
            shared,
            cache: HashMap::new(),
            groups: HashMap::new(),
            ids: MsgIdGen::new(idx),
            deferred: Vec::new(),
        }
    }

    /// Whether ops wait for the next turn.
    pub(crate) fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// Stages `ops`, writes them in one batch, and returns the effects to emit.
    pub(crate) fn run_turn(&mut self, ops: Vec<ShardOp>) -> Vec<Effect> {
        let ops = if self.deferred.is_empty() {
            ops
        } else {
            let mut all = std::mem::take(&mut self.deferred);
            all.extend(ops);
            all
        };
        if ops.is_empty() {
            return Vec::new();
        }
        self.evict_if_full();
        let mut t = Turn {
            batch: self.store.batch(),
            versions: BatchVersions::default(),
            effects: Vec::with_capacity(ops.len() * 2),
            reads: Vec::new(),
            touched: Vec::new(),
            dedup: HashMap::new(),
            settings: HashMap::new(),
            busy: HashSet::new(),
            deferred: Vec::new(),
            reservations: Vec::new(),
            added_sessions: Vec::new(),
        };
        for op in ops {
            let (origin, request_id) = (op.origin, op.request_id);
            let login = matches!(op.kind, OpKind::Login { .. });
            let user = if login { Some(op.user.clone()) } else { None };
            if let Err(r) = self.stage(op, &mut t) {
                match user {
                    Some(user) => t.effects.push(Effect::LoginDone { conn: origin, user, result: Err(r) }),
                    None => t.effects.push(Effect::Reply {
                        conn: origin,
                        request_id,
                        frame: frames::error(request_id, &r),
                    }),
                }
            }
        }
        self.deferred = std::mem::take(&mut t.deferred);
        let written = if t.batch.is_empty() {
            self.clock.release(&t.versions);
            Ok(())
        } else {
            if t.versions.max != 0 {
                t.batch.put_version_mark(self.idx as u32, t.versions.max);
            }
            let batch = std::mem::replace(&mut t.batch, self.store.batch());
            let res = self.store.write(batch);
            self.clock.release(&t.versions);
            res
        };
        for r in t.reservations.drain(..) {
            self.shared.counters.settle(r, written.is_ok());
        }
        let mut effects = match written {
            Ok(()) => t.effects,
            Err(e) => {
                let r = Reject::from(e);
                for c in &t.touched {
                    self.cache.remove(c);
                }
                self.drop_groups(&t.touched);
                for (user, conn) in &t.added_sessions {
                    self.shared.directory.remove(user, *conn);
                }
                t.effects
                    .into_iter()
                    .filter_map(|eff| match eff {
                        Effect::Reply { conn, request_id, .. } => {
                            Some(Effect::Reply { conn, request_id, frame: frames::error(request_id, &r) })
                        }
                        Effect::LoginDone { conn, user, .. } => {
                            Some(Effect::LoginDone { conn, user, result: Err(r.clone()) })
                        }
                        // Sessions are removed from the directory when kicked: the kick stands.
                        k @ Effect::Kick { .. } => Some(k),
                        Effect::Fanout { .. } => None,
                    })
                    .collect()
            }
        };
        for op in t.reads {
            let (conn, request_id) = (op.origin, op.request_id);
            let frame = match self.read(op) {
                Ok(f) => f,
                Err(r) => frames::error(request_id, &r),
            };
            effects.push(Effect::Reply { conn, request_id, frame });
        }
        effects
    }

    fn evict_if_full(&mut self) {
        let cap = self.config.limits.conv_cache_entries;
        if self.cache.len() > cap {
            let drop_n = self.cache.len() - cap * 9 / 10;
            let victims: Vec<ConvId> = self.cache.keys().take(drop_n).cloned().collect();
            for v in victims {
                self.cache.remove(&v);
            }
        }
    }

    fn entry(&mut self, conv: &ConvId) -> Result<&mut ConvEntry, Reject> {
        if !self.cache.contains_key(conv) {
            let loaded = self.load(conv)?;
            self.cache.insert(conv.clone(), loaded);
        }
        self.cache.get_mut(conv).ok_or_else(|| Reject::new(ErrorCode::Internal, "cache miss after load"))
    }

    fn load(&self, conv: &ConvId) -> Result<ConvEntry, Reject> {
        let max_seq = self.store.max_seq(conv)?;
        let last = if max_seq.0 > 0 { self.store.message(conv, max_seq)?.map(Bytes::from) } else { None };
        let (a, b) = conv.direct_members().ok_or_else(|| {
            Reject::new(ErrorCode::UnsupportedConversation, "only p: conversations are served")
        })?;
        let mut members = Vec::with_capacity(2);
        for u in [a, b] {
            let user = UserId::new(u).map_err(|e| Reject::new(ErrorCode::InvalidConvId, e.to_string()))?;
            let rec = self.store.user_conv(&user, conv)?.unwrap_or_default();
            members.push(Member { user, rec });
        }
        let mut blocked = [false; 2];
        if let [m0, m1] = members.as_slice() {
            blocked[0] = self.store.rel::<BlockRecord>(&m0.user, RelKind::Block, &m1.user)?.is_some();
            blocked[1] = self.store.rel::<BlockRecord>(&m1.user, RelKind::Block, &m0.user)?.is_some();
        }
        Ok(ConvEntry { max_seq: max_seq.0, last, members, blocked })
    }

    fn stage(&mut self, op: ShardOp, t: &mut Turn) -> Result<(), Reject> {
        match op.kind {
            OpKind::Pull { .. } | OpKind::History { .. } => {
                t.reads.push(op);
                Ok(())
            }
            OpKind::Send { ref conv, ref client_msg_id, ref content } => {
                self.stage_send(&op, conv, client_msg_id, content, t)
            }
            OpKind::MarkRead { ref conv, seq } => self.stage_mark_read(&op, conv, seq, t),
            OpKind::Update { ref conv, ref req } => {
                let now = now_ms();
                let group = conv.kind() == ConvKind::Group;
                let change = |rec: &mut UserConvRecord, _: u64| {
                    if let Some(p) = req.pinned {
                        if p && !rec.pinned {
                            rec.pin_time_ms = now;
                        }
                        rec.pinned = p;
                    }
                    if let Some(m) = req.muted {
                        rec.muted = m;
                    }
                    if let Some(h) = req.hidden {
                        rec.hidden = h;
                    }
                };
                if group {
                    self.stage_group_member_change(&op, conv, t, change, false)
                } else {
                    self.stage_member_change(&op, conv, t, change)
                }
            }
            OpKind::Clear { ref conv, up_to } => {
                let change = |rec: &mut UserConvRecord, max_seq: u64| {
                    let target = if up_to == 0 || up_to > max_seq { max_seq } else { up_to };
                    rec.cleared_seq = rec.cleared_seq.max(target);
                };
                if conv.kind() == ConvKind::Group {
                    self.stage_group_member_change(&op, conv, t, change, false)
                } else {
                    self.stage_member_change(&op, conv, t, change)
                }
            }
            OpKind::GlobalDnd { enabled } => self.stage_settings(&op, enabled, t),
            OpKind::Pair { .. } => self.stage_pair(op, t),
            OpKind::Group { .. } => self.stage_group(op, t),
            OpKind::Login { .. }
            | OpKind::Logout
            | OpKind::ImportUser { .. }
            | OpKind::SetDisabled { .. }
            | OpKind::RevokeTokens { .. }
            | OpKind::SetProfile { .. }
            | OpKind::Subscribe { .. }
            | OpKind::Unsubscribe { .. }
            | OpKind::SetStatus { .. } => self.stage_user(op, t),
        }
    }

    fn stage_send(
        &mut self,
        op: &ShardOp,
        conv: &ConvId,
        client_msg_id: &ClientMsgId,
        content: &pb::Content,
        t: &mut Turn,
    ) -> Result<(), Reject> {
        let key = DedupKey {
            conv: conv.clone(),
            sender: op.user.clone(),
            device: op.device.clone(),
            client_msg_id: client_msg_id.as_str().to_owned(),
        };
        let prior = match t.dedup.get(&key) {
            Some(r) => Some(r.clone()),
            None => self.store.dedup(conv, op.user.as_str(), op.device.as_str(), client_msg_id.as_str())?,
        };
        if let Some(r) = prior {
            let ack = pb::SendAck {
                conv_id: conv.to_string(),
                seq: r.seq,
                server_msg_id: r.server_msg_id,
                server_time_ms: r.server_time_ms,
                duplicate: true,
            };
            let frame = frames::response(op.request_id, response::Result::SendAck(ack));
            t.effects.push(Effect::Reply { conn: op.origin, request_id: op.request_id, frame });
            return Ok(());
        }
        if conv.kind() == ConvKind::Group {
            let msg = pb::Message {
                client_msg_id: client_msg_id.as_str().to_owned(),
                sender: op.user.to_string(),
                sender_device: op.device.to_string(),
                content: Some(content.clone()),
                ..Default::default()
            };
            let ack = self.stage_group_send(op, conv, msg, t)?;
            let rec = DedupRecord {
                seq: ack.seq,
                server_msg_id: ack.server_msg_id,
                server_time_ms: ack.server_time_ms,
            };
            t.batch.put_dedup(conv, op.user.as_str(), op.device.as_str(), client_msg_id.as_str(), &rec);
            t.dedup.insert(key, rec);
            t.effects.push(Effect::Reply {
                conn: op.origin,
                request_id: op.request_id,
                frame: frames::response(op.request_id, response::Result::SendAck(ack)),
            });
            return Ok(());
        }
        let now = now_ms();
        let server_msg_id = self.ids.next(now);
        let clock = Arc::clone(&self.clock);
        let entry = self.entry(conv)?;
        let sender_idx = entry
            .member(&op.user)
            .ok_or_else(|| Reject::new(ErrorCode::NotParticipant, "sender is not a participant"))?;
        // [B-2]: checked here, at the moment the message would be stored.
        if entry.members.len() == 2 && entry.blocked[1 - sender_idx] {
            return Err(Reject::new(ErrorCode::BlockedByUser, "the recipient has blacklisted you"));
        }
        let seq = entry.max_seq + 1;
        let msg = pb::Message {
            conv_id: conv.to_string(),
            seq,
            server_msg_id,
            client_msg_id: client_msg_id.as_str().to_owned(),
            sender: op.user.to_string(),
            sender_device: op.device.to_string(),
            server_time_ms: now,
            content: Some(content.clone()),
        };
        let encoded = Bytes::from(msg.encode_to_vec());
        t.batch.put_message(conv, Seq(seq), &encoded);
        let rec = DedupRecord { seq, server_msg_id, server_time_ms: now };
        t.batch.put_dedup(conv, op.user.as_str(), op.device.as_str(), client_msg_id.as_str(), &rec);
        t.dedup.insert(key, rec);
        entry.max_seq = seq;
        entry.last = Some(encoded);
        let mut recipients = Vec::with_capacity(entry.members.len());
        for (i, m) in entry.members.iter_mut().enumerate() {
            let old = m.rec.feed_version;
            if i == sender_idx {
                m.rec.read_seq = seq;
            }
            m.rec.hidden = false;
            m.rec.feed_version = clock.alloc(&mut t.versions);
            t.batch.put_user_conv(&m.user, conv, old, &m.rec);
            recipients.push(m.user.clone());
        }
        t.touched.push(conv.clone());
        let ack = pb::SendAck {
            conv_id: conv.to_string(),
            seq,
            server_msg_id,
            server_time_ms: now,
            duplicate: false,
        };
        t.effects.push(Effect::Reply {
            conn: op.origin,
            request_id: op.request_id,
            frame: frames::response(op.request_id, response::Result::SendAck(ack)),
        });
        t.effects.push(Effect::Fanout {
            users: recipients.into(),
            exclude: Some(op.origin),
            frame: frames::push(push::Event::Message(msg)),
        });
        Ok(())
    }

    fn stage_mark_read(&mut self, op: &ShardOp, conv: &ConvId, seq: u64, t: &mut Turn) -> Result<(), Reject> {
        if conv.kind() == ConvKind::Group {
            let change = |rec: &mut UserConvRecord, max_seq: u64| {
                let target = if seq == 0 || seq > max_seq { max_seq } else { seq };
                rec.read_seq = rec.read_seq.max(target);
            };
            return self.stage_group_member_change(op, conv, t, change, true);
        }
        let floor = roam_floor_ms(self.config.history.roam_days);
        let clock = Arc::clone(&self.clock);
        let entry = self.entry(conv)?;
        let me = entry
            .member(&op.user)
            .ok_or_else(|| Reject::new(ErrorCode::NotParticipant, "not a participant"))?;
        let target = if seq == 0 || seq > entry.max_seq { entry.max_seq } else { seq };
        let changed = target > entry.members[me].rec.read_seq;
        if changed {
            // Both participants' views change (read seq / peer read seq).
            let mut users = Vec::with_capacity(entry.members.len());
            for (i, m) in entry.members.iter_mut().enumerate() {
                let old = m.rec.feed_version;
                if i == me {
                    m.rec.read_seq = target;
                }
                m.rec.feed_version = clock.alloc(&mut t.versions);
                t.batch.put_user_conv(&m.user, conv, old, &m.rec);
                users.push(m.user.clone());
            }
            t.touched.push(conv.clone());
            let receipt = pb::ReadReceipt {
                conv_id: conv.to_string(),
                reader: op.user.to_string(),
                read_seq: target,
                reader_device: op.device.to_string(),
            };
            t.effects.push(Effect::Fanout {
                users: users.into(),
                exclude: Some(op.origin),
                frame: frames::push(push::Event::ReadReceipt(receipt)),
            });
        }
        reply_with_state(op, conversation_state(conv, entry, me, floor), changed, &mut t.effects);
        Ok(())
    }

    /// Applies `change` to the requesting user's record; writes, pushes the new
    /// state to the user's other devices and replies with it.
    fn stage_member_change(
        &mut self,
        op: &ShardOp,
        conv: &ConvId,
        t: &mut Turn,
        change: impl FnOnce(&mut UserConvRecord, u64),
    ) -> Result<(), Reject> {
        let floor = roam_floor_ms(self.config.history.roam_days);
        let clock = Arc::clone(&self.clock);
        let entry = self.entry(conv)?;
        let me = entry
            .member(&op.user)
            .ok_or_else(|| Reject::new(ErrorCode::NotParticipant, "not a participant"))?;
        let max_seq = entry.max_seq;
        let m = &mut entry.members[me];
        let before = m.rec.clone();
        change(&mut m.rec, max_seq);
        let changed = m.rec != before;
        if changed {
            let old = m.rec.feed_version;
            m.rec.feed_version = clock.alloc(&mut t.versions);
            t.batch.put_user_conv(&m.user, conv, old, &m.rec);
            t.touched.push(conv.clone());
        }
        reply_with_state(op, conversation_state(conv, entry, me, floor), changed, &mut t.effects);
        Ok(())
    }

    fn stage_settings(&mut self, op: &ShardOp, enabled: bool, t: &mut Turn) -> Result<(), Reject> {
        let mut rec = match t.settings.get(&op.user) {
            Some(r) => r.clone(),
            None => self.store.settings(&op.user)?,
        };
        if rec.global_dnd != enabled {
            let old = rec.feed_version;
            rec.global_dnd = enabled;
            rec.feed_version = self.clock.alloc(&mut t.versions);
            t.batch.put_settings(&op.user, old, &rec);
            t.effects.push(Effect::Fanout {
                users: vec![op.user.clone()].into(),
                exclude: Some(op.origin),
                frame: frames::push(push::Event::Settings(pb::UserSettings { global_dnd: enabled })),
            });
            t.settings.insert(op.user.clone(), rec);
        }
        t.effects.push(Effect::Reply {
            conn: op.origin,
            request_id: op.request_id,
            frame: frames::response(op.request_id, response::Result::Ok(pb::Ok {})),
        });
        Ok(())
    }

    /// Serves a pull or history read from committed state.
    fn read(&mut self, op: ShardOp) -> Result<Bytes, Reject> {
        let request_id = op.request_id;
        let roam_days = self.config.history.roam_days;
        let lim = &self.config.limits;
        let page = |limit: u32| if limit == 0 { lim.pull_page_default } else { limit.min(lim.pull_page_max) } as usize;
        let (conv, ascending, from, to, limit) = match op.kind {
            OpKind::Pull { conv, req } => (conv, true, req.from_seq, req.to_seq, page(req.limit)),
            OpKind::History { conv, req } => (conv, false, 0, req.before_seq, page(req.limit)),
            OpKind::Group { conv, op: crate::groups::GroupOp::Receipt { seq } } => {
                let res = self.group_receipt(&op.user, &conv, seq)?;
                return Ok(frames::response(request_id, res));
            }
            _ => return Err(Reject::new(ErrorCode::Internal, "not a read")),
        };
        let store = self.store.clone();
        let (max_seq, min_readable) = if conv.kind() == ConvKind::Group {
            let (min_readable, top) = self.group_window(&op.user, &conv)?;
            (top, min_readable)
        } else {
            let entry = self.entry(&conv)?;
            let me = entry
                .member(&op.user)
                .ok_or_else(|| Reject::new(ErrorCode::NotParticipant, "not a participant"))?;
            (entry.max_seq, entry.members[me].rec.cleared_seq + 1)
        };
        let floor_ms = roam_floor_ms(roam_days);
        let mut rows = if ascending {
            let to = if to == 0 { max_seq } else { to.min(max_seq) };
            store.messages(&conv, Seq(from.max(min_readable)), Seq(to), limit + 1)?
        } else {
            let before = if to == 0 { max_seq + 1 } else { to.min(max_seq + 1) };
            store.messages_before(&conv, Seq(before), Seq(min_readable), limit + 1)?
        };
        let more = rows.len() > limit;
        rows.truncate(limit);
        // A page also stops before it could exceed the frame limit (spec ):
        // clients page on `more`, never on the item count.
        let byte_budget = (self.config.limits.max_frame_size as usize).saturating_sub(64 * 1024);
        let mut more = more;
        let mut bytes_used = 0;
        let mut messages = Vec::with_capacity(rows.len());
        let total = rows.len();
        // History rows arrive newest-first, so a cut keeps the newest ones.
        for (i, (_, bytes)) in rows.into_iter().enumerate() {
            if bytes_used + bytes.len() > byte_budget && i > 0 {
                more = more || i < total;
                break;
            }
            bytes_used += bytes.len() + 8;
            let m = pb::Message::decode(bytes.as_slice())
                .map_err(|e| Reject::new(ErrorCode::Internal, format!("stored message undecodable: {e}")))?;
            if m.server_time_ms >= floor_ms {
                messages.push(m);
            }
        }
        if !ascending {
            messages.reverse();
        }
        let result = pb::Messages {
            conv_id: conv.to_string(),
            messages,
            max_seq,
            min_readable_seq: min_readable,
            more,
        };
        Ok(frames::response(request_id, response::Result::Messages(result)))
    }
}

/// Replies to `op` with the user's new conversation state and, when it
/// changed, pushes the same state to the user's other devices.
fn reply_with_state(op: &ShardOp, state: pb::ConversationState, changed: bool, effects: &mut Vec<Effect>) {
    if changed {
        effects.push(Effect::Fanout {
            users: vec![op.user.clone()].into(),
            exclude: Some(op.origin),
            frame: frames::push(push::Event::Conversation(state.clone())),
        });
    }
    effects.push(Effect::Reply {
        conn: op.origin,
        request_id: op.request_id,
        frame: frames::response(op.request_id, response::Result::Conversation(state)),
    });
}

/// Builds `user`'s (members[me]) view of a conversation from its entry.
fn conversation_state(conv: &ConvId, entry: &ConvEntry, me: usize, floor_ms: u64) -> pb::ConversationState {
    let rec = &entry.members[me].rec;
    let peer_read_seq = entry.members.iter().enumerate().find(|(i, _)| *i != me).map(|(_, m)| m.rec.read_seq);
    let last_message = match &entry.last {
        Some(b) if entry.max_seq > rec.cleared_seq => {
            pb::Message::decode(b.as_ref()).ok().filter(|m| m.server_time_ms >= floor_ms)
        }
        _ => None,
    };
    state_from_parts(conv, entry.max_seq, rec, peer_read_seq.unwrap_or(0), last_message)
}

/// Builds a [`pb::ConversationState`]; shared with the sync path.
pub(crate) fn state_from_parts(
    conv: &ConvId,
    max_seq: u64,
    rec: &UserConvRecord,
    peer_read_seq: u64,
    last_message: Option<pb::Message>,
) -> pb::ConversationState {
    pb::ConversationState {
        conv_id: conv.to_string(),
        max_seq,
        read_seq: rec.read_seq,
        unread: max_seq.saturating_sub(rec.read_seq.max(rec.cleared_seq)),
        cleared_seq: rec.cleared_seq,
        pinned: rec.pinned,
        muted: rec.muted,
        hidden: rec.hidden,
        last_message,
        peer_read_seq,
        pin_time_ms: rec.pin_time_ms,
        mentioned: false,
        group_notify: 0,
        min_readable_seq: 0,
    }
}
