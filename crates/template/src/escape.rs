//! Output encodings: HTML escaping, URL percent-encoding, and detection of URL context.
//!
//! Escaping writes straight into the render buffer (also through [`fmt::Write`], so numbers
//! are formatted without an intermediate string). URL context is decided at compile time from
//! literal text only, so a scheme that comes from a variable never makes a link.

use std::fmt;

use crate::ast::Escape;

/// Writes `s` into `out` with the given escaping.
pub(crate) fn write_escaped(out: &mut String, s: &str, escape: Escape) {
    match escape {
        Escape::Raw => out.push_str(s),
        Escape::Html => write_html(out, s),
        Escape::Url => write_url(out, s),
    }
}

/// HTML-escapes `s` into `out`: `& < > " ' /` become entities.
fn write_html(out: &mut String, s: &str) {
    let mut plain_from = 0;
    for (i, byte) in s.bytes().enumerate() {
        let entity = match byte {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#x27;",
            b'/' => "&#x2F;",
            _ => continue,
        };
        // Every byte matched above is ASCII, so both slice ends are char boundaries.
        out.push_str(s.get(plain_from..i).unwrap_or_default());
        out.push_str(entity);
        plain_from = i + 1;
    }
    out.push_str(s.get(plain_from..).unwrap_or_default());
}

/// Percent-encodes every byte of `s` except RFC 3986 unreserved characters.
fn write_url(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}

/// A [`fmt::Write`] sink that escapes everything written through it.
pub(crate) struct EscapingWriter<'o> {
    pub out: &'o mut String,
    pub escape: Escape,
}

impl fmt::Write for EscapingWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_escaped(self.out, s, self.escape);
        Ok(())
    }
}

/// Whether an expression right after `text` is inside a URL, given the state before it.
///
/// A URL starts at a literal `http://` or `https://` (any case) and ends at whitespace, a
/// quote or an angle bracket; those are the characters that end an `href` value or a bare
/// link in text. Which quote opened the attribute is not recorded, so a single quote inside a
/// double-quoted `href` ends the URL too: what follows is HTML-escaped but not URL-encoded.
pub(crate) fn in_url_after(mut in_url: bool, text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if matches!(byte, b'h' | b'H') {
            if let Some(len) = scheme_len(bytes.get(i..).unwrap_or_default()) {
                in_url = true;
                i += len;
                continue;
            }
        }
        if byte.is_ascii_whitespace() || matches!(byte, b'"' | b'\'' | b'<' | b'>') {
            in_url = false;
        }
        i += 1;
    }
    in_url
}

/// Length of a leading `http://` or `https://`, compared case-insensitively.
fn scheme_len(bytes: &[u8]) -> Option<usize> {
    ["https://", "http://"].iter().find_map(|scheme| {
        let prefix = bytes.get(..scheme.len())?;
        prefix
            .eq_ignore_ascii_case(scheme.as_bytes())
            .then_some(scheme.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str, escape: Escape) -> String {
        let mut out = String::new();
        write_escaped(&mut out, s, escape);
        out
    }

    #[test]
    fn html_escapes_the_six_characters() {
        assert_eq!(escaped("</b>", Escape::Html), "&lt;&#x2F;b&gt;");
        assert_eq!(escaped(r#"a&"b'"#, Escape::Html), "a&amp;&quot;b&#x27;");
        assert_eq!(escaped("héllo", Escape::Html), "héllo");
    }

    #[test]
    fn url_encodes_all_but_unreserved() {
        assert_eq!(escaped("Daily Deal!", Escape::Url), "Daily%20Deal%21");
        assert_eq!(escaped("a-b.c_d~e", Escape::Url), "a-b.c_d~e");
        assert_eq!(escaped("é/?", Escape::Url), "%C3%A9%2F%3F");
    }

    #[test]
    fn raw_is_untouched() {
        assert_eq!(escaped("<&>", Escape::Raw), "<&>");
    }

    #[test]
    fn writer_escapes_formatted_output() {
        use std::fmt::Write;
        let mut out = String::new();
        let mut writer = EscapingWriter {
            out: &mut out,
            escape: Escape::Url,
        };
        write!(writer, "{} x", 1.5).expect("infallible");
        assert_eq!(out, "1.5%20x");
    }

    #[test]
    fn detects_url_context() {
        assert!(in_url_after(false, "<a href=\"https://x.test/?q="));
        assert!(in_url_after(false, "see HTTP://x.test/"));
        assert!(!in_url_after(false, "https://x.test/ then "));
        assert!(!in_url_after(false, "://x.test/"));
        assert!(!in_url_after(true, "\">"));
        assert!(in_url_after(true, "&page="));
        assert!(!in_url_after(false, "http:/x"));
    }
}
