//! REST endpoints: messages (spec/openapi.yaml, tag `messages`).
//!
//! - `POST /v1/messages`: send as a user, 1:1 or group, through
//!   `route::route` exactly like a socket send (same checks, same codes);
//! - `POST /v1/messages/notice`: one `SystemNotice` from the system user
//!   (`api.system_user`) into `p:{system}:{user}` of each of ≤ 500 users;
//! - `POST /v1/messages/broadcast`: one message in `b:all`, stored once,
//!   which every user syncs (read diffusion, spec [AM-2]);
//! - `GET /v1/conversations/{conv_id}/messages`: NDJSON export of committed
//!   `msg` rows, read on a blocking thread;
//! - `POST /v1/messages/import`: historical messages appended in order with
//!   their original senders and times (spec [AM-1]);
//! - `POST /v1/conversations/{conv_id}/messages/{seq}/recall` and
//!   `POST /v1/conversations/{conv_id}/messages/delete`: recall one message,
//!   delete messages for everyone, on any message (spec [RC-1], [DL-3]),
//!   acting as the system user.
//!
//! Invariants: every body field is validated before anything is routed (400
//! naming the field); ops no client may send (notice, broadcast, import) go
//! straight to the conversation's owner shard as `MessagesOp`s, pipelined in
//! order ([`Api::submit`]) and answered per item; nothing here writes storage.

mod content;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use missive_protocol::pb::{self, request::Op, response};
use missive_protocol::{ClientMsgId, ConvId, ConvKind, ErrorCode, GroupId, Seq, UserId};
use prost::Message as _;
use serde::{Deserialize, Serialize};

use super::{Api, ApiError, ApiResult, Body, Path, Query, expect_ok};
use crate::error::Reject;
use crate::node::OwnerKey;
use crate::services::ServiceOp;
use crate::services::messages::MessagesOp;
use crate::services::messages::check;
use crate::shard::Reply;

use content::{ContentJson, MessageJson, content_pb};

/// Most recipients of one notice.
pub(crate) const MAX_NOTICE_USERS: usize = 500;
/// Most messages of one import call.
pub(crate) const MAX_IMPORT: usize = 100;
/// Longest notice title, bytes.
const MAX_TITLE: usize = 256;
/// Default and largest `?limit=` of an export page.
const EXPORT_DEFAULT: usize = 100;
const EXPORT_MAX: usize = 1000;
/// Bytes of stored messages read for one export page (at least one row).
const EXPORT_BUDGET: usize = 8 << 20;
/// The export's cursor header: the seq to pass as `after_seq` next.
pub(crate) const NEXT_HEADER: &str = "missive-next-after-seq";
/// The export's "more rows remain" header (`true` / `false`).
pub(crate) const MORE_HEADER: &str = "missive-more";

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/v1/messages", post(send))
        .route("/v1/messages/notice", post(notice))
        .route("/v1/messages/broadcast", post(broadcast))
        .route("/v1/messages/import", post(import))
        .route("/v1/conversations/{conv_id}/messages", get(export))
        .route("/v1/conversations/{conv_id}/messages/{seq}/recall", post(recall))
        .route("/v1/conversations/{conv_id}/messages/delete", post(delete))
}

/// A 1:1 or group conversation id of a lifecycle endpoint (400 otherwise).
pub(crate) fn life_conv(conv_id: &str) -> ApiResult<ConvId> {
    let conv = ConvId::parse(conv_id).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidConvId, format!("conv_id: {e}"))
    })?;
    match conv.kind() {
        ConvKind::Direct | ConvKind::Group => Ok(conv),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::UnsupportedConversation,
            "conv_id: messages of this conversation kind cannot be changed",
        )),
    }
}

/// A message after a recall (spec [RC-3]).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RecalledJson {
    conv_id: String,
    seq: u64,
    recalled_by: String,
    recalled_at_ms: u64,
    update_seq: u64,
}

/// `POST /v1/conversations/{conv_id}/messages/{seq}/recall`: any message ([RC-1]).
async fn recall(
    State(api): State<Arc<Api>>,
    Path((conv_id, seq)): Path<(String, u64)>,
) -> ApiResult<axum::Json<RecalledJson>> {
    let conv = life_conv(&conv_id)?;
    if seq == 0 {
        return Err(Reject::new(ErrorCode::MessageNotFound, "no message at seq 0").into());
    }
    let sys = ensure_system_user(&api).await?;
    let owner = api.node.owner(OwnerKey::Conv(&conv));
    let op = MessagesOp::Change { conv, seq, change: crate::services::messages::Change::Recall, admin: true };
    match expect_ok(api.op(owner, &sys, ServiceOp::Messages(op)).await)? {
        response::Result::Message(m) => {
            let r = m.recalled.unwrap_or_default();
            Ok(axum::Json(RecalledJson {
                conv_id: m.conv_id,
                seq: m.seq,
                recalled_by: r.by,
                recalled_at_ms: r.at_ms,
                update_seq: m.update_seq,
            }))
        }
        _ => Err(ApiError::from(Reject::new(ErrorCode::Internal, "unexpected answer"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteBody {
    seqs: Vec<u64>,
}

/// `POST /v1/conversations/{conv_id}/messages/delete`: for everyone ([DL-3]).
async fn delete(
    State(api): State<Arc<Api>>,
    Path(conv_id): Path<String>,
    Body(b): Body<DeleteBody>,
) -> ApiResult<axum::Json<super::users::Empty>> {
    let conv = life_conv(&conv_id)?;
    crate::services::messages::updates::check_seqs(&b.seqs)?;
    let mut seqs = b.seqs;
    seqs.sort_unstable();
    seqs.dedup();
    let sys = ensure_system_user(&api).await?;
    let owner = api.node.owner(OwnerKey::Conv(&conv));
    let op = MessagesOp::Delete { conv, seqs, for_everyone: true, admin: true };
    expect_ok(api.op(owner, &sys, ServiceOp::Messages(op)).await)?;
    Ok(axum::Json(super::users::Empty {}))
}

/// The answer of one stored (or deduplicated) message.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SendAckJson {
    conv_id: String,
    seq: u64,
    server_msg_id: u64,
    server_time_ms: u64,
    duplicate: bool,
}

impl From<pb::SendAck> for SendAckJson {
    fn from(a: pb::SendAck) -> Self {
        Self {
            conv_id: a.conv_id,
            seq: a.seq,
            server_msg_id: a.server_msg_id,
            server_time_ms: a.server_time_ms,
            duplicate: a.duplicate,
        }
    }
}

/// One item of a batch answer: the ack, or the refusal.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ItemResult {
    /// The recipient (notice) or the item's index (import, as a string).
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    ack: Option<SendAckJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

impl ItemResult {
    fn of(reply: Reply) -> Self {
        let mut r = Self { user_id: None, index: None, ok: false, ack: None, code: None, message: None };
        match reply {
            Ok(response::Result::SendAck(a)) => {
                r.ok = true;
                r.ack = Some(a.into());
            }
            Ok(_) => {
                r.code = Some(ErrorCode::Internal as u32);
                r.message = Some("unexpected answer".into());
            }
            Err(e) => {
                r.code = Some(e.code as u32);
                r.message = Some(e.message);
            }
        }
        r
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Results {
    results: Vec<ItemResult>,
}

/// A client message id: the given one, or a fresh `api-…` id.
fn client_msg_id(given: Option<String>, field: &str) -> ApiResult<ClientMsgId> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let s = match given {
        Some(s) => s,
        None => {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            format!("api-{}-{n}-{:08x}", crate::node::clock::now_ms(), rand::random::<u32>())
        }
    };
    ClientMsgId::new(s).map_err(|e| ApiError::invalid(format!("{field}: {e}")))
}

fn admin_content_ok(c: &pb::Content, max: usize) -> ApiResult<()> {
    check::admin_content_ok(c, max).map_err(ApiError::from)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    from: String,
    #[serde(default)]
    to_user_id: Option<String>,
    #[serde(default)]
    group_id: Option<String>,
    content: ContentJson,
    #[serde(default)]
    client_msg_id: Option<String>,
    #[serde(default)]
    flags: Option<FlagsJson>,
}

/// Send flags (spec 18.8), every one optional (default false).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlagsJson {
    #[serde(default)]
    online_only: bool,
    #[serde(default)]
    no_history: bool,
    #[serde(default)]
    no_unread: bool,
    #[serde(default)]
    no_push: bool,
}

/// `POST /v1/messages`: a SendMessage made as `from`.
async fn send(State(api): State<Arc<Api>>, Body(b): Body<SendBody>) -> ApiResult<axum::Json<SendAckJson>> {
    let from = api.user(&b.from, "from")?;
    let conv = match (b.to_user_id, b.group_id) {
        (Some(to), None) => {
            let to = api.user(&to, "to_user_id")?;
            ConvId::direct(&from, &to).map_err(|_| ApiError::invalid("to_user_id: must differ from from"))?
        }
        (None, Some(g)) => GroupId::new(g).map_err(|e| ApiError::invalid(format!("group_id: {e}")))?.conv(),
        _ => return Err(ApiError::invalid("exactly one of to_user_id and group_id is required")),
    };
    let content = content_pb(b.content, "content")?;
    let cmid = client_msg_id(b.client_msg_id, "client_msg_id")?;
    // A disabled account cannot log in, so it cannot send over a socket either.
    let store = api.node.store.clone();
    let who = from.clone();
    let account = super::storage(move || store.account(&who)).await?;
    if account.is_some_and(|a| a.disabled) {
        return Err(Reject::new(ErrorCode::AccountDisabled, format!("{from} is disabled")).into());
    }
    let op = Op::Send(pb::SendMessage {
        conv_id: conv.to_string(),
        client_msg_id: cmid.as_str().to_owned(),
        content: Some(content),
        flags: b.flags.map(|f| pb::MessageFlags {
            online_only: f.online_only,
            no_history: f.no_history,
            no_unread: f.no_unread,
            no_push: f.no_push,
        }),
        // The API device resends with the same id: never a first attempt.
        first_attempt: false,
    });
    match expect_ok(api.call(&from, false, op).await)? {
        response::Result::SendAck(a) => Ok(axum::Json(a.into())),
        _ => Err(ApiError::from(Reject::new(ErrorCode::Internal, "unexpected answer"))),
    }
}

/// Creates the system user's account if needed (ImportUser as admin;
/// ACCOUNT_EXISTS is success).
async fn ensure_system_user(api: &Api) -> ApiResult<UserId> {
    let sys = api.system_user()?;
    let op = Op::ImportUser(pb::ImportUser { user_id: sys.to_string(), profile: None });
    match api.call(&sys, true, op).await {
        Ok(_) => Ok(sys),
        Err(e) if e.code == ErrorCode::AccountExists => Ok(sys),
        Err(e) => Err(e.into()),
    }
}

fn send_op(conv: ConvId, client_msg_id: ClientMsgId, content: pb::Content) -> ServiceOp {
    ServiceOp::Messages(MessagesOp::Send { conv, client_msg_id, content, flags: None, fresh: None })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoticeBody {
    user_ids: Vec<String>,
    #[serde(default)]
    title: String,
    text: String,
    #[serde(default)]
    client_msg_id: Option<String>,
}

/// `POST /v1/messages/notice`: a SystemNotice to each user, from the system user.
async fn notice(State(api): State<Arc<Api>>, Body(b): Body<NoticeBody>) -> ApiResult<axum::Json<Results>> {
    if b.user_ids.is_empty() || b.user_ids.len() > MAX_NOTICE_USERS {
        return Err(ApiError::invalid(format!(
            "user_ids: 1..={MAX_NOTICE_USERS} ids required, got {}",
            b.user_ids.len()
        )));
    }
    let users = b.user_ids.iter().map(|u| api.user(u, "user_ids")).collect::<ApiResult<Vec<UserId>>>()?;
    if b.title.len() > MAX_TITLE {
        return Err(ApiError::invalid(format!("title: at most {MAX_TITLE} bytes")));
    }
    if b.text.is_empty() {
        return Err(ApiError::invalid("text: must not be empty"));
    }
    let content = pb::Content {
        body: Some(pb::content::Body::System(pb::SystemNotice { title: b.title, text: b.text })),
        ..Default::default()
    };
    admin_content_ok(&content, api.node.config.limits.max_content_bytes)?;
    let cmid = client_msg_id(b.client_msg_id, "client_msg_id")?;
    let sys = ensure_system_user(&api).await?;
    let mut pending = Vec::with_capacity(users.len());
    for u in &users {
        let p = match ConvId::direct(&sys, u) {
            Ok(conv) => {
                let owner = api.node.owner(OwnerKey::Conv(&conv));
                api.submit(owner, &sys, send_op(conv, cmid.clone(), content.clone()))
            }
            Err(_) => Err(Reject::new(ErrorCode::SelfTarget, "the system user cannot notify itself")),
        };
        pending.push(p);
    }
    let mut results = Vec::with_capacity(users.len());
    for (u, p) in users.into_iter().zip(pending) {
        let reply = match p {
            Ok(p) => api.wait(p).await,
            Err(e) => Err(e),
        };
        let mut r = ItemResult::of(reply);
        r.user_id = Some(u.to_string());
        results.push(r);
    }
    Ok(axum::Json(Results { results }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BroadcastBody {
    content: ContentJson,
    #[serde(default)]
    client_msg_id: Option<String>,
}

/// `POST /v1/messages/broadcast`: one message in `b:all`, from the system user.
async fn broadcast(
    State(api): State<Arc<Api>>,
    Body(b): Body<BroadcastBody>,
) -> ApiResult<axum::Json<SendAckJson>> {
    let content = content_pb(b.content, "content")?;
    admin_content_ok(&content, api.node.config.limits.max_content_bytes)?;
    let cmid = client_msg_id(b.client_msg_id, "client_msg_id")?;
    let sys = ensure_system_user(&api).await?;
    let conv = ConvId::broadcast_all();
    let owner = api.node.owner(OwnerKey::Conv(&conv));
    match expect_ok(api.op(owner, &sys, send_op(conv, cmid, content)).await)? {
        response::Result::SendAck(a) => Ok(axum::Json(a.into())),
        _ => Err(ApiError::from(Reject::new(ErrorCode::Internal, "unexpected answer"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportItemBody {
    from: String,
    time_ms: u64,
    content: ContentJson,
    client_msg_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportBody {
    conv_id: String,
    messages: Vec<ImportItemBody>,
}

/// `POST /v1/messages/import`: historical messages, in order, with their
/// original senders and times.
async fn import(State(api): State<Arc<Api>>, Body(b): Body<ImportBody>) -> ApiResult<axum::Json<Results>> {
    let conv = ConvId::parse(&b.conv_id).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidConvId, format!("conv_id: {e}"))
    })?;
    if !matches!(conv.kind(), ConvKind::Direct | ConvKind::Group) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::UnsupportedConversation,
            "conv_id: only p: and g: conversations take imports",
        ));
    }
    if b.messages.is_empty() || b.messages.len() > MAX_IMPORT {
        return Err(ApiError::invalid(format!(
            "messages: 1..={MAX_IMPORT} messages required, got {}",
            b.messages.len()
        )));
    }
    let now = crate::node::clock::now_ms();
    let max = api.node.config.limits.max_content_bytes;
    let mut ops = Vec::with_capacity(b.messages.len());
    for (i, m) in b.messages.into_iter().enumerate() {
        let from = api.user(&m.from, &format!("messages[{i}].from"))?;
        if conv.kind() == ConvKind::Direct && conv.peer_of(&from).is_none() {
            return Err(ApiError::from(Reject::new(
                ErrorCode::NotParticipant,
                format!("messages[{i}].from: {from} is not a participant of {conv}"),
            )));
        }
        if m.time_ms == 0 || m.time_ms > now {
            return Err(ApiError::invalid(format!(
                "messages[{i}].time_ms: a past unix time in ms is required (1..={now})"
            )));
        }
        let content = content_pb(m.content, &format!("messages[{i}].content"))?;
        admin_content_ok(&content, max)?;
        let cmid = ClientMsgId::new(m.client_msg_id)
            .map_err(|e| ApiError::invalid(format!("messages[{i}].client_msg_id: {e}")))?;
        ops.push((
            from,
            MessagesOp::Import { conv: conv.clone(), client_msg_id: cmid, content, time_ms: m.time_ms },
        ));
    }
    let owner = api.node.owner(OwnerKey::Conv(&conv));
    // Items are appended in order: once one cannot be submitted (a full inbox),
    // later ones are not attempted, so a retry of the call keeps the order.
    let mut stopped = false;
    let pending: Vec<_> = ops
        .into_iter()
        .map(|(from, op)| {
            if stopped {
                return Err(Reject::new(ErrorCode::Overloaded, "not attempted: an earlier item was refused"));
            }
            let p = api.submit(owner, &from, ServiceOp::Messages(op));
            stopped = p.is_err();
            p
        })
        .collect();
    let mut results = Vec::with_capacity(pending.len());
    for (i, p) in pending.into_iter().enumerate() {
        let reply = match p {
            Ok(p) => api.wait(p).await,
            Err(e) => Err(e),
        };
        let mut r = ItemResult::of(reply);
        r.index = Some(i);
        results.push(r);
    }
    Ok(axum::Json(Results { results }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    after_seq: Option<u64>,
    limit: Option<u32>,
}

/// `GET /v1/conversations/{conv_id}/messages`: NDJSON, one message per line
/// in seq order, from committed storage.
async fn export(
    State(api): State<Arc<Api>>,
    Path(conv_id): Path<String>,
    Query(q): Query<ExportQuery>,
) -> ApiResult<Response> {
    let conv = ConvId::parse(&conv_id).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidConvId, format!("conv_id: {e}"))
    })?;
    let limit = match q.limit {
        None => EXPORT_DEFAULT,
        Some(n) if (1..=EXPORT_MAX as u32).contains(&n) => n as usize,
        Some(n) => return Err(ApiError::invalid(format!("limit must be within 1..={EXPORT_MAX} (got {n})"))),
    };
    let after = q.after_seq.unwrap_or(0);
    if after == u64::MAX {
        return Err(ApiError::invalid("after_seq: too large"));
    }
    let store = api.node.store.clone();
    let page =
        super::storage(move || store.messages(&conv, Seq(after + 1), Seq(u64::MAX), limit, EXPORT_BUDGET))
            .await?;
    let mut body = Vec::with_capacity(page.bytes + page.rows.len() * 64);
    let mut next = after;
    for (seq, bytes) in page.rows {
        next = seq.0;
        let m = pb::Message::decode(bytes.as_slice())
            .map_err(|e| ApiError::from(Reject::new(ErrorCode::Internal, format!("stored message: {e}"))))?;
        serde_json::to_writer(&mut body, &MessageJson::from(m))
            .map_err(|e| ApiError::from(Reject::new(ErrorCode::Internal, e.to_string())))?;
        body.push(b'\n');
    }
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    if let Ok(v) = HeaderValue::from_str(&next.to_string()) {
        h.insert(NEXT_HEADER, v);
    }
    h.insert(MORE_HEADER, HeaderValue::from_static(if page.more { "true" } else { "false" }));
    Ok(resp)
}
