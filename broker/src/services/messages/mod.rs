//! The messages service: SendMessage, Pull and History.
//!
//! Role: a send runs on the owner shard of its conversation, which alone
//! assigns the conversation's seqs and writes its log. A 1:1 send is staged
//! here ([`send`]); a group send goes on to `groups::send` (read diffusion).
//! Pull and history are reads served after the turn's write ([`read`]).
//! Send flags and the uncounted seqs are in [`flags`] and [`uncounted`];
//! a forward's sends are staged here ([`forward`]) after the source was read
//! off the I/O loop (`session::forward`).
//!
//! Invariants:
//! - (conv, sender, device, client_msg_id) maps to one stored message: checked
//!   against this turn's staged sends, then the durable `dedup` keyspace; the
//!   dedup record is written in the same batch as the message;
//! - seqs are dense: the cached max seq advances only while staging, and a
//!   refused op or failed write puts the cache back (undo / reload);
//! - the blacklist ([B-2]) is checked here, at the moment of the write.

pub(crate) mod broadcast;
pub(crate) mod check;
pub(crate) mod delete;
pub(crate) mod extensions;
pub(crate) mod flags;
pub(crate) mod forward;
pub(crate) mod life;
pub(crate) mod reactions;
mod read;
pub(crate) mod recall;
pub(crate) mod retries;
mod send;
pub(crate) mod uncounted;
pub(crate) mod updates;

use missive_protocol::pb;
use missive_protocol::{ClientMsgId, ConvId};

use crate::error::Reject;
use crate::services::{Services, Undo};
use crate::shard::{Answer, ShardOp, Staged, Turn};

pub(crate) use read::read;

/// A messages op (owner: the conversation).
#[derive(Debug)]
pub(crate) enum MessagesOp {
    Send {
        conv: ConvId,
        client_msg_id: ClientMsgId,
        content: pb::Content,
        /// Send flags (spec 18.8); `None` = none.
        flags: Option<pb::MessageFlags>,
        /// `first_attempt` was set ([S-7]): when the sending session began
        /// (`None`: not set, or not a client session).
        fresh: Option<std::time::Instant>,
    },
    /// ForwardMessages (spec 18.9): the copies to store in `conv`, already
    /// read from the source and checked as sends (`session::forward`).
    Forward {
        conv: ConvId,
        items: Vec<(ClientMsgId, pb::Content)>,
    },
    Pull {
        conv: ConvId,
        req: pb::PullRequest,
    },
    History {
        conv: ConvId,
        req: pb::HistoryRequest,
    },
    /// Admin API only (no client request maps here): one historical message
    /// stored with its original sender (the op's user) and time (spec [AM-1]).
    Import {
        conv: ConvId,
        client_msg_id: ClientMsgId,
        content: pb::Content,
        time_ms: u64,
    },
    /// A change of one stored message (spec section 18); `admin`: the admin
    /// API acting on any message.
    Change {
        conv: ConvId,
        seq: u64,
        change: Change,
        admin: bool,
    },
    /// DeleteMessages (spec 18.3): 1..=100 seqs, for the caller or for
    /// everyone; `admin`: the admin API.
    Delete {
        conv: ConvId,
        seqs: Vec<u64>,
        for_everyone: bool,
        admin: bool,
    },
    /// A lifecycle read, served after the turn's write.
    LifeRead {
        conv: ConvId,
        read: LifeRead,
    },
}

/// What a lifecycle change does (checked statelessly by `route`).
#[derive(Debug)]
pub(crate) enum Change {
    /// Add or remove the caller's reaction `key` ([RX-1]).
    React { key: String, remove: bool },
    /// Set and remove extension keys ([EX-1]).
    Extensions {
        set: std::collections::BTreeMap<String, String>,
        remove: Vec<String>,
        if_version: Option<u64>,
    },
    /// Recall the message ([RC-1]).
    Recall,
    /// Replace the content of one's own message ([ED-1]).
    Edit { content: pb::Content },
}

/// A lifecycle read.
#[derive(Debug)]
pub(crate) enum LifeRead {
    /// GetReactions: summaries of up to 100 messages.
    Reactions { seqs: Vec<u64> },
    /// ListReactionUsers: a page of one key's users.
    ReactionUsers { seq: u64, key: String, after: String, limit: usize },
    /// PullUpdates ([UP-2]).
    Updates { after: u64, limit: usize },
}

impl MessagesOp {
    pub(crate) fn conv(&self) -> &ConvId {
        match self {
            Self::Send { conv, .. }
            | Self::Forward { conv, .. }
            | Self::Pull { conv, .. }
            | Self::History { conv, .. }
            | Self::Import { conv, .. }
            | Self::Change { conv, .. }
            | Self::Delete { conv, .. }
            | Self::LifeRead { conv, .. } => conv,
        }
    }
}

/// The identity of a send for deduplication ([invariant 3]): its stored
/// `dedup` key (conversation, sender, device, client_msg_id), built once.
pub(crate) type DedupKey = Box<[u8]>;

pub(crate) fn stage(
    s: &mut Services,
    op: ShardOp<MessagesOp>,
    t: &mut Turn<Undo>,
) -> Result<Staged<MessagesOp>, Reject> {
    match &op.op {
        MessagesOp::Pull { .. } | MessagesOp::History { .. } | MessagesOp::LifeRead { .. } => {
            Ok(Staged::Read(op))
        }
        MessagesOp::Change { conv, seq, change, admin } => {
            let answer = match change {
                Change::React { key, remove } => reactions::react(s, &op, conv, *seq, key, *remove, t)?,
                Change::Extensions { set, remove, if_version } => {
                    extensions::set(s, &op, conv, *seq, set, remove, *if_version, *admin, t)?
                }
                Change::Recall => recall::recall(s, &op, conv, *seq, *admin, t)?,
                Change::Edit { content } => recall::edit(s, &op, conv, *seq, content, t)?,
            };
            Ok(Staged::Done(Answer::Response(answer)))
        }
        MessagesOp::Delete { conv, seqs, for_everyone, admin } => {
            let answer = delete::delete(s, &op, conv, seqs, *for_everyone, *admin, t)?;
            Ok(Staged::Done(Answer::Response(answer)))
        }
        MessagesOp::Send { conv, .. } if !broadcast::claim(conv, t) => Ok(Staged::Defer(op)),
        MessagesOp::Send { conv, client_msg_id, content, flags, fresh } => {
            let a = send::stage(s, &op, conv, client_msg_id, content, None, *flags, *fresh, t)?;
            Ok(Staged::Done(a))
        }
        MessagesOp::Forward { conv, items } => Ok(Staged::Done(forward::stage(s, &op, conv, items, t)?)),
        MessagesOp::Import { conv, client_msg_id, content, time_ms } => {
            let a = send::stage(s, &op, conv, client_msg_id, content, Some(*time_ms), None, None, t)?;
            Ok(Staged::Done(a))
        }
    }
}
