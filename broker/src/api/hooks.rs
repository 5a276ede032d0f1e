//! REST endpoints: hooks (spec/openapi.yaml, tag `hooks`).

use std::sync::Arc;

use axum::Router;

use super::Api;

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
}
