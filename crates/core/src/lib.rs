//! Types shared by every Sluice crate: identifiers, the message event model, the configuration
//! file, the clock and the durable store with its group commit.
//!
//! Nothing here knows about HTTP, SMTP or scheduling; those live in the crates that own them.

pub mod clock;
pub mod config;
pub mod event;
pub mod id;
pub mod store;

pub use event::{Event, EventKind};
pub use id::{IdGenerator, MessageId};
pub use store::{Store, StoreError};
