//! REST endpoints: relations (spec/openapi.yaml, tag `relations`).

use std::sync::Arc;

use axum::Router;

use super::Api;

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
}
