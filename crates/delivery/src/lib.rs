//! Delivery: routing each due message to its destination's mail exchangers, pacing it through
//! a ready queue, and carrying it over SMTP from an egress address of its pool.

pub mod classify;
mod connection;
pub mod egress;
pub mod engine;
mod outcome;
pub mod route;
pub mod site;
pub mod smtp;
pub mod throttle;

pub use classify::BounceRules;
pub use egress::Egress;
pub use engine::{Engine, ReloadError, TlsClients};
pub use route::Router;
pub use site::Providers;
