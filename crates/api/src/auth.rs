//! API keys and grants. A request carries its key in `Authorization`, raw as SparkPost's
//! clients send it, or as HTTP Basic with the key as the user name. Keys come from the
//! configuration file and from the spool; the spool keeps only their SHA-256 digests.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sluice_core::config::ApiKeyConfig;
use sluice_core::{Store, StoreError};

use crate::error::ApiError;
use crate::state::AppState;

/// What a stored key may do.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredKey {
    label: String,
    grants: Vec<String>,
}

/// Known keys, by digest.
#[derive(Clone)]
pub struct Keys {
    configured: Arc<HashMap<[u8; 32], Vec<String>>>,
    stored: sled::Tree,
}

impl Keys {
    /// Keys from the configuration plus those in the spool's `api_keys` tree.
    pub fn open(store: &Store, configured: &[ApiKeyConfig]) -> Result<Keys, StoreError> {
        let configured = configured
            .iter()
            .map(|k| (digest(&k.key), k.grants.clone()))
            .collect();
        Ok(Keys {
            configured: Arc::new(configured),
            stored: store.tree("api_keys")?,
        })
    }

    /// Whether any key exists at all.
    pub fn any(&self) -> bool {
        !self.configured.is_empty() || !self.stored.is_empty()
    }

    /// Creates a key with every grant, stores its digest, and returns the key itself: the only
    /// time it is ever visible.
    pub fn generate(&self, label: &str) -> Result<String, StoreError> {
        let bytes: [u8; 20] = rand::rng().random();
        let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let record = StoredKey {
            label: label.to_string(),
            grants: vec!["*".into()],
        };
        self.stored.insert(
            digest(&key),
            serde_json::to_vec(&record).unwrap_or_default(),
        )?;
        Ok(key)
    }

    fn grants(&self, key: &str) -> Option<Vec<String>> {
        let digest = digest(key);
        if let Some(grants) = self.configured.get(&digest) {
            return Some(grants.clone());
        }
        let stored = self.stored.get(digest).ok()??;
        serde_json::from_slice::<StoredKey>(&stored)
            .ok()
            .map(|k| k.grants)
    }
}

fn digest(key: &str) -> [u8; 32] {
    let hash = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(hash.as_ref());
    out
}

/// The authenticated caller of a request.
pub struct Caller {
    grants: Vec<String>,
}

impl Caller {
    /// Fails with 403 unless the key holds `grant`, `*`, or for a `…/view` grant the matching
    /// `…/modify`.
    pub fn require(&self, grant: &str) -> Result<(), ApiError> {
        // A key that may change a resource may also read it: `x/modify` covers `x/view`.
        let modify = grant
            .strip_suffix("/view")
            .map(|resource| format!("{resource}/modify"));
        let held = |g: &String| g == "*" || g == grant || modify.as_deref() == Some(g.as_str());
        if self.grants.iter().any(held) {
            Ok(())
        } else {
            Err(ApiError::forbidden(grant))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?;
        let key = key_from_header(header).ok_or_else(ApiError::unauthorized)?;
        let grants = state.keys.grants(&key).ok_or_else(ApiError::unauthorized)?;
        Ok(Caller { grants })
    }
}

/// The key in an `Authorization` value: raw, or the user name of Basic credentials.
fn key_from_header(header: &str) -> Option<String> {
    let header = header.trim();
    if let Some(encoded) = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let user = text.split_once(':').map_or(text.as_str(), |(user, _)| user);
        return (!user.is_empty()).then(|| user.to_string());
    }
    (!header.is_empty()).then(|| header.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_raw_or_from_basic_credentials() {
        assert_eq!(key_from_header("abc123").as_deref(), Some("abc123"));
        let basic = base64::engine::general_purpose::STANDARD.encode("abc123:");
        assert_eq!(
            key_from_header(&format!("Basic {basic}")).as_deref(),
            Some("abc123")
        );
        let user_pass = base64::engine::general_purpose::STANDARD.encode("abc123:secret");
        assert_eq!(
            key_from_header(&format!("Basic {user_pass}")).as_deref(),
            Some("abc123")
        );
        assert_eq!(key_from_header("  "), None);
    }

    #[test]
    fn modify_grants_cover_reading_and_nothing_else() {
        let caller = Caller {
            grants: vec!["webhooks/modify".into()],
        };
        assert!(caller.require("webhooks/view").is_ok());
        assert!(caller.require("webhooks/modify").is_ok());
        assert!(caller.require("templates/view").is_err());
        let viewer = Caller {
            grants: vec!["webhooks/view".into()],
        };
        assert!(viewer.require("webhooks/modify").is_err());
    }
}
