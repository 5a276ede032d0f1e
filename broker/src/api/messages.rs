//! REST endpoints: messages (spec/openapi.yaml, tag `messages`).

use std::sync::Arc;

use axum::Router;

use super::Api;

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
}
