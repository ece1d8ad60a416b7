//! The catch-all handler: records every request and answers per the [`Behaviour`].

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::auth;
use super::behaviour::Behaviour;
use super::state::Shared;
use super::RecordedRequest;

/// Records the request, waits the scripted delay, and answers with the scripted status.
pub(crate) async fn record(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let arrived = Instant::now();
    let behaviour = shared.behaviour();
    if !behaviour.delay.is_zero() {
        tokio::time::sleep(behaviour.delay).await;
    }

    let (status, body) = match body {
        Ok(body) => (decide(&shared, &behaviour, &method, &headers), body),
        // An unreadable body (e.g. over the size limit) is still a request worth recording.
        Err(rejection) => (rejection.status(), Bytes::new()),
    };
    shared.record(RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: header_pairs(&headers),
        body,
        status: status.as_u16(),
        at: arrived,
    });
    respond(&behaviour, status)
}

/// Chooses the status: method and credentials are checked before a scripted status is used up.
fn decide(
    shared: &Shared,
    behaviour: &Behaviour,
    method: &Method,
    headers: &HeaderMap,
) -> StatusCode {
    if method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED;
    }
    if let Err(status) = auth::check(behaviour, headers, shared) {
        return status;
    }
    let scripted = shared.next_status();
    StatusCode::from_u16(scripted).unwrap_or_else(|_| {
        tracing::warn!(
            scripted,
            "webhook receiver: invalid scripted status, answering 500"
        );
        StatusCode::INTERNAL_SERVER_ERROR
    })
}

fn respond(behaviour: &Behaviour, status: StatusCode) -> Response {
    let mut response = status.into_response();
    if status == StatusCode::UNAUTHORIZED {
        let challenge = HeaderValue::from_static(auth::challenge(behaviour));
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
    }
    response
}

/// Header names as sent (the `http` crate lower-cases them) with values decoded lossily.
fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}
