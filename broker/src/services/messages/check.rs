//! Stateless checks of message requests, run by `route` on the connection's
//! worker before anything is routed.
//!
//! Invariant: the owner shard only sees ops with a parsed conversation the
//! caller may address, a valid client message id and content within limits.
//! Group membership is NOT decided here: the group's owner decides it at the
//! moment of the write.

use missive_protocol::pb;
use missive_protocol::{ClientMsgId, ConvKind, ErrorCode, UserId};
use prost::Message as _;

use crate::config::{Config, MessagesConfig};
use crate::error::Reject;
use crate::services::checks;

use super::MessagesOp;

/// SendMessage → [`MessagesOp::Send`].
/// `since`: when the caller's client session began (`None`: the admin API
/// or a forward), which a `first_attempt` send carries ([S-7]).
pub(crate) fn send(
    config: &Config,
    user: &UserId,
    since: Option<std::time::Instant>,
    m: pb::SendMessage,
) -> Result<MessagesOp, Reject> {
    let max_content_bytes = config.limits.max_content_bytes;
    let conv = checks::conversation(user, &m.conv_id)?;
    if conv.kind() == ConvKind::Broadcast {
        return Err(Reject::new(
            ErrorCode::PermissionDenied,
            "only the admin API posts to a broadcast conversation",
        ));
    }
    let client_msg_id = ClientMsgId::new(m.client_msg_id)
        .map_err(|e| Reject::new(ErrorCode::InvalidArgument, e.to_string()))?;
    let content = m.content.ok_or_else(|| Reject::new(ErrorCode::UnsupportedContent, "content missing"))?;
    content_ok(&content, max_content_bytes)?;
    kind_ok(&config.messages, conv.kind(), &content)?;
    let flags = super::flags::normalize(m.flags);
    let fresh = since.filter(|_| m.first_attempt);
    Ok(MessagesOp::Send { conv, client_msg_id, content, flags, fresh })
}

/// The `Content.body` field name of a content kind ("" = no body).
pub(crate) fn kind_name(content: &pb::Content) -> &'static str {
    use pb::content::Body;
    match &content.body {
        Some(Body::Text(_)) => "text",
        Some(Body::Image(_)) => "image",
        Some(Body::Voice(_)) => "voice",
        Some(Body::Video(_)) => "video",
        Some(Body::File(_)) => "file",
        Some(Body::Location(_)) => "location",
        Some(Body::Custom(_)) => "custom",
        Some(Body::Merged(_)) => "merged",
        Some(Body::Tip(_)) => "tip",
        Some(Body::System(_)) => "system",
        None => "",
    }
}

/// [MF-5] the conversation kind's allow list, [MF-6] the content kind's size
/// limit (the encoded `Content`, as [M-3]); both 3010 CONTENT_KIND_NOT_ALLOWED.
pub(crate) fn kind_ok(cfg: &MessagesConfig, conv: ConvKind, content: &pb::Content) -> Result<(), Reject> {
    let kind = kind_name(content);
    let (allowed, where_) = match conv {
        ConvKind::Group => (&cfg.allowed_kinds_group, "groups"),
        _ => (&cfg.allowed_kinds_direct, "one-to-one conversations"),
    };
    if !allowed.is_empty() && !allowed.iter().any(|k| k == kind) {
        return Err(Reject::new(
            ErrorCode::ContentKindNotAllowed,
            format!("{kind} messages are not allowed in {where_} (allowed: {})", allowed.join(", ")),
        ));
    }
    let limit = match content.body {
        Some(pb::content::Body::Text(_)) => cfg.max_text_bytes,
        Some(pb::content::Body::Custom(_)) => cfg.max_custom_bytes,
        Some(pb::content::Body::Merged(_)) => cfg.max_merged_bytes,
        _ => return Ok(()),
    } as usize;
    let len = content.encoded_len();
    if len > limit {
        return Err(Reject::new(
            ErrorCode::ContentKindNotAllowed,
            format!(
                "{kind} content is {len} bytes, the limit for {kind} is {limit} (messages.max_{kind}_bytes)"
            ),
        ));
    }
    Ok(())
}

/// PullRequest → [`MessagesOp::Pull`].
pub(crate) fn pull(user: &UserId, req: pb::PullRequest) -> Result<MessagesOp, Reject> {
    Ok(MessagesOp::Pull { conv: checks::conversation(user, &req.conv_id)?, req })
}

/// HistoryRequest → [`MessagesOp::History`].
pub(crate) fn history(user: &UserId, req: pb::HistoryRequest) -> Result<MessagesOp, Reject> {
    Ok(MessagesOp::History { conv: checks::conversation(user, &req.conv_id)?, req })
}

/// How deep merged content may nest (spec [M-5]): a merged message may hold
/// merged messages, which may not hold further merged ones. Fixed by the
/// protocol so that every server frame carrying the deepest allowed content
/// stays far below the decoders' recursion limit (prost and protobuf-es: 100
/// nested messages); see spec 7.2.
pub(crate) const MAX_MERGED_DEPTH: usize = 2;

/// Content checks, in the order of spec [S-1]: a known body the client may
/// send, size, non-empty text, merged nesting.
pub(crate) fn content_ok(content: &pb::Content, max_bytes: usize) -> Result<(), Reject> {
    content_checks(content, max_bytes, false)
}

/// The same checks for content the admin API posts (broadcasts, notices,
/// imports): tips and system notices are allowed (spec [AM-1]).
pub(crate) fn admin_content_ok(content: &pb::Content, max_bytes: usize) -> Result<(), Reject> {
    content_checks(content, max_bytes, true)
}

fn content_checks(content: &pb::Content, max_bytes: usize, admin: bool) -> Result<(), Reject> {
    use pb::content::Body;
    match &content.body {
        None => return Err(Reject::new(ErrorCode::UnsupportedContent, "content has no known body")),
        Some(Body::Tip(_)) | Some(Body::System(_)) if !admin => {
            return Err(Reject::new(
                ErrorCode::UnsupportedContent,
                "tip and system content are server-generated",
            ));
        }
        Some(_) => {}
    }
    let len = content.encoded_len();
    if len > max_bytes {
        return Err(Reject::new(
            ErrorCode::ContentTooLarge,
            format!("content is {len} bytes, max {max_bytes}"),
        ));
    }
    if matches!(&content.body, Some(Body::Text(t)) if t.text.is_empty()) {
        return Err(Reject::new(ErrorCode::InvalidArgument, "text is empty"));
    }
    if merged_deeper_than(content, MAX_MERGED_DEPTH) {
        return Err(Reject::new(
            ErrorCode::ContentTooDeep,
            format!("merged content nests more than {MAX_MERGED_DEPTH} levels (merged in merged in merged)"),
        ));
    }
    Ok(())
}

/// Whether `content` has more than `allowed` merged levels on some path.
/// Recurses at most `allowed + 1` levels, whatever the input.
fn merged_deeper_than(content: &pb::Content, allowed: usize) -> bool {
    let Some(pb::content::Body::Merged(m)) = &content.body else { return false };
    let Some(inner) = allowed.checked_sub(1) else { return true };
    m.items.iter().filter_map(|i| i.content.as_ref()).any(|c| merged_deeper_than(c, inner))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> pb::Content {
        pb::Content { body: Some(pb::content::Body::Text(pb::Text { text: s.into() })), ..Default::default() }
    }

    /// `levels` merged levels around a text (0 = the text itself); each level
    /// also holds a plain text item, so the deep item is not the only one.
    fn nested(levels: usize) -> pb::Content {
        let mut c = text("leaf");
        for i in 0..levels {
            let items = vec![
                pb::MergedItem { sender: "a".into(), server_time_ms: 1, content: Some(text("side")) },
                pb::MergedItem { sender: "b".into(), server_time_ms: 2, content: Some(c) },
            ];
            c = pb::Content {
                body: Some(pb::content::Body::Merged(pb::Merged { title: format!("level {i}"), items })),
                ..Default::default()
            };
        }
        c
    }

    #[test]
    fn kind_allow_lists_and_size_limits() {
        let mut cfg = MessagesConfig { max_text_bytes: 32, ..Default::default() };
        assert!(kind_ok(&cfg, ConvKind::Direct, &text("short")).is_ok());
        let e = kind_ok(&cfg, ConvKind::Direct, &text(&"a".repeat(40))).expect_err("long");
        assert_eq!(e.code, ErrorCode::ContentKindNotAllowed);
        assert!(e.message.contains("text") && e.message.contains("32"), "{}", e.message);
        cfg.allowed_kinds_group = vec!["custom".into()];
        let e = kind_ok(&cfg, ConvKind::Group, &text("hi")).expect_err("text in group");
        assert_eq!(e.code, ErrorCode::ContentKindNotAllowed);
        assert!(kind_ok(&cfg, ConvKind::Direct, &text("hi")).is_ok(), "the group list only");
        // Only the top-level kind counts; the merged limit applies to merged.
        cfg.allowed_kinds_direct = vec!["merged".into()];
        cfg.max_merged_bytes = 10_000;
        assert!(kind_ok(&cfg, ConvKind::Direct, &nested(2)).is_ok());
        cfg.max_merged_bytes = 16;
        assert!(kind_ok(&cfg, ConvKind::Direct, &nested(2)).is_err());
    }

    #[test]
    fn merged_depth_is_bounded() {
        for levels in 0..=MAX_MERGED_DEPTH {
            assert!(content_ok(&nested(levels), 65_536).is_ok(), "{levels} levels allowed");
        }
        for levels in [MAX_MERGED_DEPTH + 1, MAX_MERGED_DEPTH + 2, 32] {
            let err = content_ok(&nested(levels), 65_536).expect_err("too deep");
            assert_eq!(err.code, ErrorCode::ContentTooDeep, "{levels} levels");
        }
        // An empty merged message and a merged item without content are one level.
        let empty = pb::Content {
            body: Some(pb::content::Body::Merged(pb::Merged { title: "t".into(), items: vec![] })),
            ..Default::default()
        };
        assert!(!merged_deeper_than(&empty, 1));
        assert!(merged_deeper_than(&empty, 0));
    }
}
