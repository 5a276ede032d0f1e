//! Messages: send (one, or many pipelined), pull and history pages.
//!
//! Invariants: a helper that expects success panics naming the request and
//! the error; pipelined sends return their acks in request order.

use std::collections::HashMap;

use missive_protocol::{Call, pb};

use super::{RawClient, outcome};
use crate::{WAIT, text};

impl RawClient {
    /// SendMessage with any content.
    pub fn send_content(
        &mut self,
        conv: &str,
        client_msg_id: &str,
        content: pb::Content,
    ) -> Result<pb::SendAck, pb::Error> {
        self.call(pb::SendMessage {
            conv_id: conv.to_owned(),
            client_msg_id: client_msg_id.to_owned(),
            content: Some(content),
            flags: None,
            first_attempt: false,
        })
    }

    /// SendMessage with a text.
    pub fn send_text(
        &mut self,
        conv: &str,
        client_msg_id: &str,
        body: &str,
    ) -> Result<pb::SendAck, pb::Error> {
        self.send_content(conv, client_msg_id, text(body))
    }

    /// Sends a text and expects a fresh (non-duplicate) ack.
    pub fn send_ok(&mut self, conv: &str, client_msg_id: &str, body: &str) -> pb::SendAck {
        let ack = self
            .send_text(conv, client_msg_id, body)
            .unwrap_or_else(|e| panic!("send {client_msg_id} to {conv} failed: {e:?}"));
        assert!(!ack.duplicate, "fresh send {client_msg_id} acked as duplicate: {ack:?}");
        assert_eq!(ack.conv_id, conv);
        ack
    }

    /// Sends many texts pipelined (up to `window` in flight); returns the acks
    /// in request order. Texts are `"{prefix}{i}"`, client_msg_ids `"{prefix}{i}"`.
    pub fn send_many(&mut self, conv: &str, prefix: &str, count: usize, window: usize) -> Vec<pb::SendAck> {
        self.send_many_padded(conv, prefix, count, window, 0)
    }

    /// Like [`RawClient::send_many`], with each text padded with `'.'` to at
    /// least `min_len` bytes (it still starts with its client_msg_id).
    pub fn send_many_padded(
        &mut self,
        conv: &str,
        prefix: &str,
        count: usize,
        window: usize,
        min_len: usize,
    ) -> Vec<pb::SendAck> {
        let mut ids = Vec::with_capacity(count);
        let mut acks: HashMap<u64, pb::SendAck> = HashMap::new();
        let mut next = 0;
        let mut in_flight = 0;
        while acks.len() < count {
            while next < count && in_flight < window {
                let cmid = format!("{prefix}{next}");
                let mut body = cmid.clone();
                while body.len() < min_len {
                    body.push('.');
                }
                let id = self.send_request(pb::SendMessage {
                    conv_id: conv.to_owned(),
                    client_msg_id: cmid,
                    content: Some(text(&body)),
                    flags: None,
                    first_attempt: false,
                });
                ids.push(id);
                next += 1;
                in_flight += 1;
            }
            let r = self.next_response(WAIT).expect("a response to a pipelined send");
            let id = r.id;
            match outcome(r).map(pb::SendMessage::reply) {
                Ok(Ok(a)) => {
                    acks.insert(id, a);
                }
                other => panic!("pipelined send (request {id}) failed: {other:?}"),
            }
            in_flight -= 1;
        }
        ids.iter().map(|id| acks.remove(id).expect("ack for every request")).collect()
    }

    /// PullRequest.
    pub fn pull(&mut self, conv: &str, from: u64, to: u64, limit: u32) -> Result<pb::Messages, pb::Error> {
        self.call(pb::PullRequest { conv_id: conv.to_owned(), from_seq: from, to_seq: to, limit })
    }

    /// Pulls every readable message of `conv` from `from` on, in pages, following `more`.
    pub fn pull_all_from(&mut self, conv: &str, from: u64) -> Vec<pb::Message> {
        let mut out: Vec<pb::Message> = Vec::new();
        let mut next = from;
        for _ in 0..100_000 {
            let page =
                self.pull(conv, next, 0, 500).unwrap_or_else(|e| panic!("pull {conv} from {next}: {e:?}"));
            let more = page.more;
            if let Some(last) = page.messages.last() {
                next = last.seq + 1;
            }
            let empty = page.messages.is_empty();
            out.extend(page.messages);
            if !more {
                return out;
            }
            assert!(!empty, "pull page with more=true but no messages");
        }
        panic!("pull did not finish");
    }

    /// Pulls every readable message of `conv`.
    pub fn pull_all(&mut self, conv: &str) -> Vec<pb::Message> {
        self.pull_all_from(conv, 1)
    }

    /// HistoryRequest.
    pub fn history(&mut self, conv: &str, before: u64, limit: u32) -> Result<pb::Messages, pb::Error> {
        self.call(pb::HistoryRequest { conv_id: conv.to_owned(), before_seq: before, limit })
    }
}
