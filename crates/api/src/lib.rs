//! The HTTP API: SparkPost's public REST API (transmissions, webhooks) served with axum, and
//! the generation of each recipient's message from the request.

pub mod admin;
pub mod auth;
pub mod error;
pub mod state;
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
        .route("/transmissions", post(transmission::create))
        .route("/webhooks", post(webhooks::create).get(webhooks::list))
        .route(
            "/webhooks/{id}",
            get(webhooks::get)
                .put(webhooks::update)
                .delete(webhooks::delete),
        )
        .route("/webhooks/{id}/validate", post(webhooks::validate))
        .route("/webhooks/{id}/batch-status", get(webhooks::batch_status))
        .route("/admin/reload", post(admin::reload));
    Router::new()
        .nest("/api/v1", api)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::map_response(error::sparkpost_shape))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "resource not found",
        "1600",
        "no such endpoint",
    )
}
