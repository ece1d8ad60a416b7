//! `/api/v1/webhooks`: registering event receivers, testing them, and reading how their
//! batches fared. Delivery itself belongs to `sluice-events`.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use sluice_core::clock::{iso8601_ms, now_ms, parse_rfc3339_ms};
use sluice_core::id::first_id_at;
use sluice_core::EventKind;
use sluice_events::{catalogue, oauth, sign, Webhook};

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
        active: true,
        auth_type: "none".into(),
        signing_secret: sign::new_secret(),
        ..Webhook::default()
    };
    apply(&mut webhook, body)?;
    fetch_token(&state, &mut webhook).await?;
    test_target(&state, &mut webhook).await?;
    state.webhooks.create(&webhook, state.log.newest())?;
    state.store.durable().await?;
    state.dispatcher.restart(&webhook.id);
    tracing::info!(webhook = %webhook.id, target = %webhook.target, "webhook created");
    let results = json!({"id": webhook.id, "links": links(&webhook.id), "signing_secret": webhook.signing_secret});
    Ok(Json(json!({ "results": results })).into_response())
}

/// `GET /webhooks`.
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require("webhooks/view")?;
    let webhooks: Vec<Value> = state.webhooks.list()?.iter().map(to_json).collect();
    Ok(Json(json!({ "results": webhooks })))
}

/// `GET /webhooks/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require("webhooks/view")?;
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
    let new_auth = body.auth_type.is_some() || body.auth_request_details.is_some();
    apply(&mut webhook, body)?;
    if new_auth {
        fetch_token(&state, &mut webhook).await?;
    }
    if new_target {
        test_target(&state, &mut webhook).await?;
    }
    if !state.webhooks.update(&webhook)? {
        return Err(missing(&id));
    }
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
        return Err(missing(&id));
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
    let mut webhook = find(&state, &id)?;
    let response = test_target(&state, &mut webhook).await?;
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
    caller.require("webhooks/view")?;
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

/// Body of `replay`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReplayBody {
    from: Option<String>,
}

/// `POST /webhooks/{id}/replay`: sends the log again from the first event at or after `from`.
pub async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("webhooks/modify")?;
    find(&state, &id)?;
    let body: ReplayBody = parse(&body)?;
    let from = body
        .from
        .ok_or_else(|| ApiError::missing("from is required"))?;
    let from_ms = parse_rfc3339_ms(&from)
        .ok_or_else(|| ApiError::invalid(format!("from: {from:?} is not an RFC 3339 time")))?;
    if from_ms > now_ms() {
        return Err(ApiError::invalid("from: must not be in the future"));
    }
    let cursor = first_id_at(from_ms).saturating_sub(1);
    state.dispatcher.replay(&id, cursor).await?;
    state.store.durable().await?;
    let message = format!("webhook {id} replays events from {from}");
    Ok(Json(json!({"results": {"message": message}})))
}

/// `GET /webhooks/events/documentation`: every event type and its fields, with sample values.
pub async fn documentation(caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require("webhooks/view")?;
    Ok(Json(json!({ "results": catalogue::documentation() })))
}

/// Query of `events/samples`.
#[derive(Debug, Default, Deserialize)]
pub struct SamplesQuery {
    events: Option<String>,
}

/// `GET /webhooks/events/samples?events=a,b`: one sample batch element per type asked for,
/// or per known type when none is named.
pub async fn samples(
    caller: Caller,
    Query(query): Query<SamplesQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require("webhooks/view")?;
    let names = query.events.unwrap_or_default();
    let mut kinds = Vec::new();
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let kind = EventKind::parse(name)
            .ok_or_else(|| ApiError::invalid(format!("events: unknown event type {name:?}")))?;
        kinds.push(kind);
    }
    if kinds.is_empty() {
        kinds = EventKind::ALL.to_vec();
    }
    Ok(Json(json!({ "results": catalogue::samples(&kinds) })))
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| ApiError::invalid(format!("{}: {}", e.path(), e.inner())))
}

fn find(state: &AppState, id: &str) -> Result<Webhook, ApiError> {
    state.webhooks.get(id)?.ok_or_else(|| missing(id))
}

fn missing(id: &str) -> ApiError {
    ApiError::not_found(format!("no webhook with id {id}"))
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
    check_auth(webhook)
}

/// Checks that the chosen `auth_type` has what it needs.
fn check_auth(webhook: &Webhook) -> Result<(), ApiError> {
    match webhook.auth_type.as_str() {
        "basic" => {
            let username = webhook
                .auth_credentials
                .as_ref()
                .and_then(|c| c.get("username"))
                .and_then(Value::as_str);
            if username.is_none() {
                return Err(ApiError::missing(
                    "auth_credentials.username is required for basic auth",
                ));
            }
        }
        "oauth2" => {
            oauth::request_details(webhook).map_err(|e| ApiError::invalid(e.to_string()))?;
        }
        _ => {}
    }
    Ok(())
}

/// For an oauth2 webhook, gets its first token; a token endpoint that refuses is the client's
/// problem to fix, so it is a 400 that names the endpoint's answer.
async fn fetch_token(state: &AppState, webhook: &mut Webhook) -> Result<(), ApiError> {
    if !oauth::in_use(webhook) {
        return Ok(());
    }
    state.dispatcher.fetch_token(webhook).await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "OAuth2 token request failed",
            "",
            e.to_string(),
        )
    })
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

/// Sends the test batch `[{"msys":{}}]` and returns what the target answered; anything but a
/// 2xx is a 400 carrying the answer.
async fn test_target(state: &AppState, webhook: &mut Webhook) -> Result<Value, ApiError> {
    let outcome = state
        .dispatcher
        .post(
            webhook,
            &uuid::Uuid::new_v4().to_string(),
            &json!([{"msys": {}}]),
        )
        .await;
    let response =
        json!({"status": outcome.status, "headers": outcome.headers, "body": outcome.body});
    if outcome.accepted() {
        return Ok(response);
    }
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
        "signing_secret": webhook.signing_secret,
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
