//! REST endpoints: conversations (spec/openapi.yaml, tag `conversations`).

use std::sync::Arc;

use axum::Router;

use super::Api;

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
}
