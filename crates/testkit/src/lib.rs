//! Test peers for Sluice, a transactional email MTA.
//!
//! The crate owns two fake remote systems that Sluice talks to during tests:
//!
//! * [`smtp::SmtpSink`], an ESMTP server that records every message it accepts and answers
//!   according to a [`smtp::Script`] (temporary failures, slow replies, dropped connections,
//!   STARTTLS, connection limits).
//! * [`webhook::WebhookReceiver`], an HTTP server that records the event batches Sluice posts
//!   and answers according to a [`webhook::Behaviour`] (status sequences, delays, basic,
//!   bearer and OAuth2 authentication).
//!
//! Both peers are started on an address of the caller's choice (port 0 picks a free port),
//! expose snapshots of what they have seen, and offer `wait_for_*` methods so tests block on
//! an observable condition instead of sleeping.
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use std::time::Duration;
//!
//! use sluice_testkit::{Behaviour, Reply, Script, SmtpSink, WebhookReceiver};
//!
//! # async fn example() -> std::io::Result<()> {
//! let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
//! let script = Script::new()
//!     .rcpt("later@b.test", vec![Reply::new(451, "4.3.0 try later"), Reply::ok()])
//!     .tls(true);
//! let sink = SmtpSink::start(any_port, script).await?;
//! let webhook = WebhookReceiver::start(any_port, Behaviour::new().statuses(vec![503])).await?;
//!
//! // ... point the MTA under test at sink.addr() and webhook.url(), then send ...
//!
//! let messages = sink.wait_for_messages(1, Duration::from_secs(30)).await;
//! assert_eq!(messages[0].rcpt_to, ["later@b.test"]);
//! let delivered = |events: &[serde_json::Value]| !events.is_empty();
//! let events = webhook.wait_for_events(delivered, Duration::from_secs(30)).await;
//! assert_eq!(events[0]["msys"]["message_event"]["type"], "delivery");
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod smtp;
pub mod webhook;

mod recorder;

pub use smtp::{Received, Reply, Script, SessionRecord, SmtpSink};
pub use webhook::{Behaviour, RecordedRequest, WebhookReceiver};
