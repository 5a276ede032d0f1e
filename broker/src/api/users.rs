//! REST endpoints: users (spec/openapi.yaml, tag `users`).

use std::sync::Arc;

use axum::Router;

use super::Api;

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
}
