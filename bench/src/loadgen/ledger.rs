//! Delivery verification: what the server acknowledged versus what the
//! receivers actually saw, per conversation.
//!
//! Role: every scenario records each `SendAck` (`ack`: conversation, seq, and
//! the generator's message number) and each message a receiver got, by push
//! or pull (`deliver`). [`Ledger::verdict`] then counts:
//! - `lost`: acked (so the server promised it is stored) but never delivered;
//! - `duplicates`: deliveries of a seq beyond the first, on one receiver;
//! - `order_violations`: a delivery whose seq is lower than one this receiver
//!   already saw in the conversation (pushes and pull pages must ascend);
//! - `mismatched`: a seq delivered with a different message than the one the
//!   server acknowledged at that seq, or acked twice for different messages;
//! - `unexpected`: delivered but never acknowledged by the end of the run;
//! - `invalid`: seq 0 or beyond [`MAX_SEQ`] (refused, not stored).
//!
//! Invariants: acks and deliveries may arrive in either order (they travel on
//! different connections); the accounting does not depend on it. Memory is
//! a few bytes per seq (dense vectors indexed by seq), bounded by `MAX_SEQ`
//! per conversation. One ledger tracks one receiver per conversation.

use std::ops::AddAssign;

use serde::Serialize;

/// Highest seq a ledger stores (bounds memory against a corrupt seq).
pub(crate) const MAX_SEQ: u64 = 50_000_000;

/// Index of a conversation in a [`Ledger`].
pub(crate) type ConvIdx = usize;

#[derive(Debug, Default)]
struct Conv {
    /// Per seq - 1: message number + 1 the server acked at that seq, 0 = none.
    acked: Vec<u32>,
    /// Per seq - 1: message number + 1 first delivered at that seq, 0 = none.
    delivered_msg: Vec<u32>,
    /// Per seq - 1: how many times it was delivered (saturating).
    seen: Vec<u16>,
    /// Highest seq delivered so far.
    last_seen: u64,
}

impl Conv {
    fn slot(&mut self, seq: u64) -> Option<usize> {
        if seq == 0 || seq > MAX_SEQ {
            return None;
        }
        let i = (seq - 1) as usize;
        if self.acked.len() <= i {
            let n = (i + 1).max(self.acked.len() * 2).min(MAX_SEQ as usize);
            self.acked.resize(n, 0);
            self.delivered_msg.resize(n, 0);
            self.seen.resize(n, 0);
        }
        Some(i)
    }
}

/// Violation and volume counts; all violation fields must be zero for a pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Verdict {
    /// Distinct (conversation, seq) acknowledged.
    pub(crate) acked: u64,
    /// Distinct (conversation, seq) delivered.
    pub(crate) delivered: u64,
    pub(crate) lost: u64,
    pub(crate) duplicates: u64,
    pub(crate) order_violations: u64,
    pub(crate) mismatched: u64,
    pub(crate) unexpected: u64,
    pub(crate) invalid: u64,
}

impl Verdict {
    /// Sum of every violation count.
    pub(crate) fn violations(&self) -> u64 {
        self.lost + self.duplicates + self.order_violations + self.mismatched + self.unexpected + self.invalid
    }
}

impl AddAssign for Verdict {
    fn add_assign(&mut self, o: Self) {
        self.acked += o.acked;
        self.delivered += o.delivered;
        self.lost += o.lost;
        self.duplicates += o.duplicates;
        self.order_violations += o.order_violations;
        self.mismatched += o.mismatched;
        self.unexpected += o.unexpected;
        self.invalid += o.invalid;
    }
}

/// Acks and deliveries of a set of conversations.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    convs: Vec<Conv>,
    /// Acked seqs not (yet) delivered, across conversations.
    outstanding: u64,
    order_violations: u64,
    mismatched: u64,
    invalid: u64,
}

impl Ledger {
    /// A ledger for `n` conversations (indices `0..n`).
    pub(crate) fn new(n: usize) -> Self {
        Self { convs: (0..n).map(|_| Conv::default()).collect(), ..Self::default() }
    }

    /// The server acknowledged message number `msg` of conversation `conv` at `seq`.
    pub(crate) fn ack(&mut self, conv: ConvIdx, seq: u64, msg: u32) {
        let Some(c) = self.convs.get_mut(conv) else { return };
        let Some(i) = c.slot(seq) else {
            self.invalid += 1;
            return;
        };
        let tag = msg.saturating_add(1);
        match c.acked[i] {
            0 => {
                c.acked[i] = tag;
                if c.seen[i] == 0 {
                    self.outstanding += 1;
                } else if c.delivered_msg[i] != tag {
                    self.mismatched += 1;
                }
            }
            // The same message acked again (a retry answered `duplicate`): fine.
            t if t == tag => {}
            _ => self.mismatched += 1,
        }
    }

    /// A receiver got message number `msg` of conversation `conv` at `seq`.
    pub(crate) fn deliver(&mut self, conv: ConvIdx, seq: u64, msg: u32) {
        let Some(c) = self.convs.get_mut(conv) else { return };
        let Some(i) = c.slot(seq) else {
            self.invalid += 1;
            return;
        };
        let tag = msg.saturating_add(1);
        if c.seen[i] == 0 {
            if seq < c.last_seen {
                self.order_violations += 1;
            }
            c.delivered_msg[i] = tag;
            if c.acked[i] != 0 {
                self.outstanding -= 1;
                if c.acked[i] != tag {
                    self.mismatched += 1;
                }
            }
        }
        c.seen[i] = c.seen[i].saturating_add(1);
        c.last_seen = c.last_seen.max(seq);
    }

    /// Acked messages not delivered yet (the drain phase waits for 0).
    pub(crate) fn outstanding(&self) -> u64 {
        self.outstanding
    }

    /// Distinct seqs acknowledged in one conversation.
    pub(crate) fn acked_count(&self, conv: ConvIdx) -> u64 {
        self.convs.get(conv).map_or(0, |c| c.acked.iter().filter(|&&t| t != 0).count() as u64)
    }

    /// The final counts.
    pub(crate) fn verdict(&self) -> Verdict {
        let mut v = Verdict {
            order_violations: self.order_violations,
            mismatched: self.mismatched,
            invalid: self.invalid,
            ..Verdict::default()
        };
        for c in &self.convs {
            for (&a, &s) in c.acked.iter().zip(&c.seen) {
                v.acked += u64::from(a != 0);
                v.delivered += u64::from(s != 0);
                v.lost += u64::from(a != 0 && s == 0);
                v.unexpected += u64::from(a == 0 && s != 0);
                v.duplicates += u64::from(s.saturating_sub(1));
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_run_in_any_arrival_order() {
        let mut l = Ledger::new(2);
        // Conversation 0: ack before delivery; conversation 1: delivery first.
        for m in 0..10u32 {
            l.ack(0, u64::from(m) + 1, m);
            l.deliver(0, u64::from(m) + 1, m);
            l.deliver(1, u64::from(m) + 1, m);
        }
        assert_eq!(l.outstanding(), 0);
        for m in 0..10u32 {
            l.ack(1, u64::from(m) + 1, m);
        }
        let v = l.verdict();
        assert_eq!(v.violations(), 0, "{v:?}");
        assert_eq!((v.acked, v.delivered), (20, 20));
        assert_eq!(l.outstanding(), 0);
        assert_eq!(l.acked_count(1), 10);
    }

    #[test]
    fn counts_lost_duplicate_reordered_and_unexpected() {
        let mut l = Ledger::new(1);
        for m in 0..5u32 {
            l.ack(0, u64::from(m) + 1, m);
        }
        l.deliver(0, 1, 0);
        l.deliver(0, 3, 2);
        l.deliver(0, 2, 1); // below 3: out of order
        l.deliver(0, 3, 2); // again: duplicate (not an order violation)
        l.deliver(0, 7, 6); // never acked
        assert_eq!(l.outstanding(), 2); // seqs 4 and 5
        let v = l.verdict();
        assert_eq!(v.lost, 2);
        assert_eq!(v.duplicates, 1);
        assert_eq!(v.order_violations, 1);
        assert_eq!(v.unexpected, 1);
        assert_eq!(v.mismatched, 0);
        assert_eq!(v.violations(), 5);
    }

    #[test]
    fn mismatched_message_at_a_seq_is_caught_both_ways() {
        let mut l = Ledger::new(1);
        l.ack(0, 1, 10);
        l.deliver(0, 1, 11); // ack first, wrong message delivered
        l.deliver(0, 2, 20);
        l.ack(0, 2, 21); // delivery first, ack says another message
        l.ack(0, 2, 21); // same ack repeated: not counted again
        l.ack(0, 2, 22); // a second, different message acked at seq 2
        assert_eq!(l.verdict().mismatched, 3);
    }

    #[test]
    fn invalid_seqs_are_refused_without_growing() {
        let mut l = Ledger::new(1);
        l.ack(0, 0, 1);
        l.deliver(0, MAX_SEQ + 1, 1);
        l.ack(7, 1, 1); // unknown conversation: ignored
        let v = l.verdict();
        assert_eq!(v.invalid, 2);
        assert_eq!(v.acked, 0);
    }
}
