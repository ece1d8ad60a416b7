//! The spool: every accepted message lives here, in sled, from acceptance until it is delivered,
//! bounced or expired.
//!
//! Four trees: `messages` (envelope, event facts and delivery state), `bodies` (the generated
//! message, written once), `schedule` (a time-ordered index of when each message is due) and
//! `inflight` (messages handed to delivery). Memory holds none of it beyond sled's cache: a
//! million deferred messages cost disk, not RAM.

mod control;
mod message;
mod scheduler;
mod spool;

pub use control::{cancel_facts, MessageStatus, QueueStats, QueueSummary, Scope, Standing};
pub use message::{NewMessage, QueuedMessage};
pub use scheduler::run_scheduler;
pub use spool::Spool;
