//! REST endpoints: groups (spec/openapi.yaml, tag `groups`).
//!
//! Role: the app server manages any group as an administrator of the
//! server (spec/PROTOCOL.md [GR-30]). Writes are group ops built by
//! `services::groups::admin` and sent to the group's owner shard with
//! [`Api::op`]: they act with the owner's rights and add members without
//! consent, decided at the moment of the write like every group op, with the
//! same tips and pushes to the members. The operator named in tips (`by`, the
//! tip's sender) is `api.system_user`; a created group's tip is sent by its
//! owner. Reads come from committed storage (members, a user's groups, every
//! group) or the protocol's `GetGroups` query.
//!
//! Invariants: every field is checked before anything is sent (400 with the
//! field named); enums are lower-case strings on the wire; cursors are the
//! opaque base64url of the last id returned, and one that is not such an id
//! is 400; member and group lists are ascending by id.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use missive_protocol::pb::{self, request::Op, response};
use missive_protocol::{ConvId, ErrorCode, GroupId, UserId};
use serde::{Deserialize, Serialize};

use super::{Api, ApiError, ApiResult, Body, Cursor, Page, Path, Query, blocking, expect_ok, page_limit};
use crate::error::Reject;
use crate::services::ServiceOp;
use crate::services::groups::{GroupsOp, admin, check};

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/v1/groups", post(create).get(list_all))
        // A group may be named "query": its PATCH and DELETE are served here too.
        .route("/v1/groups/query", post(query).patch(update_named_query).delete(dismiss_named_query))
        .route("/v1/groups/{group_id}", axum::routing::patch(update).delete(dismiss))
        .route("/v1/groups/{group_id}/members", post(add_members).get(members))
        .route("/v1/groups/{group_id}/members/remove", post(remove_members))
        .route("/v1/groups/{group_id}/members/{user_id}/role", put(set_role))
        .route("/v1/groups/{group_id}/members/{user_id}/mute", post(mute_member))
        .route("/v1/groups/{group_id}/mute", post(mute_all))
        .route("/v1/groups/{group_id}/transfer", post(transfer))
        .route("/v1/users/{user_id}/groups", get(user_groups))
}

// ---------------------------------------------------------------- wire types

/// `GroupType` on the wire (creatable types only).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum TypeIn {
    Work,
    Public,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum JoinModeIn {
    Anyone,
    Approval,
    InviteOnly,
    Nobody,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum InviteModeIn {
    AnyMember,
    Admins,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum EditModeIn {
    Admins,
    Everyone,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum HistoryIn {
    FromJoin,
    Full,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RoleIn {
    Admin,
    Member,
}

/// Info and settings to set (`GroupPatch`): absent or null fields are kept.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchIn {
    name: Option<String>,
    avatar_url: Option<String>,
    introduction: Option<String>,
    notice: Option<String>,
    ex: Option<BTreeMap<String, String>>,
    join_mode: Option<JoinModeIn>,
    invite_mode: Option<InviteModeIn>,
    invitee_consent: Option<bool>,
    edit_mode: Option<EditModeIn>,
    history_visibility: Option<HistoryIn>,
}

impl PatchIn {
    fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.avatar_url.is_none()
            && self.introduction.is_none()
            && self.notice.is_none()
            && self.ex.as_ref().is_none_or(BTreeMap::is_empty)
            && self.join_mode.is_none()
            && self.invite_mode.is_none()
            && self.invitee_consent.is_none()
            && self.edit_mode.is_none()
            && self.history_visibility.is_none()
    }

    fn into_pb(self) -> pb::GroupPatch {
        pb::GroupPatch {
            name: self.name,
            avatar_url: self.avatar_url,
            introduction: self.introduction,
            notice: self.notice,
            ex: self.ex.unwrap_or_default(),
            join_mode: self.join_mode.map(|m| {
                (match m {
                    JoinModeIn::Anyone => pb::JoinMode::Anyone,
                    JoinModeIn::Approval => pb::JoinMode::Approval,
                    JoinModeIn::InviteOnly => pb::JoinMode::InviteOnly,
                    JoinModeIn::Nobody => pb::JoinMode::Nobody,
                }) as i32
            }),
            invite_mode: self.invite_mode.map(|m| {
                (match m {
                    InviteModeIn::AnyMember => pb::InviteMode::AnyMember,
                    InviteModeIn::Admins => pb::InviteMode::Admins,
                }) as i32
            }),
            invitee_consent: self.invitee_consent,
            edit_mode: self.edit_mode.map(|m| {
                (match m {
                    EditModeIn::Admins => pb::EditMode::Admins,
                    EditModeIn::Everyone => pb::EditMode::Everyone,
                }) as i32
            }),
            history_visibility: self.history_visibility.map(|h| {
                (match h {
                    HistoryIn::FromJoin => pb::HistoryVisibility::FromJoin,
                    HistoryIn::Full => pb::HistoryVisibility::Full,
                }) as i32
            }),
        }
    }
}

/// `GroupInfo` on the wire.
#[derive(Debug, Serialize)]
pub(crate) struct GroupOut {
    group_id: String,
    #[serde(rename = "type")]
    group_type: &'static str,
    name: String,
    avatar_url: String,
    introduction: String,
    notice: String,
    ex: BTreeMap<String, String>,
    join_mode: &'static str,
    invite_mode: &'static str,
    invitee_consent: bool,
    edit_mode: &'static str,
    history_visibility: &'static str,
    owner_id: String,
    member_count: u32,
    max_members: u32,
    mute_all: bool,
    created_ms: u64,
    updated_ms: u64,
    dismissed: bool,
}

impl From<pb::GroupInfo> for GroupOut {
    fn from(g: pb::GroupInfo) -> Self {
        let group_type = match pb::GroupType::try_from(g.r#type) {
            Ok(pb::GroupType::Public) => "public",
            Ok(pb::GroupType::Meeting) => "meeting",
            Ok(pb::GroupType::Live) => "live",
            _ => "work",
        };
        let join_mode = match pb::JoinMode::try_from(g.join_mode) {
            Ok(pb::JoinMode::Anyone) => "anyone",
            Ok(pb::JoinMode::Approval) => "approval",
            Ok(pb::JoinMode::Nobody) => "nobody",
            _ => "invite_only",
        };
        let invite_mode = match pb::InviteMode::try_from(g.invite_mode) {
            Ok(pb::InviteMode::Admins) => "admins",
            _ => "any_member",
        };
        let edit_mode = match pb::EditMode::try_from(g.edit_mode) {
            Ok(pb::EditMode::Admins) => "admins",
            _ => "everyone",
        };
        let history_visibility = match pb::HistoryVisibility::try_from(g.history_visibility) {
            Ok(pb::HistoryVisibility::Full) => "full",
            _ => "from_join",
        };
        Self {
            group_id: g.group_id,
            group_type,
            name: g.name,
            avatar_url: g.avatar_url,
            introduction: g.introduction,
            notice: g.notice,
            ex: g.ex.into_iter().collect(),
            join_mode,
            invite_mode,
            invitee_consent: g.invitee_consent,
            edit_mode,
            history_visibility,
            owner_id: g.owner,
            member_count: g.member_count,
            max_members: g.max_members,
            mute_all: g.mute_all,
            created_ms: g.created_ms,
            updated_ms: g.updated_ms,
            dismissed: g.dismissed,
        }
    }
}

/// `GroupMember` on the wire.
#[derive(Debug, Serialize)]
pub(crate) struct MemberOut {
    group_id: String,
    user_id: String,
    role: &'static str,
    join_ms: u64,
    join_seq: u64,
    nickname: String,
    mute_until_ms: u64,
    notify: &'static str,
}

impl From<pb::GroupMember> for MemberOut {
    fn from(m: pb::GroupMember) -> Self {
        let role = match pb::GroupRole::try_from(m.role) {
            Ok(pb::GroupRole::Owner) => "owner",
            Ok(pb::GroupRole::Admin) => "admin",
            _ => "member",
        };
        let notify = match pb::GroupNotify::try_from(m.notify) {
            Ok(pb::GroupNotify::Silent) => "silent",
            Ok(pb::GroupNotify::Block) => "block",
            _ => "notify",
        };
        Self {
            group_id: m.group_id,
            user_id: m.user_id,
            role,
            join_ms: m.join_ms,
            join_seq: m.join_seq,
            nickname: m.nickname,
            mute_until_ms: m.mute_until_ms,
            notify,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateIn {
    group_id: Option<String>,
    owner_id: String,
    #[serde(rename = "type")]
    group_type: Option<TypeIn>,
    info: Option<PatchIn>,
    #[serde(default)]
    member_ids: Vec<String>,
    max_members: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupIdsIn {
    group_ids: Vec<String>,
}

#[derive(Debug, Serialize)]
struct GroupsOut {
    groups: Vec<GroupOut>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserIdsIn {
    user_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: RoleIn,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MuteBody {
    duration_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MuteAllBody {
    mute_all: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    new_owner_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    cursor: Option<String>,
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
struct MembersPage {
    items: Vec<MemberOut>,
    next_cursor: String,
    member_count: u32,
}

/// Longest mute, as `MuteGroupMember` (10 years).
const MAX_MUTE_SECS: u64 = 10 * 365 * 86_400;

// ---------------------------------------------------------------- helpers

fn internal(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Internal,
        format!("unexpected answer to {what}"),
    )
}

/// The conversation of a `{group_id}` path parameter (400 if not a group id).
fn group_conv(group: &str) -> ApiResult<(ConvId, GroupId)> {
    let conv = check::group_conv(group)?;
    let id = conv.group_id().ok_or_else(|| ApiError::invalid("group_id: not a group id"))?;
    Ok((conv, id))
}

/// A cursor of this API's lists: the base64url of an id, checked by `valid`.
fn cursor_id(raw: Option<&str>, valid: impl Fn(&str) -> bool) -> ApiResult<String> {
    let Some(c) = Cursor::parse(raw)? else { return Ok(String::new()) };
    match String::from_utf8(c.0) {
        Ok(s) if valid(&s) => Ok(s),
        _ => Err(ApiError::invalid("cursor: not a cursor this API returned")),
    }
}

/// Sends an admin group op to the group's owner shard as `as_user`.
async fn send(api: &Api, as_user: &UserId, op: GroupsOp) -> ApiResult<response::Result> {
    let shard = api.node.owner(op.owner());
    expect_ok(api.op(shard, as_user, ServiceOp::Groups(op)).await)
}

/// Sends an admin op as the system user (the operator named in tips).
async fn send_as_system(api: &Api, op: GroupsOp) -> ApiResult<response::Result> {
    let system = api.system_user()?;
    send(api, &system, op).await
}

/// The group's committed info (after an op whose answer carries none).
async fn stored_info(api: &Api, g: GroupId) -> ApiResult<axum::Json<GroupOut>> {
    let store = api.node.store.clone();
    let id = g.clone();
    let rec = blocking(move || Ok(store.group(&id)?)).await?;
    let rec = rec.ok_or_else(|| ApiError::not_found(ErrorCode::GroupNotFound, format!("no group {g}")))?;
    Ok(axum::Json(crate::services::groups::views::info_view(&g, &rec).into()))
}

fn group_reply(r: response::Result, what: &str) -> ApiResult<axum::Json<GroupOut>> {
    match r {
        response::Result::Group(g) => Ok(axum::Json(g.into())),
        _ => Err(internal(what)),
    }
}

fn member_reply(r: response::Result, what: &str) -> ApiResult<axum::Json<MemberOut>> {
    match r {
        response::Result::GroupMember(m) => Ok(axum::Json(m.into())),
        _ => Err(internal(what)),
    }
}

// ---------------------------------------------------------------- handlers

/// `POST /v1/groups`: creates a group owned by `owner_id` with `member_ids`.
async fn create(State(api): State<Arc<Api>>, Body(b): Body<CreateIn>) -> ApiResult<axum::Json<GroupOut>> {
    let owner = api.user(&b.owner_id, "owner_id")?;
    let group_id = b.group_id.unwrap_or_default();
    if !group_id.is_empty() {
        group_conv(&group_id)?;
    }
    if b.max_members.is_some_and(|n| n < 2) {
        return Err(ApiError::invalid("max_members: at least 2"));
    }
    let r#type = match b.group_type {
        None | Some(TypeIn::Work) => pb::GroupType::Work,
        Some(TypeIn::Public) => pb::GroupType::Public,
    } as i32;
    let req = pb::CreateGroup {
        group_id,
        r#type,
        info: b.info.map(PatchIn::into_pb),
        member_ids: Vec::new(),
        max_members: b.max_members.unwrap_or(0),
    };
    // The sensitive-word filter applies to texts the API sets too ([SW-3]).
    let mut screened = Op::CreateGroup(req);
    crate::filter::screen::screen(&api.node, &owner, &mut screened)?;
    let Op::CreateGroup(req) = screened else { return Err(internal("CreateGroup")) };
    let op = admin::create(req, b.member_ids, &api.node.config.relations)?;
    group_reply(send(&api, &owner, op).await?, "CreateGroup")
}

/// `POST /v1/groups/query`: info of 1..=100 groups (unknown ids left out).
async fn query(State(api): State<Arc<Api>>, Body(b): Body<GroupIdsIn>) -> ApiResult<axum::Json<GroupsOut>> {
    let system = api.system_user()?;
    let r =
        expect_ok(api.call(&system, false, Op::GetGroups(pb::GetGroups { group_ids: b.group_ids })).await)?;
    match r {
        response::Result::Groups(g) => {
            Ok(axum::Json(GroupsOut { groups: g.groups.into_iter().map(GroupOut::from).collect() }))
        }
        _ => Err(internal("GetGroups")),
    }
}

/// `PATCH /v1/groups/{group_id}`: changes info and settings.
async fn update(
    State(api): State<Arc<Api>>,
    Path(group): Path<String>,
    Body(patch): Body<PatchIn>,
) -> ApiResult<axum::Json<GroupOut>> {
    group_conv(&group)?;
    if patch.is_empty() {
        return Err(ApiError::invalid("nothing to update"));
    }
    let req = pb::UpdateGroup { group_id: group, patch: Some(patch.into_pb()) };
    let mut screened = Op::UpdateGroup(req);
    crate::filter::screen::screen(&api.node, &api.system_user()?, &mut screened)?;
    let Op::UpdateGroup(req) = screened else { return Err(internal("UpdateGroup")) };
    let op = check::update(req, &api.node.config.relations)?.by_admin();
    group_reply(send_as_system(&api, op).await?, "UpdateGroup")
}

/// `DELETE /v1/groups/{group_id}`: dismisses the group.
async fn dismiss(State(api): State<Arc<Api>>, Path(group): Path<String>) -> ApiResult<Response> {
    let op = check::dismiss(pb::DismissGroup { group_id: group })?.by_admin();
    send_as_system(&api, op).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PATCH /v1/groups/query`: the group named "query" (the path is also the batch info route).
async fn update_named_query(state: State<Arc<Api>>, body: Body<PatchIn>) -> ApiResult<axum::Json<GroupOut>> {
    update(state, Path("query".to_owned()), body).await
}

/// `DELETE /v1/groups/query`: the group named "query".
async fn dismiss_named_query(state: State<Arc<Api>>) -> ApiResult<Response> {
    dismiss(state, Path("query".to_owned())).await
}

/// `POST /v1/groups/{group_id}/members`: adds users at once, without consent.
async fn add_members(
    State(api): State<Arc<Api>>,
    Path(group): Path<String>,
    Body(b): Body<UserIdsIn>,
) -> ApiResult<axum::Json<GroupOut>> {
    let (conv, id) = group_conv(&group)?;
    send_as_system(&api, admin::add(conv, b.user_ids)?).await?;
    stored_info(&api, id).await
}

/// `POST /v1/groups/{group_id}/members/remove`: removes members (all or none).
async fn remove_members(
    State(api): State<Arc<Api>>,
    Path(group): Path<String>,
    Body(b): Body<UserIdsIn>,
) -> ApiResult<axum::Json<GroupOut>> {
    let (conv, id) = group_conv(&group)?;
    send_as_system(&api, admin::remove(conv, b.user_ids)?).await?;
    stored_info(&api, id).await
}

/// `PUT /v1/groups/{group_id}/members/{user_id}/role`: admin or member.
async fn set_role(
    State(api): State<Arc<Api>>,
    Path((group, user)): Path<(String, String)>,
    Body(b): Body<RoleBody>,
) -> ApiResult<axum::Json<MemberOut>> {
    let role = match b.role {
        RoleIn::Admin => pb::GroupRole::Admin,
        RoleIn::Member => pb::GroupRole::Member,
    } as i32;
    let op = check::set_role(pb::SetGroupRole { group_id: group, user_id: user, role })?.by_admin();
    member_reply(send_as_system(&api, op).await?, "SetGroupRole")
}

/// `POST /v1/groups/{group_id}/members/{user_id}/mute`: mutes for a duration (0 unmutes).
async fn mute_member(
    State(api): State<Arc<Api>>,
    Path((group, user)): Path<(String, String)>,
    Body(b): Body<MuteBody>,
) -> ApiResult<axum::Json<MemberOut>> {
    if b.duration_secs > MAX_MUTE_SECS {
        return Err(ApiError::invalid(format!("duration_secs: at most {MAX_MUTE_SECS}")));
    }
    let req = pb::MuteGroupMember { group_id: group, user_id: user, duration_secs: b.duration_secs };
    let op = check::mute(req)?.by_admin();
    member_reply(send_as_system(&api, op).await?, "MuteGroupMember")
}

/// `POST /v1/groups/{group_id}/mute`: mutes or unmutes the whole group.
async fn mute_all(
    State(api): State<Arc<Api>>,
    Path(group): Path<String>,
    Body(b): Body<MuteAllBody>,
) -> ApiResult<axum::Json<GroupOut>> {
    let op = check::mute_all(pb::MuteGroupAll { group_id: group, muted: b.mute_all })?.by_admin();
    group_reply(send_as_system(&api, op).await?, "MuteGroupAll")
}

/// `POST /v1/groups/{group_id}/transfer`: makes a member the owner.
async fn transfer(
    State(api): State<Arc<Api>>,
    Path(group): Path<String>,
    Body(b): Body<TransferBody>,
) -> ApiResult<axum::Json<GroupOut>> {
    let req = pb::TransferGroup { group_id: group, new_owner: b.new_owner_id, quit: false };
    let op = check::transfer(req)?.by_admin();
    group_reply(send_as_system(&api, op).await?, "TransferGroup")
}

/// `GET /v1/groups/{group_id}/members`: members ascending by user id.
async fn members(
    State(api): State<Arc<Api>>,
    Path(group): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<MembersPage>> {
    let (_, g) = group_conv(&group)?;
    let limit = page_limit(q.limit)?;
    let after = cursor_id(q.cursor.as_deref(), |s| UserId::new(s).is_ok())?;
    let store = api.node.store.clone();
    let (info, rows) = blocking(move || {
        let info = store
            .group(&g)?
            .filter(|i| !i.dismissed)
            .ok_or_else(|| Reject::new(ErrorCode::GroupNotFound, format!("no group {g}")))?;
        let rows = store.group_members(&g, &after, limit + 1)?;
        let items: Vec<pb::GroupMember> =
            rows.iter().map(|(u, m)| crate::services::groups::views::member_view(&g, u, m)).collect();
        Ok((info, items))
    })
    .await?;
    let (items, next_cursor) = cut(rows, limit, |m| m.user_id.as_str());
    Ok(axum::Json(MembersPage {
        items: items.into_iter().map(MemberOut::from).collect(),
        next_cursor,
        member_count: info.member_count,
    }))
}

/// One page of `limit + 1` rows and the opaque cursor of the next ("" = last).
fn cut<T>(mut rows: Vec<T>, limit: usize, key: impl Fn(&T) -> &str) -> (Vec<T>, String) {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = match rows.last() {
        Some(last) if more => Cursor::encode(key(last).as_bytes()),
        _ => String::new(),
    };
    (rows, next)
}

/// `GET /v1/users/{user_id}/groups`: the groups a user belongs to.
async fn user_groups(
    State(api): State<Arc<Api>>,
    Path(user): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<GroupOut>>> {
    let user = api.user(&user, "user_id")?;
    let limit = page_limit(q.limit)?;
    let after = cursor_id(q.cursor.as_deref(), |s| GroupId::new(s).is_ok())?;
    let store = api.node.store.clone();
    let rows = blocking(move || {
        if store.account(&user)?.is_none() {
            return Err(Reject::new(ErrorCode::UserNotFound, format!("user {user} is not registered")).into());
        }
        let mut out = Vec::new();
        for g in store.joined_groups(&user, &after, limit + 1)? {
            if let Some(i) = store.group(&g)? {
                out.push(crate::services::groups::views::info_view(&g, &i));
            }
        }
        Ok(out)
    })
    .await?;
    let (items, next_cursor) = cut(rows, limit, |g| g.group_id.as_str());
    Ok(axum::Json(Page { items: items.into_iter().map(GroupOut::from).collect(), next_cursor }))
}

/// `GET /v1/groups`: every group ascending by id (dismissed ones included).
async fn list_all(
    State(api): State<Arc<Api>>,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<GroupOut>>> {
    let limit = page_limit(q.limit)?;
    let after = cursor_id(q.cursor.as_deref(), |s| GroupId::new(s).is_ok())?;
    let store = api.node.store.clone();
    let rows = blocking(move || {
        Ok(store
            .groups_after(&after, limit + 1)?
            .iter()
            .map(|(g, i)| crate::services::groups::views::info_view(g, i))
            .collect::<Vec<_>>())
    })
    .await?;
    let (items, next_cursor) = cut(rows, limit, |g| g.group_id.as_str());
    Ok(axum::Json(Page { items: items.into_iter().map(GroupOut::from).collect(), next_cursor }))
}
