//! SMTP replies: what the sink says back, including the deliberately broken answers.

use std::fmt;

/// One answer the sink gives to a command, the greeting, or the end of message data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A well-formed reply: a three-digit code and one or more text lines.
    ///
    /// Several lines are sent as a multi-line reply (`250-first`, `250 last`).
    Code {
        /// The reply code, e.g. 250 or 451.
        code: u16,
        /// The text lines, normally starting with an enhanced status code.
        lines: Vec<String>,
    },
    /// A line that is not an SMTP reply at all, sent verbatim with a CRLF appended.
    ///
    /// The command it answers has no effect, as if the server had rejected it.
    Raw(String),
    /// Close the connection without replying.
    Hangup,
    /// Send the reply, then close the connection, as a server does after a `421` and often
    /// after refusing a recipient by policy.
    ThenHangup(Box<Reply>),
}

/// The line sent by [`Reply::garbage`]: recognisably not SMTP, so a log shows where it came from.
const GARBAGE_LINE: &str = "HTTP/1.1 400 this is not an SMTP reply";

impl Reply {
    /// A reply with `code` and `text`; a `text` containing `\n` becomes a multi-line reply.
    pub fn new(code: u16, text: &str) -> Reply {
        let lines = text.lines().map(str::to_owned).collect::<Vec<_>>();
        Reply::multiline(code, lines)
    }

    /// A reply with `code` and the given text lines, sent as a multi-line reply if more than one.
    pub fn multiline<S: Into<String>>(code: u16, lines: impl IntoIterator<Item = S>) -> Reply {
        let mut lines: Vec<String> = lines.into_iter().map(Into::into).collect();
        if lines.is_empty() {
            // A reply needs at least one line to carry the code.
            lines.push(String::new());
        }
        Reply::Code { code, lines }
    }

    /// `250 2.0.0 OK`.
    pub fn ok() -> Reply {
        Reply::new(250, "2.0.0 OK")
    }

    /// A non-SMTP line (see [`Reply::Raw`]).
    pub fn raw(line: &str) -> Reply {
        Reply::Raw(line.to_owned())
    }

    /// A fixed non-SMTP line, for scripting a server that talks nonsense.
    pub fn garbage() -> Reply {
        Reply::raw(GARBAGE_LINE)
    }

    /// Close the connection instead of replying (see [`Reply::Hangup`]).
    pub fn hangup() -> Reply {
        Reply::Hangup
    }

    /// This reply, after which the connection is closed (see [`Reply::ThenHangup`]).
    pub fn then_hangup(self) -> Reply {
        Reply::ThenHangup(Box::new(self))
    }

    /// The reply code, if this is a well-formed reply.
    pub fn code(&self) -> Option<u16> {
        match self {
            Reply::Code { code, .. } => Some(*code),
            Reply::ThenHangup(reply) => reply.code(),
            Reply::Raw(_) | Reply::Hangup => None,
        }
    }

    /// Whether the client may treat the command as accepted (a 2xx or 3xx code).
    pub fn is_positive(&self) -> bool {
        self.code().is_some_and(|code| (200..400).contains(&code))
    }

    /// The bytes to put on the wire; empty for [`Reply::Hangup`].
    pub fn to_wire(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl fmt::Display for Reply {
    /// Formats the reply exactly as it goes on the wire, CRLF line endings included.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Code { code, lines } => {
                let last = lines.len().saturating_sub(1);
                for (index, line) in lines.iter().enumerate() {
                    let separator = if index == last { ' ' } else { '-' };
                    write!(f, "{code:03}{separator}{line}\r\n")?;
                }
                Ok(())
            }
            Reply::Raw(line) => write!(f, "{line}\r\n"),
            Reply::ThenHangup(reply) => reply.fmt(f),
            Reply::Hangup => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_reply_uses_a_space_separator() {
        assert_eq!(
            Reply::new(451, "4.3.0 try later").to_string(),
            "451 4.3.0 try later\r\n"
        );
    }

    #[test]
    fn multi_line_reply_uses_dashes_except_on_the_last_line() {
        let reply = Reply::multiline(250, ["sink.test", "PIPELINING", "SIZE 10"]);
        assert_eq!(
            reply.to_string(),
            "250-sink.test\r\n250-PIPELINING\r\n250 SIZE 10\r\n"
        );
    }

    #[test]
    fn newlines_in_text_split_into_lines() {
        let reply = Reply::new(550, "5.1.1 no such user\r\n5.1.1 really");
        assert_eq!(
            reply.to_string(),
            "550-5.1.1 no such user\r\n550 5.1.1 really\r\n"
        );
    }

    #[test]
    fn empty_text_still_carries_the_code() {
        assert_eq!(Reply::new(250, "").to_string(), "250 \r\n");
    }

    #[test]
    fn raw_and_hangup_are_neither_positive_nor_coded() {
        assert_eq!(Reply::garbage().to_string(), format!("{GARBAGE_LINE}\r\n"));
        assert!(!Reply::garbage().is_positive());
        assert!(Reply::hangup().to_wire().is_empty());
        assert!(Reply::new(354, "go ahead").is_positive());
        assert!(!Reply::new(421, "4.7.0 bye").is_positive());
    }
}
