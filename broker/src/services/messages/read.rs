//! Pull and History: pages of a conversation's log, served after the turn's
//! write (so a read sees every write requested before it).
//!
//! Invariants: a page stops before its frame could exceed the frame limit
//! (spec ), and the scan stops there too: it reads at most one row it
//! does not return; clients page on `more`, never on the item count.

use missive_protocol::pb::{self, response};
use missive_protocol::{ConvKind, ErrorCode, Seq};
use prost::Message as _;

use crate::error::Reject;
use crate::node::clock::roam_floor_ms;
use crate::services::{Services, groups};
use crate::shard::ShardOp;

use super::MessagesOp;

/// Bytes a message adds to a `Messages` reply besides its own encoding: the
/// field tag and the length prefix (at most 1 + 5).
const ROW_OVERHEAD: usize = 8;

/// Serves a pull or history read from committed state.
pub(crate) fn read(
    s: &mut Services,
    op: ShardOp<MessagesOp>,
    now_ms: u64,
) -> Result<response::Result, Reject> {
    let config = std::sync::Arc::clone(&s.node.config);
    let lim = &config.limits;
    let page =
        |limit: u32| if limit == 0 { lim.pull_page_default } else { limit.min(lim.pull_page_max) } as usize;
    let (conv, ascending, from, to, limit) = match op.op {
        MessagesOp::Pull { conv, req } => (conv, true, req.from_seq, req.to_seq, page(req.limit)),
        MessagesOp::History { conv, req } => (conv, false, 0, req.before_seq, page(req.limit)),
        MessagesOp::LifeRead { conv, read } => return super::updates::read(s, &op.user, &conv, read, now_ms),
        MessagesOp::Send { .. }
        | MessagesOp::Import { .. }
        | MessagesOp::Change { .. }
        | MessagesOp::Delete { .. }
        | MessagesOp::Forward { .. } => {
            return Err(Reject::new(ErrorCode::Internal, "a write is not a read"));
        }
    };
    let store = s.node.store.clone();
    let (max_seq, min_readable) = if conv.kind() == ConvKind::Group {
        let (min_readable, top) = groups::window_of(s, &op.user, &conv)?;
        (top, min_readable)
    } else if conv.kind() == ConvKind::Broadcast {
        super::broadcast::window(&store, &op.user, &conv)?
    } else {
        let entry = s.convs.get(&store, &conv)?;
        let me = entry.participant(&op.user)?;
        (entry.max_seq, entry.members[me].rec.cleared_seq + 1)
    };
    let floor_ms = roam_floor_ms(now_ms, config.history.roam_days);
    // [MF-2]: no_history messages keep their content only in pulls above the reader's read seq.
    let read_seq = if ascending { super::flags::read_seq_of(s, &op.user, &conv)? } else { u64::MAX };
    // the page stops at the reply's byte budget while reading, so a
    // page of large messages reads at most one row it does not return.
    let byte_budget =
        (lim.max_frame_size as usize).saturating_sub(crate::config::FRAME_HEADROOM + limit * ROW_OVERHEAD);
    let page = if ascending {
        let to = if to == 0 { max_seq } else { to.min(max_seq) };
        store.messages(&conv, Seq(from.max(min_readable)), Seq(to), limit, byte_budget)?
    } else {
        let before = if to == 0 { max_seq + 1 } else { to.min(max_seq + 1) };
        store.messages_before(&conv, Seq(before), Seq(min_readable), limit, byte_budget)?
    };
    let more = page.more;
    let mut messages = Vec::with_capacity(page.rows.len());
    // History rows arrive newest-first, so a cut keeps the newest ones.
    for (_, bytes) in page.rows {
        let mut m = pb::Message::decode(bytes.as_slice())
            .map_err(|e| Reject::new(ErrorCode::Internal, format!("stored message undecodable: {e}")))?;
        if m.server_time_ms >= floor_ms {
            super::flags::render(&mut m, read_seq);
            messages.push(m);
        }
    }
    if !ascending {
        messages.reverse();
    }
    super::life::overlay(&store, &op.user, &conv, &mut messages)?;
    Ok(response::Result::Messages(pb::Messages {
        conv_id: conv.to_string(),
        messages,
        max_seq,
        min_readable_seq: min_readable,
        more,
    }))
}
