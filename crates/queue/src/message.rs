//! What the spool keeps about a message besides its body.

use serde::{Deserialize, Serialize};
use sluice_core::event::MessageFacts;
use sluice_core::MessageId;

/// A message waiting for delivery: its envelope, its event facts and its delivery state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueuedMessage {
    /// The message id.
    pub id: MessageId,
    /// Envelope sender (`MAIL FROM`).
    pub mail_from: String,
    /// Envelope recipient (`RCPT TO`).
    pub rcpt_to: String,
    /// The recipient's domain, lower-cased: what is routed.
    pub domain: String,
    /// The IP pool to send from.
    pub pool: String,
    /// Repeated on every event about this message.
    pub facts: MessageFacts,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due, in Unix milliseconds: acceptance or `start_time` for the
    /// first, then the retry schedule.
    pub due_ms: u64,
    /// When the message stops being retried and bounces, in Unix milliseconds.
    pub expires_ms: u64,
    /// The last temporary failure, kept for the expiry bounce and for operators.
    #[serde(default)]
    pub last_reply: Option<String>,
    /// The site delivery routed it to at its latest attempt; `None` before the first. Lets an
    /// operator suspend, retry and count messages by site.
    #[serde(default)]
    pub site: Option<String>,
    /// Set when an operator cancelled the message while it was handed to delivery: delivery
    /// finishes it with this reason instead of sending it.
    #[serde(default)]
    pub cancelled: Option<String>,
}

impl QueuedMessage {
    /// The `start_time` of a scheduled send, in Unix milliseconds: no attempt may come before
    /// it, whatever an operator asks. It is the `scheduled_time` of the event facts, stored with
    /// every record since acceptance, so the spool needs no field of its own for it.
    pub fn start_ms(&self) -> Option<u64> {
        self.facts.scheduled_time_ms
    }

    /// The earliest time from `at` on when the message may be attempted: `at`, or its start
    /// time if that is later.
    pub fn not_before(&self, at: u64) -> u64 {
        self.start_ms().map_or(at, |start| start.max(at))
    }
}

/// A message to accept: its queue record and its body.
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// The record; `attempts` should be 0.
    pub message: QueuedMessage,
    /// The complete RFC 5322 message, CRLF line endings, not dot-stuffed.
    pub body: Vec<u8>,
}
