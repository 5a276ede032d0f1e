//! After-events (webhooks): staging one outbox record per subscribed endpoint.
//!
//! Role: a service calls [`emit`] inside its turn, at the point where it
//! stages the change the event reports. The records go into the turn's batch
//! (`ops/outbox`, id `endpoint 00 event_id:be64`), so the event is committed
//! in the same RocksDB write as the change, and a refused op's save point
//! rolls its events back with everything else. The webhook dispatcher
//! (`crate::hooks`) delivers and deletes them.
//!
//! Invariants: nothing is built when no enabled endpoint subscribes (one read
//! lock on the registry snapshot); an event has one id for every endpoint, so
//! receivers deduplicate by `id`; time is the turn's (`Turn::now_ms`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use missive_protocol::pb;
use missive_storage::OpsSpace;
use prost::Message as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::node::Node;
use crate::node::hooks::record_id;
use crate::shard::Turn;

/// One outbox (or dead-letter) record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OutboxRecord {
    /// The event as delivered: `{id, type, at_ms, data}`.
    pub(crate) event: Value,
    /// Delivery attempts made so far.
    #[serde(default)]
    pub(crate) attempts: u32,
    /// The last failure ("" = none yet).
    #[serde(default)]
    pub(crate) last_error: String,
    /// Unix ms of the last attempt (0 = none).
    #[serde(default)]
    pub(crate) last_attempt_ms: u64,
}

/// Stages event `kind` with `data()` for every enabled endpoint subscribed to
/// it. Call it inside the op's turn, next to the change it reports.
pub(crate) fn emit<U>(node: &Node, t: &mut Turn<U>, kind: &str, data: impl FnOnce() -> Value) {
    let subs = node.hooks.subscribers(kind);
    if subs.is_empty() {
        return;
    }
    let id = node.hooks.next_event_id(t.now_ms);
    let event = json!({ "id": id.to_string(), "type": kind, "at_ms": t.now_ms, "data": data() });
    let rec = OutboxRecord { event, attempts: 0, last_error: String::new(), last_attempt_ms: 0 };
    let Ok(value) = serde_json::to_vec(&rec) else { return };
    for e in subs {
        t.batch.put_ops(OpsSpace::Outbox, &record_id(&e.id, id), &value);
    }
}

/// The JSON form of message content in events and `before.send`:
/// `kind`, `text` (text messages), `mentions`, and `proto` (base64 of the
/// protobuf `missive.v1.Content`, every field).
pub(crate) fn content_json(c: &pb::Content) -> Value {
    let kind = match crate::services::messages::check::kind_name(c) {
        "" => "none",
        k => k,
    };
    let mut v = json!({ "kind": kind, "proto": STANDARD.encode(c.encode_to_vec()) });
    if let Some(pb::content::Body::Text(t)) = &c.body {
        v["text"] = Value::String(t.text.clone());
    }
    if let Some(m) = &c.mentions {
        v["mentions"] = json!({ "user_ids": m.user_ids, "all": m.all });
    }
    v
}

/// Content from its JSON form (a `before.send` `modify` answer): `proto`
/// (base64 protobuf) wins; else `text` replaces the body of `base` with a
/// text body (quote, mentions and `ex` are kept).
pub(crate) fn content_from_json(v: &Value, base: &pb::Content) -> Result<pb::Content, String> {
    if let Some(p) = v.get("proto").and_then(Value::as_str) {
        let bytes = STANDARD.decode(p).map_err(|_| "content.proto: not base64".to_owned())?;
        return pb::Content::decode(bytes.as_slice()).map_err(|_| "content.proto: not a Content".to_owned());
    }
    if let Some(text) = v.get("text").and_then(Value::as_str) {
        let mut c = base.clone();
        c.body = Some(pb::content::Body::Text(pb::Text { text: text.to_owned() }));
        return Ok(c);
    }
    Err("content: give `text` or `proto`".to_owned())
}

/// `after.send`: one stored message (1:1 or group).
#[allow(clippy::too_many_arguments)]
pub(crate) fn after_send<U>(
    node: &Node,
    t: &mut Turn<U>,
    conv: &str,
    sender: &str,
    device: &str,
    ack: &pb::SendAck,
    client_msg_id: &str,
    content: &pb::Content,
    flags: Option<&pb::MessageFlags>,
) {
    emit(node, t, "after.send", || {
        let f = flags.copied().unwrap_or_default();
        json!({
            "conv_id": conv,
            "seq": ack.seq,
            "server_msg_id": ack.server_msg_id.to_string(),
            "client_msg_id": client_msg_id,
            "sender": sender,
            "device": device,
            "server_time_ms": ack.server_time_ms,
            "content": content_json(content),
            "flags": {
                "online_only": f.online_only,
                "no_history": f.no_history,
                "no_unread": f.no_unread,
                "no_push": f.no_push,
            },
        })
    });
    // [SW-6]: a message whose texts match `flag` lists is delivered and reported.
    if ack.duplicate || node.words.snapshot().is_none() {
        return;
    }
    let mut lists: Vec<String> = crate::filter::screen::content_texts(content)
        .iter()
        .flat_map(|text| node.words.flagged(text))
        .collect();
    lists.sort_unstable();
    lists.dedup();
    if !lists.is_empty() {
        emit(node, t, "message.flagged", || {
            json!({
                "conv_id": conv,
                "seq": ack.seq,
                "server_msg_id": ack.server_msg_id.to_string(),
                "sender": sender,
                "device": device,
                "lists": lists,
                "content": content_json(content),
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_round_trips() {
        let c = pb::Content {
            body: Some(pb::content::Body::Text(pb::Text { text: "hi".into() })),
            mentions: Some(pb::Mentions { user_ids: vec!["a".into()], all: false }),
            ..Default::default()
        };
        let v = content_json(&c);
        assert_eq!(v["kind"], "text");
        assert_eq!(v["text"], "hi");
        assert_eq!(content_from_json(&v, &pb::Content::default()).expect("proto"), c);
        let m = content_from_json(&json!({"text": "bye"}), &c).expect("text");
        assert_eq!(m.mentions, c.mentions);
        assert!(matches!(m.body, Some(pb::content::Body::Text(ref t)) if t.text == "bye"));
        assert!(content_from_json(&json!({}), &c).is_err());
        assert!(content_from_json(&json!({"proto": "!!"}), &c).is_err());
    }
}
