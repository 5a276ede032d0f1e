//! Allocation-free reading of the one frame kind receivers get in bulk:
//! `Frame{push:{message:{conv_id, seq, client_msg_id, content:{text}}}}`.
//!
//! Role: a fan-out receiver side sees hundreds of thousands of pushes per
//! second; decoding each with prost allocates five strings. [`push_message`]
//! walks the protobuf wire format in place and borrows the few fields the
//! ledger and the latency stamp need.
//!
//! Invariants: never panics and never reads past the payload, whatever the
//! bytes; returns `None` for anything that is not a push of a message (the
//! caller then decodes the frame with prost as usual); for a valid frame it
//! agrees with prost (last occurrence of a scalar field wins, unknown fields
//! are skipped).

use bytes::Bytes;
use missive_protocol::pb::{self, content, frame, push};
use prost::Message as _;

/// The fields of a pushed message that loadgen checks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MsgView<'a> {
    pub(crate) conv_id: &'a [u8],
    pub(crate) seq: u64,
    pub(crate) client_msg_id: &'a [u8],
    /// The text, if the content is a `Text` (tips and other kinds: `None`).
    pub(crate) text: Option<&'a [u8]>,
}

impl<'a> MsgView<'a> {
    /// The same fields, borrowed from a prost-decoded message.
    pub(crate) fn of(m: &'a pb::Message) -> Self {
        let text = match m.content.as_ref().and_then(|c| c.body.as_ref()) {
            Some(content::Body::Text(t)) => Some(t.text.as_bytes()),
            _ => None,
        };
        Self { conv_id: m.conv_id.as_bytes(), seq: m.seq, client_msg_id: m.client_msg_id.as_bytes(), text }
    }

    /// The generator's message number (its `client_msg_id`); a foreign id
    /// maps to a number no ack carries, so the ledger counts it as mismatched.
    pub(crate) fn msg_number(&self) -> u32 {
        std::str::from_utf8(self.client_msg_id).ok().and_then(|s| s.parse().ok()).unwrap_or(u32::MAX - 1)
    }
}

/// What a raw push payload ([`super::net::Event::Push`]) holds.
#[derive(Debug)]
pub(crate) enum RawPush<'a> {
    /// A pushed message.
    Message(MsgView<'a>),
    /// Another push (receipt, conversation state…), valid but not measured.
    Other,
}

/// Reads a raw push payload: the fast path for messages, prost for the rest.
pub(crate) fn read_push(payload: &Bytes) -> Result<RawPush<'_>, String> {
    if let Some(v) = push_message(payload) {
        return Ok(RawPush::Message(v));
    }
    match pb::Frame::decode(payload.clone()) {
        Ok(pb::Frame {
            body: Some(frame::Body::Push(pb::Push { event: Some(push::Event::Message(_)) })),
        }) => Err("push of a message the fast reader could not read".to_owned()),
        Ok(_) => Ok(RawPush::Other),
        Err(e) => Err(format!("bad frame from the server: {e}")),
    }
}

/// `Frame.push` is field 5, length-delimited: tag byte 0x2a.
pub(crate) const PUSH_TAG: u8 = 0x2a;

/// One protobuf field: its number and its value.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Reads the next field of `buf`; `None` at the end or on malformed input.
fn field<'a>(buf: &mut &'a [u8]) -> Option<(u64, Value<'a>)> {
    if buf.is_empty() {
        return None;
    }
    let key = varint(buf)?;
    let value = match key & 7 {
        0 => Value::Varint(varint(buf)?),
        1 => {
            *buf = buf.get(8..)?;
            Value::Other
        }
        2 => {
            let len = usize::try_from(varint(buf)?).ok()?;
            let bytes = buf.get(..len)?;
            *buf = &buf[len..];
            Value::Bytes(bytes)
        }
        5 => {
            *buf = buf.get(4..)?;
            Value::Other
        }
        _ => return None,
    };
    Some((key >> 3, value))
}

/// The last length-delimited field `number` of `buf`, `None` if absent or malformed.
fn sub(mut buf: &[u8], number: u64) -> Option<&[u8]> {
    let mut found = None;
    while !buf.is_empty() {
        match field(&mut buf)? {
            (n, Value::Bytes(b)) if n == number => found = Some(b),
            _ => {}
        }
    }
    found
}

/// Reads a `Frame` payload that carries `Push{message}`; `None` otherwise.
pub(crate) fn push_message(frame: &[u8]) -> Option<MsgView<'_>> {
    let push = sub(frame, 5)?;
    let mut msg = sub(push, 1)?;
    let mut v = MsgView::default();
    while !msg.is_empty() {
        match field(&mut msg)? {
            (1, Value::Bytes(b)) => v.conv_id = b,
            (2, Value::Varint(s)) => v.seq = s,
            (4, Value::Bytes(b)) => v.client_msg_id = b,
            (8, Value::Bytes(content)) => v.text = sub(content, 1).map(|text| sub(text, 1).unwrap_or(&[])),
            _ => {}
        }
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push_frame(body: Option<content::Body>) -> Vec<u8> {
        let m = pb::Message {
            conv_id: "p:a:b".into(),
            seq: 300,
            server_msg_id: 99,
            client_msg_id: "42".into(),
            sender: "a".into(),
            sender_device: "d1".into(),
            server_time_ms: 1_700_000_000_000,
            content: Some(pb::Content { body, ..Default::default() }),
            ..Default::default()
        };
        let f =
            pb::Frame { body: Some(frame::Body::Push(pb::Push { event: Some(push::Event::Message(m)) })) };
        f.encode_to_vec()
    }

    #[test]
    fn reads_what_prost_wrote() {
        let bytes = push_frame(Some(content::Body::Text(pb::Text { text: "1f.xx".into() })));
        assert_eq!(bytes[0], PUSH_TAG);
        let v = push_message(&bytes).expect("a push of a message");
        assert_eq!(v.conv_id, b"p:a:b");
        assert_eq!(v.seq, 300);
        assert_eq!(v.client_msg_id, b"42");
        assert_eq!(v.text, Some(&b"1f.xx"[..]));
        // Empty text is a text; a tip is not.
        let empty = push_frame(Some(content::Body::Text(pb::Text { text: String::new() })));
        assert_eq!(push_message(&empty).and_then(|v| v.text), Some(&b""[..]));
        let tip = push_frame(Some(content::Body::Tip(pb::Tip::default())));
        assert_eq!(push_message(&tip).map(|v| v.text), Some(None));
        let decoded = pb::Frame::decode(&bytes[..]).expect("decodes");
        let Some(frame::Body::Push(pb::Push { event: Some(push::Event::Message(m)) })) = decoded.body else {
            panic!("not a message push")
        };
        assert_eq!(MsgView::of(&m), v);
        assert_eq!(v.msg_number(), 42);
        assert!(matches!(read_push(&Bytes::from(bytes)), Ok(RawPush::Message(_))));
    }

    #[test]
    fn other_frames_and_garbage_are_refused_without_panicking() {
        let ping = pb::Frame { body: Some(frame::Body::Ping(pb::Ping { nonce: 1 })) }.encode_to_vec();
        assert_eq!(push_message(&ping), None);
        let receipt = pb::Frame {
            body: Some(frame::Body::Push(pb::Push {
                event: Some(push::Event::ReadReceipt(pb::ReadReceipt::default())),
            })),
        }
        .encode_to_vec();
        assert_eq!(push_message(&receipt), None);
        let good = push_frame(Some(content::Body::Text(pb::Text { text: "x".into() })));
        for cut in 0..good.len() {
            let _ = push_message(&good[..cut]);
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let junk: Vec<u8> = (0..(x % 64) as usize)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = push_message(&junk);
        }
    }
}
