//! `/api/v1/snippets`: reusable pieces of content that `render_snippet` pulls into templates,
//! transmissions and previews. Reading needs `templates/view`, writing `templates/modify`.

pub mod store;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use sluice_core::clock::{iso8601_ms, now_ms};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::templates::write::checked_id;
use crate::transmission::{check_len, parse_body};
pub use store::SnippetStore;
use store::{SnippetContent, SnippetStoreError, StoredSnippet};

/// Longest variant, in bytes.
const MAX_VARIANT: usize = 100 * 1024;
/// Longest name, in bytes.
const MAX_NAME: usize = 1024;

impl From<SnippetStoreError> for ApiError {
    fn from(error: SnippetStoreError) -> ApiError {
        match error {
            SnippetStoreError::Exists(id) => {
                ApiError::conflict(format!("a snippet with id {id:?} already exists"))
            }
            SnippetStoreError::Store(error) => ApiError::from(error),
        }
    }
}

/// The body of a create or update; `null` is absent.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SnippetBody {
    id: Option<String>,
    name: Option<String>,
    content: Option<SnippetContent>,
    shared_with_subaccounts: Option<bool>,
}

/// `?shared_with_subaccounts=` on the listing.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    shared_with_subaccounts: Option<bool>,
}

/// `POST /snippets`.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("templates/modify")?;
    state.store.check()?;
    let body: SnippetBody = parse_body(&body)?;
    let id = body
        .id
        .clone()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ApiError::missing("id is required"))?;
    let id = checked_id(id)?;
    let content = body
        .content
        .clone()
        .ok_or_else(|| ApiError::missing("content is required"))?;
    let snippet = StoredSnippet {
        name: id.clone(),
        id,
        content: SnippetContent::default(),
        ..StoredSnippet::default()
    };
    let snippet = changed(snippet, &body, Some(content))?;
    state.snippets.create(&snippet)?;
    state.store.durable().await?;
    tracing::info!(snippet_id = %snippet.id, "snippet created");
    Ok(Json(json!({ "results": { "id": snippet.id } })))
}

/// `GET /snippets/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require("templates/view")?;
    let snippet = load(&state, &id)?;
    let mut results = summary(&snippet);
    results["content"] = json!(snippet.content);
    Ok(Json(json!({ "results": results })))
}

/// `GET /snippets[?shared_with_subaccounts=]`: summaries without content.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require("templates/view")?;
    let wanted = |s: &&StoredSnippet| {
        query
            .shared_with_subaccounts
            .is_none_or(|shared| s.shared_with_subaccounts == shared)
    };
    let snippets = state.snippets.list()?;
    let results: Vec<Value> = snippets.iter().filter(wanted).map(summary).collect();
    Ok(Json(json!({ "results": results })))
}

/// `PUT /snippets/{id}`: each content field given replaces the stored one, and an empty string
/// removes it; fields not given stay.
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("templates/modify")?;
    state.store.check()?;
    let body: SnippetBody = parse_body(&body)?;
    let current = load(&state, &id)?;
    let content = body.content.clone().map(|given| merged(&current, given));
    let snippet = changed(current, &body, content)?;
    if !state.snippets.replace(&snippet)? {
        return Err(missing(&id));
    }
    state.store.durable().await?;
    tracing::info!(snippet_id = %id, "snippet updated");
    Ok(Json(json!({ "results": { "id": id } })))
}

/// `DELETE /snippets/{id}`: 204. Content that names it fails to generate from then on.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require("templates/modify")?;
    state.store.check()?;
    if !state.snippets.delete(&id)? {
        return Err(missing(&id));
    }
    state.store.durable().await?;
    tracing::info!(snippet_id = %id, "snippet deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The stored content with the given fields laid over it; an empty string removes a field.
fn merged(current: &StoredSnippet, given: SnippetContent) -> SnippetContent {
    let pick = |given: Option<String>, stored: &Option<String>| match given {
        Some(text) if text.is_empty() => None,
        Some(text) => Some(text),
        None => stored.clone(),
    };
    SnippetContent {
        html: pick(given.html, &current.content.html),
        text: pick(given.text, &current.content.text),
        amp_html: pick(given.amp_html, &current.content.amp_html),
    }
}

/// `snippet` with the body's name, sharing and `content` applied, checked.
fn changed(
    mut snippet: StoredSnippet,
    body: &SnippetBody,
    content: Option<SnippetContent>,
) -> Result<StoredSnippet, ApiError> {
    if let Some(name) = body.name.clone().filter(|n| !n.is_empty()) {
        check_len("name", name.len(), MAX_NAME)?;
        snippet.name = name;
    }
    if let Some(shared) = body.shared_with_subaccounts {
        snippet.shared_with_subaccounts = shared;
    }
    if let Some(content) = content {
        check_content(&content)?;
        snippet.content = content;
    }
    snippet.updated_ms = now_ms();
    Ok(snippet)
}

/// At least one variant, none over the size limit, each compiling and none pulling in other
/// content.
fn check_content(content: &SnippetContent) -> Result<(), ApiError> {
    let variants = [
        ("content.html", &content.html),
        ("content.text", &content.text),
        ("content.amp_html", &content.amp_html),
    ];
    if variants
        .iter()
        .all(|(_, v)| v.as_deref().is_none_or(str::is_empty))
    {
        return Err(ApiError::missing(
            "content: at least one of html, text or amp_html is required",
        ));
    }
    for (field, variant) in variants {
        check_len(field, variant.as_ref().map_or(0, String::len), MAX_VARIANT)?;
    }
    match store::check(content) {
        Ok(None) => Ok(()),
        Ok(Some(part)) => Err(ApiError::invalid(format!(
            "content.{part}: a snippet cannot call render_snippet or render_dynamic_content"
        ))),
        Err(e) => Err(ApiError::template_syntax(
            e.part,
            e.error.line,
            e.error.message,
        )),
    }
}

fn load(state: &AppState, id: &str) -> Result<StoredSnippet, ApiError> {
    state.snippets.get(id)?.ok_or_else(|| missing(id))
}

fn missing(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "Snippet does not exist",
        "1600",
        format!("no snippet with id {id:?}"),
    )
}

/// The fields every listing shows.
fn summary(snippet: &StoredSnippet) -> Value {
    json!({
        "id": snippet.id,
        "name": snippet.name,
        "shared_with_subaccounts": snippet.shared_with_subaccounts,
        "last_update_time": iso8601_ms(snippet.updated_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(html: Option<&str>, text: Option<&str>) -> StoredSnippet {
        StoredSnippet {
            id: "s".into(),
            content: SnippetContent {
                html: html.map(String::from),
                text: text.map(String::from),
                amp_html: None,
            },
            ..StoredSnippet::default()
        }
    }

    #[test]
    fn updates_replace_given_fields_and_empty_strings_remove_them() {
        let current = stored(Some("<b>old</b>"), Some("old"));
        let given: SnippetContent =
            serde_json::from_value(json!({"html": "", "amp_html": "<b>amp</b>"})).expect("body");
        let content = merged(&current, given);
        assert_eq!(content.html, None);
        assert_eq!(content.text.as_deref(), Some("old"));
        assert_eq!(content.amp_html.as_deref(), Some("<b>amp</b>"));
    }

    #[test]
    fn content_checks_name_what_is_wrong() {
        let empty = check_content(&SnippetContent::default()).expect_err("empty");
        assert_eq!(empty.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let broken = stored(Some("a\nb\n{{ if }}"), None).content;
        let error = check_content(&broken).expect_err("syntax").into_object();
        assert_eq!(error["code"], "3000");
        assert_eq!(error["part"], "html");
        assert_eq!(error["line"], 3);
        let huge = stored(None, Some(&"x".repeat(MAX_VARIANT + 1))).content;
        assert!(check_content(&huge).is_err());
    }
}
