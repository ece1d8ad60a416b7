//! The generation entry point: one recipient's message made from compiled content, rendered,
//! built into RFC 5322 and DKIM-signed. `POST /transmissions` generates every message through
//! [`generate`], and the generation benchmark calls the same function, so what it measures is
//! what the API runs.

use sluice_template::Context;

use crate::dkim::Keyring;
pub use crate::transmission::address::Address;
use crate::transmission::generate::build_mime;
pub use crate::transmission::generate::{builtins, Addressing, InlineContent, Prepared, Rendered};

/// A generated message: the rendered fields, which events report, and the bytes to spool.
pub struct Generated {
    /// The content as rendered for this recipient.
    pub rendered: Rendered,
    /// The signed message.
    pub body: Vec<u8>,
}

/// Renders `prepared` against `context`, builds the message and signs it with the key of the
/// From domain, when the keyring has one. The error says why, for the generation failure.
pub fn generate(
    prepared: &Prepared,
    context: &Context<'_>,
    addressing: &Addressing<'_>,
    keyring: &Keyring,
) -> Result<Generated, String> {
    let rendered = prepared.render(context)?;
    let body = build_mime(&rendered, addressing)?;
    let from_domain = rendered.from_email.rsplit_once('@').map_or("", |(_, d)| d);
    let body = keyring.sign(from_domain, body)?;
    Ok(Generated { rendered, body })
}
