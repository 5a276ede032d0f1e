//! REST endpoints: stats (spec/openapi.yaml, tag `stats`).

use std::sync::Arc;

use axum::Router;

use super::Api;

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
}
