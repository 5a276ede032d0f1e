//! Stateless checks of message requests, run by `route` on the connection's
//! worker before anything is routed.
//!
//! Invariant: the owner shard only sees ops with a parsed conversation the
//! caller may address, a valid client message id and content within limits.
//! Group membership is NOT decided here: the group's owner decides it at the
//! moment of the write.

use missive_protocol::pb;
use missive_protocol::{ClientMsgId, ErrorCode, UserId};
use prost::Message as _;

use crate::error::Reject;
use crate::services::checks;

use super::MessagesOp;

/// SendMessage → [`MessagesOp::Send`].
pub(crate) fn send(
    user: &UserId,
    m: pb::SendMessage,
    max_content_bytes: usize,
) -> Result<MessagesOp, Reject> {
    let conv = checks::conversation(user, &m.conv_id)?;
    let client_msg_id = ClientMsgId::new(m.client_msg_id)
        .map_err(|e| Reject::new(ErrorCode::InvalidArgument, e.to_string()))?;
    let content = m.content.ok_or_else(|| Reject::new(ErrorCode::UnsupportedContent, "content missing"))?;
    content_ok(&content, max_content_bytes)?;
    Ok(MessagesOp::Send { conv, client_msg_id, content })
}

/// PullRequest → [`MessagesOp::Pull`].
pub(crate) fn pull(user: &UserId, req: pb::PullRequest) -> Result<MessagesOp, Reject> {
    Ok(MessagesOp::Pull { conv: checks::conversation(user, &req.conv_id)?, req })
}

/// HistoryRequest → [`MessagesOp::History`].
pub(crate) fn history(user: &UserId, req: pb::HistoryRequest) -> Result<MessagesOp, Reject> {
    Ok(MessagesOp::History { conv: checks::conversation(user, &req.conv_id)?, req })
}

/// Content checks: a known body the client may send, non-empty text, size.
pub(crate) fn content_ok(content: &pb::Content, max_bytes: usize) -> Result<(), Reject> {
    use pb::content::Body;
    match &content.body {
        None => return Err(Reject::new(ErrorCode::UnsupportedContent, "content has no known body")),
        Some(Body::Tip(_)) | Some(Body::System(_)) => {
            return Err(Reject::new(
                ErrorCode::UnsupportedContent,
                "tip and system content are server-generated",
            ));
        }
        Some(Body::Text(t)) if t.text.is_empty() => {
            return Err(Reject::new(ErrorCode::InvalidArgument, "text is empty"));
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
    Ok(())
}
