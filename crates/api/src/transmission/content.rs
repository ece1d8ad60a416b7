//! Inline content as SparkPost takes it: checks that name the missing or malformed field, before
//! anything is compiled. Stored templates go through the same checks when they are written.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::address;
use super::attachment::Files;
use super::generate::InlineContent;
use super::request::Content;
use super::{check_len, MAX_CONTENT};
use crate::error::ApiError;

/// Validates inline content, from a request or from a stored template, and decodes its
/// attachments and inline images. Callers send `email_rfc822` to [`super::rfc822`] before
/// coming here; a raw message reaching this point is refused rather than ignored.
pub(crate) fn inline_content(content: Content) -> Result<InlineContent, ApiError> {
    if content.email_rfc822.is_some() {
        return Err(ApiError::invalid(
            "content.email_rfc822 cannot be read as inline content",
        ));
    }
    let from = content
        .from
        .ok_or_else(|| ApiError::missing("content.from is required"))?;
    let (from_email, from_name) = from_fields(&from)?;
    let subject = content
        .subject
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::missing("content.subject is required"))?;
    if content.text.is_none() && content.html.is_none() {
        return Err(ApiError::missing(
            "content.text or content.html is required",
        ));
    }
    let files = Files::from_json(content.attachments.as_ref(), content.inline_images.as_ref())?;
    let size: usize = [&content.text, &content.html, &content.amp_html]
        .iter()
        .map(|p| p.as_ref().map_or(0, String::len))
        .sum();
    check_len("content", size + files.decoded_len, MAX_CONTENT)?;
    if let Some(reply_to) = content.reply_to.as_deref() {
        check_static_addresses("Reply-To", reply_to)
            .map_err(|e| ApiError::invalid(format!("content.reply_to: {e}")))?;
    }
    Ok(InlineContent {
        from_email,
        from_name,
        subject,
        reply_to: content.reply_to,
        headers: custom_headers(content.headers)?,
        text: content.text,
        html: content.html,
        amp_html: content.amp_html,
        files: Arc::new(files),
    })
}

/// Checks that raw MIME content or a stored template, given in `content.{field}`, comes alone:
/// the message or the template holds its own headers and parts, so inline fields beside it would
/// be silently lost. A stored template may come with `headers`, which are added to its own, as
/// client libraries put a cc copy's `CC` header there.
pub(crate) fn alone(field: &str, content: &Content) -> Result<(), ApiError> {
    let raw = content.email_rfc822.is_some() && field != "email_rfc822";
    let beside = inline_fields(content).find(|name| field != "template_id" || *name != "headers");
    match raw.then_some("email_rfc822").or(beside) {
        Some(name) => Err(ApiError::invalid(format!(
            "content.{field} cannot be combined with content.{name}"
        ))),
        None => Ok(()),
    }
}

/// The name of the first inline field given a value other than `null`, if any.
pub(crate) fn first_inline_field(content: &Content) -> Option<&'static str> {
    inline_fields(content).next()
}

/// The names of the inline fields given a value other than `null`.
fn inline_fields(content: &Content) -> impl Iterator<Item = &'static str> {
    let given = |v: Option<&Value>| v.is_some_and(|v| !v.is_null());
    let fields = [
        ("from", given(content.from.as_ref())),
        ("subject", content.subject.is_some()),
        ("text", content.text.is_some()),
        ("html", content.html.is_some()),
        ("amp_html", content.amp_html.is_some()),
        ("reply_to", content.reply_to.is_some()),
        // Client libraries send an empty object when no headers are given.
        (
            "headers",
            content.headers.as_ref().is_some_and(|h| !h.is_empty()),
        ),
        ("attachments", given(content.attachments.as_ref())),
        ("inline_images", given(content.inline_images.as_ref())),
    ];
    fields
        .into_iter()
        .filter(|(_, present)| *present)
        .map(|(name, _)| name)
}

/// The address and display name of `from`: `"a@b"`, `"Name <a@b>"` or `{email, name}`.
pub(crate) fn from_fields(from: &Value) -> Result<(String, Option<String>), ApiError> {
    let invalid = |e: String| ApiError::invalid(format!("content.from: {e}"));
    let (name, email) = match from {
        Value::String(text) => address::split_mailbox(text).map_err(invalid)?,
        Value::Object(map) => {
            let email = map
                .get("email")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::missing("content.from.email is required"))?;
            (map.get("name").and_then(Value::as_str), email)
        }
        _ => {
            return Err(ApiError::invalid(
                "content.from must be a string or an object with email",
            ))
        }
    };
    // The address may be templated; the rendered value is checked per recipient.
    if !email.contains("{{") {
        address::check_email(email).map_err(invalid)?;
    }
    if let Some(name) = name {
        address::check_display_name(name).map_err(invalid)?;
    }
    Ok((email.to_string(), name.map(str::to_string)))
}

/// Checks an address header written without substitutions now; a templated one is checked
/// for each recipient once rendered.
fn check_static_addresses(name: &str, value: &str) -> Result<(), String> {
    // An empty field is left out of the message.
    if value.contains("{{") || value.trim().is_empty() {
        return Ok(());
    }
    address::address_list(name, value).map(drop)
}

/// Why a header field cannot be a custom header, for those Sluice writes itself: a second copy
/// beside Sluice's own would make the message invalid, or let content claim another sender.
fn reserved_header(name: &str) -> Option<&'static str> {
    let reason = match name.to_ascii_lowercase().as_str() {
        "from" => "use content.from",
        "subject" => "use content.subject",
        "reply-to" => "use content.reply_to",
        "to" => "recipients set it (address.header_to for copies)",
        "bcc" | "resent-bcc" => "a Bcc header would show every blind copy's recipient",
        // Content-Language describes the message, not its structure, and may be set.
        name if name.starts_with("content-") && name != "content-language" => {
            "the MIME structure is built from the content"
        }
        "mime-version" => "the MIME structure is built from the content",
        "message-id" | "date" | "dkim-signature" | "return-path" => "Sluice writes it",
        _ => return None,
    };
    Some(reason)
}

/// Whether a header field holds free text, in which RFC 2047 encoded words may appear: Subject,
/// Comments, and the `X-` fields, which are free text by convention.
pub(super) fn is_unstructured(name: &str) -> bool {
    name.eq_ignore_ascii_case("Subject")
        || name.eq_ignore_ascii_case("Comments")
        || name.get(..2).is_some_and(|x| x.eq_ignore_ascii_case("X-"))
}

/// Whether a header field may appear at most once in a message (RFC 5322, section 3.6).
pub(super) fn is_single_instance(name: &str) -> bool {
    [
        "Date",
        "From",
        "Sender",
        "Reply-To",
        "To",
        "Cc",
        "Bcc",
        "Message-ID",
        "In-Reply-To",
        "References",
        "Subject",
    ]
    .iter()
    .any(|field| name.eq_ignore_ascii_case(field))
}

/// The first header field of `names` that may appear only once but appears more often, names
/// being compared without regard to case.
pub(super) fn repeated_single_instance<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut seen: Vec<&str> = Vec::new();
    for name in names.into_iter().filter(|n| is_single_instance(n)) {
        if seen.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            return Some(name);
        }
        seen.push(name);
    }
    None
}

pub(super) fn custom_headers(
    headers: Option<Map<String, Value>>,
) -> Result<Vec<(String, String)>, ApiError> {
    let headers = headers.unwrap_or_default();
    if let Some(name) = repeated_single_instance(headers.keys().map(String::as_str)) {
        return Err(ApiError::invalid(format!(
            "content.headers: {name} is given more than once; a message holds at most one"
        )));
    }
    let mut out = Vec::new();
    for (name, value) in headers {
        if let Some(instead) = reserved_header(&name) {
            return Err(ApiError::invalid(format!(
                "content.headers: {name} cannot be set as a custom header; {instead}"
            )));
        }
        // A name has no length limit of its own, but a longer one than this is no real header.
        let too_long = name.len() > 100;
        if too_long || name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            return Err(ApiError::invalid(format!(
                "content.headers: {name:?} is not a valid header name"
            )));
        }
        let Some(value) = value.as_str() else {
            return Err(ApiError::invalid(format!(
                "content.headers.{name} must be a string"
            )));
        };
        if address::is_address_field(&name) {
            check_static_addresses(&name, value)
                .map_err(|e| ApiError::invalid(format!("content.headers: {e}")))?;
        }
        out.push((name, value.to_string()));
    }
    Ok(out)
}
