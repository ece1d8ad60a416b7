//! DKIM for the delivery run: a sending domain for the benchmark's From domain, made through the
//! API before anything is sent so that every message is signed, and a check at the sink that
//! the signatures arrived. Without the check a run with a misnamed domain would measure unsigned
//! mail and say nothing.

use anyhow::{bail, Context};
use clap::ValueEnum;
use serde_json::json;
use sluice_testkit::smtp::Received;

use crate::FROM_DOMAIN;

/// The key a run signs with; Sluice generates it when the sending domain is created.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Algorithm {
    /// RSA-SHA256 with Sluice's default 2048-bit key.
    Rsa,
    /// Ed25519-SHA256.
    Ed25519,
}

impl Algorithm {
    /// The name `POST /sending-domains` takes as `dkim_algorithm`, also used in the report.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa",
            Algorithm::Ed25519 => "ed25519",
        }
    }

    /// The `a=` tag of a signature made with this key.
    fn tag(self) -> &'static str {
        match self {
            Algorithm::Rsa => "a=rsa-sha256",
            Algorithm::Ed25519 => "a=ed25519-sha256",
        }
    }
}

/// Creates the sending domain for [`FROM_DOMAIN`] with a generated key. `api` is the base URL
/// ending in `/api/v1`.
pub async fn create_sending_domain(
    client: &reqwest::Client,
    api: &str,
    algorithm: Algorithm,
) -> anyhow::Result<()> {
    let body = json!({"domain": FROM_DOMAIN, "dkim_algorithm": algorithm.name()});
    let response = client
        .post(format!("{api}/sending-domains"))
        .header("Authorization", "bench")
        .json(&body)
        .send()
        .await
        .with_context(|| format!("creating sending domain {FROM_DOMAIN}"))?;
    let status = response.status();
    if !status.is_success() {
        let answer = response.text().await.unwrap_or_default();
        bail!("creating sending domain {FROM_DOMAIN} failed: HTTP {status}: {answer}");
    }
    Ok(())
}

/// Fails unless every message carries a `DKIM-Signature` by [`FROM_DOMAIN`] made with
/// `algorithm`.
pub fn check_signed(received: &[Received], algorithm: Algorithm) -> anyhow::Result<()> {
    let signed = |m: &&Received| {
        m.header("DKIM-Signature")
            .is_some_and(|signature| signed_by(&signature, algorithm))
    };
    let unsigned = received.len() - received.iter().filter(signed).count();
    if unsigned > 0 {
        bail!(
            "{unsigned} of {} messages arrived without a DKIM-Signature with d={FROM_DOMAIN} and {}",
            received.len(),
            algorithm.tag()
        );
    }
    Ok(())
}

/// Whether the value of a `DKIM-Signature` header names [`FROM_DOMAIN`] and `algorithm`.
fn signed_by(signature: &str, algorithm: Algorithm) -> bool {
    // Folding may put whitespace anywhere between tags; compare them without it.
    let compact: String = signature.split_whitespace().collect();
    let tags: Vec<&str> = compact.split(';').collect();
    tags.contains(&format!("d={FROM_DOMAIN}").as_str()) && tags.contains(&algorithm.tag())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_must_name_the_domain_and_the_algorithm() {
        let folded = "v=1; a=rsa-sha256; s=sluice202612;\r\n\t d=sender.test; c=relaxed/relaxed;\r\n\t bh=x; b=y";
        assert!(signed_by(folded, Algorithm::Rsa));
        assert!(!signed_by(folded, Algorithm::Ed25519));
        assert!(!signed_by(
            "v=1; a=rsa-sha256; d=other.test; b=y",
            Algorithm::Rsa
        ));
        assert!(!signed_by(
            "v=1; a=rsa-sha256; d=sender.test.example; b=y",
            Algorithm::Rsa
        ));
    }
}
