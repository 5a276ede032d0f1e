//! Message content as JSON (spec/openapi.yaml `Content`, `Message`): the
//! proto3 JSON mapping of `missive.v1.Content`, one field per body kind.
//!
//! Invariants: a JSON content has exactly one body (`text`, `image`, ...,
//! `system`); bytes fields are base64 (standard alphabet, as in proto3 JSON);
//! unknown fields are refused (400); the conversion back
//! ([`content_json`]) is lossless for every kind, so an export re-imports.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use missive_protocol::pb::{self, content::Body};
use serde::{Deserialize, Serialize};

use crate::api::{ApiError, ApiResult};

fn is_zero(n: &u64) -> bool {
    *n == 0
}
fn is_zero32(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TextJson {
    #[serde(default)]
    text: String,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ImageJson {
    url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    thumbnail_url: String,
    #[serde(skip_serializing_if = "is_zero32")]
    width: u32,
    #[serde(skip_serializing_if = "is_zero32")]
    height: u32,
    #[serde(skip_serializing_if = "is_zero")]
    size_bytes: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    mime_type: String,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct VoiceJson {
    url: String,
    #[serde(skip_serializing_if = "is_zero32")]
    duration_ms: u32,
    #[serde(skip_serializing_if = "is_zero")]
    size_bytes: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    mime_type: String,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct VideoJson {
    url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    thumbnail_url: String,
    #[serde(skip_serializing_if = "is_zero32")]
    duration_ms: u32,
    #[serde(skip_serializing_if = "is_zero32")]
    width: u32,
    #[serde(skip_serializing_if = "is_zero32")]
    height: u32,
    #[serde(skip_serializing_if = "is_zero")]
    size_bytes: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    mime_type: String,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileJson {
    url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "is_zero")]
    size_bytes: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    mime_type: String,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LocationJson {
    latitude: f64,
    longitude: f64,
    #[serde(skip_serializing_if = "String::is_empty")]
    title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    address: String,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct CustomJson {
    #[serde(rename = "type")]
    kind: String,
    /// base64.
    #[serde(skip_serializing_if = "String::is_empty")]
    data: String,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MergedJson {
    title: String,
    items: Vec<MergedItemJson>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MergedItemJson {
    sender: String,
    server_time_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Box<ContentJson>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TipJson {
    kind: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    params: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    text: String,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SystemJson {
    #[serde(skip_serializing_if = "String::is_empty")]
    title: String,
    text: String,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct QuoteJson {
    seq: u64,
    #[serde(skip_serializing_if = "is_zero")]
    server_msg_id: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    sender: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    preview: String,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MentionsJson {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    user_ids: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    all: bool,
}

/// `missive.v1.Content` as JSON: exactly one body field.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ContentJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<TextJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<ImageJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    voice: Option<VoiceJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    video: Option<VideoJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<FileJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<LocationJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom: Option<CustomJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    merged: Option<MergedJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tip: Option<TipJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<SystemJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quote: Option<QuoteJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mentions: Option<MentionsJson>,
    /// base64.
    #[serde(skip_serializing_if = "String::is_empty")]
    ex: String,
}

/// Deepest JSON nesting of merged content accepted before the protocol's own
/// check ([M-5]) runs: bounds the recursion of this conversion.
const MAX_JSON_DEPTH: usize = 4;

fn b64(field: &str, s: &str) -> ApiResult<Vec<u8>> {
    STANDARD.decode(s).map_err(|_| ApiError::invalid(format!("{field}: not base64")))
}

/// JSON → protobuf content; `field` names the body field in errors.
pub(crate) fn content_pb(c: ContentJson, field: &str) -> ApiResult<pb::Content> {
    to_pb(c, field, 0)
}

fn to_pb(c: ContentJson, field: &str, depth: usize) -> ApiResult<pb::Content> {
    if depth > MAX_JSON_DEPTH {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            missive_protocol::ErrorCode::ContentTooDeep,
            format!("{field}: merged content nests too deep"),
        ));
    }
    let mut bodies = Vec::new();
    if let Some(t) = c.text {
        bodies.push(Body::Text(pb::Text { text: t.text }));
    }
    if let Some(i) = c.image {
        bodies.push(Body::Image(pb::Image {
            url: i.url,
            thumbnail_url: i.thumbnail_url,
            width: i.width,
            height: i.height,
            size_bytes: i.size_bytes,
            mime_type: i.mime_type,
        }));
    }
    if let Some(v) = c.voice {
        bodies.push(Body::Voice(pb::Voice {
            url: v.url,
            duration_ms: v.duration_ms,
            size_bytes: v.size_bytes,
            mime_type: v.mime_type,
        }));
    }
    if let Some(v) = c.video {
        bodies.push(Body::Video(pb::Video {
            url: v.url,
            thumbnail_url: v.thumbnail_url,
            duration_ms: v.duration_ms,
            width: v.width,
            height: v.height,
            size_bytes: v.size_bytes,
            mime_type: v.mime_type,
        }));
    }
    if let Some(f) = c.file {
        bodies.push(Body::File(pb::File {
            url: f.url,
            name: f.name,
            size_bytes: f.size_bytes,
            mime_type: f.mime_type,
        }));
    }
    if let Some(l) = c.location {
        if !(-90.0..=90.0).contains(&l.latitude) || !(-180.0..=180.0).contains(&l.longitude) {
            return Err(ApiError::invalid(format!("{field}.location: latitude or longitude out of range")));
        }
        bodies.push(Body::Location(pb::Location {
            latitude: l.latitude,
            longitude: l.longitude,
            title: l.title,
            address: l.address,
        }));
    }
    if let Some(cu) = c.custom {
        let data = b64(&format!("{field}.custom.data"), &cu.data)?;
        bodies.push(Body::Custom(pb::Custom { r#type: cu.kind, data }));
    }
    if let Some(m) = c.merged {
        let mut items = Vec::with_capacity(m.items.len());
        for (i, it) in m.items.into_iter().enumerate() {
            let f = format!("{field}.merged.items[{i}].content");
            let content = match it.content {
                Some(c) => Some(to_pb(*c, &f, depth + 1)?),
                None => None,
            };
            items.push(pb::MergedItem { sender: it.sender, server_time_ms: it.server_time_ms, content });
        }
        bodies.push(Body::Merged(pb::Merged { title: m.title, items }));
    }
    if let Some(t) = c.tip {
        bodies.push(Body::Tip(pb::Tip {
            kind: t.kind,
            params: t.params.into_iter().collect(),
            text: t.text,
        }));
    }
    if let Some(s) = c.system {
        bodies.push(Body::System(pb::SystemNotice { title: s.title, text: s.text }));
    }
    if bodies.len() != 1 {
        return Err(ApiError::invalid(format!(
            "{field}: exactly one of text, image, voice, video, file, location, custom, merged, tip, system \
             (got {})",
            bodies.len()
        )));
    }
    let quote = c.quote.map(|q| pb::Quote {
        seq: q.seq,
        server_msg_id: q.server_msg_id,
        sender: q.sender,
        preview: q.preview,
    });
    let mentions = c.mentions.map(|m| pb::Mentions { user_ids: m.user_ids, all: m.all });
    let ex = b64(&format!("{field}.ex"), &c.ex)?;
    Ok(pb::Content { body: bodies.pop(), quote, mentions, ex })
}

/// Protobuf → JSON content (lossless).
pub(crate) fn content_json(c: pb::Content) -> ContentJson {
    let mut j = ContentJson {
        quote: c.quote.map(|q| QuoteJson {
            seq: q.seq,
            server_msg_id: q.server_msg_id,
            sender: q.sender,
            preview: q.preview,
        }),
        mentions: c.mentions.map(|m| MentionsJson { user_ids: m.user_ids, all: m.all }),
        ex: if c.ex.is_empty() { String::new() } else { STANDARD.encode(&c.ex) },
        ..Default::default()
    };
    match c.body {
        None => {}
        Some(Body::Text(t)) => j.text = Some(TextJson { text: t.text }),
        Some(Body::Image(i)) => {
            j.image = Some(ImageJson {
                url: i.url,
                thumbnail_url: i.thumbnail_url,
                width: i.width,
                height: i.height,
                size_bytes: i.size_bytes,
                mime_type: i.mime_type,
            })
        }
        Some(Body::Voice(v)) => {
            j.voice = Some(VoiceJson {
                url: v.url,
                duration_ms: v.duration_ms,
                size_bytes: v.size_bytes,
                mime_type: v.mime_type,
            })
        }
        Some(Body::Video(v)) => {
            j.video = Some(VideoJson {
                url: v.url,
                thumbnail_url: v.thumbnail_url,
                duration_ms: v.duration_ms,
                width: v.width,
                height: v.height,
                size_bytes: v.size_bytes,
                mime_type: v.mime_type,
            })
        }
        Some(Body::File(f)) => {
            j.file =
                Some(FileJson { url: f.url, name: f.name, size_bytes: f.size_bytes, mime_type: f.mime_type })
        }
        Some(Body::Location(l)) => {
            j.location = Some(LocationJson {
                latitude: l.latitude,
                longitude: l.longitude,
                title: l.title,
                address: l.address,
            })
        }
        Some(Body::Custom(cu)) => {
            j.custom = Some(CustomJson {
                kind: cu.r#type,
                data: if cu.data.is_empty() { String::new() } else { STANDARD.encode(&cu.data) },
            })
        }
        Some(Body::Merged(m)) => {
            j.merged = Some(MergedJson {
                title: m.title,
                items: m
                    .items
                    .into_iter()
                    .map(|it| MergedItemJson {
                        sender: it.sender,
                        server_time_ms: it.server_time_ms,
                        content: it.content.map(|c| Box::new(content_json(c))),
                    })
                    .collect(),
            })
        }
        Some(Body::Tip(t)) => {
            j.tip = Some(TipJson { kind: t.kind, params: t.params.into_iter().collect(), text: t.text })
        }
        Some(Body::System(s)) => j.system = Some(SystemJson { title: s.title, text: s.text }),
    }
    j
}

/// A stored message as JSON (export, spec `Message`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MessageJson {
    pub(crate) conv_id: String,
    pub(crate) seq: u64,
    pub(crate) server_msg_id: u64,
    pub(crate) client_msg_id: String,
    pub(crate) sender: String,
    pub(crate) sender_device: String,
    pub(crate) server_time_ms: u64,
    pub(crate) content: ContentJson,
}

impl From<pb::Message> for MessageJson {
    fn from(m: pb::Message) -> Self {
        Self {
            conv_id: m.conv_id,
            seq: m.seq,
            server_msg_id: m.server_msg_id,
            client_msg_id: m.client_msg_id,
            sender: m.sender,
            sender_device: m.sender_device,
            server_time_ms: m.server_time_ms,
            content: content_json(m.content.unwrap_or_default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> ApiResult<pb::Content> {
        let c: ContentJson = serde_json::from_value(v).map_err(|e| ApiError::invalid(e.to_string()))?;
        content_pb(c, "content")
    }

    #[test]
    fn every_kind_round_trips() {
        let kinds = [
            serde_json::json!({"text": {"text": "hi"}, "quote": {"seq": 3, "sender": "bob"},
                "mentions": {"user_ids": ["bob"], "all": true}, "ex": "AAE="}),
            serde_json::json!({"image": {"url": "https://x/i.png", "width": 10, "height": 20}}),
            serde_json::json!({"voice": {"url": "https://x/v.ogg", "duration_ms": 1500}}),
            serde_json::json!({"video": {"url": "https://x/v.mp4", "duration_ms": 9, "size_bytes": 99}}),
            serde_json::json!({"file": {"url": "https://x/f", "name": "f.pdf"}}),
            serde_json::json!({"location": {"latitude": 48.5, "longitude": 2.25, "title": "Paris"}}),
            serde_json::json!({"custom": {"type": "card", "data": "aGVsbG8="}}),
            serde_json::json!({"merged": {"title": "t", "items": [
                {"sender": "a", "server_time_ms": 1, "content": {"text": {"text": "x"}}}]}}),
            serde_json::json!({"tip": {"kind": "k", "params": {"a": "b"}, "text": "t"}}),
            serde_json::json!({"system": {"title": "T", "text": "body"}}),
        ];
        for v in kinds {
            let c = parse(v.clone()).expect("valid");
            let back = serde_json::to_value(content_json(c)).expect("json");
            assert_eq!(back, v);
        }
    }

    #[test]
    fn bad_content_is_refused() {
        for v in [
            serde_json::json!({}),
            serde_json::json!({"text": {"text": "a"}, "system": {"text": "b"}}),
            serde_json::json!({"custom": {"type": "x", "data": "%%%"}}),
            serde_json::json!({"text": {"text": "a"}, "ex": "!"}),
            serde_json::json!({"location": {"latitude": 91.0, "longitude": 0.0}}),
        ] {
            assert!(parse(v.clone()).is_err(), "{v}");
        }
        assert!(serde_json::from_value::<ContentJson>(serde_json::json!({"txt": {}})).is_err());
    }
}
