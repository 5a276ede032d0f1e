//! REST endpoints of the message lifecycle an app server uses (spec
//! section 18, openapi tag `messages`):
//!
//! - `PUT /v1/conversations/{conv_id}/messages/{seq}/extensions`: set and
//!   remove keys of a message's extension map as the system user (poll
//!   tallies, red-packet state), with the same limits and compare-and-set
//!   (`if_version`) as `SetExtensions` ([EX-1]..[EX-4]).
//!
//! Invariants: the body is validated before anything is routed (400 / 422
//! naming the field); the change is a `MessagesOp::Change{admin: true}` on
//! the conversation's owner shard, decided there at the moment of the write
//! like a client's, so it is pushed and synced the same way.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::put;
use missive_protocol::ErrorCode;
use missive_protocol::pb::response;
use serde::{Deserialize, Serialize};

use super::{Api, ApiResult, Body, Path, expect_ok};
use crate::error::Reject;
use crate::node::OwnerKey;
use crate::services::ServiceOp;
use crate::services::messages::{Change, MessagesOp, extensions};

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new().route("/v1/conversations/{conv_id}/messages/{seq}/extensions", put(set_extensions))
}

/// `PUT .../extensions` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtensionsBody {
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    remove: Vec<String>,
    #[serde(default)]
    if_version: Option<u64>,
}

/// One extension value.
#[derive(Debug, Serialize)]
struct ExtensionValueJson {
    value: String,
    version: u64,
    by: String,
    at_ms: u64,
}

/// The message's extension map after the write.
#[derive(Debug, Serialize)]
struct ExtensionsJson {
    conv_id: String,
    seq: u64,
    version: u64,
    update_seq: u64,
    extensions: BTreeMap<String, ExtensionValueJson>,
}

async fn set_extensions(
    State(api): State<Arc<Api>>,
    Path((conv_id, seq)): Path<(String, u64)>,
    Body(body): Body<ExtensionsBody>,
) -> ApiResult<axum::Json<ExtensionsJson>> {
    let conv = super::messages::life_conv(&conv_id)?;
    if seq == 0 {
        return Err(Reject::new(ErrorCode::MessageNotFound, "seq 0 names no message").into());
    }
    extensions::check_request(&body.set, &body.remove, &api.node.config.messages)?;
    let system = api.system_user()?;
    let owner = api.node.owner(OwnerKey::Conv(&conv));
    let op = MessagesOp::Change {
        conv,
        seq,
        change: Change::Extensions { set: body.set, remove: body.remove, if_version: body.if_version },
        admin: true,
    };
    match expect_ok(api.op(owner, &system, ServiceOp::Messages(op)).await)? {
        response::Result::Extensions(x) => Ok(axum::Json(ExtensionsJson {
            conv_id: x.conv_id,
            seq: x.seq,
            version: x.version,
            update_seq: x.update_seq,
            extensions: x
                .extensions
                .into_iter()
                .map(|(k, v)| {
                    (k, ExtensionValueJson { value: v.value, version: v.version, by: v.by, at_ms: v.at_ms })
                })
                .collect(),
        })),
        _ => Err(Reject::new(ErrorCode::Internal, "unexpected answer").into()),
    }
}
