//! Webhook request signing: every batch carries
//! `X-Sluice-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, keyed with the
//! webhook's `signing_secret`, so a receiver can tell Sluice's requests from forged ones and
//! refuse old ones replayed by someone who captured them.

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// The header the signature travels in.
pub const HEADER: &str = "X-Sluice-Signature";

/// A fresh secret: 32 random bytes as lower-case hex.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    // The system's random source failing leaves a zero secret; ring documents it as not failing
    // on the platforms Sluice supports, so this is a theoretical case made visible in the log.
    if SystemRandom::new().fill(&mut bytes).is_err() {
        tracing::error!("the system random source failed; the signing secret is weak");
    }
    hex(&bytes)
}

/// The header value for `body` sent at Unix second `t`.
pub fn signature(secret: &str, t: u64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut context = hmac::Context::with_key(&key);
    context.update(t.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    format!("t={t},v1={}", hex(context.sign().as_ref()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_an_independent_hmac_of_time_dot_body() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"secret");
        let expected = hex(hmac::sign(&key, b"1700000000.[{\"msys\":{}}]").as_ref());
        assert_eq!(
            signature("secret", 1_700_000_000, br#"[{"msys":{}}]"#),
            format!("t=1700000000,v1={expected}")
        );
    }

    #[test]
    fn secrets_are_long_and_differ() {
        let (a, b) = (new_secret(), new_secret());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
