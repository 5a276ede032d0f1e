//! Uncounted seqs (spec [MF-3]): the messages of a conversation that no
//! user counts as unread (`no_unread` sends; recall tips and recalled
//! messages use the same list through [`mark`]).
//!
//! Role: unread is seq arithmetic (`top − read floor`, [Y-12]); each
//! conversation (1:1 or group: read diffusion, one list per group, not per
//! member) keeps its most recent uncounted seqs in one `meta/"unc"/conv`
//! record, and a user's unread is reduced by those above their read floor
//! ([`adjust`]). The owner shard caches the lists it uses ([`UncountedCache`]);
//! sync reads the stored record.
//!
//! Invariants:
//! - a list holds at most `messages.uncounted_max` seqs, ascending, without
//!   duplicates; when it is full the oldest drops out (and counts again as
//!   unread for a user whose read floor is below it);
//! - the record has one writer, the conversation's owner, and changes only
//!   through [`mark`] inside a turn: the cache change is undone with the op
//!   (`Undo::Uncounted`) and the cache is dropped after a failed write;
//! - the cache is bounded (`limits.conv_cache_entries` lists; 10 % evicted
//!   between turns when full).

use std::collections::HashMap;
use std::sync::Arc;

use missive_protocol::pb;
use missive_protocol::{ConvId, ErrorCode};
use missive_storage::Store;

use crate::error::Reject;
use crate::services::{Services, Undo};
use crate::shard::Turn;

/// A conversation's uncounted seqs, ascending.
pub(crate) type Seqs = Arc<[u64]>;

/// The owner shard's cache of uncounted lists; see the module docs.
#[derive(Debug)]
pub(crate) struct UncountedCache {
    entries: HashMap<ConvId, Seqs>,
    cap: usize,
    dirty: bool,
}

impl UncountedCache {
    pub(crate) fn new(cap: usize) -> Self {
        Self { entries: HashMap::new(), cap: cap.max(1), dirty: false }
    }

    /// The list of `conv` (loaded on first use).
    pub(crate) fn get(&mut self, store: &Store, conv: &ConvId) -> Result<Seqs, Reject> {
        if let Some(v) = self.entries.get(conv) {
            return Ok(Arc::clone(v));
        }
        if !self.dirty && self.entries.len() >= self.cap {
            let drop_n = self.entries.len() - self.cap * 9 / 10;
            let victims: Vec<ConvId> = self.entries.keys().take(drop_n).cloned().collect();
            for v in victims {
                self.entries.remove(&v);
            }
        }
        let v: Seqs = store.uncounted(conv)?.into();
        self.entries.insert(conv.clone(), Arc::clone(&v));
        Ok(v)
    }

    /// Undo: puts back a list's previous value (`None`: drop it, it reloads).
    pub(crate) fn restore(&mut self, conv: ConvId, before: Option<Seqs>) {
        match before {
            Some(v) => {
                self.entries.insert(conv, v);
            }
            None => {
                self.entries.remove(&conv);
            }
        }
    }

    /// The turn's write failed: drop what it changed (everything, simply).
    pub(crate) fn drop_staged(&mut self) {
        if self.dirty {
            self.entries.clear();
        }
    }

    pub(crate) fn end_turn(&mut self) {
        self.dirty = false;
    }
}

/// Marks `seq` of `conv` uncounted for every user (spec [MF-3]). Call it on
/// the conversation's owner, inside the op that stores (or changes) the
/// message; it stages the record in the turn's batch. Idempotent.
pub(crate) fn mark(s: &mut Services, t: &mut Turn<Undo>, conv: &ConvId, seq: u64) -> Result<(), Reject> {
    if seq == 0 {
        return Err(Reject::new(ErrorCode::Internal, "seq 0 cannot be uncounted"));
    }
    let store = s.node.store.clone();
    let before = s.uncounted.get(&store, conv)?;
    let max = s.node.config.messages.uncounted_max.max(1) as usize;
    let mut v = before.to_vec();
    match v.binary_search(&seq) {
        Ok(_) => return Ok(()),
        Err(i) => v.insert(i, seq),
    }
    if v.len() > max {
        v.drain(..v.len() - max);
    }
    t.batch.put_uncounted(conv, &v);
    t.undo(Undo::Uncounted(conv.clone(), Some(before)));
    s.uncounted.dirty = true;
    s.uncounted.entries.insert(conv.clone(), v.into());
    Ok(())
}

/// How many of `seqs` are in `(floor, top]`.
pub(crate) fn count_in(seqs: &[u64], floor: u64, top: u64) -> u64 {
    if top <= floor {
        return 0;
    }
    let lo = seqs.partition_point(|&x| x <= floor);
    let hi = seqs.partition_point(|&x| x <= top);
    (hi - lo) as u64
}

/// Takes the uncounted seqs above the user's read floor out of `state.unread`.
/// The floor is recovered from the state itself (`max_seq − unread`), so this
/// works on every state whatever formula built it.
pub(crate) fn adjust(state: &mut pb::ConversationState, seqs: &[u64]) {
    if state.unread == 0 || seqs.is_empty() {
        return;
    }
    let floor = state.max_seq.saturating_sub(state.unread);
    state.unread = state.unread.saturating_sub(count_in(seqs, floor, state.max_seq));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_inside_the_window() {
        let seqs = [2, 5, 6, 9];
        assert_eq!(count_in(&seqs, 0, 10), 4);
        assert_eq!(count_in(&seqs, 5, 10), 2);
        assert_eq!(count_in(&seqs, 5, 6), 1);
        assert_eq!(count_in(&seqs, 9, 9), 0);
        assert_eq!(count_in(&seqs, 10, 3), 0);
        let mut st = pb::ConversationState { max_seq: 10, unread: 6, ..Default::default() };
        adjust(&mut st, &seqs);
        assert_eq!(st.unread, 3, "floor 4: 5, 6 and 9 are not counted");
        let mut st = pb::ConversationState { max_seq: 10, unread: 0, ..Default::default() };
        adjust(&mut st, &seqs);
        assert_eq!(st.unread, 0);
    }
}
