//! Message generation: the transmission's content compiled once, then rendered and built into
//! an RFC 5322 message for each recipient.

use std::borrow::Cow;
use std::sync::Arc;

use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::headers::HeaderType;
use mail_builder::mime::{BodyPart, MimePart};
use mail_builder::MessageBuilder;
use serde_json::{Map, Value};
use sluice_template::{Context, Part, Template};

use super::address::{address_list, is_address_field};
use super::attachment::Files;
use super::content::is_unstructured;
use super::rfc822::RawContent;
use crate::error::ApiError;

/// Largest rendered content of one message: the contract's 20 MB, applied after substitution
/// too, so a small template cannot render into a huge message.
const MAX_RENDERED: usize = 20 * 1000 * 1000;

/// Longest line SMTP carries, not counting its CRLF (RFC 5321, section 4.5.3.1.6).
const MAX_LINE: usize = 998;

/// Longest rendered header value, in bytes: Postfix's default `header_size_limit`, past which
/// receivers cut a header or refuse the message.
const MAX_HEADER: usize = 100 * 1024;

/// A transmission's content, compiled once and built for each recipient.
pub enum Compiled {
    /// Inline fields, from the request or a stored template.
    Inline(Box<Prepared>),
    /// A raw message (`email_rfc822`).
    Raw(RawContent),
}

/// One recipient's message, before DKIM signing, with the facts its events report.
pub struct Built {
    /// The RFC 5322 message.
    pub message: Vec<u8>,
    /// The From address after substitution; its domain picks the DKIM key.
    pub from_email: String,
    /// The subject after substitution.
    pub subject: String,
}

impl Compiled {
    /// A stored template's content with a transmission's `content.headers` added: a field the
    /// template sets too takes the transmission's value. A raw template holds its header block
    /// as written, so it takes none.
    pub fn with_headers(self, headers: Vec<(String, String)>) -> Result<Compiled, ApiError> {
        if headers.is_empty() {
            return Ok(self);
        }
        let Compiled::Inline(mut prepared) = self else {
            return Err(ApiError::invalid(
                "content.headers cannot be added to a template stored as email_rfc822",
            ));
        };
        if let Some((_, cc)) = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("cc")) {
            prepared.cc = Some(cc.clone());
        }
        let added = compile_headers(headers)?;
        prepared
            .headers
            .retain(|(name, _)| !added.iter().any(|(a, _)| a.eq_ignore_ascii_case(name)));
        prepared.headers.extend(added);
        Ok(Compiled::Inline(prepared))
    }

    /// Renders and builds the message for one recipient; the error is the generation failure's
    /// reason.
    pub fn build(
        &self,
        context: &Context<'_>,
        addressing: &Addressing<'_>,
    ) -> Result<Built, String> {
        let built = match self {
            Compiled::Inline(prepared) => {
                let rendered = prepared.render(context)?;
                let message = build_mime(&rendered, addressing)?;
                Built {
                    message,
                    from_email: rendered.from_email,
                    subject: rendered.subject,
                }
            }
            Compiled::Raw(raw) => raw.render(context, addressing.message_id)?,
        };
        check_line_lengths(&built.message)?;
        Ok(built)
    }

    /// Whether the content has an AMP part.
    pub fn has_amp(&self) -> bool {
        match self {
            Compiled::Inline(prepared) => prepared.has_amp(),
            Compiled::Raw(raw) => raw.has_amp(),
        }
    }

    /// Whether the `CC` header names `email`: a copy to it is a cc, otherwise a bcc.
    pub fn cc_mentions(&self, email: &str) -> bool {
        match self {
            Compiled::Inline(prepared) => prepared.cc_mentions(email),
            Compiled::Raw(raw) => raw.cc_mentions(email),
        }
    }
}

/// Whether a `CC` header value names `email`, ignoring case.
pub(super) fn cc_mentions(cc: Option<&str>, email: &str) -> bool {
    cc.is_some_and(|cc| {
        cc.to_ascii_lowercase()
            .contains(&email.to_ascii_lowercase())
    })
}

/// One templated field of the content, compiled.
struct Field {
    name: &'static str,
    template: Template,
}

/// The content of a transmission, compiled for rendering.
pub struct Prepared {
    from_email: Field,
    from_name: Option<Field>,
    subject: Field,
    reply_to: Option<Field>,
    headers: Vec<(String, Template)>,
    text: Option<Field>,
    html: Option<Field>,
    amp_html: Option<Field>,
    /// The `CC` header as written, to tell cc copies from bcc ones.
    cc: Option<String>,
    /// The From address when it holds no substitutions.
    fixed_from: Option<String>,
    files: Arc<Files>,
}

/// Inline content as validated: what [`Prepared::compile`] takes, and what rendering gives.
pub struct InlineContent {
    /// From address (may hold substitutions).
    pub from_email: String,
    /// From display name.
    pub from_name: Option<String>,
    /// Subject.
    pub subject: String,
    /// Reply-To.
    pub reply_to: Option<String>,
    /// Custom headers, name and value.
    pub headers: Vec<(String, String)>,
    /// Text part.
    pub text: Option<String>,
    /// HTML part.
    pub html: Option<String>,
    /// AMP part.
    pub amp_html: Option<String>,
    /// Attachments and inline images, the same for every recipient.
    pub files: Arc<Files>,
}

/// A rendered message's headers and parts, before MIME: the same fields as the content it was
/// rendered from.
pub type Rendered = InlineContent;

impl Prepared {
    /// Compiles every field; a syntax error is 422 `3000` naming the part and line. With
    /// `substitute` false the content is sent as written, except headers, which are always
    /// templated.
    pub fn compile(content: InlineContent, substitute: bool) -> Result<Prepared, ApiError> {
        let cc = content
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("cc"))
            .map(|(_, v)| v.clone());
        let body = |name: &'static str, source: Option<String>, part: Part| {
            source
                .map(|s| field(name, &s, if substitute { Some(part) } else { None }))
                .transpose()
        };
        let from_email = field("Header:From", &content.from_email, Some(Part::Header))?;
        let fixed_from = from_email
            .template
            .is_static()
            .then(|| content.from_email.clone());
        Ok(Prepared {
            from_email,
            fixed_from,
            from_name: content
                .from_name
                .map(|n| field("Header:From", &n, Some(Part::Header)))
                .transpose()?,
            subject: field("Header:Subject", &content.subject, Some(Part::Header))?,
            reply_to: content
                .reply_to
                .map(|r| field("Header:Reply-To", &r, Some(Part::Header)))
                .transpose()?,
            headers: compile_headers(content.headers)?,
            text: body("text", content.text, Part::Text)?,
            html: body("html", content.html, Part::Html)?,
            amp_html: body("amp_html", content.amp_html, Part::AmpHtml)?,
            cc,
            files: content.files,
        })
    }

    /// Whether the content has an AMP part.
    pub fn has_amp(&self) -> bool {
        self.amp_html.is_some()
    }

    /// The From address when it holds no substitutions: the envelope sender of a message
    /// without a `return_path`, known before any recipient is rendered.
    pub fn fixed_from(&self) -> Option<&str> {
        self.fixed_from.as_deref()
    }

    /// Whether the `CC` header names `email`: a copy to it is a cc, otherwise a bcc.
    pub fn cc_mentions(&self, email: &str) -> bool {
        cc_mentions(self.cc.as_deref(), email)
    }

    /// Renders every field for one recipient.
    pub fn render(&self, context: &Context<'_>) -> Result<Rendered, String> {
        let render = |f: &Field| {
            f.template
                .render(context)
                .map_err(|e| format!("{}: {}", f.name, e.message))
        };
        let optional = |f: &Option<Field>| f.as_ref().map(render).transpose();
        let mut headers = Vec::with_capacity(self.headers.len());
        for (name, template) in &self.headers {
            let value = template
                .render(context)
                .map_err(|e| format!("header {name}: {}", e.message))?;
            headers.push((name.clone(), value));
        }
        let body = |f: &Option<Field>| optional(f).map(|part| part.map(without_bare_cr));
        let text = body(&self.text)?.map(without_link_attributes);
        Ok(Rendered {
            from_email: render(&self.from_email)?,
            from_name: optional(&self.from_name)?,
            subject: render(&self.subject)?,
            reply_to: optional(&self.reply_to)?,
            headers,
            text,
            html: body(&self.html)?,
            amp_html: body(&self.amp_html)?,
            files: Arc::clone(&self.files),
        })
    }
}

/// A text part without SparkPost's custom link attributes, `url[[data-msys-clicktrack="0"]]`:
/// they direct the sender's link handling and are never shown. Click tracking, the feature they
/// steer, is not built yet, so for now they are only removed.
pub(super) fn without_link_attributes(text: String) -> String {
    const OPEN: &[u8] = b"[[data-msys-";
    let bytes = text.as_bytes();
    let Some(first) = memchr::memmem::find(bytes, OPEN) else {
        return text;
    };
    let mut out = String::with_capacity(text.len());
    let mut start = 0;
    let mut at = Some(first);
    while let Some(open) = at {
        let Some(close) = memchr::memmem::find(&bytes[open..], b"]]").map(|c| open + c + 2) else {
            break;
        };
        out.push_str(&text[start..open]);
        start = close;
        at = memchr::memmem::find(&bytes[start..], OPEN).map(|o| start + o);
    }
    out.push_str(&text[start..]);
    out
}

/// A rendered body with a bare CR made a line break. Some receivers read a bare CR as a line
/// end: data holding `CR . CR LF` could otherwise end the message early on such a server and
/// smuggle commands after it. A preview shows the result, so other line ends stay as they are.
pub(super) fn without_bare_cr(text: String) -> String {
    let bytes = text.as_bytes();
    let bare = memchr::memchr_iter(b'\r', bytes).any(|i| bytes.get(i + 1) != Some(&b'\n'));
    if bare {
        crlf(&text)
    } else {
        text
    }
}

/// The text with every line break as CRLF, the canonical form MIME encodes (RFC 2045, section
/// 6.8): the builder completes a bare LF in a quoted-printable part but base64-encodes the bytes
/// as they are.
pub(super) fn canonical_crlf(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let canonical = memchr::memchr2_iter(b'\r', b'\n', bytes).all(|i| match bytes[i] {
        b'\r' => bytes.get(i + 1) == Some(&b'\n'),
        _ => i > 0 && bytes[i - 1] == b'\r',
    });
    if canonical {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(crlf(text))
    }
}

/// The text with every bare CR and bare LF made CRLF.
pub(super) fn crlf(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len() + text.len() / 32);
    let mut start = 0;
    // Every index found is an ASCII byte, so each slice below ends on a character boundary.
    for i in memchr::memchr2_iter(b'\r', b'\n', bytes) {
        if i < start {
            // The LF of a CRLF already written.
            continue;
        }
        out.push_str(&text[start..i]);
        out.push_str("\r\n");
        let pair = bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n');
        start = i + 1 + usize::from(pair);
    }
    out.push_str(&text[start..]);
    out
}

fn field(name: &'static str, source: &str, part: Option<Part>) -> Result<Field, ApiError> {
    let template = match part {
        Some(part) => {
            Template::compile(source, part).map_err(|e| syntax_error(name, e.line, &e.message))?
        }
        None => Template::literal(source, Part::Text),
    };
    Ok(Field { name, template })
}

fn compile_headers(headers: Vec<(String, String)>) -> Result<Vec<(String, Template)>, ApiError> {
    headers
        .into_iter()
        .map(|(name, value)| {
            let template = Template::compile(&value, Part::Header)
                .map_err(|e| syntax_error(&format!("Header:{name}"), e.line, &e.message))?;
            Ok((name, template))
        })
        .collect()
}

/// 422 `3000`: a substitution syntax error in `part` at `line`.
pub(super) fn syntax_error(part: &str, line: u32, message: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "substitution language syntax error in template content",
        "3000",
        message.to_string(),
    )
    .with("part", part.into())
    .with("line", line.into())
}

/// The envelope and header facts of one message, besides its rendered content.
pub struct Addressing<'a> {
    /// Sluice's message id, used in the `Message-ID` header.
    pub message_id: &'a str,
    /// What the `To:` header shows: the recipient, or for a copy its `header_to`.
    pub to: mail_builder::headers::address::Address<'static>,
}

/// Refuses a rendered header value with a line break or another control character but tab:
/// recipient data must not be able to add header fields.
pub(super) fn check_header_value(name: &str, value: &str) -> Result<(), String> {
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "{name} contains a line break or control character after substitution"
        ));
    }
    if value.len() > MAX_HEADER {
        return Err(format!(
            "{name} is {} bytes long after substitution, over the limit of {MAX_HEADER} for \
             one header",
            value.len()
        ));
    }
    Ok(())
}

/// Refuses a message with a line longer than SMTP allows. A receiver may cut such a line or
/// refuse the whole message, so the sender is better told now, with the line's number.
pub(super) fn check_line_lengths(message: &[u8]) -> Result<(), String> {
    let ends = memchr::memchr_iter(b'\n', message).chain(std::iter::once(message.len()));
    let mut start = 0;
    for (index, end) in ends.enumerate() {
        let line = &message[start..end];
        let len = line.strip_suffix(b"\r").map_or(line.len(), <[u8]>::len);
        if len > MAX_LINE {
            return Err(format!(
                "line {} of the message is {len} characters long, over SMTP's limit of {MAX_LINE}",
                index + 1
            ));
        }
        start = end + 1;
    }
    Ok(())
}

/// Refuses rendered headers that a line break or control character would split, and address
/// headers that do not hold a list of addresses.
pub(crate) fn check_headers(rendered: &Rendered) -> Result<(), String> {
    check_header_values(rendered)?;
    address_headers(rendered).try_for_each(|(name, value)| address_list(name, value).map(drop))
}

fn check_header_values(rendered: &Rendered) -> Result<(), String> {
    header_values(rendered)
        .into_iter()
        .try_for_each(|(name, value)| check_header_value(name, value))
}

/// Reply-To and the custom headers that hold addresses, such as Cc, that are not empty.
fn address_headers(rendered: &Rendered) -> impl Iterator<Item = (&str, &str)> {
    let reply_to = rendered.reply_to.as_deref().map(|r| ("Reply-To", r));
    let custom = rendered
        .headers
        .iter()
        .filter(|(name, _)| is_address_field(name))
        .map(|(n, v)| (n.as_str(), v.as_str()));
    reply_to
        .into_iter()
        .chain(custom)
        .filter(|(_, value)| !is_blank(value))
}

/// Whether a rendered header value is empty; such a header is left out of the message, so that
/// data can leave out an optional field such as Reply-To.
fn is_blank(value: &str) -> bool {
    value.trim().is_empty()
}

/// Builds the RFC 5322 message. Fails when rendered data would put a line break into a header,
/// which would let recipient data inject headers.
pub fn build_mime(rendered: &Rendered, addressing: &Addressing<'_>) -> Result<Vec<u8>, String> {
    check_header_values(rendered)?;
    // A templated From address is only known now; it becomes the envelope sender too.
    super::address::check_email(&rendered.from_email).map_err(|e| format!("from: {e}"))?;
    let parts = [&rendered.text, &rendered.html, &rendered.amp_html];
    if parts
        .iter()
        .any(|p| p.as_ref().is_some_and(|p| p.contains('\0')))
    {
        return Err("the content contains a NUL character, which SMTP cannot carry".into());
    }
    let text: usize = parts
        .iter()
        .map(|p| p.as_ref().map_or(0, String::len))
        .sum();
    let headers: usize = header_values(rendered).iter().map(|(_, v)| v.len()).sum();
    let size = text + headers + rendered.files.decoded_len;
    if size > MAX_RENDERED {
        return Err(format!(
            "the rendered content and headers are {size} bytes, over the limit of {MAX_RENDERED}"
        ));
    }
    let domain = rendered
        .from_email
        .rsplit_once('@')
        .map_or("localhost", |(_, d)| d);
    let from = match &rendered.from_name {
        Some(name) if !name.is_empty() => mail_builder::headers::address::Address::new_address(
            Some(name.as_str()),
            rendered.from_email.as_str(),
        ),
        _ => mail_builder::headers::address::Address::new_address(
            None::<&str>,
            rendered.from_email.as_str(),
        ),
    };
    let mut builder = MessageBuilder::new()
        .from(from)
        .to(addressing.to.clone())
        .header("Subject", header_value("Subject", &rendered.subject))
        .message_id(format!("{}@{}", addressing.message_id, domain));
    if let Some(reply_to) = rendered.reply_to.as_deref().filter(|r| !is_blank(r)) {
        builder = builder.reply_to(address_list("Reply-To", reply_to)?);
    }
    for (name, value) in &rendered.headers {
        if is_blank(value) {
            continue;
        }
        // Checked either way; an address list is rebuilt only if a display name needs encoding.
        let list = is_address_field(name)
            .then(|| address_list(name, value))
            .transpose()?;
        builder = match list {
            Some(list) if !value.is_ascii() => builder.header(name.as_str(), list),
            _ => builder.header(name.as_str(), header_value(name, value)),
        };
    }
    builder = with_parts(builder, rendered);
    builder
        .write_to_vec()
        .map_err(|e| format!("building the message failed: {e}"))
}

/// A header value as it is written. ASCII is written as given, folded at its spaces only:
/// encoded words belong in free text alone (RFC 2047, section 5), and in a structured field
/// such as List-Unsubscribe, References or Cc they would break it; a long token such as an
/// unsubscribe URL is exactly what an encoder would turn into them. A value outside ASCII is
/// encoded, as SMTP without SMTPUTF8 carries no other header bytes; so is free text (Subject,
/// `X-` fields) with a word too long for one line. A structured field with such a word is left
/// whole, and refused for its line length.
pub(super) fn header_value<'x>(name: &str, value: &'x str) -> HeaderType<'x> {
    let fits = || {
        value
            .split([' ', '\t'])
            .all(|word| name.len() + 2 + word.len() <= MAX_LINE)
    };
    if !value.is_ascii() || (is_unstructured(name) && !fits()) {
        Text::new(value).into()
    } else {
        Raw::new(value).into()
    }
}

/// Sets the body: the text, AMP and HTML parts as alternatives, inside `multipart/related`
/// with the inline images when there are any, inside `multipart/mixed` with the attachments
/// when there are any. A layer with nothing to add is left out.
fn with_parts<'x>(builder: MessageBuilder<'x>, rendered: &'x Rendered) -> MessageBuilder<'x> {
    let mut body = alternatives(rendered);
    let files = &rendered.files;
    if !files.inline_images.is_empty() {
        let kind = content_type_of(&body);
        let mut parts = vec![body];
        parts.extend(files.inline_images.iter().map(|f| entity(&f.entity)));
        let related = ContentType::new("multipart/related").attribute("type", kind);
        body = MimePart::new(related, parts);
    }
    if !files.attachments.is_empty() {
        let mut parts = vec![body];
        parts.extend(files.attachments.iter().map(|f| entity(&f.entity)));
        body = MimePart::new("multipart/mixed", parts);
    }
    builder.body(body)
}

fn alternatives(rendered: &Rendered) -> MimePart<'_> {
    let mut parts = Vec::new();
    let texts = [
        ("text/plain", &rendered.text),
        ("text/x-amp-html", &rendered.amp_html),
        ("text/html", &rendered.html),
    ];
    for (kind, text) in texts {
        if let Some(text) = text {
            parts.push(MimePart::new(kind, BodyPart::Text(canonical_crlf(text))));
        }
    }
    match parts.len() {
        0 => MimePart::new("text/plain", ""),
        1 => parts.remove(0),
        _ => MimePart::new("multipart/alternative", parts),
    }
}

/// The MIME type of a part built here, for the `type` parameter of `multipart/related`.
fn content_type_of(part: &MimePart<'_>) -> String {
    part.headers
        .iter()
        .find_map(|(_, value)| value.as_content_type())
        .map_or_else(|| "text/plain".to_string(), |ct| ct.c_type.to_string())
}

/// A finished attachment or inline image entity, written between boundaries as it is.
fn entity(entity: &str) -> MimePart<'_> {
    MimePart::raw(BodyPart::Text(Cow::Borrowed(entity)))
}

fn header_values(rendered: &Rendered) -> Vec<(&str, &str)> {
    let mut out = vec![
        ("from", rendered.from_email.as_str()),
        ("subject", rendered.subject.as_str()),
    ];
    if let Some(name) = &rendered.from_name {
        out.push(("from", name.as_str()));
    }
    if let Some(reply_to) = &rendered.reply_to {
        out.push(("reply_to", reply_to.as_str()));
    }
    out.extend(
        rendered
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str())),
    );
    out
}

/// The built-in variables of one recipient.
pub fn builtins(email: &str, name: Option<&str>, return_path: &str) -> Map<String, Value> {
    let mut address = Map::new();
    address.insert("email".into(), email.into());
    address.insert("name".into(), name.map_or(Value::Null, Value::from));
    let mut out = Map::new();
    out.insert("address".into(), Value::Object(address));
    out.insert("email".into(), email.into());
    out.insert("email_id".into(), email.into());
    out.insert("env_from".into(), return_path.into());
    out.insert("return_path".into(), return_path.into());
    out
}

#[cfg(test)]
pub(super) mod tests {
    use base64::Engine;
    use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
    use serde_json::json;

    use super::*;
    use crate::transmission::address::Address;
    use crate::transmission::content::inline_content;

    /// Runs `f` with a context holding `data` and the built-ins of Zoë <zoe@example.test>.
    pub(crate) fn with_context<T>(data: Value, f: impl FnOnce(&Context<'_>) -> T) -> T {
        let data = data.as_object().cloned().unwrap_or_default();
        let builtins = builtins("zoe@example.test", Some("Zoë"), "");
        let context = Context {
            layers: vec![&data],
            builtins: &builtins,
            dynamic: None,
            snippets: None,
            snippet_calls: Default::default(),
        };
        f(&context)
    }

    pub(crate) fn b64(data: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(data)
    }

    /// Inline content, checked and compiled with substitutions on.
    fn prepared(content: Value) -> Prepared {
        let content = serde_json::from_value(content).expect("a content object");
        Prepared::compile(inline_content(content).expect("valid"), true).expect("compiles")
    }

    fn built(content: Value) -> Vec<u8> {
        let prepared = prepared(content);
        let rendered =
            with_context(json!({"name": "Ann"}), |c| prepared.render(c)).expect("renders");
        let addressing = Addressing {
            message_id: "m1",
            to: Address::from_json(&json!("ann@example.test"))
                .expect("address")
                .shown_in_to(),
        };
        build_mime(&rendered, &addressing).expect("builds")
    }

    /// The MIME types of a multipart part's children.
    fn children(message: &Message<'_>, id: usize) -> Vec<String> {
        let PartType::Multipart(ids) = &message.parts[id].body else {
            panic!("part {id} is not multipart");
        };
        ids.iter()
            .map(|&i| {
                let ct = message.parts[i as usize].content_type().expect("a type");
                format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
            })
            .collect()
    }

    #[test]
    fn attachments_and_inline_images_nest_mixed_related_alternative() {
        let image: Vec<u8> = (0..=255u8).rev().collect();
        let pdf: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let bytes = built(json!({
            "from": "Shop <shop@sender.test>",
            "subject": "Hi {{name}}",
            "text": "Dear {{name}}",
            "html": "<p>Dear {{name}}</p><img src=\"cid:logo.png\">",
            "inline_images": [{"name": "logo.png", "type": "image/png", "data": b64(&image)}],
            "attachments": [{"name": "Résumé d'été, version longue pour vérifier les lignes.pdf",
                             "type": "application/pdf", "data": b64(&pdf)}],
        }));
        let message = MessageParser::default().parse(&bytes).expect("parses back");
        assert_eq!(
            children(&message, 0),
            ["multipart/related", "application/pdf"]
        );
        assert_eq!(
            children(&message, 1),
            ["multipart/alternative", "image/png"]
        );
        assert_eq!(children(&message, 2), ["text/plain", "text/html"]);
        assert_eq!(message.body_text(0).as_deref(), Some("Dear Ann"));
        let image_part = &message.parts[5];
        assert_eq!(image_part.content_id(), Some("logo.png"));
        assert!(image_part
            .content_disposition()
            .is_some_and(|d| d.is_inline()));
        assert_eq!(image_part.contents(), image.as_slice());
        let pdf_part = &message.parts[6];
        assert_eq!(
            pdf_part.attachment_name(),
            Some("Résumé d'été, version longue pour vérifier les lignes.pdf")
        );
        assert_eq!(pdf_part.contents(), pdf.as_slice());
        assert!(bytes.is_ascii(), "a non-ASCII filename is encoded");
        assert!(bytes.split(|&b| b == b'\n').all(|line| line.len() <= 78));
    }

    #[test]
    fn data_can_leave_out_an_optional_address_header() {
        let prepared = prepared(json!({
            "from": "shop@sender.test", "subject": "s", "text": "t",
            "reply_to": "{{help}}", "headers": {"Cc": "{{copy}}"},
        }));
        let build = |data| {
            let rendered = with_context(data, |c| prepared.render(c)).expect("renders");
            let built = build_mime(&rendered, &addressing()).expect("builds");
            let message = MessageParser::default().parse(&built).expect("parses");
            let first = |a: Option<&mail_parser::Address<'_>>| {
                a.and_then(|a| a.first())
                    .and_then(|m| m.address())
                    .map(str::to_string)
            };
            (first(message.reply_to()), first(message.cc()))
        };
        assert_eq!(build(json!({})), (None, None));
        assert_eq!(
            build(json!({"help": "help@sender.test", "copy": "c@example.test"})),
            (
                Some("help@sender.test".to_string()),
                Some("c@example.test".to_string())
            )
        );
    }

    #[test]
    fn layers_without_files_are_left_out() {
        let only_attachment = built(json!({
            "from": "shop@sender.test", "subject": "s", "text": "t",
            "attachments": [{"name": "a \"q\".txt", "type": "text/plain; charset=\"utf-8\"",
                             "data": b64(b"line\nbare\r\n")}],
        }));
        let message = MessageParser::default()
            .parse(&only_attachment)
            .expect("parses");
        assert_eq!(children(&message, 0), ["text/plain", "text/plain"]);
        assert_eq!(message.parts[2].attachment_name(), Some("a \"q\".txt"));
        assert_eq!(message.parts[2].contents(), b"line\nbare\r\n");

        let only_image = built(json!({
            "from": "shop@sender.test", "subject": "s", "html": "<img src=\"cid:i\">",
            "inline_images": [{"name": "i", "type": "image/gif", "data": b64(b"GIF89a")}],
        }));
        let message = MessageParser::default().parse(&only_image).expect("parses");
        assert_eq!(children(&message, 0), ["text/html", "image/gif"]);
        let related = message.parts[0].content_type().expect("a type");
        assert_eq!(related.attribute("type"), Some("text/html"));
    }

    #[test]
    fn no_built_line_is_longer_than_smtp_allows() {
        let prepared = prepared(json!({
            "from": "shop@sender.test", "subject": "{{token}}", "text": "t",
            "headers": {"X-Token": "{{token}}", "X-Words": "{{words}}"},
        }));
        let data = json!({"token": "x".repeat(1200), "words": "word ".repeat(400)});
        let built = with_context(data, |c| {
            Compiled::Inline(Box::new(prepared)).build(c, &addressing())
        });
        let message = String::from_utf8(built.expect("builds").message).expect("UTF-8");
        assert!(message.lines().all(|l| l.len() <= MAX_LINE), "{message}");
        let parsed = MessageParser::default()
            .parse(message.as_bytes())
            .expect("parses");
        assert_eq!(parsed.subject(), Some("x".repeat(1200).as_str()));
    }

    #[test]
    fn data_cannot_leave_a_bare_carriage_return_in_a_body() {
        let prepared = prepared(json!({
            "from": "shop@sender.test", "subject": "s", "text": "a {{{v}}} end",
            "html": "<p>{{v}}</p>",
        }));
        let data = json!({"v": "x\r.\r\nMAIL FROM:<e@x.test>\r\n1\r2\n3"});
        let built = with_context(data, |c| {
            Compiled::Inline(Box::new(prepared)).build(c, &addressing())
        })
        .expect("builds");
        let bytes = &built.message;
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'\r' {
                assert_eq!(bytes.get(i + 1), Some(&b'\n'), "bare CR at {i}");
            }
            if b == b'\n' {
                assert_eq!(bytes[i - 1], b'\r', "bare LF at {i}");
            }
        }
        let parsed = MessageParser::default().parse(bytes).expect("parses");
        let text = parsed.body_text(0).unwrap_or_default();
        assert!(text.starts_with("a x\r\n.\r\nMAIL FROM"), "{text}");
    }

    #[test]
    fn custom_link_attributes_are_removed_from_text() {
        for (text, shown) in [
            (
                "Go https://x.test/?a=1[[data-msys-clicktrack=\"0\"]] now",
                "Go https://x.test/?a=1 now",
            ),
            (
                "http://u.test/[[data-msys-linkname=\"a\"]]\nhttp://v.test/[[data-msys-x=\"b\"]]",
                "http://u.test/\nhttp://v.test/",
            ),
            (
                "[[not ours]] and [[data-msys-open",
                "[[not ours]] and [[data-msys-open",
            ),
        ] {
            assert_eq!(without_link_attributes(text.to_string()), shown);
        }
    }

    #[test]
    fn text_parts_are_encoded_with_crlf_line_ends_whatever_the_encoding() {
        let text = "Åsa Öberg Ärlig\nÅsa Öberg Ärlig\nend";
        let bytes = built(json!({"from": "shop@sender.test", "subject": "s", "text": text}));
        let raw = String::from_utf8(bytes.clone()).expect("ASCII");
        assert!(raw.contains("Content-Transfer-Encoding: base64"), "{raw}");
        let message = MessageParser::default().parse(&bytes).expect("parses");
        let part = message.text_part(0).expect("a text part");
        assert_eq!(part.contents(), text.replace('\n', "\r\n").as_bytes());
    }

    #[test]
    fn non_ascii_display_names_are_encoded_words_outside_quotes() {
        let bytes = built(json!({
            "from": {"email": "shop@sender.test", "name": "Jörg's Shop"},
            "reply_to": "Zoë <help@sender.test>", "subject": "s", "text": "t",
            "headers": {"Cc": "Zoë Lee <zoe@example.test>, \"Smith, Ann\" <ann@example.test>"},
        }));
        let text = String::from_utf8(bytes.clone()).expect("ASCII");
        assert!(
            !text.contains("\"=?"),
            "an encoded word inside quotes: {text}"
        );
        let message = MessageParser::default().parse(&bytes).expect("parses");
        let from = message.from().and_then(|a| a.first()).expect("a From");
        assert_eq!(from.name(), Some("Jörg's Shop"));
        let reply_to = message
            .reply_to()
            .and_then(|a| a.first())
            .expect("a Reply-To");
        assert_eq!(reply_to.name(), Some("Zoë"));
        let cc: Vec<_> = message
            .cc()
            .map(|a| a.iter().map(|m| (m.name(), m.address())).collect())
            .unwrap_or_default();
        assert_eq!(
            cc,
            [
                (Some("Zoë Lee"), Some("zoe@example.test")),
                (Some("Smith, Ann"), Some("ann@example.test"))
            ]
        );
    }

    #[test]
    fn a_templated_from_must_render_to_an_address() {
        // The object form and the string form take a templated address alike.
        for from in [
            json!({"email": "{{sender}}", "name": "Shop"}),
            json!("Shop <{{sender}}>"),
        ] {
            let prepared = prepared(json!({"from": from, "subject": "s", "text": "t"}));
            let rendered = with_context(json!({"sender": "shop@sender.test"}), |c| {
                prepared.render(c)
            });
            let built = build_mime(&rendered.expect("renders"), &addressing()).expect("builds");
            let message = MessageParser::default().parse(&built).expect("parses");
            let from = message.from().and_then(|a| a.first()).expect("a From");
            assert_eq!(
                (from.name(), from.address()),
                (Some("Shop"), Some("shop@sender.test"))
            );
        }
        let prepared = prepared(json!({
            "from": {"email": "{{sender}}", "name": "Shop"}, "subject": "s", "text": "t",
        }));
        for bad in [
            "",
            "not-an-address",
            "a@b.test>, <c@d.test",
            "a@b.test> SMTPUTF8",
        ] {
            let rendered = with_context(json!({"sender": bad}), |c| prepared.render(c));
            let error = build_mime(&rendered.expect("renders"), &addressing());
            assert!(error.is_err_and(|e| e.starts_with("from: ")), "{bad:?}");
        }
    }

    #[test]
    fn attachments_count_toward_the_rendered_size() {
        let prepared = prepared(json!({
            "from": "shop@sender.test", "subject": "s", "text": "{{{big}}}",
            "attachments": [{"name": "a.bin", "type": "application/octet-stream",
                             "data": b64(&vec![0u8; 12_000_000])}],
        }));
        let data = json!({"big": "x".repeat(9_000_000)});
        let rendered = with_context(data, |c| prepared.render(c)).expect("renders");
        let error = build_mime(&rendered, &addressing()).expect_err("too big");
        // The subject and the From address count too.
        assert!(error.contains("21000017 bytes"), "{error}");
    }

    fn addressing() -> Addressing<'static> {
        Addressing {
            message_id: "m1",
            to: Address::from_json(&json!("ann@example.test"))
                .expect("address")
                .shown_in_to(),
        }
    }

    #[test]
    fn content_over_the_limit_names_it() {
        let data = b64(&vec![0u8; MAX_RENDERED]);
        let content = serde_json::from_value(json!({
            "from": "shop@sender.test", "subject": "s", "text": "over by these bytes",
            "attachments": [{"name": "big.bin", "type": "application/octet-stream", "data": data}],
        }))
        .expect("a content object");
        let error = inline_content(content).err().expect("refused");
        assert_eq!(error.status().as_u16(), 422);
        let description = error.into_object()["description"].to_string();
        assert!(
            description.contains("limit of 20000000 bytes"),
            "{description}"
        );
    }

    #[test]
    fn rendered_headers_count_toward_the_limits() {
        let single = prepared(json!({
            "from": "shop@sender.test", "subject": "{{{s}}}", "text": "t",
            "headers": {"X-A": "{{{a}}}", "X-B": "{{{b}}}"},
        }));
        let build = |data| {
            let rendered = with_context(data, |c| single.render(c)).expect("renders");
            build_mime(&rendered, &addressing())
        };
        let one = "x".repeat(MAX_HEADER + 1);
        let error = build(json!({"s": one})).expect_err("one header too long");
        assert!(
            error.contains("over the limit of 102400 for one header"),
            "{error}"
        );
        // Many headers, each within its limit, still count toward the message's.
        let mut data = serde_json::Map::new();
        let mut headers = serde_json::Map::new();
        for i in 0..=MAX_RENDERED / MAX_HEADER {
            data.insert(format!("h{i}"), "x".repeat(MAX_HEADER).into());
            headers.insert(format!("X-H{i}"), format!("{{{{{{h{i}}}}}}}").into());
        }
        let many = prepared(json!({
            "from": "shop@sender.test", "subject": "s", "text": "t", "headers": headers,
        }));
        let rendered = with_context(data.into(), |c| many.render(c)).expect("renders");
        let error = build_mime(&rendered, &addressing()).expect_err("too big in all");
        assert!(error.contains("content and headers"), "{error}");
    }

    #[test]
    fn ascii_headers_are_written_as_given_whatever_their_length() {
        let token = "A".repeat(90);
        let unsubscribe = format!("<https://sender.test/unsubscribe?u={token}&c=1>");
        let references = format!("<{token}@sender.test> <{token}.2@sender.test>");
        let cc = "carl.longname@example.test,dora.longname@example.test,eve.longname@example.test";
        let subject = format!("Your code {token}");
        let bytes = built(json!({
            "from": "shop@sender.test", "subject": subject, "text": "t",
            "headers": {"List-Unsubscribe": unsubscribe, "References": references, "CC": cc},
        }));
        let text = String::from_utf8(bytes.clone()).expect("ASCII");
        assert!(!text.contains("=?"), "an encoded word: {text}");
        let message = MessageParser::default().parse(&bytes).expect("parses");
        let unfolded = |name: &str| {
            let raw = message.header_raw(name).unwrap_or_default();
            raw.replace("\r\n", "").trim().to_string()
        };
        assert_eq!(unfolded("List-Unsubscribe"), unsubscribe);
        assert_eq!(unfolded("References"), references);
        assert_eq!(unfolded("CC"), cc);
        assert_eq!(message.subject(), Some(subject.as_str()));
    }
}
