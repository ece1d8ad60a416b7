//! `/api/v1/api-keys`: creating, listing, changing and revoking API keys. A key is shown once,
//! in the answer that creates it; listings show its first characters as `short_key`.
//!
//! Every call needs `api_keys/manage`. A key can grant only what it holds itself, and can change
//! or revoke only keys whose grants it holds, so no key can raise its own reach. Keys from the
//! configuration file are listed but change only there.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::ips::IpRange;
use crate::auth::{Caller, KeyRecord};
use crate::error::ApiError;
use crate::state::AppState;
use crate::transmission::{check_len, parse_body};

/// The grant that every call here needs.
const MANAGE: &str = "api_keys/manage";
/// Longest label, in bytes.
const MAX_LABEL: usize = 1024;

/// Grants a key may hold: SparkPost's names, Sluice's own `queues/manage` and `admin/manage`,
/// and `*` for everything. SparkPost grants for features Sluice lacks are accepted, so keys can
/// be set up as they were on SparkPost.
pub const KNOWN_GRANTS: [&str; 32] = [
    "*",
    "ab-testing/manage",
    "account/manage",
    "account/view",
    "admin/manage",
    "api_keys/manage",
    "data_privacy/manage",
    "inbound_domains/manage",
    "ip_pools/manage",
    "message_events/view",
    "metrics/view",
    "queues/manage",
    "recipient_lists/manage",
    "relay_webhooks/modify",
    "relay_webhooks/view",
    "sending_domains/manage",
    "sending_domains/view",
    "smtp/inject",
    "subaccount/manage",
    "subaccount/view",
    "suppression_lists/manage",
    "templates/modify",
    "templates/preview",
    "templates/view",
    "tracking_domains/manage",
    "tracking_domains/view",
    "transmissions/modify",
    "transmissions/view",
    "users/manage",
    "users/self-manage",
    "webhooks/modify",
    "webhooks/view",
];

/// The body of a create or update; on update every field is optional and `null` is absent.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct KeyBody {
    label: Option<String>,
    grants: Option<Vec<String>>,
    valid_ips: Option<Vec<String>>,
}

/// `POST /api-keys`: a new key, shown in the answer and never again.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(MANAGE)?;
    state.store.check()?;
    let body: KeyBody = parse_body(&body)?;
    let label = body
        .label
        .filter(|l| !l.is_empty())
        .ok_or_else(|| ApiError::missing("label is required"))?;
    check_label(&label)?;
    let grants = body
        .grants
        .filter(|g| !g.is_empty())
        .ok_or_else(|| ApiError::missing("grants: at least one grant is required"))?;
    let grants = checked_grants(grants)?;
    caller.require_all(&grants)?;
    let valid_ips = checked_ips(body.valid_ips.unwrap_or_default())?;
    let (key, record) = state.keys.create(&label, grants, valid_ips)?;
    state.store.durable().await?;
    tracing::info!(key_id = %record.id, label = %record.label, "API key created");
    let mut results = shown(&record);
    results["key"] = key.into();
    Ok(Json(json!({ "results": results })))
}

/// `GET /api-keys`: every key without the key itself.
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(MANAGE)?;
    let results: Vec<Value> = state.keys.list()?.iter().map(shown).collect();
    Ok(Json(json!({ "results": results })))
}

/// `GET /api-keys/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(MANAGE)?;
    let record = load(&state, &id)?;
    Ok(Json(json!({ "results": shown(&record) })))
}

/// `PUT /api-keys/{id}`: changes the label, grants or `valid_ips`; fields not given stay.
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(MANAGE)?;
    state.store.check()?;
    let body: KeyBody = parse_body(&body)?;
    changeable(&caller, &load(&state, &id)?)?;
    let updated = state.keys.update(&id, |record| {
        caller.require_all(&record.grants)?;
        changed(&caller, record, &body)
    })?;
    let record = updated.ok_or_else(|| missing(&id))?;
    state.store.durable().await?;
    tracing::info!(key_id = %id, "API key updated");
    Ok(Json(json!({ "results": shown(&record) })))
}

/// `DELETE /api-keys/{id}`: revokes the key; the next request made with it is refused.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(MANAGE)?;
    state.store.check()?;
    changeable(&caller, &load(&state, &id)?)?;
    if !state.keys.remove(&id)? {
        return Err(missing(&id));
    }
    state.store.durable().await?;
    tracing::info!(key_id = %id, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// `record` with the body's fields laid over it, checked.
fn changed(caller: &Caller, mut record: KeyRecord, body: &KeyBody) -> Result<KeyRecord, ApiError> {
    if let Some(label) = body.label.clone().filter(|l| !l.is_empty()) {
        check_label(&label)?;
        record.label = label;
    }
    if let Some(grants) = body.grants.clone() {
        if grants.is_empty() {
            return Err(ApiError::missing("grants: at least one grant is required"));
        }
        let grants = checked_grants(grants)?;
        caller.require_all(&grants)?;
        record.grants = grants;
    }
    if let Some(ips) = body.valid_ips.clone() {
        record.valid_ips = checked_ips(ips)?;
    }
    Ok(record)
}

/// Refuses configured keys, and keys holding grants the caller lacks.
fn changeable(caller: &Caller, record: &KeyRecord) -> Result<(), ApiError> {
    if record.is_configured() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "key is read-only",
            "",
            format!(
                "key {} comes from the configuration file; change or remove it there",
                record.id
            ),
        ));
    }
    caller.require_all(&record.grants)
}

/// A label is shown in lists and logs: one line, within its length limit.
fn check_label(label: &str) -> Result<(), ApiError> {
    check_len("label", label.len(), MAX_LABEL)?;
    if label.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "label: contains a line break or another control character",
        ));
    }
    Ok(())
}

/// The grants as stored: each one known, each once, in the order given.
fn checked_grants(grants: Vec<String>) -> Result<Vec<String>, ApiError> {
    if let Some(unknown) = grants.iter().find(|g| !KNOWN_GRANTS.contains(&g.as_str())) {
        return Err(ApiError::invalid(format!(
            "grants: unknown grant {unknown:?}"
        )));
    }
    Ok(first_of_each(grants))
}

/// `items` with every repeat dropped, the first of each kept in place.
fn first_of_each(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    for item in items {
        if !kept.contains(&item) {
            kept.push(item);
        }
    }
    kept
}

/// `valid_ips` as stored: each entry checked and in its canonical form (trimmed, an
/// IPv4-mapped address as IPv4), duplicates dropped, the first kept in place.
fn checked_ips(ips: Vec<String>) -> Result<Vec<String>, ApiError> {
    let ranges = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            IpRange::parse(ip)
                .map(|range| range.to_string())
                .map_err(|e| ApiError::invalid(format!("valid_ips[{i}]: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(first_of_each(ranges))
}

fn load(state: &AppState, id: &str) -> Result<KeyRecord, ApiError> {
    state.keys.get(id)?.ok_or_else(|| missing(id))
}

fn missing(id: &str) -> ApiError {
    ApiError::not_found(format!("no API key with id {id:?}"))
}

/// A key as answered: everything but the key.
fn shown(record: &KeyRecord) -> Value {
    json!({
        "id": record.id,
        "label": record.label,
        "grants": record.grants,
        "valid_ips": record.valid_ips,
        "short_key": record.short_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grant_list_is_sorted_and_unknown_grants_are_named() {
        let mut sorted = KNOWN_GRANTS;
        sorted.sort_unstable();
        assert_eq!(sorted, KNOWN_GRANTS);
        let twice = vec!["templates/view".into(), "*".into(), "templates/view".into()];
        assert_eq!(
            checked_grants(twice).expect("known"),
            ["templates/view", "*"]
        );
        let error = checked_grants(vec!["templates/view".into(), "templates/edit".into()])
            .expect_err("unknown grant");
        assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = error.into_object();
        assert!(body["description"]
            .as_str()
            .is_some_and(|d| d.contains("templates/edit")));
    }

    #[test]
    fn a_label_is_one_line() {
        assert!(check_label("mailer, eu-west").is_ok());
        assert!(check_label("mailer\r\nfake log line").is_err());
    }

    #[test]
    fn bad_addresses_are_refused_naming_the_entry() {
        assert!(checked_ips(vec!["10.0.0.0/8".into(), "::1".into()]).is_ok());
        let error = checked_ips(vec!["10.0.0.0/8".into(), "1.2.3.4/".into()]).expect_err("bad");
        assert_eq!(
            error.into_object()["description"],
            "valid_ips[1]: \"1.2.3.4/\" has no prefix length after \"/\""
        );
    }

    #[test]
    fn addresses_are_stored_trimmed_unmapped_and_once() {
        let given = [
            " 10.0.0.1",
            "::ffff:10.0.0.1",
            "10.0.0.1/32",
            "2001:db8::1 ",
            "10.0.0.1",
            "10.9.8.7/8",
            "10.0.0.0/8",
            "2001:db8::1/32",
        ];
        let stored = checked_ips(given.map(String::from).to_vec()).expect("valid");
        assert_eq!(
            stored,
            ["10.0.0.1", "2001:db8::1", "10.0.0.0/8", "2001:db8::/32"]
        );
    }
}
