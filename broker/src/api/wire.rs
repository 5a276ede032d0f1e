//! The API's wire conventions: JSON errors, bodies, cursors and pages.
//!
//! Invariants: every error body is `{"code": u32, "message": string}` with
//! the protocol's numeric code and an HTTP status chosen by [`status_of`];
//! a body that is not the expected JSON is 400 INVALID_ARGUMENT, never a
//! 5xx; cursors are opaque base64url strings, and a cursor that does not
//! decode is 400.

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use missive_protocol::ErrorCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::Reject;

/// A refused API call.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    /// `Retry-After` (ms, rounded up to seconds in the header) for 429.
    pub(crate) retry_after_ms: Option<u64>,
}

/// The result of a handler step.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after_ms: None }
    }

    /// 400 INVALID_ARGUMENT.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidArgument, message)
    }

    /// 404 with `code`.
    pub(crate) fn not_found(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 429 RATE_LIMITED with a retry-after.
    pub(crate) fn rate_limited(retry_after_ms: u64, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: ErrorCode::RateLimited,
            message: message.into(),
            retry_after_ms: Some(retry_after_ms),
        }
    }
}

/// The HTTP status of a protocol error code.
pub(crate) fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode as E;
    match code {
        E::TokenInvalid | E::TokenExpired | E::TokenDeviceMismatch | E::TokenRevoked => {
            StatusCode::UNAUTHORIZED
        }
        E::PermissionDenied
        | E::AccountDisabled
        | E::GroupPermissionDenied
        | E::NotGroupMember
        | E::NotParticipant
        | E::BlockedByUser
        | E::InYourBlacklist
        | E::MemberMuted
        | E::GroupMuted
        | E::FriendRequestsDenied
        | E::JoinDenied
        | E::NotMessageSender
        | E::UserMuted => StatusCode::FORBIDDEN,
        E::AccountNotFound
        | E::UserNotFound
        | E::GroupNotFound
        | E::NoPendingRequest
        | E::NoPendingApplication
        | E::MessageNotFound => StatusCode::NOT_FOUND,
        E::AccountExists
        | E::AlreadyFriends
        | E::GroupExists
        | E::AlreadyGroupMember
        | E::NotFriends
        | E::MessageRecalled
        | E::ExtensionConflict => StatusCode::CONFLICT,
        E::FriendLimit
        | E::PeerFriendLimit
        | E::BlacklistLimit
        | E::SubscriptionLimit
        | E::GroupFull
        | E::JoinedGroupLimit
        | E::OwnerCannotQuit
        | E::ReceiptGroupTooLarge
        | E::ContentBlocked
        | E::ContentKindNotAllowed
        | E::TimeLimitExceeded
        | E::EditNotAllowed
        | E::ReactionLimit
        | E::ExtensionLimit
        | E::TranslationDisabled => StatusCode::UNPROCESSABLE_ENTITY,
        E::ContentTooLarge | E::FrameTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        E::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        E::Overloaded | E::ServerShutdown => StatusCode::SERVICE_UNAVAILABLE,
        E::TranslationFailed => StatusCode::BAD_GATEWAY,
        E::Internal | E::Storage => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl From<Reject> for ApiError {
    fn from(r: Reject) -> Self {
        Self { status: status_of(r.code), code: r.code, message: r.message, retry_after_ms: r.retry_after_ms }
    }
}

impl From<missive_storage::StorageError> for ApiError {
    fn from(e: missive_storage::StorageError) -> Self {
        Reject::from(e).into()
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: u32,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { code: self.code as u32, message: &self.message };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(ms) = self.retry_after_ms {
            let secs = ms.div_ceil(1000).max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// A JSON request body; anything else is 400 (or 413 over `api.max_body_bytes`).
#[derive(Debug)]
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::ContentTooLarge, "body too large")
            } else {
                ApiError::invalid(format!("cannot read the body: {e}"))
            }
        })?;
        let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
        serde_json::from_slice(bytes).map(Body).map_err(|e| ApiError::invalid(format!("bad JSON body: {e}")))
    }
}

/// An opaque page cursor: base64url of the last key returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor(pub(crate) Vec<u8>);

impl Cursor {
    /// Decodes `?cursor=`; `None` for an absent or empty value.
    pub(crate) fn parse(s: Option<&str>) -> Result<Option<Self>, ApiError> {
        match s {
            None | Some("") => Ok(None),
            Some(s) => URL_SAFE_NO_PAD
                .decode(s)
                .map(|b| Some(Cursor(b)))
                .map_err(|_| ApiError::invalid("cursor: not a cursor this API returned")),
        }
    }

    pub(crate) fn encode(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }
}

/// One page of a list: the items and the cursor of the next page ("" = last page).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Page<T> {
    pub(crate) items: Vec<T>,
    pub(crate) next_cursor: String,
}

/// Default and largest `?limit=` of paged lists.
pub(crate) const PAGE_DEFAULT: usize = 100;
pub(crate) const PAGE_MAX: usize = 1000;

/// `?limit=`: 1..=PAGE_MAX, default PAGE_DEFAULT.
pub(crate) fn page_limit(limit: Option<u32>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(PAGE_DEFAULT),
        Some(n) if (1..=PAGE_MAX as u32).contains(&n) => Ok(n as usize),
        Some(n) => Err(ApiError::invalid(format!("limit must be within 1..={PAGE_MAX} (got {n})"))),
    }
}

/// A query string; one that does not parse is 400 with a JSON error.
#[derive(Debug)]
pub(crate) struct Query<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(q)
            .map(Query)
            .map_err(|e| ApiError::invalid(format!("bad query string: {e}")))
    }
}

/// A path parameter; one that does not parse is 400 with a JSON error.
#[derive(Debug)]
pub(crate) struct Path<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> axum::extract::FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        s: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, s)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ApiError::invalid(format!("bad path parameter: {e}")))
    }
}

/// Runs blocking work (a storage read or write) off the async threads; a
/// task that panicked is 500 INTERNAL.
pub(crate) async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, "task failed"))
}

/// [`run_blocking`] for work that may fail (`?` converts a `Reject` or a
/// storage error into an [`ApiError`]).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    run_blocking(f).await?
}

/// [`blocking`] for one storage call.
pub(crate) async fn storage<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, missive_storage::StorageError> + Send + 'static,
) -> ApiResult<T> {
    blocking(move || f().map_err(ApiError::from)).await
}
