//! Stored content put to use: compiled with the same checks as a transmission's content,
//! inline or raw, rendered for previews, and handed to transmissions that name a template.

use axum::http::StatusCode;
use serde_json::{json, Map, Value};
use sluice_core::clock::now_ms;
use sluice_template::Context;

use super::store::{TemplateContent, TemplateOptions, TemplateStoreError};
use crate::error::ApiError;
use crate::snippets::SnippetStore;
use crate::state::AppState;
use crate::transmission::content::inline_content;
use crate::transmission::generate::{check_headers, Compiled, InlineContent, Prepared, Rendered};
use crate::transmission::request::Content;
use crate::transmission::rfc822::RawContent;

/// The stored content as a transmission's inline content, checked the same way.
pub fn inline(content: &TemplateContent) -> Result<InlineContent, ApiError> {
    inline_content(Content {
        from: Some(content.from.clone()).filter(|f| !f.is_null()),
        subject: Some(content.subject.clone()),
        text: content.text.clone(),
        html: content.html.clone(),
        amp_html: content.amp_html.clone(),
        reply_to: content.reply_to.clone(),
        headers: content.headers.clone(),
        ..Content::default()
    })
}

/// Compiles the stored content, every inline part or the raw message, always with
/// substitution; a syntax error is 422 `3000` naming the part and line.
pub fn compile(content: &TemplateContent) -> Result<Compiled, ApiError> {
    match &content.email_rfc822 {
        Some(raw) => Ok(Compiled::Raw(RawContent::compile(raw)?)),
        None => Ok(Compiled::Inline(Box::new(Prepared::compile(
            inline(content)?,
            true,
        )?))),
    }
}

/// Renders content with preview data: `substitution_data` is the only data layer, and since
/// there is no recipient, the recipient's built-in variables (`address`, `email`, ...) are read
/// from it, as SparkPost's own examples of `address.street` expect. Snippets come from the
/// store, as they would for a send. Inline content answers its rendered fields; a raw message
/// answers `{"email_rfc822": …}`, the whole message rendered.
pub fn preview(
    compiled: &Compiled,
    data: &Map<String, Value>,
    snippets: &SnippetStore,
) -> Result<Value, ApiError> {
    let builtins = Map::new();
    let context = Context {
        layers: vec![data],
        builtins: &builtins,
        dynamic: Some(data),
        snippets: Some(&|id: &str, part| snippets.lookup(id, part)),
        snippet_calls: Default::default(),
    };
    let failed = |e: String| ApiError::invalid(format!("rendering failed: {e}"));
    match compiled {
        Compiled::Inline(prepared) => {
            let rendered = prepared.render(&context).map_err(failed)?;
            // What a send would refuse, a preview refuses too.
            check_headers(&rendered).map_err(failed)?;
            Ok(rendered_json(rendered))
        }
        Compiled::Raw(raw) => Ok(json!({ "email_rfc822": raw.preview(&context).map_err(failed)? })),
    }
}

fn rendered_json(rendered: Rendered) -> Value {
    let headers: Map<String, Value> = rendered
        .headers
        .into_iter()
        .map(|(name, value)| (name, Value::String(value)))
        .collect();
    let mut out = json!({
        "from": {"email": rendered.from_email, "name": rendered.from_name},
        "subject": rendered.subject,
        "headers": headers,
    });
    let optional = [
        ("reply_to", rendered.reply_to),
        ("text", rendered.text),
        ("html", rendered.html),
        ("amp_html", rendered.amp_html),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            out[key] = Value::String(value);
        }
    }
    out
}

/// A stored template as a transmission uses it.
pub struct Resolved {
    /// The content, checked and compiled.
    pub content: Compiled,
    /// The template's sending defaults.
    pub options: TemplateOptions,
    /// `template_version` on events.
    pub version: String,
}

/// The published version of template `id`, or its draft when `draft` is true, and records
/// that it was used. A missing template or version is 422 `1603`.
pub fn for_transmission(state: &AppState, id: &str, draft: bool) -> Result<Resolved, ApiError> {
    let template = state.templates.get(id)?.ok_or_else(|| missing(id, draft))?;
    let version = template
        .version(Some(draft))
        .ok_or_else(|| missing(id, draft))?;
    let resolved = Resolved {
        content: compile(&version.content)?,
        options: version.options,
        version: version.number.to_string(),
    };
    let used = state
        .templates
        .update::<_, TemplateStoreError>(id, |mut t| {
            t.last_use_ms = Some(now_ms());
            Ok(t)
        });
    if let Err(error) = used {
        // Only the `last_use` report suffers; the send itself can go ahead.
        tracing::warn!(template_id = id, error = %error, "could not record a template's use");
    }
    Ok(resolved)
}

fn missing(id: &str, draft: bool) -> ApiError {
    let which = if draft { "draft" } else { "published" };
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "sub-resource not found",
        "1603",
        format!("content.template_id: template {id:?} has no {which} version"),
    )
}
