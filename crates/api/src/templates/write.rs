//! Writing templates: the body of `POST /templates` and `PUT /templates/{id}`, and how it turns
//! into a new template or a changed one. `null` anywhere means "not given", because
//! python-sparkpost sends every field it was not handed as `null`.

use serde::Deserialize;
use serde_json::json;

use super::render;
use super::store::{id_from_name, StoredTemplate, TemplateContent, TemplateOptions, Version};
use super::MAX_ID;
use crate::error::ApiError;
use crate::transmission::check_len;
use crate::transmission::content::{alone, first_inline_field, from_fields};
use crate::transmission::request::Content;

/// Longest name and description, in bytes.
const MAX_NAME: usize = 1024;
/// Largest content of one version: the sum of its parts, in bytes.
const MAX_TEMPLATE_CONTENT: usize = 5 * 1000 * 1000;

/// The writable fields of a template.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TemplateBody {
    /// Only on create; derived from `name` when absent.
    pub id: Option<String>,
    /// Required on create.
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// True publishes the written version; false or absent writes the draft.
    pub published: Option<bool>,
    /// Sending defaults; each field given replaces the stored one.
    pub options: Option<TemplateOptions>,
    /// Content: `email_rfc822` alone replaces all of it; otherwise each inline field given
    /// replaces the stored one. Fields a template does not keep, such as `attachments`, are
    /// ignored.
    pub content: Option<Content>,
}

/// A new template from a create body, stored as a draft unless `published` is true.
pub fn new_template(body: &TemplateBody, now_ms: u64) -> Result<StoredTemplate, ApiError> {
    let name = body
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::missing("name is required"))?;
    check_len("name", name.len(), MAX_NAME)?;
    let id = match body.id.clone().filter(|id| !id.is_empty()) {
        Some(id) => checked_id(id)?,
        None => id_from_name(&name),
    };
    let mut template = StoredTemplate {
        id,
        name,
        ..StoredTemplate::default()
    };
    apply_description(&mut template, body)?;
    let version = merged(Version::default(), body, now_ms)?;
    if body.published == Some(true) {
        template.published = Some(version);
    } else {
        template.draft = Some(version);
    }
    Ok(template)
}

/// An id given by the client: it travels in URL paths, so it is limited to characters that
/// need no escaping there.
pub(crate) fn checked_id(id: String) -> Result<String, ApiError> {
    check_len("id", id.len(), MAX_ID)?;
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(ApiError::invalid(format!(
            "id: {id:?} may hold only letters, digits, '-', '_' and '.'"
        )));
    }
    Ok(id)
}

fn apply_description(template: &mut StoredTemplate, body: &TemplateBody) -> Result<(), ApiError> {
    if let Some(description) = &body.description {
        check_len("description", description.len(), MAX_NAME)?;
        template.description = description.clone();
    }
    Ok(())
}

/// Applies an update body. By default it writes the draft (starting from the published
/// version when there is no draft); `published: true` then publishes it, which consumes the
/// draft. With `update_published` the published version is overwritten and the draft kept.
pub fn apply_update(
    mut template: StoredTemplate,
    body: &TemplateBody,
    update_published: bool,
    now_ms: u64,
) -> Result<StoredTemplate, ApiError> {
    if let Some(name) = body.name.clone().filter(|n| !n.is_empty()) {
        check_len("name", name.len(), MAX_NAME)?;
        template.name = name;
    }
    apply_description(&mut template, body)?;
    let next_number = template.published.as_ref().map_or(0, |p| p.number + 1);
    if update_published {
        let base = template.published.clone().ok_or_else(|| {
            ApiError::invalid(format!(
                "template {:?} has no published version to update",
                template.id
            ))
        })?;
        template.published = Some(merged(base, body, now_ms)?);
        return Ok(template);
    }
    // Publishing with no draft and no change publishes nothing new: the version stays.
    // Client libraries send every field, null when not given: nulls change nothing either.
    let no_content = body
        .content
        .as_ref()
        .is_none_or(|c| c.email_rfc822.is_none() && first_inline_field(c).is_none());
    let no_options = body
        .options
        .as_ref()
        .is_none_or(|o| *o == TemplateOptions::default());
    let unchanged = no_content && no_options;
    if body.published == Some(true)
        && template.draft.is_none()
        && template.published.is_some()
        && unchanged
    {
        return Ok(template);
    }
    let base = template
        .draft
        .clone()
        .or_else(|| template.published.clone())
        .unwrap_or_default();
    let mut version = merged(base, body, now_ms)?;
    version.number = next_number;
    if body.published == Some(true) {
        template.published = Some(version);
        template.draft = None;
    } else {
        template.draft = Some(version);
    }
    Ok(template)
}

/// `base` with the body's options and content laid over it, checked and compiled.
fn merged(base: Version, body: &TemplateBody, now_ms: u64) -> Result<Version, ApiError> {
    let mut options = base.options;
    if let Some(given) = &body.options {
        options.open_tracking = given.open_tracking.or(options.open_tracking);
        options.click_tracking = given.click_tracking.or(options.click_tracking);
        options.transactional = given.transactional.or(options.transactional);
    }
    let content = match &body.content {
        Some(given) => merged_content(base.content, given)?,
        None => base.content,
    };
    check_content(&content)?;
    Ok(Version {
        content,
        options,
        updated_ms: now_ms,
        number: base.number,
    })
}

fn merged_content(base: TemplateContent, given: &Content) -> Result<TemplateContent, ApiError> {
    if let Some(raw) = &given.email_rfc822 {
        alone("email_rfc822", given)?;
        return Ok(TemplateContent {
            email_rfc822: Some(raw.clone()),
            ..TemplateContent::default()
        });
    }
    // Inline fields over a raw message replace it: the two kinds of content never mix. A
    // content object of nulls, as python-sparkpost sends when publishing, changes nothing.
    let mut content = match first_inline_field(given) {
        Some(_) if base.email_rfc822.is_some() => TemplateContent::default(),
        _ => base,
    };
    if let Some(from) = &given.from {
        let (email, name) = from_fields(from)?;
        content.from = match name {
            Some(name) => json!({ "email": email, "name": name }),
            None => json!({ "email": email }),
        };
    }
    let replace = |stored: &mut Option<String>, given: &Option<String>| {
        if given.is_some() {
            stored.clone_from(given);
        }
    };
    if let Some(subject) = &given.subject {
        content.subject.clone_from(subject);
    }
    replace(&mut content.text, &given.text);
    replace(&mut content.html, &given.html);
    replace(&mut content.amp_html, &given.amp_html);
    replace(&mut content.reply_to, &given.reply_to);
    if given.headers.is_some() {
        content.headers.clone_from(&given.headers);
    }
    Ok(content)
}

/// Runs the checks a transmission's content gets and compiles every part, or the raw message,
/// so a template that is stored can be sent.
fn check_content(content: &TemplateContent) -> Result<(), ApiError> {
    let parts = [
        &content.text,
        &content.html,
        &content.amp_html,
        &content.email_rfc822,
    ];
    let size = parts
        .iter()
        .map(|p| p.as_ref().map_or(0, String::len))
        .sum();
    check_len("content", size, MAX_TEMPLATE_CONTENT)?;
    render::compile(content).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn body(value: Value) -> TemplateBody {
        serde_json::from_value(value).expect("a template body")
    }

    fn python_create() -> TemplateBody {
        body(json!({
            "id": null, "name": "Spring Sale", "description": null, "published": null,
            "options": {"open_tracking": null, "click_tracking": null, "transactional": null},
            "content": {"html": null, "text": "Hi {{name}}", "subject": "Sale", "from": "Shop <shop@sender.test>", "reply_to": null, "headers": null}
        }))
    }

    #[test]
    fn a_create_with_nulls_makes_a_draft_with_a_derived_id() {
        let template = new_template(&python_create(), 5).expect("created");
        assert_eq!(template.id, "spring-sale");
        assert!(template.published.is_none());
        let draft = template.draft.expect("a draft");
        assert_eq!(
            draft.content.from,
            json!({"email": "shop@sender.test", "name": "Shop"})
        );
        assert_eq!(draft.options, TemplateOptions::default());
        assert_eq!(draft.updated_ms, 5);
    }

    #[test]
    fn publishing_consumes_the_draft_and_counts_versions() {
        let template = new_template(&python_create(), 1).expect("created");
        let published = body(json!({"published": true, "content": {"subject": null}}));
        let once = apply_update(template, &published, false, 2).expect("published");
        assert!(once.draft.is_none());
        assert_eq!(once.published.as_ref().map(|p| p.number), Some(0));
        let edit = body(json!({"content": {"subject": "New"}}));
        let edited = apply_update(once, &edit, false, 3).expect("draft");
        assert_eq!(edited.draft.as_ref().map(|d| d.number), Some(1));
        assert_eq!(
            edited
                .published
                .as_ref()
                .map(|p| p.content.subject.as_str()),
            Some("Sale")
        );
        let again = apply_update(edited, &published, false, 4).expect("published");
        assert_eq!(again.published.as_ref().map(|p| p.number), Some(1));
        assert_eq!(
            again.published.as_ref().map(|p| p.content.subject.as_str()),
            Some("New")
        );
    }

    #[test]
    fn update_published_needs_a_published_version() {
        let template = new_template(&python_create(), 1).expect("created");
        let edit = body(json!({"content": {"subject": "New"}}));
        assert!(apply_update(template, &edit, true, 2).is_err());
    }

    #[test]
    fn bad_ids_and_missing_names_are_refused() {
        assert!(new_template(&body(json!({"id": "a/b", "name": "x"})), 1).is_err());
        assert!(new_template(&body(json!({"name": null})), 1).is_err());
    }

    #[test]
    fn publishing_again_without_a_draft_keeps_the_version() {
        let template = new_template(&body(json!({"id": "t", "name": "T", "published": true, "content": {"from": "a@b.test", "subject": "s", "text": "t"}})), 1).expect("created");
        let publish = body(json!({"published": true}));
        let again = apply_update(template, &publish, false, 2).expect("published again");
        let twice = apply_update(again, &publish, false, 3).expect("and again");
        assert_eq!(twice.published.as_ref().map(|p| p.number), Some(0));
        // As python-sparkpost publishes: every field given, null.
        let nulls = body(json!({
            "published": true, "name": null, "description": null,
            "options": {"open_tracking": null, "click_tracking": null, "transactional": null},
            "content": {"html": null, "text": null, "subject": null, "from": null, "reply_to": null, "headers": null},
        }));
        let thrice = apply_update(twice, &nulls, false, 4).expect("and with nulls");
        assert_eq!(thrice.published.as_ref().map(|p| p.number), Some(0));
    }

    const RAW: &str =
        "From: Shop <shop@sender.test>\r\nSubject: Hi {{name}}\r\n\r\nDear {{name}}\r\n";

    fn raw_create() -> TemplateBody {
        body(
            json!({"id": "raw", "name": "Raw", "content": {"email_rfc822": RAW, "from": null, "subject": null}}),
        )
    }

    fn refusal(result: Result<StoredTemplate, ApiError>) -> Value {
        let error = result.expect_err("refused");
        assert_eq!(error.status().as_u16(), 422);
        error.into_object()
    }

    #[test]
    fn a_raw_template_is_stored_alone_and_read_back_as_written() {
        let template = new_template(&raw_create(), 1).expect("created");
        let content = &template.draft.as_ref().expect("a draft").content;
        assert_eq!(
            serde_json::to_value(content).expect("serialises"),
            json!({"email_rfc822": RAW})
        );
    }

    #[test]
    fn a_raw_template_with_other_content_or_bad_mime_is_refused() {
        let mixed = json!({"name": "R", "content": {"email_rfc822": RAW, "subject": "s"}});
        let error = refusal(new_template(&body(mixed), 1));
        assert!(error["description"]
            .as_str()
            .is_some_and(|d| d.contains("content.subject")));
        let empty = json!({"name": "R", "content": {"email_rfc822": ""}});
        refusal(new_template(&body(empty), 1));
        let broken =
            json!({"name": "R", "content": {"email_rfc822": "From: a@b.test\r\n\r\nx\r\n{{if}}"}});
        let error = refusal(new_template(&body(broken), 1));
        assert_eq!(
            (&error["code"], &error["part"], &error["line"]),
            (&json!("3000"), &json!("text"), &json!(2))
        );
        let big = format!("From: a@b.test\r\n\r\n{}", "x".repeat(MAX_TEMPLATE_CONTENT));
        let over = json!({"name": "R", "content": {"email_rfc822": big}});
        let error = refusal(new_template(&body(over), 1));
        assert!(error["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("content: ")));
    }

    #[test]
    fn an_update_switches_between_raw_and_inline_content() {
        let template = new_template(&python_create(), 1).expect("created");
        let to_raw = body(json!({"content": {"email_rfc822": RAW}}));
        let raw = apply_update(template, &to_raw, false, 2).expect("raw");
        let draft = raw.draft.as_ref().expect("a draft");
        assert_eq!(draft.content.email_rfc822.as_deref(), Some(RAW));
        assert!(draft.content.text.is_none() && draft.content.from.is_null());

        let publish = body(
            json!({"published": true, "content": {"html": null, "text": null, "subject": null, "from": null}}),
        );
        let published = apply_update(raw, &publish, false, 3).expect("published");
        let version = published.published.as_ref().expect("published");
        assert_eq!(version.content.email_rfc822.as_deref(), Some(RAW));

        let partial = body(json!({"content": {"text": "only text"}}));
        refusal(apply_update(published.clone(), &partial, true, 4));
        let inline =
            body(json!({"content": {"from": "a@sender.test", "subject": "s", "text": "t"}}));
        let back = apply_update(published, &inline, true, 4).expect("inline again");
        let content = &back.published.as_ref().expect("published").content;
        assert!(content.email_rfc822.is_none());
        assert_eq!(content.text.as_deref(), Some("t"));
    }
}
