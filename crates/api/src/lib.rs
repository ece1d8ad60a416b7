//! The HTTP API: SparkPost's public REST API (transmissions, templates, webhooks, events
//! search) served with axum, and the generation of each recipient's message from the request.

pub mod admin;
pub mod api_keys;
pub mod auth;
pub mod dkim;
pub mod domains;
pub mod error;
pub mod events;
pub mod generation;
pub mod queues;
pub mod snippets;
pub mod state;
pub mod templates;
pub mod transmission;
pub mod webhooks;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;

pub use auth::Keys;
pub use error::ApiError;
pub use state::AppState;

/// Every route under `/api/v1`. A trailing slash is ignored by the caller's path normalisation.
pub fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    let api = Router::new()
        .route(
            "/transmissions",
            post(transmission::create)
                .get(transmission::record::list)
                .delete(queues::cancel_campaign),
        )
        .route(
            "/transmissions/{id}",
            get(transmission::record::get).delete(queues::cancel_transmission),
        )
        .route("/sending-domains", post(domains::create).get(domains::list))
        .route(
            "/sending-domains/{domain}",
            get(domains::get).delete(domains::delete),
        )
        .route("/templates", post(templates::create).get(templates::list))
        .route(
            "/templates/{id}",
            get(templates::get)
                .put(templates::update)
                .delete(templates::delete),
        )
        .route("/templates/{id}/preview", post(templates::preview))
        .route(
            "/utils/content-previewer",
            post(templates::content_previewer),
        )
        .route("/snippets", post(snippets::create).get(snippets::list))
        .route(
            "/snippets/{id}",
            get(snippets::get)
                .put(snippets::update)
                .delete(snippets::delete),
        )
        .route("/api-keys", post(api_keys::create).get(api_keys::list))
        .route(
            "/api-keys/{id}",
            get(api_keys::get)
                .put(api_keys::update)
                .delete(api_keys::delete),
        )
        .route("/queues", get(queues::summary))
        .route("/queues/suspend", post(queues::suspend))
        .route("/queues/resume", post(queues::resume))
        .route("/queues/retry", post(queues::retry))
        .route("/queues/cancel", post(queues::cancel))
        .route("/messages/{id}", get(queues::message))
        .route("/events/message", get(events::message_events))
        .route("/webhooks", post(webhooks::create).get(webhooks::list))
        .route(
            "/webhooks/events/documentation",
            get(webhooks::documentation),
        )
        .route("/webhooks/events/samples", get(webhooks::samples))
        .route(
            "/webhooks/{id}",
            get(webhooks::get)
                .put(webhooks::update)
                .delete(webhooks::delete),
        )
        .route("/webhooks/{id}/validate", post(webhooks::validate))
        .route("/webhooks/{id}/batch-status", get(webhooks::batch_status))
        .route("/webhooks/{id}/replay", post(webhooks::replay))
        .route("/admin/reload", post(admin::reload));
    Router::new()
        .nest("/api/v1", api)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::map_response(error::sparkpost_shape))
        .with_state(state)
}

/// SparkPost resources Sluice does not provide yet. A request for one is 501, never 404: for
/// `/suppression-list/{recipient}`, say, SparkPost's 404 means "not suppressed", and a client
/// must not read that into an endpoint that is not there.
const NOT_PROVIDED: [&str; 13] = [
    "ab-test",
    "account",
    "bounce-domains",
    "inbound-domains",
    "ip-pools",
    "metrics",
    "recipient-lists",
    "relay-webhooks",
    "sending-ips",
    "subaccounts",
    "suppression-list",
    "tracking-domains",
    "events/ingest",
];

async fn not_found(uri: axum::http::Uri) -> ApiError {
    let resource = uri.path().strip_prefix("/api/v1/").and_then(|rest| {
        NOT_PROVIDED
            .iter()
            .find(|r| rest == **r || rest.strip_prefix(**r).is_some_and(|t| t.starts_with('/')))
    });
    match resource {
        Some(resource) => ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not implemented",
            "",
            format!("/api/v1/{resource} is a SparkPost endpoint that Sluice does not provide"),
        ),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "resource not found",
            "1600",
            "no such endpoint",
        ),
    }
}
