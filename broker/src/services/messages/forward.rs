//! ForwardMessages (spec 18.9, [FW-1]..[FW-8]): copies of messages of one
//! conversation stored in another, one by one or merged into one bubble.
//!
//! Role: a forward crosses owners (the source's and the destination's), so it
//! runs in two steps, like sync:
//! 1. [`read_source`] runs on the query pool (`session::forward`), reads the
//!    source messages from committed storage and checks that the caller may
//!    read each one (participant or member, inside their readable window:
//!    cleared history, join floor, departure, roaming floor, `no_history`);
//!    `session::forward` then builds the copies and routes each one as an
//!    ordinary `SendMessage` (`route::route`: mutes, word lists, content
//!    checks, kind limits) and hands the checked copies to the destination's
//!    owner as ONE [`MessagesOp::Forward`](super::MessagesOp::Forward);
//! 2. [`stage`] runs on the destination's owner and stores every copy through
//!    the same `send_as` as a SendMessage (dedup, participant, blacklist,
//!    group membership and mutes, after-send events) inside one save point.
//!
//! Invariants: the content is copied by the server from storage (the client
//! names seqs only); the forward is all or nothing (one op, one save point);
//! copy i of a one-by-one forward has client_msg_id `"{client_msg_id}:{i}"`,
//! so a retry is deduplicated message by message; the source read sees only
//! committed state, so it never waits for the source's owner.

use missive_protocol::pb::{self, response};
use missive_protocol::{ClientMsgId, ConvId, ConvKind, ErrorCode, Seq, UserId};
use prost::Message as _;

use crate::error::Reject;
use crate::node::Node;
use crate::node::clock::roam_floor_ms;
use crate::services::{Services, Undo, checks, groups};
use crate::shard::{Answer, ShardOp, Turn};

use super::MessagesOp;
use super::send::{Sender, send_as};

/// Most seqs of a one-by-one forward ([FW-2]).
pub(crate) const MAX_ONE_BY_ONE: usize = 100;
/// Most seqs of a merged forward ([FW-3]).
pub(crate) const MAX_MERGED: usize = 10;

/// A ForwardMessages that passed the stateless checks ([FW-2]).
#[derive(Debug)]
pub(crate) struct ForwardReq {
    pub(crate) from: ConvId,
    pub(crate) to: ConvId,
    pub(crate) seqs: Vec<u64>,
    pub(crate) merged: bool,
    pub(crate) title: String,
    /// The client message id of each copy (one by one: `"{id}:{i}"`; merged: one).
    pub(crate) client_msg_ids: Vec<ClientMsgId>,
}

/// The stateless checks of ForwardMessages, in the order of [FW-2].
pub(crate) fn check(user: &UserId, req: pb::ForwardMessages) -> Result<ForwardReq, Reject> {
    let from = checks::conversation(user, &req.from_conv_id)?;
    let to = checks::conversation(user, &req.to_conv_id)?;
    if to.kind() == ConvKind::Broadcast {
        return Err(Reject::new(
            ErrorCode::PermissionDenied,
            "only the admin API posts to a broadcast conversation",
        ));
    }
    let max = if req.merged { MAX_MERGED } else { MAX_ONE_BY_ONE };
    if req.seqs.is_empty() || req.seqs.len() > max {
        let how = if req.merged { "merged" } else { "one by one" };
        return Err(checks::invalid(format!("seqs: give 1..={max} seqs ({how})")));
    }
    let mut sorted = req.seqs.clone();
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(checks::invalid("seqs: a seq is named twice"));
    }
    if sorted.first() == Some(&0) {
        return Err(Reject::new(ErrorCode::MessageNotFound, "seq 0 names no message"));
    }
    if !req.merged && !req.title.is_empty() {
        return Err(checks::invalid("title: only for a merged forward"));
    }
    let base = ClientMsgId::new(req.client_msg_id.as_str())
        .map_err(|e| Reject::new(ErrorCode::InvalidArgument, e.to_string()))?;
    let client_msg_ids = if req.merged {
        vec![base]
    } else {
        (0..req.seqs.len())
            .map(|i| {
                ClientMsgId::new(format!("{}:{i}", base.as_str())).map_err(|_| {
                    checks::invalid(format!(
                        "client_msg_id: \"{{client_msg_id}}:{i}\" must fit in 64 bytes: shorten it"
                    ))
                })
            })
            .collect::<Result<_, _>>()?
    };
    Ok(ForwardReq { from, to, seqs: req.seqs, merged: req.merged, title: req.title, client_msg_ids })
}

/// The caller's readable window in `conv` from committed storage: (lowest
/// readable seq, highest readable seq, read seq). Not a participant or
/// member (now or before) → 3002.
fn window(node: &Node, user: &UserId, conv: &ConvId) -> Result<(u64, u64, u64), Reject> {
    let store = &node.store;
    let rec = store.user_conv(user, conv)?.unwrap_or_default();
    match conv.kind() {
        ConvKind::Group => {
            let not_member = || Reject::new(ErrorCode::NotParticipant, "you are not a member of this group");
            let group = conv.group_id().ok_or_else(not_member)?;
            let info = store.group(&group)?.ok_or_else(not_member)?;
            let member = store.group_member(&group, user.as_str())?;
            let departed = if member.is_none() { store.group_departed(&group, user.as_str())? } else { None };
            let who = match (&member, &departed) {
                (Some(m), _) => groups::views::Membership::Member(m),
                (None, Some(d)) => groups::views::Membership::Departed(d),
                (None, None) => return Err(not_member()),
            };
            let max_seq = store.max_seq(conv)?.0;
            let (min, top) = groups::views::window(&info, who, &rec, max_seq);
            Ok((min, top, rec.read_seq))
        }
        ConvKind::Broadcast => {
            let (max_seq, min) = super::broadcast::window(store, user, conv)?;
            Ok((min, max_seq, rec.read_seq))
        }
        ConvKind::Direct => Ok((rec.cleared_seq + 1, store.max_seq(conv)?.0, rec.read_seq)),
        ConvKind::Room | ConvKind::Channel => {
            Err(Reject::new(ErrorCode::UnsupportedConversation, "only p: and g: conversations are served"))
        }
    }
}

/// [FW-4]: the source messages, in the order of `req.seqs`, each one the
/// caller may read now (committed storage; runs on the query pool).
pub(crate) fn read_source(
    node: &Node,
    user: &UserId,
    req: &ForwardReq,
    now_ms: u64,
) -> Result<Vec<pb::Message>, Reject> {
    let (min, top, read_seq) = window(node, user, &req.from)?;
    let floor_ms = roam_floor_ms(now_ms, node.config.history.roam_days);
    let not_found = |seq: u64| {
        Reject::new(ErrorCode::MessageNotFound, format!("seq {seq}: no message of {} you may read", req.from))
    };
    let mut out = Vec::with_capacity(req.seqs.len());
    for &seq in &req.seqs {
        if seq < min || seq > top {
            return Err(not_found(seq));
        }
        let Some(bytes) = node.store.message(&req.from, Seq(seq))? else { return Err(not_found(seq)) };
        let m = pb::Message::decode(bytes.as_slice())
            .map_err(|e| Reject::new(ErrorCode::Internal, format!("stored message undecodable: {e}")))?;
        if m.recalled.is_some() || m.deleted {
            return Err(Reject::new(
                ErrorCode::MessageRecalled,
                format!("seq {seq} was recalled or deleted: it cannot be forwarded"),
            ));
        }
        let placeholder = m.flags.as_ref().is_some_and(|f| f.no_history) && seq <= read_seq;
        if m.server_time_ms < floor_ms
            || placeholder
            || m.content.is_none()
            || node.store.is_deleted_for(&req.from, user, seq)?
        {
            return Err(not_found(seq));
        }
        out.push(m);
    }
    Ok(out)
}

/// [FW-5]: the content of a copy: the body and `ex` as stored; the quote and
/// mentions refer to the source conversation and are dropped.
pub(crate) fn copy_content(c: &pb::Content) -> pb::Content {
    pb::Content { body: c.body.clone(), quote: None, mentions: None, ex: c.ex.clone() }
}

/// The contents to send for `req` from the source messages `src`: one per
/// message, or one merged bubble ([FW-6]).
pub(crate) fn contents(req: &ForwardReq, src: Vec<pb::Message>) -> Vec<pb::Content> {
    if !req.merged {
        return src.iter().filter_map(|m| m.content.as_ref().map(copy_content)).collect();
    }
    let items = src
        .iter()
        .map(|m| pb::MergedItem {
            sender: m.sender.clone(),
            server_time_ms: m.server_time_ms,
            content: m.content.as_ref().map(copy_content),
        })
        .collect();
    vec![pb::Content {
        body: Some(pb::content::Body::Merged(pb::Merged { title: req.title.clone(), items })),
        ..Default::default()
    }]
}

/// Stores the copies on the destination's owner, each through the send path.
pub(super) fn stage(
    s: &mut Services,
    op: &ShardOp<MessagesOp>,
    conv: &ConvId,
    items: &[(ClientMsgId, pb::Content)],
    t: &mut Turn<Undo>,
) -> Result<Answer, Reject> {
    let who = Sender {
        conn: op.origin.conn(),
        user: &op.user,
        device: &op.device,
        time_ms: None,
        flags: None,
        fresh: None,
    };
    let mut acks = Vec::with_capacity(items.len());
    for (client_msg_id, content) in items {
        acks.push(send_as(s, &who, conv, client_msg_id, content, t)?);
    }
    Ok(Answer::Response(response::Result::Forward(pb::ForwardResult { acks })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(seqs: Vec<u64>, merged: bool, title: &str, cmid: &str) -> pb::ForwardMessages {
        pb::ForwardMessages {
            from_conv_id: "p:alice:bob".into(),
            seqs,
            to_conv_id: "g:team".into(),
            merged,
            title: title.into(),
            client_msg_id: cmid.into(),
        }
    }

    fn code(r: pb::ForwardMessages) -> Option<ErrorCode> {
        let alice = UserId::new("alice").expect("user");
        check(&alice, r).err().map(|e| e.code)
    }

    #[test]
    fn stateless_checks() {
        let inv = Some(ErrorCode::InvalidArgument);
        assert_eq!(code(req(vec![], false, "", "c")), inv);
        assert_eq!(code(req((1..=101).collect(), false, "", "c")), inv);
        assert_eq!(code(req((1..=100).collect(), false, "", "c")), None);
        assert_eq!(code(req((1..=11).collect(), true, "", "c")), inv);
        assert_eq!(code(req((1..=10).collect(), true, "t", "c")), None);
        assert_eq!(code(req(vec![2, 1, 2], false, "", "c")), inv);
        assert_eq!(code(req(vec![1, 0], false, "", "c")), Some(ErrorCode::MessageNotFound));
        assert_eq!(code(req(vec![1], false, "t", "c")), inv);
        assert_eq!(code(req(vec![1], false, "", "")), inv);
        // "{id}:{i}" must fit in 64 bytes; merged uses the id itself.
        assert_eq!(code(req(vec![1], false, "", &"x".repeat(62))), None);
        assert_eq!(code(req(vec![1], false, "", &"x".repeat(63))), inv);
        assert_eq!(code(req(vec![1], true, "", &"x".repeat(64))), None);
        let mut r = req(vec![1], false, "", "c");
        r.to_conv_id = "b:all".into();
        assert_eq!(code(r), Some(ErrorCode::PermissionDenied));
        let mut r = req(vec![1], false, "", "c");
        r.from_conv_id = "p:bob:carol".into();
        assert_eq!(code(r), Some(ErrorCode::NotParticipant));
        let ok = check(&UserId::new("alice").expect("user"), req(vec![5, 3], false, "", "f")).expect("ok");
        let ids: Vec<&str> = ok.client_msg_ids.iter().map(ClientMsgId::as_str).collect();
        assert_eq!(ids, vec!["f:0", "f:1"]);
    }

    #[test]
    fn copies_drop_quote_and_mentions() {
        let c = pb::Content {
            body: Some(pb::content::Body::Text(pb::Text { text: "hi".into() })),
            quote: Some(pb::Quote { seq: 3, ..Default::default() }),
            mentions: Some(pb::Mentions { user_ids: vec!["bob".into()], all: true }),
            ex: vec![1, 2],
        };
        let copy = copy_content(&c);
        assert_eq!((copy.body, copy.quote, copy.mentions, copy.ex), (c.body, None, None, vec![1, 2]));
    }
}
