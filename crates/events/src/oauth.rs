//! OAuth2 for webhooks whose `auth_type` is `oauth2`: the token comes from POSTing
//! `auth_request_details.body` (as JSON) to `auth_request_details.url`, and is kept in the
//! webhook's `auth_credentials` as `{access_token, expires_in}` with its expiry beside it.

use serde_json::{json, Value};
use sluice_core::clock::now_ms;

use crate::webhook::Webhook;

/// A token is refreshed this long before the endpoint said it expires, so a batch does not
/// leave with a token that lapses on the way.
const EXPIRY_MARGIN_MS: u64 = 5_000;

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// `auth_request_details` lacks a URL or a body object.
    #[error("auth_request_details needs an http or https url and a body object")]
    Details,
    /// The token endpoint could not be reached.
    #[error("token request failed: {0}")]
    Request(#[from] reqwest::Error),
    /// The token endpoint refused.
    #[error("token endpoint answered HTTP {0}")]
    Status(u16),
    /// The answer carried no `access_token`.
    #[error("token endpoint answer has no access_token")]
    NoToken,
}

/// Whether the webhook authenticates with OAuth2.
pub fn in_use(webhook: &Webhook) -> bool {
    webhook.auth_type == "oauth2"
}

/// The token endpoint and the JSON body to post to it.
pub fn request_details(webhook: &Webhook) -> Result<(&str, &Value), TokenError> {
    let details = webhook
        .auth_request_details
        .as_ref()
        .ok_or(TokenError::Details)?;
    let url = details
        .get("url")
        .and_then(Value::as_str)
        .ok_or(TokenError::Details)?;
    let body = details
        .get("body")
        .filter(|b| b.is_object())
        .ok_or(TokenError::Details)?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(TokenError::Details);
    }
    Ok((url, body))
}

/// Whether a token must be fetched before the next request: none yet, or about to expire.
pub fn needs_token(webhook: &Webhook, now_ms: u64) -> bool {
    if bearer(webhook).is_none() {
        return true;
    }
    webhook
        .token_expires_ms
        .is_some_and(|expires| now_ms.saturating_add(EXPIRY_MARGIN_MS) >= expires)
}

/// The stored access token.
pub fn bearer(webhook: &Webhook) -> Option<&str> {
    webhook
        .auth_credentials
        .as_ref()?
        .get("access_token")?
        .as_str()
}

/// Fetches a new token and stores it (and its expiry) on the webhook; the caller persists it.
pub async fn fetch(client: &reqwest::Client, webhook: &mut Webhook) -> Result<(), TokenError> {
    let (url, body) = request_details(webhook)?;
    let response = client.post(url).json(body).send().await?;
    let status = response.status();
    if !status.is_success() {
        return Err(TokenError::Status(status.as_u16()));
    }
    let answer: Value = response.json().await?;
    let token = answer
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or(TokenError::NoToken)?;
    let expires_in = answer.get("expires_in").and_then(expires_in_secs);
    webhook.auth_credentials = Some(json!({"access_token": token, "expires_in": expires_in}));
    webhook.token_expires_ms =
        expires_in.map(|secs| now_ms().saturating_add(secs.saturating_mul(1000)));
    tracing::debug!(webhook = %webhook.id, expires_in, "oauth2 token fetched");
    Ok(())
}

/// `expires_in` as endpoints send it: a number, or a number in a string.
fn expires_in_secs(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(details: Value) -> Webhook {
        Webhook {
            auth_type: "oauth2".into(),
            auth_request_details: Some(details),
            ..Webhook::default()
        }
    }

    #[test]
    fn details_need_a_url_and_a_body_object() {
        let good = webhook(json!({"url": "http://127.0.0.1:1/token", "body": {"a": "b"}}));
        assert!(request_details(&good).is_ok());
        for bad in [
            json!({"url": "http://127.0.0.1:1/token"}),
            json!({"url": "ftp://x/token", "body": {}}),
            json!({"url": 7, "body": {}}),
            json!({"body": {}}),
        ] {
            assert!(request_details(&webhook(bad)).is_err());
        }
    }

    #[test]
    fn a_token_is_needed_when_missing_or_about_to_expire() {
        let mut hook = webhook(json!({}));
        assert!(needs_token(&hook, 0));
        hook.auth_credentials = Some(json!({"access_token": "t", "expires_in": 60}));
        hook.token_expires_ms = Some(60_000);
        assert!(!needs_token(&hook, 1_000));
        assert!(needs_token(&hook, 56_000));
        hook.token_expires_ms = None;
        assert!(!needs_token(&hook, u64::MAX));
    }

    #[test]
    fn expires_in_is_read_from_numbers_and_strings() {
        assert_eq!(expires_in_secs(&json!(3600)), Some(3600));
        assert_eq!(expires_in_secs(&json!("3600")), Some(3600));
        assert_eq!(expires_in_secs(&json!("soon")), None);
    }
}
