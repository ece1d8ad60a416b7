//! Message generation: the transmission's content compiled once, then rendered and built into
//! an RFC 5322 message for each recipient.

use mail_builder::headers::text::Text;
use mail_builder::MessageBuilder;
use serde_json::{Map, Value};
use sluice_template::{Context, Part, Template};

use crate::error::ApiError;

/// Largest rendered content of one message: the contract's 20 MB, applied after substitution
/// too, so a small template cannot render into a huge message.
const MAX_RENDERED: usize = 20 * 1000 * 1000;

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
        Ok(Prepared {
            from_email: field("from", &content.from_email, Some(Part::Header))?,
            from_name: content
                .from_name
                .map(|n| field("from", &n, Some(Part::Header)))
                .transpose()?,
            subject: field("Header:Subject", &content.subject, Some(Part::Header))?,
            reply_to: content
                .reply_to
                .map(|r| field("reply_to", &r, Some(Part::Header)))
                .transpose()?,
            headers: compile_headers(content.headers)?,
            text: body("text", content.text, Part::Text)?,
            html: body("html", content.html, Part::Html)?,
            amp_html: body("amp_html", content.amp_html, Part::AmpHtml)?,
            cc,
        })
    }

    /// Whether the content has an AMP part.
    pub fn has_amp(&self) -> bool {
        self.amp_html.is_some()
    }

    /// Whether the `CC` header names `email`: a copy to it is a cc, otherwise a bcc.
    pub fn cc_mentions(&self, email: &str) -> bool {
        self.cc.as_ref().is_some_and(|cc| {
            cc.to_ascii_lowercase()
                .contains(&email.to_ascii_lowercase())
        })
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
        Ok(Rendered {
            from_email: render(&self.from_email)?,
            from_name: optional(&self.from_name)?,
            subject: render(&self.subject)?,
            reply_to: optional(&self.reply_to)?,
            headers,
            text: optional(&self.text)?,
            html: optional(&self.html)?,
            amp_html: optional(&self.amp_html)?,
        })
    }
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
                .map_err(|e| syntax_error("headers", e.line, &format!("{name}: {}", e.message)))?;
            Ok((name, template))
        })
        .collect()
}

fn syntax_error(part: &str, line: u32, message: &str) -> ApiError {
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
    /// The mailbox shown in the `To:` header.
    pub to: super::address::Address,
}

/// Builds the RFC 5322 message. Fails when rendered data would put a line break into a header,
/// which would let recipient data inject headers.
pub fn build_mime(rendered: &Rendered, addressing: &Addressing<'_>) -> Result<Vec<u8>, String> {
    for (name, value) in header_values(rendered) {
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(format!(
                "{name} contains a line break or control character after substitution"
            ));
        }
    }
    let parts = [&rendered.text, &rendered.html, &rendered.amp_html];
    if parts
        .iter()
        .any(|p| p.as_ref().is_some_and(|p| p.contains('\0')))
    {
        return Err("the content contains a NUL character, which SMTP cannot carry".into());
    }
    let size: usize = parts
        .iter()
        .map(|p| p.as_ref().map_or(0, String::len))
        .sum();
    if size > MAX_RENDERED {
        return Err(format!(
            "the rendered content is {size} bytes, over the limit of {MAX_RENDERED}"
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
        .to(mail_builder::headers::address::Address::new_address(
            addressing.to.name.as_deref(),
            addressing.to.email.as_str(),
        ))
        .subject(Text::new(rendered.subject.as_str()))
        .message_id(format!("{}@{}", addressing.message_id, domain));
    if let Some(reply_to) = &rendered.reply_to {
        builder = match super::address::parse_mailbox(reply_to) {
            Ok(mailbox) => builder.reply_to(mail_builder::headers::address::Address::new_address(
                mailbox.name,
                mailbox.email,
            )),
            Err(_) => builder.header("Reply-To", Text::new(reply_to.as_str())),
        };
    }
    for (name, value) in &rendered.headers {
        builder = builder.header(name.as_str(), Text::new(value.as_str()));
    }
    builder = with_parts(builder, rendered);
    builder
        .write_to_vec()
        .map_err(|e| format!("building the message failed: {e}"))
}

fn with_parts<'x>(builder: MessageBuilder<'x>, rendered: &'x Rendered) -> MessageBuilder<'x> {
    use mail_builder::mime::MimePart;
    let mut parts = Vec::new();
    if let Some(text) = &rendered.text {
        parts.push(MimePart::new("text/plain", text.as_str()));
    }
    if let Some(amp) = &rendered.amp_html {
        parts.push(MimePart::new("text/x-amp-html", amp.as_str()));
    }
    if let Some(html) = &rendered.html {
        parts.push(MimePart::new("text/html", html.as_str()));
    }
    match parts.len() {
        0 => builder.text_body(""),
        1 => builder.body(parts.remove(0)),
        _ => builder.body(MimePart::new("multipart/alternative", parts)),
    }
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
    out.insert("env_from".into(), return_path.into());
    out.insert("return_path".into(), return_path.into());
    out
}
