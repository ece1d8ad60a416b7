//! What can go wrong on an SMTP connection, and whether it is worth trying again.

use std::fmt;

use super::reply::Reply;

/// The step of the SMTP dialogue a failure happened in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Opening the TCP connection.
    Connect,
    /// Waiting for the server's greeting.
    Greeting,
    /// EHLO or HELO.
    Ehlo,
    /// STARTTLS and the handshake.
    StartTls,
    /// MAIL FROM.
    MailFrom,
    /// RCPT TO.
    RcptTo,
    /// The DATA command.
    Data,
    /// The reply after the message content.
    DataEnd,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connect",
            Phase::Greeting => "greeting",
            Phase::Ehlo => "ehlo",
            Phase::StartTls => "starttls",
            Phase::MailFrom => "mailfrom",
            Phase::RcptTo => "rcptto",
            Phase::Data => "data",
            Phase::DataEnd => "data end",
        })
    }
}

/// A failed SMTP step.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// The server answered with a failure code.
    #[error("{phase} refused: {reply}")]
    Rejected {
        /// Where.
        phase: Phase,
        /// What the server said.
        reply: Reply,
    },
    /// No answer in time.
    #[error("timed out in {0}")]
    Timeout(Phase),
    /// The connection failed or closed.
    #[error("connection failed in {phase}: {source}")]
    Io {
        /// Where.
        phase: Phase,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The server sent something that is not an SMTP reply.
    #[error("unreadable reply in {phase}: {line:?}")]
    Malformed {
        /// Where.
        phase: Phase,
        /// The offending line, cut to 200 bytes.
        line: String,
    },
    /// The TLS handshake failed.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// An envelope address cannot be written into its command without changing it; nothing
    /// was sent, and no later attempt can do better.
    #[error("{phase} address {address:?} not sent: it contains {what}")]
    UnsafeAddress {
        /// `MailFrom` or `RcptTo`.
        phase: Phase,
        /// The address, cut to 200 characters.
        address: String,
        /// What in it is not allowed, such as "a line break".
        what: &'static str,
    },
}

impl SmtpError {
    /// Whether the failure says nothing final about the message: everything but a 5xx reply
    /// or an unsafe address is worth another attempt later.
    pub fn is_transient(&self) -> bool {
        match self {
            SmtpError::Rejected { reply, .. } => reply.code < 500,
            SmtpError::UnsafeAddress { .. } => false,
            _ => true,
        }
    }

    /// The phase the failure happened in.
    pub fn phase(&self) -> Phase {
        match self {
            SmtpError::Rejected { phase, .. }
            | SmtpError::Io { phase, .. }
            | SmtpError::Malformed { phase, .. }
            | SmtpError::UnsafeAddress { phase, .. } => *phase,
            SmtpError::Timeout(phase) => *phase,
            SmtpError::Tls(_) => Phase::StartTls,
        }
    }

    /// Whether the connection can carry another message after this failure: only a clean
    /// refusal of one message, or an address refused before it was sent, leaves the dialogue
    /// in a known state.
    pub fn connection_usable(&self) -> bool {
        match self {
            SmtpError::UnsafeAddress { .. } => true,
            _ => {
                matches!(self, SmtpError::Rejected { phase: Phase::MailFrom | Phase::RcptTo | Phase::Data | Phase::DataEnd, reply } if reply.code != 421)
            }
        }
    }
}
