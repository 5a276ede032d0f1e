//! The services: the ONLY file that lists every service.
//!
//! Role: each service lives in its own folder and owns its ops, its checks
//! (called by `route.rs`), its staging on the owner shard, its read-only
//! queries and its part of the caches:
//!
//! | folder | requests |
//! |---|---|
//! | `messages/` | SendMessage (1:1; group sends go on to `groups/`), Pull, History; the admin API's broadcasts (`b:all`) and imports; the message lifecycle (section 18: `life.rs` core, reactions, extensions, updates) |
//! | `conversations/` | MarkRead, UpdateConversation, ClearHistory, SetGlobalDnd; the direct-conversation cache |
//! | `sync/` | Sync (served on the connection's worker), recording a device's sync token (owner) |
//! | `accounts/` | logins and multi-device policies, logouts, ImportUser, SetAccountDisabled, RevokeTokens, SetProfile, AccountsExist, GetProfiles; the admin API's Kick |
//! | `presence/` | SubscribePresence, UnsubscribePresence, SetPresenceStatus, GetPresence, ListPresenceSubscriptions |
//! | `relations/` | friends, friend requests, blacklist (pair records) and their queries |
//! | `groups/` | every group request, group sends, member state, receipts |
//! | `signals/` | Typing; delivery receipts (from `PushAck`) |
//! | `translate/` | TranslateMessage: checks, cache lookup (query pool), cache write (owner) |
//!
//! [`Services`] is one shard's service set: it implements the engine's
//! [`Service`] by dispatching each [`ServiceOp`] to its service, and owns the
//! caches the services share (a 1:1 send and a block of the same pair meet in
//! the direct-conversation cache).
//!
//! Invariants: services change stored state only through the turn's batch and
//! caches only after recording an [`Undo`]; they read time only from the turn
//! (`Turn::now_ms`); they never do network I/O (they return effects).

pub(crate) mod accounts;
pub(crate) mod checks;
pub(crate) mod conversations;
pub(crate) mod events;
pub(crate) mod groups;
pub(crate) mod messages;
pub(crate) mod presence;
pub(crate) mod relations;
pub(crate) mod signals;
pub(crate) mod sync;
pub(crate) mod translate;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use missive_protocol::pb::response;
use missive_protocol::{ConvId, UserId};
use missive_storage::SettingsRecord;

use crate::error::Reject;
use crate::node::Node;
use crate::node::clock::MsgIdGen;
use crate::shard::{Service, ShardOp, Staged, Turn};

/// An op for an owner shard, by service.
#[derive(Debug)]
pub(crate) enum ServiceOp {
    Messages(messages::MessagesOp),
    Conversations(conversations::ConversationsOp),
    Sync(sync::SyncOp),
    Accounts(accounts::AccountsOp),
    Presence(presence::PresenceOp),
    Relations(relations::RelationsOp),
    Groups(groups::GroupsOp),
    Signals(signals::SignalsOp),
    Translate(translate::TranslateOp),
}

/// A read-only request served on the connection's own worker, from committed
/// storage and the online directory (no owner shard involved).
#[derive(Debug)]
pub(crate) enum LocalQuery {
    Accounts(accounts::Query),
    Presence(presence::Query),
    Relations(relations::Query),
    Groups(groups::Query),
}

/// Serves a [`LocalQuery`] for `user`.
pub(crate) fn serve_local(node: &Node, user: &UserId, q: LocalQuery) -> Result<response::Result, Reject> {
    match q {
        LocalQuery::Accounts(q) => accounts::serve(node, q),
        LocalQuery::Presence(q) => presence::serve(node, user, q),
        LocalQuery::Relations(q) => relations::serve(node, user, q),
        LocalQuery::Groups(q) => groups::serve(node, user, q),
    }
}

/// Sends staged and not yet durable, at most, before the engine stops
/// staging turns on top of in-flight ones (the dedup map and the caches'
/// staged state then drain with the pipeline).
const MAX_PIPELINED_SENDS: usize = 1 << 16;

/// How to undo one cache change of a refused op.
// Most records are entry snapshots; boxing them would add an allocation per staged op.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Undo {
    /// A direct conversation's cached entry before the change (`None`: it was not cached).
    Conv(ConvId, Option<conversations::cache::ConvSnapshot>),
    /// A group's cached entry before the change.
    Group(ConvId, Option<groups::entry::GroupEntry>),
    /// A group member's cached `uconv` record before the change.
    GroupUconv(ConvId, UserId, Option<missive_storage::UserConvRecord>),
    /// A send recorded in this turn's dedup map.
    Dedup(Arc<messages::DedupKey>),
    /// A user's settings staged in this turn, before the change.
    Settings(UserId, Option<SettingsRecord>),
    /// A lifecycle entry staged in this turn (rewritten message, extras, reaction keys).
    Life(messages::life::LifeUndo),
    /// A conversation's uncounted seqs before the change (spec [MF-3]).
    Uncounted(ConvId, Option<messages::uncounted::Seqs>),
}

/// One shard's services and the caches they share.
pub(crate) struct Services {
    pub(crate) idx: usize,
    pub(crate) node: Arc<Node>,
    /// Direct conversations (max seq, last message, both members' records, block flags).
    pub(crate) convs: conversations::cache::ConvCache,
    /// Groups in use (info, members, max seq) and their members' `uconv` records.
    pub(crate) groups: groups::entry::GroupCache,
    pub(crate) ids: MsgIdGen,
    /// Sends staged this turn (dedup before the batch is durable).
    pub(crate) dedup: HashMap<Arc<messages::DedupKey>, missive_storage::DedupRecord>,
    /// Keys stored without a first-attempt promise ([S-7]).
    pub(crate) retries: messages::retries::Retries,
    /// Settings records staged this turn.
    pub(crate) settings: HashMap<UserId, SettingsRecord>,
    /// Lifecycle state staged this turn (spec section 18).
    pub(crate) life: messages::life::Staging,
    /// Conversations' recent uncounted seqs (spec [MF-3]).
    pub(crate) uncounted: messages::uncounted::UncountedCache,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services").field("idx", &self.idx).finish()
    }
}

impl Services {
    pub(crate) fn new(idx: usize, node: Arc<Node>) -> Self {
        let groups = groups::entry::GroupCache::new(node.config.groups.cache_entries);
        let convs = conversations::cache::ConvCache::new(node.config.limits.conv_cache_entries);
        let node_cap = node.config.limits.conv_cache_entries;
        Self {
            idx,
            node,
            convs,
            groups,
            ids: MsgIdGen::new(idx),
            dedup: HashMap::new(),
            settings: HashMap::new(),
            retries: messages::retries::Retries::new(),
            life: messages::life::Staging::default(),
            uncounted: messages::uncounted::UncountedCache::new(node_cap),
        }
    }
}

impl Service for Services {
    type Op = ServiceOp;
    type Undo = Undo;

    fn stage(&mut self, op: ShardOp<ServiceOp>, t: &mut Turn<Undo>) -> Result<Staged<ServiceOp>, Reject> {
        let ShardOp { origin, user, device, op } = op;
        // Each service gets its own op back; `wrap` rebuilds the ShardOp for reads and deferrals.
        macro_rules! dispatch {
            ($variant:ident, $module:ident, $op:expr) => {{
                let sop = ShardOp { origin, user, device, op: $op };
                $module::stage(self, sop, t).map(|s| s.map_op(ServiceOp::$variant))
            }};
        }
        match op {
            ServiceOp::Messages(o) => dispatch!(Messages, messages, o),
            ServiceOp::Conversations(o) => dispatch!(Conversations, conversations, o),
            ServiceOp::Sync(o) => dispatch!(Sync, sync, o),
            ServiceOp::Accounts(o) => dispatch!(Accounts, accounts, o),
            ServiceOp::Presence(o) => dispatch!(Presence, presence, o),
            ServiceOp::Relations(o) => dispatch!(Relations, relations, o),
            ServiceOp::Groups(o) => dispatch!(Groups, groups, o),
            ServiceOp::Signals(o) => dispatch!(Signals, signals, o),
            ServiceOp::Translate(o) => dispatch!(Translate, translate, o),
        }
    }

    fn undo(&mut self, u: Undo) {
        match u {
            Undo::Conv(conv, before) => self.convs.restore(conv, before),
            Undo::Group(conv, before) => self.groups.restore(conv, before),
            Undo::GroupUconv(conv, user, before) => self.groups.restore_uconv(conv, user, before),
            Undo::Dedup(key) => {
                self.dedup.remove(&*key);
            }
            Undo::Life(u) => self.life.undo(u),
            Undo::Uncounted(conv, before) => self.uncounted.restore(conv, before),
            Undo::Settings(user, before) => match before {
                Some(r) => {
                    self.settings.insert(user, r);
                }
                None => {
                    self.settings.remove(&user);
                }
            },
        }
    }

    fn flush(&mut self, t: &mut Turn<Undo>) {
        self.convs.flush(&self.node.clock, t);
    }

    /// 1:1 and group sends, typing and delivery receipts: their staging
    /// reads storage only through caches that keep every in-flight turn's
    /// staged state until the pipeline drains (the direct-conversation and
    /// group caches with their members' records, this turn's dedup map, the
    /// uncounted seqs), and the engine stages them on top of turns made of
    /// such ops only.
    fn pipeline_safe(&self, op: &ServiceOp) -> bool {
        use missive_protocol::ConvKind;
        match op {
            ServiceOp::Messages(messages::MessagesOp::Send { conv, .. }) => {
                matches!(conv.kind(), ConvKind::Direct | ConvKind::Group)
            }
            ServiceOp::Signals(_) => true,
            _ => false,
        }
    }

    fn may_pipeline(&self) -> bool {
        self.dedup.len() < MAX_PIPELINED_SENDS
    }

    fn read(&mut self, op: ShardOp<ServiceOp>, now_ms: u64) -> Result<response::Result, Reject> {
        let ShardOp { origin, user, device, op } = op;
        match op {
            ServiceOp::Messages(o) => messages::read(self, ShardOp { origin, user, device, op: o }, now_ms),
            ServiceOp::Groups(o) => groups::read(self, ShardOp { origin, user, device, op: o }, now_ms),
            ServiceOp::Conversations(_)
            | ServiceOp::Sync(_)
            | ServiceOp::Accounts(_)
            | ServiceOp::Presence(_)
            | ServiceOp::Relations(_)
            | ServiceOp::Signals(_)
            | ServiceOp::Translate(_) => Err(Reject::new(
                missive_protocol::ErrorCode::Internal,
                "this service serves no reads after the write",
            )),
        }
    }

    fn write_failed(&mut self) {
        self.convs.drop_staged();
        self.groups.drop_touched();
        self.life.clear();
        self.uncounted.drop_staged();
    }

    fn end_turn(&mut self) {
        self.convs.end_turn();
        self.groups.end_turn();
        self.uncounted.end_turn();
        self.dedup.clear();
        self.settings.clear();
        self.life.clear();
    }
}
