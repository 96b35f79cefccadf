//! The REST and WebSocket API, one module per resource.

pub mod evaluations;
pub mod runs;
pub mod stream;

use axum::Router;

use crate::AppState;

pub fn api_router() -> Router<AppState> {
    Router::new()
        .merge(evaluations::router())
        .merge(runs::router())
        .merge(stream::router())
}
