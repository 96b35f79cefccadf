//! The kubelet's log endpoint for a real API server: `GET
//! /containerLogs/{namespace}/{pod}/{container}` with `follow`, `timestamps`,
//! `sinceTime` and `sinceSeconds`, over TLS (the API server checks the certificate
//! against its CA), answered from the kubelet's [`Logs`].

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::task::JoinHandle;

use crate::envtest::ApiServer;
use crate::logs::{LogQuery, Logs, key};

/// Serves the logs on a free port of 127.0.0.1; returns the port and the server task.
pub(crate) async fn serve(server: &ApiServer, logs: Arc<Logs>) -> (u16, JoinHandle<()>) {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(server.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("the serving certificate");
    let key = PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).expect("the serving key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("TLS config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the kubelet port");
    let port = listener.local_addr().expect("local addr").port();
    let router = Router::new()
        .route("/containerLogs/{ns}/{pod}/{container}", get(container_logs))
        .with_state(logs);
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let router = router.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, task)
}

async fn container_logs(
    State(logs): State<Arc<Logs>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let log_key = key(&ns, &pod, &container);
    if !logs.exists(&log_key) {
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
            ),
        )
            .into_response();
    }
    let query = match LogQuery::from_params(&params) {
        Ok(query) => query,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    let stream = logs.stream(log_key, query);
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/plain")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
