//! Raw MIME content (`content.email_rfc822`): the client's own message, sent as written except
//! where substitution applies, which is the top-level header values and the first text/plain,
//! text/html and text/x-amp-html parts that are not attachments.
//!
//! The message is parsed once per transmission. Compiling records the byte ranges of the
//! top-level header fields and of each chosen part whose body holds substitutions; rendering
//! copies the original bytes between those ranges and writes the rendered pieces in their place.
//! A rendered part keeps its own header fields but gets a new `Content-Type` (with
//! `charset=utf-8`, since the body was decoded) and a new `Content-Transfer-Encoding`.

use std::borrow::Cow;
use std::ops::Range;

use mail_builder::headers::content_type::ContentType as BuiltContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::Header as _;
use mail_builder::mime::MimePart;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::{HeaderName, Message, MessageParser, MessagePart, MimeHeaders, PartType};
use sluice_template::{Context, Part, Template};

use super::address::{address_list, check_email, is_address_field};
use super::content::{is_unstructured, repeated_single_instance};
use super::generate::{
    canonical_crlf, cc_mentions, check_header_value, check_line_lengths, crlf, header_value,
    syntax_error, Built,
};
use super::{check_len, MAX_CONTENT};
use crate::error::ApiError;

/// The request field, for error messages.
const FIELD: &str = "content.email_rfc822";

/// A raw message compiled for rendering.
pub struct RawContent {
    /// The message with every line ending made CRLF.
    source: String,
    /// The top-level header fields, in order.
    headers: Vec<RawHeader>,
    /// Where the top-level body starts, after the blank line.
    body_start: usize,
    /// The chosen parts whose bodies hold substitutions, in source order.
    parts: Vec<TextPart>,
    has_date: bool,
    has_message_id: bool,
    has_mime_version: bool,
    has_amp: bool,
    /// The `Cc` header as written, to tell cc copies from bcc ones.
    cc: Option<String>,
}

/// One top-level header field.
struct RawHeader {
    name: String,
    /// The whole field in the source, from its name to its last line break.
    field: Range<usize>,
    /// The value compiled, when it holds substitutions; otherwise the field is copied.
    template: Option<Template>,
}

/// A chosen text part whose body holds substitutions.
struct TextPart {
    /// `text`, `html` or `amp_html`, for error messages.
    name: &'static str,
    /// The part's header fields that are kept: all but `Content-Type` and
    /// `Content-Transfer-Encoding`. Empty for the root part, whose fields are the message's.
    kept: Vec<Range<usize>>,
    /// From the part's first header field to the end of its body.
    range: Range<usize>,
    content_type: BuiltContentType<'static>,
    template: Template,
    is_root: bool,
}

impl RawContent {
    /// Parses and compiles a raw message. A message without a From address, or one that is not
    /// a message at all, is 422; a syntax error in a substitution is 422 `3000`.
    pub fn compile(raw: &str) -> Result<RawContent, ApiError> {
        check_len(FIELD, raw.len(), MAX_CONTENT)?;
        if raw.contains('\0') {
            return Err(ApiError::invalid(format!(
                "{FIELD} contains a NUL character, which SMTP cannot carry"
            )));
        }
        let source = crlf(raw);
        let message = MessageParser::default()
            .parse(source.as_bytes())
            .filter(|m| !m.parts.is_empty())
            .ok_or_else(|| ApiError::invalid(format!("{FIELD} is not a MIME message")))?;
        let root = &message.parts[0];
        check_from(&message, &source)?;
        let names = root.headers.iter().map(|h| h.name.as_str());
        if let Some(name) = repeated_single_instance(names) {
            return Err(ApiError::invalid(format!(
                "{FIELD} has more than one {name} header; a message holds at most one"
            )));
        }
        // Header fields are copied as written; a body line too long is refused when rendered,
        // as substitution may re-encode the part it is in.
        let header_block = source.get(..root.offset_body as usize).unwrap_or_default();
        check_header_block(header_block).map_err(|e| ApiError::invalid(format!("{FIELD}: {e}")))?;
        check_multiparts(&message, &source)
            .map_err(|e| ApiError::invalid(format!("{FIELD}: {e}")))?;
        // Bcc names blind copies' recipients: it is for the sender's eyes, never sent.
        let headers = root
            .headers
            .iter()
            .filter(|h| !matches!(h.name, HeaderName::Bcc | HeaderName::ResentBcc))
            .map(|h| compile_header(&source, h))
            .collect::<Result<Vec<_>, _>>()?;
        let (parts, has_amp) = text_parts(&message)?;
        let has = |name: HeaderName<'_>| root.headers.iter().any(|h| h.name == name);
        let cc = root
            .headers
            .iter()
            .find(|h| h.name == HeaderName::Cc)
            .map(|h| field_value(&source, h));
        Ok(RawContent {
            has_date: has(HeaderName::Date),
            has_message_id: has(HeaderName::MessageId),
            has_mime_version: has(HeaderName::MimeVersion),
            body_start: root.offset_body as usize,
            headers,
            parts,
            has_amp,
            cc,
            source,
        })
    }

    /// Whether the message has a text/x-amp-html part.
    pub fn has_amp(&self) -> bool {
        self.has_amp
    }

    /// Whether the `Cc` header names `email`.
    pub fn cc_mentions(&self, email: &str) -> bool {
        cc_mentions(self.cc.as_deref(), email)
    }

    /// Renders the message for one recipient. Fails when data would put a line break into a
    /// header or leave the From header without an address.
    pub fn render(&self, context: &Context<'_>, message_id: &str) -> Result<Built, String> {
        self.assemble(context, Some(message_id))
    }

    /// Renders the message for a preview: as [`RawContent::render`] does, but without adding
    /// the Date and Message-ID that only a message being sent needs.
    pub fn preview(&self, context: &Context<'_>) -> Result<String, String> {
        let built = self.assemble(context, None)?;
        Ok(String::from_utf8_lossy(&built.message).into_owned())
    }

    /// The rendered message; with a message id, Date and Message-ID are added when missing.
    fn assemble(&self, context: &Context<'_>, message_id: Option<&str>) -> Result<Built, String> {
        let mut out = Vec::with_capacity(self.source.len() + 512);
        let root_rendered = self.parts.first().is_some_and(|p| p.is_root);
        for header in &self.headers {
            // A rendered root part writes its own Content-Type and Content-Transfer-Encoding.
            if !(root_rendered && replaced_in_part(&header.name)) {
                self.write_header(&mut out, header, context)?;
            }
        }
        let (from_email, subject) = from_and_subject(&out)?;
        if let Some(message_id) = message_id {
            self.write_missing(&mut out, message_id, &from_email);
        }
        if root_rendered {
            // The rendered root part gets MIME encoding headers, which mean nothing without it.
            if !self.has_mime_version {
                out.extend_from_slice(b"MIME-Version: 1.0\r\n");
            }
            self.write_part(&mut out, &self.parts[0], context)?;
        } else {
            out.extend_from_slice(b"\r\n");
            self.write_body(&mut out, context)?;
        }
        if out.len() > MAX_CONTENT {
            return Err(format!(
                "the rendered message is {} bytes, over the limit of {MAX_CONTENT}",
                out.len()
            ));
        }
        Ok(Built {
            message: out,
            from_email,
            subject,
        })
    }

    /// The top-level body: original bytes, with each chosen part replaced by its rendering.
    fn write_body(&self, out: &mut Vec<u8>, context: &Context<'_>) -> Result<(), String> {
        let mut cursor = self.body_start;
        for part in &self.parts {
            out.extend_from_slice(self.slice(cursor..part.range.start)?);
            self.write_part(out, part, context)?;
            cursor = part.range.end;
        }
        out.extend_from_slice(self.slice(cursor..self.source.len())?);
        Ok(())
    }

    fn write_header(
        &self,
        out: &mut Vec<u8>,
        header: &RawHeader,
        context: &Context<'_>,
    ) -> Result<(), String> {
        let Some(template) = &header.template else {
            out.extend_from_slice(self.slice(header.field.clone())?);
            return Ok(());
        };
        let name = &header.name;
        let value = template
            .render(context)
            .map_err(|e| format!("header {name}: {}", e.message))?;
        check_header_value(name, &value)?;
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        let indent = name.len() + 2;
        if !value.is_ascii() && is_address_field(name) {
            // Encoding the whole value would hide its addresses inside an encoded word.
            address_list(name, &value)
                .map_err(|e| format!("header {e}, after substitution"))?
                .write_header(out, indent);
        } else {
            header_value(name, &value).write_header(out, indent);
        }
        Ok(())
    }

    /// Date and Message-ID, when the message has none.
    fn write_missing(&self, out: &mut Vec<u8>, message_id: &str, from_email: &str) {
        if !self.has_date {
            out.extend_from_slice(format!("Date: {}\r\n", Date::now().to_rfc822()).as_bytes());
        }
        if !self.has_message_id {
            let domain = from_email.rsplit_once('@').map_or("localhost", |(_, d)| d);
            out.extend_from_slice(format!("Message-ID: <{message_id}@{domain}>\r\n").as_bytes());
        }
    }

    fn write_part(
        &self,
        out: &mut Vec<u8>,
        part: &TextPart,
        context: &Context<'_>,
    ) -> Result<(), String> {
        let body = part
            .template
            .render(context)
            .map(|text| match canonical_crlf(&text) {
                Cow::Borrowed(_) => text,
                Cow::Owned(canonical) => canonical,
            })
            .map_err(|e| format!("{}: {}", part.name, e.message))?;
        if body.contains('\0') {
            return Err("the content contains a NUL character, which SMTP cannot carry".into());
        }
        for field in &part.kept {
            out.extend_from_slice(self.slice(field.clone())?);
        }
        MimePart::new(part.content_type.clone(), body).write_part(out);
        Ok(())
    }

    fn slice(&self, range: Range<usize>) -> Result<&[u8], String> {
        self.source
            .as_bytes()
            .get(range)
            .ok_or_else(|| "the raw message's parts overlap".to_string())
    }
}

/// Header fields are copied as written, so each must be one the receiver reads as written: a
/// name and a colon, or a folded continuation, within SMTP's line length. (A body line too long
/// is refused when rendered, as substitution may re-encode the part it is in.)
fn check_header_block(block: &str) -> Result<(), String> {
    check_line_lengths(block.as_bytes())?;
    let lines = block.split("\r\n").take_while(|line| !line.is_empty());
    for (index, line) in lines.enumerate() {
        let folded = line.starts_with([' ', '\t']);
        let name = line.split_once(':').map(|(name, _)| name.trim_end());
        let named = name.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic()));
        if !(named || folded && index > 0) {
            return Err(format!(
                "header line {} is not a field (a name, then a colon) nor a continuation",
                index + 1
            ));
        }
    }
    Ok(())
}

/// Every multipart part has a boundary, and its closing delimiter is in the message: otherwise
/// the parser guesses where parts end, and the parts chosen for substitution may be wrong.
fn check_multiparts(message: &Message<'_>, source: &str) -> Result<(), String> {
    for part in &message.parts {
        let Some(ct) = part.content_type() else {
            continue;
        };
        if !ct.ctype().eq_ignore_ascii_case("multipart") {
            continue;
        }
        let kind = format!("multipart/{}", ct.subtype().unwrap_or(""));
        let boundary = ct
            .attribute("boundary")
            .filter(|b| !b.is_empty())
            .ok_or_else(|| format!("a {kind} part has no boundary"))?;
        if !source.contains(&format!("--{boundary}--")) {
            return Err(format!(
                "the {kind} part with boundary {boundary:?} is never closed"
            ));
        }
    }
    Ok(())
}

/// A From header is required; unless it holds substitutions, it must name an address.
fn check_from(message: &Message<'_>, source: &str) -> Result<(), ApiError> {
    let root = &message.parts[0];
    let mut fields = root.headers.iter().filter(|h| h.name == HeaderName::From);
    let from = fields
        .next()
        .ok_or_else(|| ApiError::missing(format!("{FIELD} has no From header")))?;
    if fields.next().is_some() {
        return Err(ApiError::invalid(format!(
            "{FIELD} has more than one From header"
        )));
    }
    if field_value(source, from).contains("{{") {
        return Ok(());
    }
    from_address(message.from())
        .map(drop)
        .map_err(|e| ApiError::invalid(format!("{FIELD}: {e}")))
}

/// The one address of a From header: it picks the DKIM key and becomes the envelope sender.
fn from_address(from: Option<&mail_parser::Address<'_>>) -> Result<String, String> {
    let mut addresses = from.into_iter().flat_map(|a| a.iter());
    let first = addresses.next().and_then(|a| a.address());
    let Some(first) = first.filter(|a| a.contains('@')) else {
        return Err("the From header has no address".into());
    };
    if addresses.next().is_some() {
        return Err("the From header names more than one address".into());
    }
    check_email(first).map_err(|e| format!("the From header: {e}"))?;
    Ok(first.to_string())
}

fn compile_header(source: &str, header: &mail_parser::Header<'_>) -> Result<RawHeader, ApiError> {
    let field = header.offset_field as usize..header.offset_end as usize;
    let text = source.get(field.clone()).unwrap_or_default();
    let name = text
        .split(':')
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_string();
    let mut value = field_value(source, header);
    let template = if replaced_in_part(&name) || !value.contains("{{") {
        None
    } else {
        if is_unstructured(&name) && value.contains("=?") {
            // The rendered value is encoded anew, so encoded words already in it are decoded
            // first; otherwise a reader would see them as written.
            value = decoded_text(&value);
        }
        let part = format!("Header:{name}");
        let template = Template::compile(&value, Part::Header)
            .map_err(|e| syntax_error(&part, e.line, &e.message))?;
        Some(template).filter(|t| !t.is_static())
    };
    Ok(RawHeader {
        name,
        field,
        template,
    })
}

/// Free text with its RFC 2047 encoded words decoded, as mail-parser reads a Subject.
fn decoded_text(value: &str) -> String {
    let field = format!("Subject: {value}\r\n\r\n");
    MessageParser::default()
        .parse_headers(field.as_bytes())
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_else(|| value.to_string())
}

/// A header field's value as written, unfolded and trimmed.
fn field_value(source: &str, header: &mail_parser::Header<'_>) -> String {
    let range = header.offset_start as usize..header.offset_end as usize;
    let raw = source.get(range).unwrap_or_default();
    raw.replace("\r\n ", " ")
        .replace("\r\n\t", "\t")
        .trim()
        .to_string()
}

/// The fields that describe a part's encoding: substitution never touches them, and a
/// rendered part writes them anew.
fn replaced_in_part(name: &str) -> bool {
    name.eq_ignore_ascii_case("Content-Type")
        || name.eq_ignore_ascii_case("Content-Transfer-Encoding")
}

/// The first non-attachment text/plain, text/html and text/x-amp-html parts, kept when their
/// bodies hold substitutions; also whether an AMP part exists.
fn text_parts(message: &Message<'_>) -> Result<(Vec<TextPart>, bool), ApiError> {
    let mut seen = Vec::new();
    let mut parts = Vec::new();
    for (id, part) in message.parts.iter().enumerate() {
        let Some((kind, name)) = text_kind(part) else {
            continue;
        };
        if seen.contains(&kind) {
            continue;
        }
        seen.push(kind);
        if let Some(part) = compile_part(part, kind, name, id == 0)? {
            parts.push(part);
        }
    }
    Ok((parts, seen.contains(&Part::AmpHtml)))
}

fn text_kind(part: &MessagePart<'_>) -> Option<(Part, &'static str)> {
    let disposition = part.content_disposition().map(|d| d.ctype());
    if disposition.is_some_and(|d| d.eq_ignore_ascii_case("attachment")) {
        return None;
    }
    // A part without Content-Type is text/plain (RFC 2045, section 5.2).
    let (kind, subtype) = part.content_type().map_or(("text", "plain"), |ct| {
        (ct.ctype(), ct.subtype().unwrap_or(""))
    });
    if !kind.eq_ignore_ascii_case("text") {
        return None;
    }
    match subtype.to_ascii_lowercase().as_str() {
        "plain" => Some((Part::Text, "text")),
        "html" => Some((Part::Html, "html")),
        "x-amp-html" => Some((Part::AmpHtml, "amp_html")),
        _ => None,
    }
}

fn compile_part(
    part: &MessagePart<'_>,
    kind: Part,
    name: &'static str,
    is_root: bool,
) -> Result<Option<TextPart>, ApiError> {
    let (PartType::Text(text) | PartType::Html(text)) = &part.body else {
        return Ok(None);
    };
    // A body the parser could not decode faithfully is sent as written, without substitution:
    // rendering and re-encoding a wrong decoding would damage it.
    if !decoded_faithfully(part, text) || !text.contains("{{") {
        return Ok(None);
    }
    let template =
        Template::compile(text, kind).map_err(|e| syntax_error(name, e.line, &e.message))?;
    if template.is_static() {
        return Ok(None);
    }
    let kept = if is_root {
        Vec::new()
    } else {
        let names = |h: &&mail_parser::Header<'_>| {
            !matches!(
                h.name,
                HeaderName::ContentType | HeaderName::ContentTransferEncoding
            )
        };
        let range = |h: &mail_parser::Header<'_>| h.offset_field as usize..h.offset_end as usize;
        part.headers.iter().filter(names).map(range).collect()
    };
    Ok(Some(TextPart {
        name,
        kept,
        range: part.offset_header as usize..part.offset_end as usize,
        content_type: utf8_content_type(part),
        template,
        is_root,
    }))
}

/// Whether the parser's decoding of a text part is the text as written. It is not when the
/// transfer encoding was broken, when the charset is one the parser does not know (it then
/// reads the bytes as UTF-8), or when bytes said to be UTF-8 (or unlabelled) were not.
fn decoded_faithfully(part: &MessagePart<'_>, text: &str) -> bool {
    if part.is_encoding_problem {
        return false;
    }
    let charset = part.content_type().and_then(|ct| ct.attribute("charset"));
    match charset {
        Some(charset) if charset_decoder(charset.as_bytes()).is_some() => true,
        Some(charset) if !is_utf8_label(charset) => false,
        // UTF-8 is decoded lossily: a replacement character may stand for invalid bytes.
        _ => !text.contains('\u{FFFD}'),
    }
}

/// Whether a charset label names UTF-8 (`utf-8`, `UTF8`, `unicode-1-1-utf-8`, ...).
fn is_utf8_label(charset: &str) -> bool {
    let letters: String = charset
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    letters.ends_with("utf8")
}

/// The part's Content-Type with its parameters, but `charset=utf-8`.
fn utf8_content_type(part: &MessagePart<'_>) -> BuiltContentType<'static> {
    let ct = part.content_type();
    let essence = ct.map_or_else(
        || "text/plain".to_string(),
        |ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("plain")),
    );
    let mut built = BuiltContentType::new(essence.to_ascii_lowercase());
    for attribute in ct.and_then(|ct| ct.attributes()).unwrap_or_default() {
        if !attribute.name.eq_ignore_ascii_case("charset") {
            built = built.attribute(attribute.name.to_string(), attribute.value.to_string());
        }
    }
    built.attribute("charset", "utf-8")
}

/// The From address and the decoded subject of a rendered header block.
fn from_and_subject(headers: &[u8]) -> Result<(String, String), String> {
    let parsed = MessageParser::default().parse_headers(headers);
    let parsed = parsed.as_ref();
    let from = from_address(parsed.and_then(|m| m.from()))?;
    let subject = parsed.and_then(|m| m.subject()).unwrap_or_default();
    Ok((from, subject.to_string()))
}

#[cfg(test)]
mod tests {
    use mail_parser::MessageParser;
    use serde_json::{json, Value};

    use super::*;
    use crate::transmission::generate::tests::with_context;
    use crate::transmission::generate::{Addressing, Compiled};

    const MULTIPART: &str = "From: Shop <shop@sender.test>\r\n\
        To: \"{{address.name}}\" <{{address.email}}>\r\n\
        Subject: Hello {{name}}\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
        \r\n\
        --outer\r\n\
        Content-Type: multipart/alternative; boundary=\"inner\"\r\n\
        \r\n\
        --inner\r\n\
        Content-Type: text/plain; charset=iso-8859-1; format=flowed\r\n\
        Content-Transfer-Encoding: quoted-printable\r\n\
        Content-Language: fr\r\n\
        \r\n\
        Ch=E8re {{name}},\r\n\
        --inner\r\n\
        Content-Type: text/html\r\n\
        \r\n\
        <p>Dear {{name}}</p>\r\n\
        --inner--\r\n\
        --outer\r\n\
        Content-Type: text/plain\r\n\
        Content-Disposition: attachment; filename=\"notes.txt\"\r\n\
        \r\n\
        left as {{name}} wrote it\r\n\
        --outer\r\n\
        Content-Type: application/octet-stream\r\n\
        Content-Transfer-Encoding: base64\r\n\
        \r\n\
        AAEC/w==\r\n\
        --outer--\r\n";

    fn render(raw: &str, data: Value) -> Result<Built, String> {
        let compiled = RawContent::compile(raw).expect("compiles");
        with_context(data, |context| compiled.render(context, "m1"))
    }

    fn description(raw: &str) -> String {
        let error = RawContent::compile(raw).err().expect("refused");
        assert_eq!(error.status().as_u16(), 422);
        error.into_object()["description"].to_string()
    }

    #[test]
    fn substitutes_headers_and_first_text_parts_only() {
        let built = render(MULTIPART, json!({"name": "Zoë"})).expect("renders");
        let message = MessageParser::default()
            .parse(&built.message)
            .expect("parses");
        assert_eq!(message.subject(), Some("Hello Zoë"));
        assert_eq!(built.subject, "Hello Zoë");
        assert_eq!(built.from_email, "shop@sender.test");
        let to = message.to().and_then(|a| a.first()).expect("a To address");
        assert_eq!(
            (to.name(), to.address()),
            (Some("Zoë"), Some("zoe@example.test"))
        );
        assert_eq!(message.body_text(0).as_deref(), Some("Chère Zoë,"));
        assert_eq!(message.body_html(0).as_deref(), Some("<p>Dear Zoë</p>"));
        let text_part = &message.parts[message.text_body[0] as usize];
        assert_eq!(text_part.content_language().as_text(), Some("fr"));
        let text_type = text_part.content_type().expect("a type");
        assert_eq!(text_type.attribute("format"), Some("flowed"));
        assert_eq!(text_type.attribute("charset"), Some("utf-8"));

        // The attachments pass through byte for byte, substitutions and all.
        let output = String::from_utf8(built.message).expect("UTF-8");
        let attachments = &MULTIPART[MULTIPART
            .find("--outer\r\nContent-Type: text/plain")
            .expect("x")..];
        assert!(output.ends_with(attachments), "{output}");
        assert!(output.contains("Date: "));
        assert!(output.contains("Message-ID: <m1@sender.test>\r\n"));
        assert!(output.lines().all(|line| line.is_ascii()), "{output}");
    }

    #[test]
    fn a_preview_renders_without_adding_headers() {
        let raw = "From: a@b.test\nSubject: Hi {{name}}\n\nDear {{name}}\n";
        let compiled = RawContent::compile(raw).expect("compiles");
        let preview = with_context(json!({"name": "Ann"}), |context| compiled.preview(context))
            .expect("renders");
        assert!(
            preview.starts_with("From: a@b.test\r\nSubject: Hi Ann\r\n"),
            "{preview}"
        );
        assert!(preview.contains("Dear Ann"), "{preview}");
        assert!(
            !preview.contains("Date:") && !preview.contains("Message-ID:"),
            "{preview}"
        );
    }

    #[test]
    fn bare_line_endings_become_crlf() {
        let raw = "From: a@b.test\nSubject: s\r\rbody {{name}}\nline\rend\n";
        let built = render(raw, json!({"name": "x\ny"})).expect("renders");
        let bytes = &built.message;
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                b'\n' => assert_eq!(bytes[i - 1], b'\r', "bare LF at {i}"),
                b'\r' => assert_eq!(bytes.get(i + 1), Some(&b'\n'), "bare CR at {i}"),
                _ => {}
            }
        }
        let message = MessageParser::default().parse(bytes).expect("parses");
        assert_eq!(
            message.body_text(0).as_deref(),
            Some("body x\r\ny\r\nline\r\nend\r\n")
        );
    }

    #[test]
    fn a_single_part_message_is_rewritten_whole() {
        let raw = "From: a@b.test\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\
            Message-ID: <own@b.test>\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
            Content-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9 {{name}}\r\n";
        let built = render(raw, json!({"name": "Zoë"})).expect("renders");
        let output = String::from_utf8(built.message.clone()).expect("UTF-8");
        assert_eq!(output.matches("Content-Type:").count(), 1, "{output}");
        assert_eq!(
            output.matches("Content-Transfer-Encoding:").count(),
            1,
            "{output}"
        );
        assert_eq!(output.matches("Date:").count(), 1, "{output}");
        assert!(output.contains("Message-ID: <own@b.test>"), "{output}");
        let message = MessageParser::default()
            .parse(&built.message)
            .expect("parses");
        assert_eq!(message.body_text(0).as_deref(), Some("Café Zoë\r\n"));
    }

    #[test]
    fn a_message_without_substitutions_passes_through() {
        let raw = "From: a@b.test\r\nDate: x\r\nMessage-ID: <i@b>\r\n\r\n.dot line\r\n";
        let built = render(raw, json!({})).expect("renders");
        assert_eq!(built.message, raw.as_bytes());
    }

    #[test]
    fn a_message_without_a_from_address_is_refused() {
        assert!(description("").contains("is not a MIME message"));
        assert!(description("just some text").contains("has no From header"));
        assert!(description("Subject: s\r\n\r\nbody").contains("has no From header"));
        assert!(description("From: nobody\r\n\r\nbody").contains("has no address"));
        assert!(description("From: a@b.test\r\n\r\n\0").contains("NUL"));
    }

    #[test]
    fn a_syntax_error_names_the_part() {
        let error = RawContent::compile("From: a@b.test\r\nContent-Type: text/html\r\n\r\n{{if}}")
            .err()
            .expect("refused");
        let body = error.into_object();
        assert_eq!(
            (body["code"].as_str(), body["part"].as_str()),
            (Some("3000"), Some("html"))
        );
    }

    #[test]
    fn a_part_in_an_unknown_charset_is_sent_as_written() {
        let raw = "From: a@b.test\r\nSubject: Hi {{name}}\r\n\
            Content-Type: text/plain; charset=x-made-up\r\n\r\nDear {{name}}\r\n";
        let built = render(raw, json!({"name": "Ann"})).expect("renders");
        let output = String::from_utf8(built.message).expect("UTF-8");
        assert!(output.contains("Subject: Hi Ann\r\n"), "{output}");
        assert!(output.contains("charset=x-made-up\r\n"), "{output}");
        assert!(output.ends_with("\r\n\r\nDear {{name}}\r\n"), "{output}");

        // Bytes that are not the UTF-8 they claim to be are not decoded and re-encoded either.
        let invalid = "From: a@b.test\r\nContent-Type: text/plain; charset=utf-8\r\n\
            Content-Transfer-Encoding: quoted-printable\r\n\r\n=FF {{name}}\r\n";
        let built = render(invalid, json!({"name": "Ann"})).expect("renders");
        let output = String::from_utf8(built.message).expect("UTF-8");
        assert!(output.ends_with("\r\n\r\n=FF {{name}}\r\n"), "{output}");

        // A charset the parser knows is decoded, substituted and sent as UTF-8.
        let known = "From: a@b.test\r\nContent-Type: text/plain; charset=windows-1252\r\n\
            Content-Transfer-Encoding: quoted-printable\r\n\r\n=80 {{name}}\r\n";
        let built = render(known, json!({"name": "Ann"})).expect("renders");
        let message = MessageParser::default()
            .parse(&built.message)
            .expect("parses");
        assert_eq!(message.body_text(0).as_deref(), Some("€ Ann\r\n"));
    }

    #[test]
    fn a_rendered_single_part_message_declares_its_mime_version_once() {
        let bare = render("From: a@b.test\r\n\r\nHi {{name}}", json!({"name": "Zoë"}));
        let output = String::from_utf8(bare.expect("renders").message).expect("UTF-8");
        assert_eq!(
            output.matches("MIME-Version: 1.0\r\n").count(),
            1,
            "{output}"
        );
        let declared = "From: a@b.test\r\nMIME-Version: 1.0\r\n\r\nHi {{name}}";
        let output = render(declared, json!({"name": "Zoë"})).expect("renders");
        let output = String::from_utf8(output.message).expect("UTF-8");
        assert_eq!(output.matches("MIME-Version").count(), 1, "{output}");
    }

    #[test]
    fn the_size_limit_applies_after_substitution() {
        let raw = "From: a@b.test\r\nContent-Type: text/html\r\n\r\n{{{big}}}{{{big}}}";
        let big = "<b>x</b>".repeat(1_400_000);
        let error = render(raw, json!({"big": big})).err().expect("too big");
        assert!(error.contains("over the limit of 20000000"), "{error}");
    }

    #[test]
    fn lines_longer_than_smtp_allows_are_refused() {
        let long = "x".repeat(999);
        let header = format!("From: a@b.test\r\nX-Long: {long}\r\n\r\nbody");
        assert!(description(&header).contains("line 2 of the message is 1007 characters long"));
        let fits = format!("From: a@b.test\r\n\r\n{}\r\n", "x".repeat(998));
        assert!(render(&fits, json!({})).is_ok());
        let body = format!("From: a@b.test\r\n\r\n{long}\r\n");
        let compiled = RawContent::compile(&body).expect("compiles");
        let error = with_context(json!({}), |context| {
            Compiled::Raw(compiled).build(context, &addressing())
        })
        .err()
        .expect("refused when built");
        assert!(error.contains("over SMTP's limit of 998"), "{error}");
    }

    fn addressing() -> Addressing<'static> {
        Addressing {
            message_id: "m1",
            to: crate::transmission::address::Address::from_json(&json!("ann@example.test"))
                .expect("an address")
                .shown_in_to(),
        }
    }

    #[test]
    fn a_from_header_must_name_one_address() {
        assert!(
            description("From: x@sender.test\nFrom: evil@other.test\n\nb\n")
                .contains("more than one From header")
        );
        assert!(description("From: a@b.test, c@d.test\n\nb\n").contains("more than one address"));
        for from in [
            "Eve <evil@other.test> <x@sender.test>",
            "<@relay.test:x@sender.test>",
        ] {
            let error = description(&format!("From: {from}\n\nb\n"));
            assert!(
                error.contains("not a valid email address"),
                "{from}: {error}"
            );
        }
        let templated = "From: {{sender}}\r\n\r\nbody";
        let error = render(templated, json!({"sender": "Eve <e@o.test> <x@s.test>"}));
        assert!(error
            .err()
            .is_some_and(|e| e.contains("not a valid email address")));
    }

    #[test]
    fn multiparts_the_parser_would_guess_at_are_refused() {
        let no_boundary = "From: a@b.test\nContent-Type: multipart/alternative\n\nhi {{name}}\n";
        assert!(description(no_boundary).contains("has no boundary"));
        let unclosed = "From: a@b.test\nContent-Type: multipart/mixed; boundary=zz\n\n\
            --zz\nContent-Type: text/plain\n\nhi {{name}}\n";
        assert!(description(unclosed).contains("is never closed"));
        let missing = "From: a@b.test\nContent-Type: multipart/mixed; boundary=zz\n\nhi\n";
        assert!(description(missing).contains("is never closed"));
    }

    #[test]
    fn header_lines_that_are_not_fields_are_refused_and_bcc_is_not_sent() {
        assert!(description("From: a@b.test\nnot a header\n\nb").contains("header line 2"));
        assert!(description("From: a@b.test\n: empty name\n\nb").contains("header line 2"));
        assert!(description(" folded first\nFrom: a@b.test\n\nb").contains("header line 1"));
        let raw = "From: a@b.test\r\nBcc: hidden@example.test\r\nResent-Bcc: also@example.test\r\n\
                   Subject: s\r\n\r\nbody";
        let output = String::from_utf8(render(raw, json!({})).expect("renders").message);
        let output = output.expect("UTF-8");
        assert!(!output.contains("hidden@example.test"), "{output}");
        assert!(!output.contains("also@example.test"), "{output}");
        assert!(output.contains("Subject: s\r\n"), "{output}");
    }

    #[test]
    fn encoded_words_in_a_substituted_subject_are_decoded_before_it_is_encoded_again() {
        for raw in [
            "From: a@b.test\nSubject: =?utf-8?B?w6k=?= {{x}}\nX-Note: =?utf-8?Q?Caf=C3=A9_{{x}}?=\n\nb",
            "From: a@b.test\nSubject: =?utf-8?B?w6k=?= {{x}}\nX-Note: =?utf-8?Q?Caf=C3=A9?= {{x}}\n\nb",
        ] {
            let built = render(raw, json!({"x": "Ü"})).expect("renders");
            let message = MessageParser::default().parse(&built.message).expect("parses");
            assert_eq!(message.subject(), Some("é Ü"), "{raw}");
            let note = message.header_raw("X-Note").expect("X-Note");
            assert_eq!(decoded_text(note.trim()), "Café Ü", "{raw}");
        }
    }

    #[test]
    fn a_header_that_may_appear_once_cannot_appear_twice() {
        for raw in [
            "From: a@b.test\nSubject: one\nsubject: two\n\nbody",
            "From: a@b.test\nTo: c@d.test\nTo: e@f.test\n\nbody",
            "From: a@b.test\nMessage-ID: <1@b.test>\nMessage-Id: <2@b.test>\n\nbody",
        ] {
            assert!(description(raw).contains("more than one"), "{raw}");
        }
        let received = "From: a@b.test\nReceived: by a\nReceived: by b\n\nbody";
        assert!(render(received, json!({})).is_ok());
    }

    #[test]
    fn substituted_address_headers_keep_their_addresses() {
        let raw = "From: a@b.test\r\nTo: {{v}} <a@example.test>\r\n\r\nbody";
        let quoted = render(raw, json!({"v": "\"Jörg, Müller\""})).expect("renders");
        let message = MessageParser::default()
            .parse(&quoted.message)
            .expect("parses");
        let to = message.to().and_then(|a| a.first()).expect("a To");
        assert_eq!(
            (to.name(), to.address()),
            (Some("Jörg, Müller"), Some("a@example.test"))
        );
        assert!(!String::from_utf8_lossy(&quoted.message).contains("\"=?"));
        let error = render(raw, json!({"v": "Jörg, Müller"}))
            .err()
            .expect("refused");
        assert!(error.contains("not a list of addresses"), "{error}");
    }

    #[test]
    fn data_cannot_inject_headers() {
        let raw = "From: a@b.test\r\nSubject: {{subject}}\r\n\r\nbody";
        let error = render(raw, json!({"subject": "hi\r\nBcc: evil@x.test"}))
            .err()
            .expect("a generation failure");
        assert!(error.contains("Subject contains a line break"), "{error}");
        let from = "From: {{sender}}\r\n\r\nbody";
        let error = render(from, json!({"sender": "nobody"}))
            .err()
            .expect("fails");
        assert!(error.contains("no address"), "{error}");
        let built = render(from, json!({"sender": "Zoë <z@c.test>"})).expect("renders");
        assert_eq!(built.from_email, "z@c.test");
        assert!(built.message.is_ascii());
    }
}
