//! Delivery: routing each due message to its destination's mail exchangers, pacing it through
//! a ready queue, and carrying it over SMTP from an egress address of its pool.

pub mod classify;
pub mod egress;
pub mod engine;
pub mod route;
pub mod smtp;

pub use egress::Egress;
pub use engine::Engine;
pub use route::Router;
