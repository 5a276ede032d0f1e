//! REST endpoints: moderation (spec/openapi.yaml, tag `moderation`).

use std::sync::Arc;

use axum::Router;

use super::Api;

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
}
