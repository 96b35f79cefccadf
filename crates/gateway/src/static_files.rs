//! The web UI: files from the static directory, with `index.html` for any other path
//! so deep links work (single-page-app fallback). Files under `/assets/` carry content
//! hashes in their names: they are cached for a year, and a missing one is a 404 (never
//! index.html, which would then be cached as a script). Everything else, index.html
//! above all, is revalidated on every load so a new release shows at once.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use std::path::Path;
use tower_http::services::{ServeDir, ServeFile};

const ASSETS: &str = "/assets";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

pub fn router(dir: &Path) -> Router {
    let index = dir.join("index.html");
    Router::new()
        .nest_service(ASSETS, ServeDir::new(dir.join("assets")))
        .fallback_service(ServeDir::new(dir).fallback(ServeFile::new(index)))
        .layer(middleware::from_fn(cache_policy))
}

async fn cache_policy(request: Request, next: Next) -> Response {
    let hashed = request.uri().path().starts_with("/assets/");
    let mut response = next.run(request).await;
    let policy = if hashed && response.status().is_success() {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    response
}
