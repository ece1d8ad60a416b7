//! `content.attachments` and `content.inline_images`: checked and decoded once per
//! transmission, then kept as finished MIME entities that every recipient's message shares.
//!
//! An entity is written here rather than by mail-builder so that the bytes are fixed once: the
//! data is already base64 and only needs line breaks, and a filename outside ASCII is written
//! as an RFC 2231 parameter, which mail-builder does not produce.

use std::collections::HashSet;
use std::fmt::Write as _;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// Longest attachment filename or inline image name, in bytes.
const MAX_NAME: usize = 255;
/// Longest MIME type, in bytes; type parameters such as `charset` count.
const MAX_TYPE: usize = 255;
/// Base64 characters per line of an encoded entity.
const LINE: usize = 76;
/// Characters of an RFC 2231 filename per continuation line.
const FILENAME_CHUNK: usize = 60;

/// Base64 as clients send it: the standard alphabet, padding optional.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One attachment or inline image as a finished MIME entity: its headers, a blank line and
/// its data in base64 lines.
#[derive(Debug)]
pub struct File {
    /// The entity, ready to go between two boundary lines.
    pub entity: String,
}

/// The files of a transmission's content.
#[derive(Debug, Default)]
pub struct Files {
    /// `content.attachments`, in order.
    pub attachments: Vec<File>,
    /// `content.inline_images`, in order.
    pub inline_images: Vec<File>,
    /// Decoded bytes of every file together, for the content size limit.
    pub decoded_len: usize,
}

/// How a file is shown: a download, or an image the HTML refers to by `cid:`.
#[derive(Clone, Copy)]
enum Disposition {
    Attachment,
    Inline,
}

impl Disposition {
    fn field(self) -> &'static str {
        match self {
            Disposition::Attachment => "content.attachments",
            Disposition::Inline => "content.inline_images",
        }
    }
}

impl Files {
    /// Checks and decodes `content.attachments` and `content.inline_images`; an error names the
    /// field and its index.
    pub fn from_json(
        attachments: Option<&Value>,
        inline_images: Option<&Value>,
    ) -> Result<Files, ApiError> {
        let mut files = Files::default();
        for (i, object) in entries(attachments, Disposition::Attachment)?.enumerate() {
            let (file, len) = file(object, i, Disposition::Attachment)?;
            files.attachments.push(file);
            files.decoded_len += len;
        }
        let mut names = HashSet::new();
        for (i, object) in entries(inline_images, Disposition::Inline)?.enumerate() {
            let (file, len) = file(object, i, Disposition::Inline)?;
            // The name is the Content-ID the HTML refers to, so two images cannot share it.
            let name = object
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !names.insert(name) {
                return Err(ApiError::invalid(format!(
                    "content.inline_images[{i}].name {name:?} is used by an earlier inline image"
                )));
            }
            files.inline_images.push(file);
            files.decoded_len += len;
        }
        Ok(files)
    }

    /// True when there is neither an attachment nor an inline image.
    pub fn is_empty(&self) -> bool {
        self.attachments.is_empty() && self.inline_images.is_empty()
    }
}

/// The objects of one array field; `null` or absent is an empty list.
fn entries(
    value: Option<&Value>,
    disposition: Disposition,
) -> Result<impl Iterator<Item = &Map<String, Value>>, ApiError> {
    let field = disposition.field();
    let list = match value {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(list)) => list.as_slice(),
        Some(_) => return Err(ApiError::invalid(format!("{field} must be an array"))),
    };
    if let Some(i) = list.iter().position(|entry| !entry.is_object()) {
        return Err(ApiError::invalid(format!("{field}[{i}] must be an object")));
    }
    Ok(list.iter().filter_map(Value::as_object))
}

/// Checks one entry and builds its entity; also returns the decoded length.
fn file(
    object: &Map<String, Value>,
    i: usize,
    disposition: Disposition,
) -> Result<(File, usize), ApiError> {
    let at = format!("{}[{i}]", disposition.field());
    let text = |key: &str| match object.get(key) {
        None | Some(Value::Null) => Err(ApiError::missing(format!("{at}.{key} is required"))),
        Some(Value::String(s)) => Ok(s.as_str()),
        Some(_) => Err(ApiError::invalid(format!("{at}.{key} must be a string"))),
    };
    let (name, content_type, data) = (text("name")?, text("type")?, text("data")?);
    check_name(name, disposition).map_err(|e| ApiError::invalid(format!("{at}.name {e}")))?;
    check_type(content_type).map_err(|e| ApiError::invalid(format!("{at}.type {e}")))?;
    let decoded = BASE64
        .decode(data)
        .map_err(|_| ApiError::invalid(format!("{at}.data is not valid base64")))?;
    let entity = entity(name, content_type, &decoded, disposition);
    Ok((File { entity }, decoded.len()))
}

fn check_name(name: &str, disposition: Disposition) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!("is over the limit of {MAX_NAME} bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain line breaks or control characters".into());
    }
    if matches!(disposition, Disposition::Inline) {
        check_content_id(name)?;
    }
    Ok(())
}

/// An inline image's name becomes its Content-ID, a msg-id: only the characters of RFC 5322's
/// dot-atom-text and `@` may appear.
fn check_content_id(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.@".contains(c);
    match name.chars().find(|c| !allowed(*c)) {
        None => Ok(()),
        Some(c) => Err(format!(
            "{name:?} cannot be a Content-ID: {c:?} is not allowed; use letters, digits, \
             '.', '@' and !#$%&'*+-/=?^_`{{|}}~"
        )),
    }
}

/// A MIME type such as `image/png` or `text/html; charset="UTF-8"`; it goes into the
/// `Content-Type` header as written, so it must be one line of printable ASCII.
fn check_type(content_type: &str) -> Result<(), String> {
    let bad = || format!("{content_type:?} is not a MIME type such as application/pdf");
    if content_type.len() > MAX_TYPE {
        return Err(format!("is over the limit of {MAX_TYPE} bytes"));
    }
    if !content_type
        .bytes()
        .all(|b| b == b' ' || b.is_ascii_graphic())
    {
        return Err(bad());
    }
    let (essence, parameters) = match content_type.split_once(';') {
        Some((essence, parameters)) => (essence, Some(parameters)),
        None => (content_type, None),
    };
    match essence.trim().split_once('/') {
        // MIME forbids base64 for these composite types (RFC 2046, sections 5.1 and 5.2.1).
        Some((kind, _)) if ["multipart", "message"].contains(&&*kind.to_ascii_lowercase()) => {
            return Err(format!(
                "{content_type:?}: a {kind}/ type cannot be attached, as attachments are sent \
                 base64-encoded; use application/octet-stream"
            ));
        }
        Some((kind, subtype)) if is_token(kind) && is_token(subtype) => {}
        _ => return Err(bad()),
    }
    parameters.map_or(Ok(()), |p| {
        check_parameters(p).map_err(|e| format!("{content_type:?}: {e}"))
    })
}

/// Checks the `name=value` parameters that follow a MIME type's first `;`, separated by `;`;
/// a value is a token or a quoted string.
fn check_parameters(mut rest: &str) -> Result<(), String> {
    loop {
        if rest.trim().is_empty() {
            return Err("a \";\" must be followed by a parameter".into());
        }
        let Some((name, after)) = rest.split_once('=') else {
            return Err(format!("parameter {:?} has no \"=value\"", rest.trim()));
        };
        let name = name.trim();
        if !is_token(name) {
            return Err(format!("{name:?} is not a parameter name"));
        }
        rest = parameter_value(name, after.trim_start())?.trim_start();
        if rest.is_empty() {
            return Ok(());
        }
        rest = rest
            .strip_prefix(';')
            .ok_or_else(|| format!("parameter {name:?} is followed by {rest:?}, not \";\""))?;
    }
}

/// Reads the value of parameter `name` at the start of `text`; returns what follows it.
fn parameter_value<'a>(name: &str, text: &'a str) -> Result<&'a str, String> {
    if let Some(quoted) = text.strip_prefix('"') {
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => return Ok(&quoted[i + 1..]),
                _ => {}
            }
        }
        return Err(format!("parameter {name:?} has an unclosed quote"));
    }
    let end = text.find([' ', ';']).unwrap_or(text.len());
    if !is_token(&text[..end]) {
        return Err(format!(
            "parameter {name:?} needs a value: a token, or a string in quotes"
        ));
    }
    Ok(&text[end..])
}

/// An RFC 2045 token: printable ASCII but for spaces and `()<>@,;:\"/[]?=`.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

/// The finished entity: headers, a blank line, and the data in base64 lines.
fn entity(name: &str, content_type: &str, data: &[u8], disposition: Disposition) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / LINE * 2 + 256);
    let _ = write!(out, "Content-Type: {content_type}\r\n");
    match disposition {
        Disposition::Attachment => {
            out.push_str("Content-Disposition: attachment;");
            filename_parameter(&mut out, name);
            out.push_str("\r\n");
        }
        Disposition::Inline => {
            let _ = write!(
                out,
                "Content-Disposition: inline\r\nContent-ID: <{name}>\r\n"
            );
        }
    }
    out.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
    for (i, line) in encoded.as_bytes().chunks(LINE).enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
    }
    out
}

/// Appends ` filename="…"` on a folded line, or for a name outside ASCII the RFC 2231 form
/// `filename*0*=utf-8''…` split over as many folded lines as it needs.
fn filename_parameter(out: &mut String, name: &str) {
    if name.is_ascii() {
        out.push_str("\r\n filename=\"");
        for c in name.chars() {
            if matches!(c, '"' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
        return;
    }
    let mut chunks: Vec<String> = vec!["utf-8''".into()];
    for piece in name.chars().map(encoded_char) {
        if chunks
            .last()
            .is_some_and(|c| c.len() + piece.len() > FILENAME_CHUNK)
        {
            chunks.push(String::new());
        }
        if let Some(chunk) = chunks.last_mut() {
            chunk.push_str(&piece);
        }
    }
    for (i, chunk) in chunks.iter().enumerate() {
        let separator = if i + 1 < chunks.len() { ";" } else { "" };
        let _ = write!(out, "\r\n filename*{i}*={chunk}{separator}");
    }
}

/// One character of an RFC 2231 value: itself when it may stand as it is, else the
/// percent-encoding of all its UTF-8 bytes, so a continuation never splits a character.
fn encoded_char(c: char) -> String {
    let plain = c.is_ascii_alphanumeric() || "!#$&+-.^_`|~".contains(c);
    if plain {
        return c.to_string();
    }
    let mut bytes = [0; 4];
    c.encode_utf8(&mut bytes)
        .bytes()
        .fold(String::new(), |mut out, byte| {
            let _ = write!(out, "%{byte:02X}");
            out
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The description of the error for these attachments and inline images.
    fn refused(attachments: Value, inline_images: Value) -> String {
        let error =
            Files::from_json(Some(&attachments), Some(&inline_images)).expect_err("refused");
        assert_eq!(error.status().as_u16(), 422);
        error.into_object()["description"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn attachment(name: &str, kind: &str, data: &str) -> Value {
        json!({"name": name, "type": kind, "data": data})
    }

    #[test]
    fn bad_data_names_the_field_and_index() {
        let good = attachment("a.txt", "text/plain", "aGk=");
        for data in ["not base64!", "aGk=\r\naGk=", "aGk= "] {
            let list = json!([good, attachment("b.txt", "text/plain", data)]);
            assert_eq!(
                refused(list, Value::Null),
                "content.attachments[1].data is not valid base64"
            );
        }
        let unpadded = json!([attachment("a.txt", "text/plain", "aGk")]);
        let files = Files::from_json(Some(&unpadded), None).expect("padding is optional");
        assert_eq!(files.decoded_len, 2);
    }

    #[test]
    fn every_field_is_a_required_string() {
        let missing = json!([{"name": "a", "data": ""}]);
        assert_eq!(
            refused(missing, Value::Null),
            "content.attachments[0].type is required"
        );
        let number = json!([{"name": 5, "type": "image/png", "data": ""}]);
        assert_eq!(
            refused(Value::Null, number),
            "content.inline_images[0].name must be a string"
        );
        assert_eq!(
            refused(json!({"name": "a"}), Value::Null),
            "content.attachments must be an array"
        );
        assert_eq!(
            refused(json!(["a"]), Value::Null),
            "content.attachments[0] must be an object"
        );
    }

    #[test]
    fn names_and_types_cannot_carry_headers() {
        let cases = [
            attachment("a\r\nBcc: x@y.test", "text/plain", ""),
            attachment("a.txt", "text/plain\r\nBcc: x@y.test", ""),
            attachment("a.txt", "pdf", ""),
            attachment("a.txt", "application/", ""),
            attachment(&"x".repeat(256), "text/plain", ""),
            attachment("", "text/plain", ""),
        ];
        for case in cases {
            let description = refused(json!([case]), Value::Null);
            assert!(
                description.starts_with("content.attachments[0]."),
                "{description}"
            );
        }
        let image = json!([attachment("<logo>", "image/png", "")]);
        assert!(refused(Value::Null, image).starts_with("content.inline_images[0].name"));
        let typed = json!([attachment("a.html", "text/html; charset=\"UTF-8\"", "")]);
        assert!(Files::from_json(Some(&typed), None).is_ok());
    }

    #[test]
    fn inline_image_names_are_unique() {
        let images = json!([
            attachment("logo", "image/png", ""),
            attachment("logo", "image/png", ""),
        ]);
        assert_eq!(
            refused(Value::Null, images),
            "content.inline_images[1].name \"logo\" is used by an earlier inline image"
        );
        let attachments = json!([
            attachment("logo", "image/png", ""),
            attachment("logo", "image/png", ""),
        ]);
        assert!(Files::from_json(Some(&attachments), None).is_ok());
    }

    #[test]
    fn type_parameters_must_be_name_value_pairs() {
        for good in [
            "text/plain;charset=utf-8",
            "text/plain ; format=flowed ; delsp=yes",
            "application/octet-stream; name=\"a;b \\\"c\\\".txt\"",
        ] {
            let list = json!([attachment("a.txt", good, "")]);
            assert!(Files::from_json(Some(&list), None).is_ok(), "{good}");
        }
        for (bad, why) in [
            (
                "text/plain; charset",
                "parameter \"charset\" has no \"=value\"",
            ),
            ("text/plain; charset=", "a token, or a string in quotes"),
            (
                "text/plain; name=\"a.txt",
                "parameter \"name\" has an unclosed quote",
            ),
            ("text/plain; name=a\"b", "a token, or a string in quotes"),
            (
                "text/plain; charset=utf-8 x",
                "followed by \"x\", not \";\"",
            ),
            ("text/plain; =utf-8", "\"\" is not a parameter name"),
            ("message/rfc822", "use application/octet-stream"),
            (
                "Multipart/mixed; boundary=x",
                "use application/octet-stream",
            ),
            ("text/plain;", "a \";\" must be followed by a parameter"),
            (
                "text/plain; a=b;",
                "a \";\" must be followed by a parameter",
            ),
        ] {
            let description = refused(json!([attachment("a.txt", bad, "")]), Value::Null);
            let field = format!("content.attachments[0].type {bad:?}: ");
            assert!(
                description.starts_with(&field) && description.ends_with(why),
                "{description}"
            );
        }
    }

    #[test]
    fn an_inline_image_name_must_be_a_content_id() {
        for good in ["logo", "logo.png", "logo@example.test", "a+b_c-d=e~f/g"] {
            let images = json!([attachment(good, "image/png", "")]);
            assert!(Files::from_json(None, Some(&images)).is_ok(), "{good}");
        }
        for bad in [
            "lo(go)", "logo png", "lo\"go", "lo,go", "logö", "[logo]", "lo\\go", "lo:go",
        ] {
            let description = refused(Value::Null, json!([attachment(bad, "image/png", "")]));
            let expected = format!("content.inline_images[0].name {bad:?} cannot be a Content-ID");
            assert!(description.starts_with(&expected), "{description}");
        }
        let attachments = json!([attachment("report (1).pdf", "application/pdf", "")]);
        assert!(Files::from_json(Some(&attachments), None).is_ok());
    }

    /// Whether every `%` of an RFC 2231 value starts a whole `%XX` escape.
    fn whole_escapes(value: &str) -> bool {
        value.match_indices('%').all(|(i, _)| {
            value
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
        })
    }

    #[test]
    fn a_long_utf8_filename_splits_between_whole_characters_and_parses_back() {
        use mail_parser::{MessageParser, MimeHeaders};

        // Characters of one, two and three bytes, so splits fall at every offset.
        let name = format!("a{}.pdf", "€éx".repeat(25));
        let entity = entity(&name, "application/pdf", b"%PDF", Disposition::Attachment);
        let segments: Vec<&str> = entity
            .lines()
            .filter_map(|line| line.split_once("*=").map(|(_, value)| value))
            .collect();
        assert!(segments.len() > 3, "{entity}");
        for segment in &segments {
            let value = segment.trim_end_matches(';').trim_start_matches("utf-8''");
            assert!(whole_escapes(value), "{segment}");
            let decoded = percent_encoding::percent_decode_str(value).decode_utf8();
            assert!(decoded.is_ok(), "{segment}");
        }

        let message = format!(
            "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n{entity}\r\n--b--\r\n"
        );
        let parsed = MessageParser::default()
            .parse(message.as_bytes())
            .expect("a message");
        let attachment = parsed.attachment(0).expect("an attachment");
        assert_eq!(attachment.attachment_name(), Some(name.as_str()));
    }
}
