//! Sluice's SMTP client, written on tokio rather than taken from a library because delivery
//! needs what general-purpose clients leave out: binding each connection to a chosen egress IP,
//! PIPELINING, connection reuse across many messages, and every reply kept whole for
//! classification.

mod client;
mod error;
mod reply;
mod tls;

pub use client::{Connection, ConnectionSettings, TlsOutcome};
pub use error::{Phase, SmtpError};
pub use reply::{parse_line, Reply, ReplyLine};
pub use tls::{opportunistic_config, verified_config, TlsConfigError};
