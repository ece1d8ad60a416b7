//! `/api/v1/webhooks`: registering event receivers, testing them, and reading how their
//! batches fared. Delivery itself belongs to `sluice-events`.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use sluice_core::clock::{iso8601_ms, now_ms};
use sluice_core::EventKind;
use sluice_events::Webhook;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// The writable fields of a webhook; `null` means "not given".
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WebhookBody {
    name: Option<String>,
    target: Option<String>,
    events: Option<Vec<String>>,
    active: Option<bool>,
    auth_type: Option<String>,
    auth_credentials: Option<Value>,
    auth_request_details: Option<Value>,
    auth_token: Option<String>,
    custom_headers: Option<BTreeMap<String, String>>,
}

/// `POST /webhooks`: tests the target with a batch, then registers the webhook. Events flow
/// from this moment on.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    caller.require("webhooks/modify")?;
    let body: WebhookBody = parse(&body)?;
    let name = body
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::missing("name is required"))?;
    let target = body
        .target
        .clone()
        .ok_or_else(|| ApiError::missing("target is required"))?;
    let mut webhook = Webhook {
        id: uuid::Uuid::new_v4().to_string(),
        name,
        target,
        events: Vec::new(),
        active: true,
        auth_type: "none".into(),
        auth_credentials: None,
        auth_request_details: None,
        auth_token: None,
        custom_headers: BTreeMap::new(),
        last_successful_ms: None,
        last_failure_ms: None,
    };
    apply(&mut webhook, body)?;
    test_target(&state, &webhook).await?;
    state.webhooks.create(&webhook, state.log.newest())?;
    state.store.durable().await?;
    state.dispatcher.restart(&webhook.id);
    tracing::info!(webhook = %webhook.id, target = %webhook.target, "webhook created");
    Ok(Json(json!({"results": {"id": webhook.id, "links": links(&webhook.id)}})).into_response())
}

/// `GET /webhooks`.
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller
        .require("webhooks/view")
        .or_else(|_| caller.require("webhooks/modify"))?;
    let webhooks: Vec<Value> = state.webhooks.list()?.iter().map(to_json).collect();
    Ok(Json(json!({ "results": webhooks })))
}

/// `GET /webhooks/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller
        .require("webhooks/view")
        .or_else(|_| caller.require("webhooks/modify"))?;
    let webhook = find(&state, &id)?;
    Ok(Json(json!({ "results": to_json(&webhook) })))
}

/// `PUT /webhooks/{id}`: a partial update; a new target is tested first.
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("webhooks/modify")?;
    let mut webhook = find(&state, &id)?;
    let body: WebhookBody = parse(&body)?;
    let new_target = body.target.as_ref().is_some_and(|t| *t != webhook.target);
    apply(&mut webhook, body)?;
    if new_target {
        test_target(&state, &webhook).await?;
    }
    state.webhooks.put(&webhook)?;
    state.store.durable().await?;
    state.dispatcher.restart(&id);
    Ok(Json(json!({"results": {"id": id, "links": links(&id)}})))
}

/// `DELETE /webhooks/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require("webhooks/modify")?;
    if !state.webhooks.delete(&id)? {
        return Err(ApiError::not_found(format!("no webhook with id {id}")));
    }
    state.store.durable().await?;
    state.dispatcher.restart(&id);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /webhooks/{id}/validate`: sends `[{"msys":{}}]` and reports the answer.
pub async fn validate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require("webhooks/modify")?;
    let webhook = find(&state, &id)?;
    let outcome = state
        .dispatcher
        .post(
            &webhook,
            &uuid::Uuid::new_v4().to_string(),
            &json!([{"msys": {}}]),
        )
        .await;
    let response =
        json!({"status": outcome.status, "headers": outcome.headers, "body": outcome.body});
    if !outcome.accepted() {
        let error = ApiError::new(
            StatusCode::BAD_REQUEST,
            "Test POST to endpoint failed",
            "",
            failure_text(&outcome),
        );
        return Err(error.with("response", response));
    }
    Ok(Json(
        json!({"results": {"msg": "Test POST to endpoint succeeded", "response": response}}),
    ))
}

/// Query of `batch-status`.
#[derive(Debug, Default, Deserialize)]
pub struct BatchStatusQuery {
    limit: Option<usize>,
}

/// `GET /webhooks/{id}/batch-status`: failed and retried batches of the last 24 hours.
pub async fn batch_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<BatchStatusQuery>,
) -> Result<Json<Value>, ApiError> {
    caller
        .require("webhooks/view")
        .or_else(|_| caller.require("webhooks/modify"))?;
    find(&state, &id)?;
    let since = now_ms().saturating_sub(24 * 3600 * 1000);
    let statuses = state
        .webhooks
        .statuses(&id, since, query.limit.unwrap_or(1000).min(10_000))?;
    let results: Vec<Value> = statuses
        .iter()
        .map(|s| {
            let mut entry = json!({
                "batch_id": s.batch_id,
                "ts": iso8601_ms(s.ts_ms),
                "attempts": s.attempts,
                "response_code": s.response_code.to_string(),
                "latency": s.latency_ms,
            });
            if let Some(code) = &s.failure_code {
                entry["failure_code"] = code.clone().into();
            }
            entry
        })
        .collect();
    Ok(Json(json!({ "results": results })))
}

fn parse(body: &[u8]) -> Result<WebhookBody, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| ApiError::invalid(format!("{}: {}", e.path(), e.inner())))
}

fn find(state: &AppState, id: &str) -> Result<Webhook, ApiError> {
    state
        .webhooks
        .get(id)?
        .ok_or_else(|| ApiError::not_found(format!("no webhook with id {id}")))
}

/// Copies the given fields onto `webhook`, checking each.
fn apply(webhook: &mut Webhook, body: WebhookBody) -> Result<(), ApiError> {
    if let Some(name) = body.name {
        webhook.name = name;
    }
    if let Some(target) = body.target {
        check_target(&target)?;
        webhook.target = target;
    }
    if let Some(events) = body.events {
        webhook.events = events
            .iter()
            .map(|e| {
                EventKind::parse(e)
                    .ok_or_else(|| ApiError::invalid(format!("events: unknown event type {e:?}")))
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(active) = body.active {
        webhook.active = active;
    }
    if let Some(auth_type) = body.auth_type {
        if !matches!(auth_type.as_str(), "none" | "basic" | "oauth2") {
            return Err(ApiError::invalid("auth_type must be none, basic or oauth2"));
        }
        webhook.auth_type = auth_type;
    }
    if body.auth_credentials.is_some() {
        webhook.auth_credentials = body.auth_credentials;
    }
    if body.auth_request_details.is_some() {
        webhook.auth_request_details = body.auth_request_details;
    }
    if body.auth_token.is_some() {
        webhook.auth_token = body.auth_token;
    }
    if let Some(headers) = body.custom_headers {
        webhook.custom_headers = headers;
    }
    Ok(())
}

fn check_target(target: &str) -> Result<(), ApiError> {
    let rest = target
        .strip_prefix("https://")
        .or_else(|| target.strip_prefix("http://"));
    let valid = rest
        .is_some_and(|r| !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace));
    if !valid {
        return Err(ApiError::invalid(format!(
            "target: {target:?} is not an http or https URL"
        )));
    }
    Ok(())
}

/// Sends the creation test batch; anything but a 2xx refuses the webhook.
async fn test_target(state: &AppState, webhook: &Webhook) -> Result<(), ApiError> {
    let outcome = state
        .dispatcher
        .post(
            webhook,
            &uuid::Uuid::new_v4().to_string(),
            &json!([{"msys": {}}]),
        )
        .await;
    if outcome.accepted() {
        return Ok(());
    }
    let response =
        json!({"status": outcome.status, "headers": outcome.headers, "body": outcome.body});
    let error = ApiError::new(
        StatusCode::BAD_REQUEST,
        "Test POST to endpoint failed",
        "",
        failure_text(&outcome),
    );
    Err(error.with("response", response))
}

fn failure_text(outcome: &sluice_events::dispatch::PostOutcome) -> String {
    match &outcome.failure {
        Some(failure) => format!("the target could not be reached: {failure}"),
        None => format!("the target answered HTTP {}", outcome.status),
    }
}

fn links(id: &str) -> Value {
    json!([{"href": format!("/api/v1/webhooks/{id}"), "rel": "urn.msys.webhooks.webhook", "method": ["GET", "PUT"]}])
}

fn to_json(webhook: &Webhook) -> Value {
    let mut out = json!({
        "id": webhook.id,
        "name": webhook.name,
        "target": webhook.target,
        "events": webhook.events.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
        "active": webhook.active,
        "auth_type": webhook.auth_type,
        "custom_headers": webhook.custom_headers,
        "links": links(&webhook.id),
    });
    if let Some(credentials) = &webhook.auth_credentials {
        out["auth_credentials"] = credentials.clone();
    }
    if let Some(ms) = webhook.last_successful_ms {
        out["last_successful"] = iso8601_ms(ms).into();
    }
    if let Some(ms) = webhook.last_failure_ms {
        out["last_failure"] = iso8601_ms(ms).into();
    }
    out
}
