//! Waiting for pushes: the next push, the first one matching a predicate
//! (dropping or keeping the others, as each helper says), the absence of a
//! push over a window, and the kick sequence (`Push{kicked}` then `Close`).
//!
//! Invariants: every wait is bounded ([`crate::WAIT`] unless a timeout is
//! given); helpers that say "others stay queued" keep every other push in
//! arrival order.

use std::time::{Duration, Instant};

use missive_protocol::pb::{self, frame};

use super::{RawClient, Recv};
use crate::{ErrorCode, WAIT};

impl RawClient {
    /// The next push (already received ones first), or `None` after `timeout`.
    pub fn next_push(&mut self, timeout: Duration) -> Option<pb::push::Event> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(p) = self.pushes.pop_front() {
                return Some(p.event.expect("push without event"));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Recv::Frame(f) => self.stash(f),
                Recv::Timeout | Recv::Eof => return None,
            }
        }
    }

    /// The next pushed message (other pushes before it are dropped), or `None`
    /// after `timeout`.
    pub fn next_message_push(&mut self, timeout: Duration) -> Option<pb::Message> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_push(left)? {
                pb::push::Event::Message(m) => return Some(m),
                _ => continue,
            }
        }
    }

    /// Waits for the first push matching `pred` (others are dropped); panics on timeout.
    pub fn expect_push<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&pb::push::Event) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_push(left) {
                Some(ev) => match pred(&ev) {
                    Some(t) => return t,
                    None => skipped.push(ev),
                },
                None => panic!("no push matching {what} within {timeout:?}; other pushes: {skipped:?}"),
            }
        }
    }

    /// Like [`RawClient::wait_push`], but `None` after `timeout`.
    pub fn try_wait_push<T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(&pb::push::Event) -> Option<T>,
    ) -> Option<T> {
        let found = self
            .pushes
            .iter()
            .enumerate()
            .find_map(|(i, p)| p.event.as_ref().and_then(&mut pick).map(|t| (i, t)));
        if let Some((i, t)) = found {
            self.pushes.remove(i);
            return Some(t);
        }
        let deadline = Instant::now() + timeout;
        let mut fresh = Vec::new();
        let result = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Recv::Frame(pb::Frame { body: Some(frame::Body::Push(p)) }) => {
                    if let Some(t) = p.event.as_ref().and_then(&mut pick) {
                        break Some(t);
                    }
                    fresh.push(p);
                }
                Recv::Frame(f) => self.stash(f),
                Recv::Timeout | Recv::Eof => break None,
            }
        };
        self.pushes.extend(fresh);
        result
    }

    /// Waits for the first push for which `pick` returns `Some` and removes
    /// it; every other push stays queued in order. Panics after `timeout`.
    pub fn wait_push<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        pick: impl FnMut(&pb::push::Event) -> Option<T>,
    ) -> T {
        match self.try_wait_push(timeout, pick) {
            Some(t) => t,
            None => panic!(
                "no push matching {what} within {timeout:?} (close: {:?}); queued pushes: {:?}",
                self.close, self.pushes
            ),
        }
    }

    /// Listens for `window` and panics if a push for which `bad` returns
    /// true is queued or arrives; other pushes stay queued.
    pub fn assert_no_push(
        &mut self,
        what: &str,
        window: Duration,
        mut bad: impl FnMut(&pb::push::Event) -> bool,
    ) {
        if let Some(p) = self.pushes.iter().find(|p| p.event.as_ref().is_some_and(&mut bad)) {
            panic!("unexpected push ({what}): {p:?}");
        }
        let deadline = Instant::now() + window;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match self.recv(left) {
                Recv::Frame(pb::Frame { body: Some(frame::Body::Push(p)) }) => {
                    if p.event.as_ref().is_some_and(&mut bad) {
                        panic!("unexpected push ({what}): {p:?}");
                    }
                    self.pushes.push_back(p);
                }
                Recv::Frame(f) => self.stash(f),
                Recv::Timeout | Recv::Eof => return,
            }
        }
    }

    /// Drops every queued push.
    pub fn clear_pushes(&mut self) {
        self.pushes.clear();
    }

    /// The next `Push{relation}` about `user` (others stay queued).
    pub fn expect_relation_push(&mut self, user: &str) -> pb::Relation {
        self.wait_push(&format!("relation with {user}"), WAIT, |ev| match ev {
            pb::push::Event::Relation(r) if r.user_id == user => Some(r.clone()),
            _ => None,
        })
    }

    /// The next `Push{profile}` of `user` (others stay queued).
    pub fn expect_profile_push(&mut self, user: &str) -> pb::Profile {
        self.wait_push(&format!("profile of {user}"), WAIT, |ev| match ev {
            pb::push::Event::Profile(p) if p.user_id == user => Some(p.clone()),
            _ => None,
        })
    }

    /// The next push that `extract` maps to a value for which `pred` holds;
    /// earlier values that do not match are dropped (a state may pass through
    /// intermediate values), other pushes stay queued. Panics after [`WAIT`].
    fn expect_push_where<T: std::fmt::Debug>(
        &mut self,
        what: &str,
        extract: impl Fn(&pb::push::Event) -> Option<T>,
        mut pred: impl FnMut(&T) -> bool,
    ) -> T {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.try_wait_push(left, &extract) {
                Some(v) if pred(&v) => return v,
                Some(v) => seen.push(v),
                None => panic!(
                    "no matching push of {what} within {WAIT:?}; non-matching ones: {seen:?}; close: {:?}",
                    self.close
                ),
            }
        }
    }

    /// The next `Push{presence}` of `user` for which `pred` holds (see
    /// `expect_push_where`: non-matching presence pushes of `user` are dropped).
    pub fn expect_presence_push(
        &mut self,
        user: &str,
        pred: impl FnMut(&pb::Presence) -> bool,
    ) -> pb::Presence {
        let extract = |ev: &pb::push::Event| match ev {
            pb::push::Event::Presence(p) if p.user_id == user => Some(p.clone()),
            _ => None,
        };
        self.expect_push_where(&format!("presence of {user}"), extract, pred)
    }

    /// The next `Push{relation}` about `user` for which `pred` holds
    /// (non-matching relation pushes about `user` are dropped).
    pub fn expect_relation_push_where(
        &mut self,
        user: &str,
        pred: impl FnMut(&pb::Relation) -> bool,
    ) -> pb::Relation {
        let extract = |ev: &pb::push::Event| match ev {
            pb::push::Event::Relation(r) if r.user_id == user => Some(r.clone()),
            _ => None,
        };
        self.expect_push_where(&format!("relation with {user}"), extract, pred)
    }

    /// Reads until the server closes the connection and asserts it sent
    /// `Push{kicked}` and then `Close{code}`; returns the `Kicked`. Pushes
    /// other than `kicked` are dropped.
    pub fn expect_kicked(&mut self, code: ErrorCode) -> pb::Kicked {
        let mut kicked = self.pushes.iter().find_map(|p| match &p.event {
            Some(pb::push::Event::Kicked(k)) => Some(k.clone()),
            _ => None,
        });
        let mut kicked_before_close = kicked.is_some() || self.close.is_none();
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Recv::Frame(pb::Frame { body: Some(frame::Body::Push(p)) }) => {
                    if let Some(pb::push::Event::Kicked(k)) = p.event {
                        kicked_before_close = self.close.is_none();
                        kicked = Some(k);
                    }
                }
                Recv::Frame(pb::Frame { body: Some(frame::Body::Close(c)) }) => self.close = Some(c),
                Recv::Frame(_) => {}
                Recv::Eof => break,
                Recv::Timeout => panic!(
                    "connection still open {WAIT:?} after expecting a kick (close so far: {:?}, kicked: {kicked:?})",
                    self.close
                ),
            }
        }
        // Already at EOF: this only checks the recorded Close.
        self.expect_close_code(code);
        let k = kicked.unwrap_or_else(|| panic!("Close {code} without a Push{{kicked}} before it"));
        assert!(kicked_before_close, "Push{{kicked}} must come before the Close: {k:?}");
        k
    }

    /// Waits for the pushed message of `conv` with `seq` (other pushes are dropped).
    pub fn expect_message(&mut self, conv: &str, seq: u64) -> pb::Message {
        self.expect_push(&format!("message {conv}#{seq}"), WAIT, |e| match e {
            pb::push::Event::Message(m) if m.conv_id == conv && m.seq == seq => Some(m.clone()),
            _ => None,
        })
    }
}
