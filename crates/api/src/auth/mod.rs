//! API keys and grants. A request carries its key in `Authorization`, raw as SparkPost's
//! clients send it, or as HTTP Basic with the key as the user name. Keys come from the
//! configuration file and from the spool; the spool keeps only their SHA-256 digests. A key with
//! `valid_ips` is honoured only from those addresses.

pub mod ips;
pub mod keys;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;

use crate::error::ApiError;
use crate::state::AppState;
pub use keys::{KeyRecord, Keys};

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

    /// Fails with 403 naming the first of `grants` the key does not hold: a key can hand out,
    /// or change a key holding, only what it holds itself.
    pub fn require_all(&self, grants: &[String]) -> Result<(), ApiError> {
        grants.iter().try_for_each(|g| self.require(g))
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
        let record = state
            .keys
            .lookup(&key)?
            .ok_or_else(ApiError::unauthorized)?;
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        if !ips::allowed(&record.valid_ips, peer) {
            return Err(ApiError::unauthorized());
        }
        Ok(Caller {
            grants: record.grants,
        })
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
