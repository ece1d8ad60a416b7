//! What `GET /transmissions/{id}` and `GET /transmissions` report: a summary of each accepted
//! transmission, kept in the spool's `transmissions` tree. SparkPost calls these endpoints
//! deprecated, but its clients still call them.
//!
//! Sluice renders every message at acceptance, so a transmission is `Success` as soon as it is
//! accepted, scheduled sends included; cancelling one makes it `Canceled`.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use sluice_core::clock::{iso8601_ms, now_ms};
use sluice_core::StoreError;

use super::Transmission;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// The stored summary of one transmission, in the shape the API returns.
pub(super) fn summary(t: &Transmission, accepted: usize, failed_generation: usize) -> Value {
    let now = iso8601_ms(now_ms());
    let template_id = t.template.as_ref().map_or("inline", |(id, _)| id.as_str());
    json!({
        "id": t.id,
        "description": t.description,
        "state": "Success",
        "campaign_id": t.campaign_id,
        "content": {"template_id": template_id, "use_draft_template": t.use_draft},
        "num_rcpts": accepted + failed_generation,
        "num_generated": accepted,
        "num_failed_gen": failed_generation,
        "rcpt_list_chunk_size": accepted + failed_generation,
        "rcpt_list_total_chunks": 1,
        "generation_start_time": now,
        "generation_end_time": now,
        "substitution_data": t.substitution_data,
        "metadata": t.metadata,
        "options": t.options,
    })
}

/// Writes a summary; it reaches disk with the transmission's messages.
pub(super) fn store(state: &AppState, summary: &Value) -> Result<(), StoreError> {
    let id = summary["id"].as_str().unwrap_or_default();
    let tree = state.store.tree("transmissions")?;
    tree.insert(
        id.as_bytes(),
        serde_json::to_vec(summary).unwrap_or_default(),
    )?;
    Ok(())
}

/// Marks a transmission `Canceled`.
pub fn mark_canceled(state: &AppState, id: &str) -> Result<(), StoreError> {
    let tree = state.store.tree("transmissions")?;
    if let Some(mut summary) = tree
        .get(id)?
        .and_then(|v| serde_json::from_slice::<Value>(&v).ok())
    {
        summary["state"] = "Canceled".into();
        tree.insert(
            id.as_bytes(),
            serde_json::to_vec(&summary).unwrap_or_default(),
        )?;
    }
    Ok(())
}

/// `GET /transmissions/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require("transmissions/view")?;
    let tree = state.store.tree("transmissions")?;
    let summary = tree
        .get(id.as_bytes())?
        .and_then(|v| serde_json::from_slice::<Value>(&v).ok())
        .ok_or_else(|| ApiError::not_found(format!("no transmission with id {id}")))?;
    Ok(Json(json!({"results": {"transmission": summary}})))
}

/// Filters of `GET /transmissions`.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    campaign_id: Option<String>,
    template_id: Option<String>,
}

/// `GET /transmissions?campaign_id=&template_id=`: newest first, at most 1,000.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require("transmissions/view")?;
    let tree = state.store.tree("transmissions")?;
    let wanted = |summary: &Value| {
        query
            .campaign_id
            .as_deref()
            .is_none_or(|c| summary["campaign_id"] == c)
            && query
                .template_id
                .as_deref()
                .is_none_or(|t| summary["content"]["template_id"] == t)
    };
    let mut results = Vec::new();
    for entry in tree.iter().rev() {
        let (_, value) = entry?;
        let Ok(summary) = serde_json::from_slice::<Value>(&value) else {
            continue;
        };
        if wanted(&summary) {
            results.push(json!({
                "id": summary["id"],
                "state": summary["state"],
                "campaign_id": summary["campaign_id"],
                "description": summary["description"],
                "content": {"template_id": summary["content"]["template_id"]},
            }));
        }
        if results.len() >= 1000 {
            break;
        }
    }
    Ok(Json(json!({ "results": results })))
}
