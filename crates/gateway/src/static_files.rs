//! The web UI: files from the static directory, with `index.html` for any other path
//! so deep links work (single-page-app fallback). Responses must be revalidated unless
//! a layer closer to the files says otherwise.

use axum::http::{HeaderValue, header};
use std::path::Path;
use tower::Layer;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::{SetResponseHeader, SetResponseHeaderLayer};

pub fn service(dir: &Path) -> SetResponseHeader<ServeDir<ServeFile>, HeaderValue> {
    let index = dir.join("index.html");
    let files = ServeDir::new(dir).fallback(ServeFile::new(index));
    SetResponseHeaderLayer::if_not_present(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    )
    .layer(files)
}
