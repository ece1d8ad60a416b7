//! What the sink records: accepted messages and per-connection session summaries.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

/// A message the sink accepted (answered positively after the final dot).
#[derive(Clone, Debug)]
pub struct Received {
    /// The reverse path from `MAIL FROM`, without brackets; empty for the null sender.
    pub mail_from: String,
    /// The parameters after the reverse path in `MAIL FROM`, as sent (`BODY=8BITMIME`,
    /// `SIZE=1234`); empty when there were none.
    pub mail_parameters: Vec<String>,
    /// The recipients whose `RCPT TO` was accepted, in order.
    pub rcpt_to: Vec<String>,
    /// The message as received: dot-unstuffed, line endings as sent, without the final `.` line.
    ///
    /// Held as [`Bytes`] so that snapshots of many large messages share one copy; it
    /// dereferences to `&[u8]` and compares equal to byte slices and vectors.
    pub data: Bytes,
    /// The client's address.
    pub client: SocketAddr,
    /// The name the client gave in `EHLO`/`HELO` (empty if it never sent one).
    pub ehlo: String,
    /// Whether the message arrived over a connection upgraded with STARTTLS.
    pub tls: bool,
    /// When the final dot was received.
    pub at: Instant,
    /// The queue id the sink reported in its reply after the final dot.
    pub queue_id: String,
}

/// One client connection, recorded from accept to close.
#[derive(Clone, Debug)]
pub struct SessionRecord {
    /// The client's address.
    pub client: SocketAddr,
    /// The latest name the client gave in `EHLO`/`HELO`.
    pub ehlo: Option<String>,
    /// Whether the connection was upgraded with STARTTLS.
    pub tls: bool,
    /// When the connection was accepted.
    pub started: Instant,
    /// When the connection closed; `None` while it is still open.
    pub ended: Option<Instant>,
    /// Every command line received, without its line ending, in order.
    pub commands: Vec<String>,
}

impl Received {
    /// The first value of header `name` (case-insensitive), unfolded and trimmed.
    pub fn header(&self, name: &str) -> Option<String> {
        self.header_values(name).into_iter().next()
    }

    /// Every value of header `name` (case-insensitive) in message order, e.g. all `Received`.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        let (header_block, _body) = split_at_blank_line(&self.data);
        parse_headers(&String::from_utf8_lossy(header_block))
            .into_iter()
            .filter(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
            .collect()
    }

    /// The raw bytes after the header block's blank line, decoded as UTF-8 lossily.
    pub fn body_text(&self) -> String {
        let (_header_block, body) = split_at_blank_line(&self.data);
        String::from_utf8_lossy(body).into_owned()
    }
}

/// Splits a message at its first empty line (CRLF or bare LF) into header block and body.
fn split_at_blank_line(message: &[u8]) -> (&[u8], &[u8]) {
    let mut line_start = 0;
    while let Some(offset) = message[line_start..].iter().position(|&byte| byte == b'\n') {
        let line_end = line_start + offset + 1;
        if matches!(&message[line_start..line_end], b"\r\n" | b"\n") {
            return (&message[..line_start], &message[line_end..]);
        }
        line_start = line_end;
    }
    (message, &[])
}

/// Parses a header block into `(name, value)` pairs, joining folded continuation lines.
fn parse_headers(block: &str) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in block.lines() {
        if line.starts_with([' ', '\t']) {
            // A continuation line; unfolding only removes the line break (RFC 5322 2.2.3).
            if let Some((_, value)) = headers.last_mut() {
                value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.to_owned()));
        }
    }
    for (_, value) in &mut headers {
        *value = value.trim().to_owned();
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(data: &'static [u8]) -> Received {
        Received {
            mail_from: String::new(),
            mail_parameters: Vec::new(),
            rcpt_to: Vec::new(),
            data: Bytes::from_static(data),
            client: SocketAddr::from(([127, 0, 0, 1], 1)),
            ehlo: String::new(),
            tls: false,
            at: Instant::now(),
            queue_id: String::new(),
        }
    }

    #[test]
    fn header_lookup_is_case_insensitive_and_unfolds() {
        let msg =
            message(b"Subject: hello\r\n  world\r\nX-A: 1\r\nx-a: 2\r\n\r\nSubject: body\r\n");
        assert_eq!(msg.header("subject").as_deref(), Some("hello  world"));
        assert_eq!(msg.header_values("X-A"), ["1", "2"]);
        assert_eq!(msg.header("Missing"), None);
    }

    #[test]
    fn body_starts_after_the_first_blank_line() {
        let msg = message(b"A: 1\r\n\r\nline one\r\n\r\nline two\r\n");
        assert_eq!(msg.body_text(), "line one\r\n\r\nline two\r\n");
        assert_eq!(message(b"A: 1\n\nbare\n").body_text(), "bare\n");
    }

    #[test]
    fn message_without_blank_line_is_all_headers() {
        let msg = message(b"A: 1\r\nB: 2\r\n");
        assert_eq!(msg.body_text(), "");
        assert_eq!(msg.header("b").as_deref(), Some("2"));
    }

    #[test]
    fn invalid_utf8_does_not_panic() {
        let msg = message(b"Subject: \xff\xfe\r\n\r\n\xc3");
        assert_eq!(msg.header("subject").as_deref(), Some("\u{fffd}\u{fffd}"));
        assert_eq!(msg.body_text(), "\u{fffd}");
    }
}
