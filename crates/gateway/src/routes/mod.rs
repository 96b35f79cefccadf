//! The REST and WebSocket API, one module per resource.

pub mod audit;
pub mod evaluation_runs;
pub mod evaluations;
pub mod login;
pub mod me;
pub mod runs;
pub mod stream;
pub mod system;
pub mod team;
pub mod tokens;

use axum::Router;

use crate::AppState;

pub fn api_router() -> Router<AppState> {
    Router::new()
        .merge(evaluations::router())
        .merge(evaluation_runs::router())
        .merge(runs::router())
        .merge(stream::router())
        .merge(me::router())
        .merge(system::router())
        .merge(login::router())
        .merge(tokens::router())
        .merge(team::router())
        .merge(audit::router())
}
