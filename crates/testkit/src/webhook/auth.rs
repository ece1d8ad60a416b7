//! Reading credentials from request headers and checking them against the [`Behaviour`].

use axum::http::{header, HeaderMap, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::behaviour::Behaviour;
use super::state::Shared;

/// The `user:password` pair of a `Basic` authorization header, if well-formed.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let encoded = authorization(headers, "basic")?;
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The token of a `Bearer` authorization header, if present.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    authorization(headers, "bearer").map(str::trim)
}

/// The credentials after `scheme` (matched case-insensitively) in the `Authorization` header.
fn authorization<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (given, credentials) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(credentials)
}

/// Checks a request's headers; `Err` carries the status to answer with instead.
pub(crate) fn check(
    behaviour: &Behaviour,
    headers: &HeaderMap,
    shared: &Shared,
) -> Result<(), StatusCode> {
    if behaviour.requires_authorization() && !authorized(behaviour, headers, shared) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    if let Some((name, expected)) = &behaviour.required_header {
        let actual = headers.get(name.as_str()).map(|value| value.as_bytes());
        if actual != Some(expected.as_bytes()) {
            return Err(StatusCode::BAD_REQUEST);
        }
    }
    Ok(())
}

/// Whether the request satisfies any one of the configured authentication schemes.
fn authorized(behaviour: &Behaviour, headers: &HeaderMap, shared: &Shared) -> bool {
    let basic_ok = behaviour
        .basic_auth
        .as_ref()
        .is_some_and(|(user, password)| {
            basic_credentials(headers).is_some_and(|(u, p)| u == *user && p == *password)
        });
    let token = bearer_token(headers);
    let static_ok = behaviour
        .bearer_token
        .as_deref()
        .is_some_and(|t| token == Some(t));
    let oauth_ok = behaviour.oauth2.is_some() && token.is_some_and(|t| shared.token_is_valid(t));
    basic_ok || static_ok || oauth_ok
}

/// The `WWW-Authenticate` challenge to send with a 401, naming a scheme the client could use.
pub(crate) fn challenge(behaviour: &Behaviour) -> &'static str {
    if behaviour.basic_auth.is_some() {
        "Basic realm=\"sluice-testkit\""
    } else {
        "Bearer realm=\"sluice-testkit\""
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers_with_authorization(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn basic_credentials_are_decoded() {
        // "user:pa:ss" — a password may itself contain colons.
        let headers = headers_with_authorization("Basic dXNlcjpwYTpzcw==");
        assert_eq!(
            basic_credentials(&headers),
            Some(("user".into(), "pa:ss".into()))
        );
        assert_eq!(
            basic_credentials(&headers_with_authorization("Basic !!!")),
            None
        );
        assert_eq!(
            basic_credentials(&headers_with_authorization("Bearer abc")),
            None
        );
    }

    #[test]
    fn static_bearer_token_and_required_header_are_checked() {
        let shared = Shared::new(Behaviour::new());
        let behaviour = Behaviour::new()
            .bearer_token("s3cret")
            .require_header("X-Key", "k");
        let mut headers = headers_with_authorization("bearer s3cret");
        assert_eq!(
            check(&behaviour, &headers, &shared),
            Err(StatusCode::BAD_REQUEST)
        );
        headers.insert("x-key", HeaderValue::from_static("k"));
        assert_eq!(check(&behaviour, &headers, &shared), Ok(()));
        let wrong = headers_with_authorization("Bearer nope");
        assert_eq!(
            check(&behaviour, &wrong, &shared),
            Err(StatusCode::UNAUTHORIZED)
        );
    }
}
