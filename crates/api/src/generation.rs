//! The generation entry point: one recipient's message made from compiled content, rendered,
//! built into RFC 5322 and DKIM-signed. `POST /transmissions` generates every message through
//! [`generate`], and the generation benchmark calls the same function, so what it measures is
//! what the API runs.

use sluice_template::Context;

use crate::dkim::Keyring;
pub use crate::transmission::address::Address;
pub use crate::transmission::generate::{builtins, Addressing, Compiled, InlineContent, Prepared};

/// A generated message: the facts its events report, and the bytes to spool.
pub struct Generated {
    /// The From address after substitution.
    pub from_email: String,
    /// The subject after substitution.
    pub subject: String,
    /// The signed message.
    pub body: Vec<u8>,
}

/// Renders `content` against `context`, builds the message and signs it with the key of the
/// From domain, when the keyring has one. The error says why, for the generation failure.
pub fn generate(
    content: &Compiled,
    context: &Context<'_>,
    addressing: &Addressing<'_>,
    keyring: &Keyring,
) -> Result<Generated, String> {
    let built = content.build(context, addressing)?;
    let from_domain = built.from_email.rsplit_once('@').map_or("", |(_, d)| d);
    let body = keyring.sign(from_domain, built.message)?;
    Ok(Generated {
        from_email: built.from_email,
        subject: built.subject,
        body,
    })
}
