//! `/api/v1/templates` and `/api/v1/utils/content-previewer`: stored templates with a draft and
//! a published version, their previews, and the content previewer. Transmissions that name a
//! template get its content through [`render::for_transmission`].

pub mod render;
pub mod store;
pub mod write;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sluice_core::clock::{iso8601_ms, now_ms};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::transmission::request::{Content, Options};
use crate::transmission::{compile_content, parse_body};
pub use store::TemplateStore;
use store::{StoredTemplate, TemplateStoreError, Version};
use write::TemplateBody;

/// Longest template id, in bytes.
pub const MAX_ID: usize = 64;

impl From<TemplateStoreError> for ApiError {
    fn from(error: TemplateStoreError) -> ApiError {
        match error {
            TemplateStoreError::Exists(id) => {
                ApiError::conflict(format!("a template with id {id:?} already exists"))
            }
            TemplateStoreError::Missing(id) => {
                ApiError::not_found(format!("no template with id {id:?}"))
            }
            TemplateStoreError::Store(error) => ApiError::from(error),
        }
    }
}

/// `?draft=` on reads and previews.
#[derive(Debug, Default, Deserialize)]
pub struct DraftQuery {
    draft: Option<bool>,
}

/// `?draft=&shared_with_subaccounts=` on lists.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    draft: Option<bool>,
    shared_with_subaccounts: Option<bool>,
}

/// `?update_published=` on updates.
#[derive(Debug, Default, Deserialize)]
pub struct UpdateQuery {
    update_published: Option<bool>,
}

/// `POST /templates`: stores a new template, as a draft unless `published` is true.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("templates/modify")?;
    state.store.check()?;
    let body: TemplateBody = parse_body(&body)?;
    let mut template = write::new_template(&body, now_ms())?;
    let derived = body.id.as_deref().is_none_or(str::is_empty);
    create_unique(&state, &mut template, derived)?;
    state.store.durable().await?;
    tracing::info!(template_id = %template.id, "template created");
    Ok(Json(json!({ "results": { "id": template.id } })))
}

/// Stores a new template. An id derived from the name is made unique with a number, as names
/// need not be (`summer-sale`, `summer-sale-2`, ...); an id the caller gave is 409 when taken.
fn create_unique(
    state: &AppState,
    template: &mut StoredTemplate,
    derived: bool,
) -> Result<(), ApiError> {
    let base = template.id.clone();
    for n in 2.. {
        match state.templates.create(template) {
            Err(TemplateStoreError::Exists(_)) if derived && n <= MAX_DERIVED => {
                let suffix = format!("-{n}");
                let keep = base.len().min(MAX_ID - suffix.len());
                template.id = format!("{}{suffix}", &base[..keep]);
            }
            result => return result.map_err(ApiError::from),
        }
    }
    Ok(())
}

/// How many templates may share a name before creating another needs an id.
const MAX_DERIVED: u32 = 1000;

/// `GET /templates/{id}?draft=`: one version with the template's fields.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<DraftQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require("templates/view")?;
    let template = load(&state, &id)?;
    let version = chosen(&template, query.draft)?;
    let mut results = summary(&template, version);
    results["options"] = json!(version.options);
    results["content"] = json!(version.content);
    Ok(Json(json!({ "results": results })))
}

/// `PUT /templates/{id}[?update_published=true]`: changes the draft, publishes it, or
/// overwrites the published version.
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<UpdateQuery>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("templates/modify")?;
    state.store.check()?;
    let body: TemplateBody = parse_body(&body)?;
    let overwrite = query.update_published.unwrap_or(false);
    let now = now_ms();
    state
        .templates
        .update(&id, |t| write::apply_update(t, &body, overwrite, now))?;
    state.store.durable().await?;
    tracing::info!(template_id = %id, "template updated");
    Ok(Json(json!({ "results": {} })))
}

/// `DELETE /templates/{id}`: removes both versions. Nothing can be using a template, since
/// scheduled sends are rendered when accepted.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require("templates/modify")?;
    state.store.check()?;
    if !state.templates.delete(&id)? {
        return Err(TemplateStoreError::Missing(id).into());
    }
    state.store.durable().await?;
    tracing::info!(template_id = %id, "template deleted");
    Ok(Json(json!({})))
}

/// `GET /templates[?draft=]`: every template's summary; `draft=true` lists those with a
/// draft, `draft=false` those with a published version.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require("templates/view")?;
    let results: Vec<Value> = state
        .templates
        .list()?
        .iter()
        // Sluice has no subaccounts, so no template is shared with them.
        .filter(|_| query.shared_with_subaccounts != Some(true))
        .filter_map(|t| t.version(query.draft).map(|v| summary(t, v)))
        .collect();
    Ok(Json(json!({ "results": results })))
}

/// The body of a preview.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PreviewBody {
    substitution_data: Option<Map<String, Value>>,
    content: Option<Content>,
}

/// `POST /templates/{id}/preview?draft=`: a version rendered with the given data.
pub async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<DraftQuery>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("templates/view")?;
    // A preview needs no data, so no body at all is an empty one.
    let body: PreviewBody = if body.is_empty() {
        PreviewBody::default()
    } else {
        parse_body(&body)?
    };
    let template = load(&state, &id)?;
    let version = chosen(&template, query.draft)?;
    let compiled = render::compile(&version.content)?;
    let data = body.substitution_data.unwrap_or_default();
    Ok(Json(
        json!({ "results": render::preview(&compiled, &data, &state.snippets)? }),
    ))
}

/// `POST /utils/content-previewer`: inline content or a raw message rendered with the given
/// data, nothing stored.
pub async fn content_previewer(
    State(state): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("templates/view")?;
    let body: PreviewBody = parse_body(&body)?;
    let content = body
        .content
        .ok_or_else(|| ApiError::missing("content is required"))?;
    let compiled = compile_content(content, &Options::default())?;
    let data = body.substitution_data.unwrap_or_default();
    Ok(Json(
        json!({ "results": render::preview(&compiled, &data, &state.snippets)? }),
    ))
}

fn load(state: &AppState, id: &str) -> Result<StoredTemplate, ApiError> {
    state
        .templates
        .get(id)?
        .ok_or_else(|| TemplateStoreError::Missing(id.to_string()).into())
}

fn chosen(template: &StoredTemplate, draft: Option<bool>) -> Result<&Version, ApiError> {
    template.version(draft).ok_or_else(|| {
        let which = if draft == Some(true) {
            "draft"
        } else {
            "published"
        };
        ApiError::not_found(format!("template {:?} has no {which} version", template.id))
    })
}

fn is_published(template: &StoredTemplate, version: &Version) -> bool {
    template
        .published
        .as_ref()
        .is_some_and(|p| std::ptr::eq(p, version))
}

/// The fields every listing shows, for one of the template's versions: whether it is the
/// published one, and when it was written.
fn summary(template: &StoredTemplate, version: &Version) -> Value {
    let mut summary = json!({
        "id": template.id,
        "name": template.name,
        "description": template.description,
        "published": is_published(template, version),
        "has_draft": template.draft.is_some(),
        "has_published": template.published.is_some(),
        "last_update_time": iso8601_ms(version.updated_ms),
        "shared_with_subaccounts": false,
    });
    // Only a template that was used has a `last_use`.
    if let Some(used) = template.last_use_ms {
        summary["last_use"] = iso8601_ms(used).into();
    }
    summary
}
