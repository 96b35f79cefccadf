//! The OpenAPI 3.1 document, generated from the handlers' annotations. It is also kept
//! in the repository (`crates/gateway/openapi.json`); a test fails when they differ.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    audit, evaluation_runs, evaluations, login, me, runs, stream, system, team, tokens,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Airlock API",
        description = "Submit evaluations of AI models and agents, run each task in an isolated sandbox, and read their events and scores.",
    ),
    paths(
        evaluations::submit,
        evaluations::list,
        evaluations::read,
        evaluations::cancel,
        evaluation_runs::list,
        evaluation_runs::score_histogram,
        runs::read,
        runs::events,
        stream::stream,
        stream::team_stream,
        me::me,
        system::system,
        login::config,
        login::logout,
        tokens::list,
        tokens::create,
        tokens::revoke,
        tokens::list_for_service_account,
        tokens::create_for_service_account,
        team::members,
        team::change_role,
        team::service_accounts,
        team::create_service_account,
        audit::list,
    ),
    components(schemas(
        stream::StreamIn,
        evaluations::SortOrder,
        airlock_core::spec::FieldError
    )),
    modifiers(&BearerAuth, &Operations),
    tags(
        (name = "evaluations", description = "Evaluations and their live stream"),
        (name = "runs", description = "Runs and their events"),
        (name = "identity", description = "Who the caller is, and signing in and out"),
        (name = "tokens", description = "API tokens for scripts and CI"),
        (name = "team", description = "Team administration: members, service accounts, the audit log"),
        (name = "system", description = "Capacity and load"),
        (name = "operations", description = "Health, readiness and metrics, on every service"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // The browser session; state-changing requests also need `X-CSRF-Token`.
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(
                utoipa::openapi::security::ApiKeyValue::new("__Host-airlock_session"),
            )),
        );
    }
}

/// The operations endpoints every service serves, and this document itself.
struct Operations;

impl Modify for Operations {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
        use utoipa::openapi::{ContentBuilder, ResponseBuilder};
        let endpoints = [
            (
                "/healthz",
                "Liveness: the process answers",
                "application/json",
                "200",
                "alive",
            ),
            (
                "/readyz",
                "Readiness: PostgreSQL and RabbitMQ are reachable (503 with the failing checks otherwise)",
                "application/json",
                "200",
                "ready",
            ),
            (
                "/metrics",
                "Prometheus metrics in text format",
                "text/plain",
                "200",
                "metrics",
            ),
            (
                "/api/v1/openapi.json",
                "This OpenAPI document",
                "application/json",
                "200",
                "the document",
            ),
        ];
        for (path, summary, content_type, status, description) in endpoints {
            let mut response = ResponseBuilder::new()
                .description(description)
                .content(content_type, ContentBuilder::new().build());
            if path == "/readyz" {
                response = response.description("ready; 503 when a dependency is down");
            }
            let operation = OperationBuilder::new()
                .summary(Some(summary))
                .tag("operations")
                .response(status, response.build())
                .build();
            openapi
                .paths
                .paths
                .insert(path.to_owned(), PathItem::new(HttpMethod::Get, operation));
        }
    }
}

/// The document as pretty JSON, as committed.
pub fn document() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.to_pretty_json().unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_document_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
        let generated = super::document();
        if std::env::var_os("AIRLOCK_UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &generated).expect("write openapi.json");
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "crates/gateway/openapi.json is out of date: run `AIRLOCK_UPDATE_OPENAPI=1 cargo test -p airlock-gateway openapi` and commit it"
        );
    }
}
