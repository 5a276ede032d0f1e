//! REST endpoints: users (spec/openapi.yaml, tag `users`).
//!
//! Role: account administration (import, disable, enable, kick, revoke,
//! tokens), profiles, presence and devices of users. Writes go through the
//! protocol's admin requests (`api.call(.., admin = true, ..)` as the system
//! user) or as the user itself (profile), or through the accounts service's
//! `Kick` op on the user's owner shard; reads are committed storage and the
//! online directory, read on a blocking thread.
//!
//! Invariants: every body field is validated before anything is sent (400
//! INVALID_ARGUMENT naming the field); batch sizes are bounded (import and
//! query 100, status 500); a token is minted only for a valid user id, with
//! role `user` and a TTL of 1 s..=1 year.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use missive_protocol::pb::{self, request::Op, response};
use missive_protocol::token::{self, Claims, Role};
use missive_protocol::{DeviceId, ErrorCode, UserId};
use serde::{Deserialize, Serialize};

use super::{Api, ApiError, ApiResult, Body, Path, blocking, expect_ok};
use crate::node::OwnerKey;
use crate::services::ServiceOp;
use crate::services::accounts::AccountsOp;

/// Most users per import or query call.
pub(crate) const MAX_BATCH: usize = 100;
/// Most users per status call.
pub(crate) const MAX_STATUS_BATCH: usize = 500;
/// Most device ids per kick call.
pub(crate) const MAX_KICK_DEVICES: usize = 100;
/// Most known devices listed.
pub(crate) const MAX_DEVICES: usize = 1000;
/// Longest token lifetime, seconds (one year).
pub(crate) const MAX_TTL_SECS: u64 = 31_536_000;

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/v1/users/import", post(import))
        .route("/v1/users/query", post(query))
        .route("/v1/users/exists", post(exists))
        .route("/v1/users/status", post(status))
        .route("/v1/users/{user_id}/profile", patch(update_profile))
        .route("/v1/users/{user_id}/disable", post(disable))
        .route("/v1/users/{user_id}/enable", post(enable))
        .route("/v1/users/{user_id}/kick", post(kick))
        .route("/v1/users/{user_id}/revoke-tokens", post(revoke))
        .route("/v1/users/{user_id}/devices", get(devices))
        .route("/v1/users/{user_id}/token", post(mint))
}

// ---------------------------------------------------------------- JSON shapes

/// `ProfilePatch` in JSON: unset fields are kept; `ex` entries are merged
/// (an empty value removes the key).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProfilePatchJson {
    nickname: Option<String>,
    avatar_url: Option<String>,
    gender: Option<String>,
    birthday: Option<String>,
    signature: Option<String>,
    #[serde(default)]
    ex: BTreeMap<String, String>,
    friend_verification: Option<String>,
}

fn gender_name(g: i32) -> &'static str {
    match pb::Gender::try_from(g) {
        Ok(pb::Gender::Male) => "male",
        Ok(pb::Gender::Female) => "female",
        Ok(pb::Gender::Other) => "other",
        _ => "unspecified",
    }
}

fn parse_gender(s: &str) -> ApiResult<pb::Gender> {
    Ok(match s {
        "unspecified" => pb::Gender::Unspecified,
        "male" => pb::Gender::Male,
        "female" => pb::Gender::Female,
        "other" => pb::Gender::Other,
        _ => return Err(ApiError::invalid("gender: one of unspecified, male, female, other")),
    })
}

fn verification_name(v: i32) -> &'static str {
    match pb::FriendVerification::try_from(v) {
        Ok(pb::FriendVerification::AllowAnyone) => "allow_anyone",
        Ok(pb::FriendVerification::DenyAll) => "deny_all",
        _ => "need_approval",
    }
}

fn parse_verification(s: &str) -> ApiResult<pb::FriendVerification> {
    Ok(match s {
        "need_approval" => pb::FriendVerification::NeedApproval,
        "allow_anyone" => pb::FriendVerification::AllowAnyone,
        "deny_all" => pb::FriendVerification::DenyAll,
        _ => {
            return Err(ApiError::invalid(
                "friend_verification: one of need_approval, allow_anyone, deny_all",
            ));
        }
    })
}

impl ProfilePatchJson {
    /// The protocol patch (its text fields are checked by the route, as for a client).
    fn into_pb(self) -> ApiResult<pb::ProfilePatch> {
        Ok(pb::ProfilePatch {
            nickname: self.nickname,
            avatar_url: self.avatar_url,
            gender: self.gender.as_deref().map(parse_gender).transpose()?.map(|g| g as i32),
            birthday: self.birthday,
            signature: self.signature,
            ex: self.ex.into_iter().collect(),
            friend_verification: self
                .friend_verification
                .as_deref()
                .map(parse_verification)
                .transpose()?
                .map(|v| v as i32),
        })
    }
}

/// A profile in JSON.
#[derive(Debug, Serialize)]
pub(crate) struct ProfileJson {
    user_id: String,
    nickname: String,
    avatar_url: String,
    gender: &'static str,
    birthday: String,
    signature: String,
    ex: BTreeMap<String, String>,
    friend_verification: &'static str,
    updated_ms: u64,
}

impl From<pb::Profile> for ProfileJson {
    fn from(p: pb::Profile) -> Self {
        Self {
            user_id: p.user_id,
            nickname: p.nickname,
            avatar_url: p.avatar_url,
            gender: gender_name(p.gender),
            birthday: p.birthday,
            signature: p.signature,
            ex: p.ex.into_iter().collect(),
            friend_verification: verification_name(p.friend_verification),
            updated_ms: p.updated_ms,
        }
    }
}

/// `{}`: the answer of writes that return nothing.
#[derive(Debug, Serialize)]
pub(crate) struct Empty {}

/// A list of user ids, `1..=max`, each valid.
pub(crate) fn user_ids(api: &Api, ids: &[String], max: usize, field: &str) -> ApiResult<Vec<UserId>> {
    if ids.is_empty() || ids.len() > max {
        return Err(ApiError::invalid(format!("{field}: 1..={max} ids required, got {}", ids.len())));
    }
    ids.iter().map(|s| api.user(s, field)).collect()
}

/// 404 USER_NOT_FOUND unless `user` is registered.
pub(crate) async fn registered(api: &Api, user: &UserId) -> ApiResult<()> {
    let store = api.node.store.clone();
    let u = user.clone();
    let found = blocking(move || Ok(store.account(&u)?.is_some())).await?;
    if found {
        Ok(())
    } else {
        Err(ApiError::not_found(ErrorCode::UserNotFound, format!("user {user} is not registered")))
    }
}

// ---------------------------------------------------------------- import

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportBody {
    users: Vec<ImportEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportEntry {
    user_id: String,
    profile: Option<ProfilePatchJson>,
}

/// The outcome of one entry of a batch.
#[derive(Debug, Serialize)]
pub(crate) struct ItemResult {
    pub(crate) user_id: String,
    pub(crate) ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) code: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<String>,
}

impl ItemResult {
    pub(crate) fn of<T>(user_id: String, r: Result<T, ApiError>) -> Self {
        match r {
            Ok(_) => Self { user_id, ok: true, code: None, message: None },
            Err(e) => Self { user_id, ok: false, code: Some(e.code as u32), message: Some(e.message) },
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct Results {
    pub(crate) results: Vec<ItemResult>,
}

/// `POST /v1/users/import`: one result per entry, in order; an entry that
/// fails (bad id, exists already, bad profile) does not stop the others.
async fn import(State(api): State<Arc<Api>>, Body(b): Body<ImportBody>) -> ApiResult<Json<Results>> {
    if b.users.is_empty() || b.users.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!(
            "users: 1..={MAX_BATCH} entries required, got {}",
            b.users.len()
        )));
    }
    let system = api.system_user()?;
    let mut results = Vec::with_capacity(b.users.len());
    for e in b.users {
        let r = async {
            let profile = e.profile.map(ProfilePatchJson::into_pb).transpose()?;
            let op = Op::ImportUser(pb::ImportUser { user_id: e.user_id.clone(), profile });
            expect_ok(api.call(&system, true, op).await)
        }
        .await;
        results.push(ItemResult::of(e.user_id, r));
    }
    Ok(Json(Results { results }))
}

// ---------------------------------------------------------------- query / exists

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserIdsBody {
    pub(crate) user_ids: Vec<String>,
}

#[derive(Debug, Serialize)]
struct UserInfo {
    user_id: String,
    exists: bool,
    disabled: bool,
    disabled_reason: String,
    created_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<ProfileJson>,
}

#[derive(Debug, Serialize)]
struct UsersAnswer {
    users: Vec<UserInfo>,
}

/// `POST /v1/users/query`: account state and profile of each id, in order.
async fn query(State(api): State<Arc<Api>>, Body(b): Body<UserIdsBody>) -> ApiResult<Json<UsersAnswer>> {
    let ids = user_ids(&api, &b.user_ids, MAX_BATCH, "user_ids")?;
    let store = api.node.store.clone();
    let users = blocking(move || {
        let mut out = Vec::with_capacity(ids.len());
        for u in ids {
            let info = match store.account(&u)? {
                None => UserInfo {
                    user_id: u.to_string(),
                    exists: false,
                    disabled: false,
                    disabled_reason: String::new(),
                    created_ms: 0,
                    profile: None,
                },
                Some(a) => {
                    let p = store.profile(&u)?.unwrap_or_default();
                    UserInfo {
                        user_id: u.to_string(),
                        exists: true,
                        disabled: a.disabled,
                        disabled_reason: a.disabled_reason,
                        created_ms: a.created_ms,
                        profile: Some(crate::services::accounts::profile_view(&u, &p).into()),
                    }
                }
            };
            out.push(info);
        }
        Ok(out)
    })
    .await?;
    Ok(Json(UsersAnswer { users }))
}

#[derive(Debug, Serialize)]
struct ExistsEntry {
    user_id: String,
    exists: bool,
    disabled: bool,
}

#[derive(Debug, Serialize)]
struct ExistsAnswer {
    accounts: Vec<ExistsEntry>,
}

/// `POST /v1/users/exists` (the protocol's AccountsExist).
async fn exists(State(api): State<Arc<Api>>, Body(b): Body<UserIdsBody>) -> ApiResult<Json<ExistsAnswer>> {
    user_ids(&api, &b.user_ids, MAX_BATCH, "user_ids")?;
    let system = api.system_user()?;
    let op = Op::AccountsExist(pb::AccountsExist { user_ids: b.user_ids });
    match expect_ok(api.call(&system, true, op).await)? {
        response::Result::Accounts(a) => Ok(Json(ExistsAnswer {
            accounts: a
                .accounts
                .into_iter()
                .map(|a| ExistsEntry { user_id: a.user_id, exists: a.exists, disabled: a.disabled })
                .collect(),
        })),
        _ => Err(unexpected()),
    }
}

/// A protocol answer of an unexpected kind (a broker bug).
pub(crate) fn unexpected() -> ApiError {
    ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, "unexpected answer")
}

// ---------------------------------------------------------------- profile

/// `PATCH /v1/users/{user_id}/profile`: as the user (SetProfile).
async fn update_profile(
    State(api): State<Arc<Api>>,
    Path(user_id): Path<String>,
    Body(b): Body<ProfilePatchJson>,
) -> ApiResult<Json<ProfileJson>> {
    let user = api.user(&user_id, "user_id")?;
    let patch = b.into_pb()?;
    registered(&api, &user).await?;
    match expect_ok(api.call(&user, false, Op::SetProfile(pb::SetProfile { patch: Some(patch) })).await)? {
        response::Result::Profile(p) => Ok(Json(p.into())),
        _ => Err(unexpected()),
    }
}

// ---------------------------------------------------------------- disable / enable / revoke / kick

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DisableBody {
    #[serde(default)]
    reason: String,
}

/// `POST /v1/users/{user_id}/disable`.
async fn disable(
    State(api): State<Arc<Api>>,
    Path(user_id): Path<String>,
    Body(b): Body<DisableBody>,
) -> ApiResult<Json<Empty>> {
    set_disabled(&api, &user_id, true, b.reason).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoBody {}

/// `POST /v1/users/{user_id}/enable`.
async fn enable(
    State(api): State<Arc<Api>>,
    Path(user_id): Path<String>,
    Body(_): Body<NoBody>,
) -> ApiResult<Json<Empty>> {
    set_disabled(&api, &user_id, false, String::new()).await
}

async fn set_disabled(api: &Api, user_id: &str, disabled: bool, reason: String) -> ApiResult<Json<Empty>> {
    let user = api.user(user_id, "user_id")?;
    let system = api.system_user()?;
    let op = Op::SetAccountDisabled(pb::SetAccountDisabled { user_id: user.to_string(), disabled, reason });
    expect_ok(api.call(&system, true, op).await)?;
    Ok(Json(Empty {}))
}

/// `POST /v1/users/{user_id}/revoke-tokens`.
async fn revoke(
    State(api): State<Arc<Api>>,
    Path(user_id): Path<String>,
    Body(_): Body<NoBody>,
) -> ApiResult<Json<Empty>> {
    let user = api.user(&user_id, "user_id")?;
    let system = api.system_user()?;
    expect_ok(
        api.call(&system, true, Op::RevokeTokens(pb::RevokeTokens { user_id: user.to_string() })).await,
    )?;
    Ok(Json(Empty {}))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KickBody {
    #[serde(default)]
    device_ids: Vec<String>,
}

#[derive(Debug, Serialize)]
struct KickAnswer {
    /// Device ids of the sessions ended (as the directory listed them before the kick).
    kicked: Vec<String>,
}

/// `POST /v1/users/{user_id}/kick`: ends the named sessions (all when none named).
async fn kick(
    State(api): State<Arc<Api>>,
    Path(user_id): Path<String>,
    Body(b): Body<KickBody>,
) -> ApiResult<Json<KickAnswer>> {
    let user = api.user(&user_id, "user_id")?;
    if b.device_ids.len() > MAX_KICK_DEVICES {
        return Err(ApiError::invalid(format!("device_ids: at most {MAX_KICK_DEVICES} ids")));
    }
    let devices = b
        .device_ids
        .into_iter()
        .map(|d| DeviceId::new(d).map_err(|e| ApiError::invalid(format!("device_ids: {e}"))))
        .collect::<ApiResult<Vec<_>>>()?;
    registered(&api, &user).await?;
    let mut kicked: Vec<String> = api
        .node
        .directory
        .sessions(&user)
        .into_iter()
        .filter(|s| devices.is_empty() || devices.contains(&s.device))
        .map(|s| s.device.to_string())
        .collect();
    kicked.sort();
    kicked.dedup();
    let system = api.system_user()?;
    let owner = api.node.owner(OwnerKey::User(&user));
    expect_ok(api.op(owner, &system, ServiceOp::Accounts(AccountsOp::Kick { target: user, devices })).await)?;
    Ok(Json(KickAnswer { kicked }))
}

// ---------------------------------------------------------------- status / devices

#[derive(Debug, Serialize)]
struct StatusEntry {
    user_id: String,
    online: bool,
    platforms: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
struct StatusAnswer {
    users: Vec<StatusEntry>,
}

/// `POST /v1/users/status`: online platforms of each id, from the directory.
async fn status(State(api): State<Arc<Api>>, Body(b): Body<UserIdsBody>) -> ApiResult<Json<StatusAnswer>> {
    let ids = user_ids(&api, &b.user_ids, MAX_STATUS_BATCH, "user_ids")?;
    let users = ids
        .into_iter()
        .map(|u| {
            let online = api.node.directory.online(&u);
            StatusEntry {
                user_id: u.to_string(),
                online: !online.platforms.is_empty(),
                platforms: online.platforms.into_iter().map(token::platform_name).collect(),
            }
        })
        .collect();
    Ok(Json(StatusAnswer { users }))
}

#[derive(Debug, Serialize)]
struct OnlineDevice {
    device_id: String,
    platform: &'static str,
    since_ms: u64,
    admin: bool,
}

/// A device with a stored record: one that synced at least once.
#[derive(Debug, Serialize)]
struct KnownDevice {
    device_id: String,
    /// When the device's last sync page was recorded (unix ms).
    last_sync_ms: u64,
    /// The feed version of the device's last sync token.
    last_sync_version: u64,
}

#[derive(Debug, Serialize)]
struct DevicesAnswer {
    online: Vec<OnlineDevice>,
    known: Vec<KnownDevice>,
    /// More than `MAX_DEVICES` known devices: the list is cut.
    truncated: bool,
}

/// `GET /v1/users/{user_id}/devices`.
async fn devices(State(api): State<Arc<Api>>, Path(user_id): Path<String>) -> ApiResult<Json<DevicesAnswer>> {
    let user = api.user(&user_id, "user_id")?;
    registered(&api, &user).await?;
    let online = api
        .node
        .directory
        .sessions(&user)
        .into_iter()
        .map(|s| OnlineDevice {
            device_id: s.device.to_string(),
            platform: token::platform_name(s.platform),
            since_ms: s.since_ms,
            admin: s.admin,
        })
        .collect();
    let store = api.node.store.clone();
    let mut rows = blocking(move || Ok(store.devices(&user, "", MAX_DEVICES + 1)?)).await?;
    let truncated = rows.len() > MAX_DEVICES;
    rows.truncate(MAX_DEVICES);
    let known = rows
        .into_iter()
        .map(|(device_id, d)| KnownDevice {
            device_id,
            last_sync_ms: d.last_login_ms,
            last_sync_version: d.sync_token.split('.').next().and_then(|v| v.parse().ok()).unwrap_or(0),
        })
        .collect();
    Ok(Json(DevicesAnswer { online, known, truncated }))
}

// ---------------------------------------------------------------- token

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    ttl_secs: u64,
    device_id: Option<String>,
    platform: Option<String>,
}

#[derive(Debug, Serialize)]
struct TokenAnswer {
    token: String,
    /// Unix seconds.
    expires_at: u64,
}

/// `POST /v1/users/{user_id}/token`: a user-role token signed with the broker's secret.
async fn mint(
    State(api): State<Arc<Api>>,
    Path(user_id): Path<String>,
    Body(b): Body<TokenBody>,
) -> ApiResult<Json<TokenAnswer>> {
    let user = api.user(&user_id, "user_id")?;
    if !(1..=MAX_TTL_SECS).contains(&b.ttl_secs) {
        return Err(ApiError::invalid(format!("ttl_secs: 1..={MAX_TTL_SECS} required")));
    }
    let device = b
        .device_id
        .map(|d| DeviceId::new(d).map_err(|e| ApiError::invalid(format!("device_id: {e}"))))
        .transpose()?;
    let platform = match b.platform.as_deref() {
        None => None,
        Some(p) => Some(token::parse_platform(p).ok_or_else(|| {
            ApiError::invalid("platform: one of ios, android, web, windows, mac, linux, ipad")
        })?),
    };
    let now_ms = crate::node::clock::now_ms();
    let expires_at = now_ms / 1000 + b.ttl_secs;
    let claims = Claims { user, expires_at, issued_at_ms: now_ms, role: Role::User, device, platform };
    let token = token::mint(api.node.config.secret.as_bytes(), &claims);
    Ok(Json(TokenAnswer { token, expires_at }))
}
