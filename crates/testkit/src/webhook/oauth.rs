//! A minimal OAuth2 token endpoint for the client-credentials grant, at `POST /token`.
//!
//! It accepts the credentials however a client is likely to send them: in an
//! `Authorization: Basic` header (`client_secret_basic`), or as `client_id` and
//! `client_secret` fields of a form-encoded or JSON body. The JSON form matters because a
//! SparkPost-style webhook posts its configured token-request body, a JSON object without a
//! `grant_type`, so a missing grant type is accepted and only a different one is refused.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth;
use super::state::Shared;

/// Issues a bearer token to the configured client; 404 when OAuth2 is not configured.
pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let behaviour = shared.behaviour();
    let Some(expected) = &behaviour.oauth2 else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(mut fields) = request_fields(&headers, &body) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    if fields
        .get("grant_type")
        .is_some_and(|grant| grant != "client_credentials")
    {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }

    let from_body = || Some((fields.remove("client_id")?, fields.remove("client_secret")?));
    let presented = auth::basic_credentials(&headers).or_else(from_body);
    if presented.as_ref() != Some(expected) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }

    let access_token = shared.issue_token(behaviour.token_lifetime);
    let expires_in = behaviour.token_lifetime.as_secs();
    let issued =
        json!({"access_token": access_token, "expires_in": expires_in, "token_type": "bearer"});
    Json(issued).into_response()
}

/// An error response in the shape RFC 6749 5.2 prescribes.
fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

/// The body's fields: a JSON object's string members when the content type says JSON,
/// otherwise form-encoded pairs. `None` for a JSON body that is not an object.
fn request_fields(headers: &HeaderMap, body: &[u8]) -> Option<HashMap<String, String>> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    if !content_type.is_some_and(|value| value.starts_with("application/json")) {
        return Some(form_fields(body));
    }
    let Ok(Value::Object(members)) = serde_json::from_slice(body) else {
        return None;
    };
    let strings = members.into_iter().filter_map(|(name, value)| match value {
        Value::String(text) => Some((name, text)),
        _ => None,
    });
    Some(strings.collect())
}

/// Decodes an `application/x-www-form-urlencoded` body; on repeated names the last one wins.
fn form_fields(body: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .map(|(name, value)| (percent_decode(name), percent_decode(value)))
        .collect()
}

/// Undoes form encoding: `+` is a space and `%XX` a byte; a malformed escape stays literal.
fn percent_decode(text: &str) -> String {
    let mut decoded = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        let escaped = tail
            .get(..2)
            .and_then(|hex| Some(hex_digit(hex[0])? << 4 | hex_digit(hex[1])?));
        match (byte, escaped) {
            (b'%', Some(value)) => {
                decoded.push(value);
                rest = &tail[2..];
            }
            _ => {
                decoded.push(if byte == b'+' { b' ' } else { byte });
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|digit| u8::try_from(digit).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn form_fields_are_percent_decoded() {
        let fields = form_fields(b"client_id=a%2Bb+c&client_secret=%7e%ZZ%4&flag&=x");
        assert_eq!(fields["client_id"], "a+b c");
        assert_eq!(fields["client_secret"], "~%ZZ%4");
        assert_eq!(fields["flag"], "");
        assert_eq!(fields[""], "x");
    }

    #[test]
    fn json_bodies_yield_their_string_members() {
        let mut headers = HeaderMap::new();
        let json_type = HeaderValue::from_static("application/json; charset=utf-8");
        headers.insert(header::CONTENT_TYPE, json_type);
        let body = br#"{"client_id":"sluice","client_secret":"s3cret","n":1}"#;
        let fields = request_fields(&headers, body).expect("a JSON object");
        assert_eq!(fields.len(), 2);
        assert_eq!(fields["client_secret"], "s3cret");
        assert_eq!(request_fields(&headers, b"[1]"), None);
    }
}
