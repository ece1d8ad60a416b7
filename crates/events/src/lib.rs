//! The event stream: every event Sluice produces is appended to a durable log, and each
//! registered webhook reads the log from its own cursor and receives SparkPost-format batches.
//!
//! The log, not memory, holds what a webhook has not taken yet, so a slow or dead receiver
//! costs latency, never events, and never slows delivery.

pub mod catalogue;
pub mod dispatch;
pub mod log;
pub mod oauth;
pub mod retention;
pub mod search;
pub mod sign;
pub mod webhook;

pub use dispatch::Dispatcher;
pub use log::EventLog;
pub use retention::run_retention;
pub use webhook::{Webhook, WebhookStore};
