//! REST endpoints: groups (spec/openapi.yaml, tag `groups`).

use std::sync::Arc;

use axum::Router;

use super::Api;

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
}
