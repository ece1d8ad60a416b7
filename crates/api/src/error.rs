//! API errors and their one mapping to SparkPost's error body:
//! `{"errors":[{"message","code","description"}]}` with the contract's HTTP status.
//!
//! Internal error chains are logged, never shown to the client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use sluice_core::StoreError;

/// An error answered to an API client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: Map<String, Value>,
}

impl ApiError {
    /// An error with SparkPost's `message`, numeric `code` and a `description`.
    pub fn new(
        status: StatusCode,
        message: &str,
        code: &str,
        description: impl Into<String>,
    ) -> ApiError {
        let mut body = Map::new();
        body.insert("message".into(), message.into());
        if !code.is_empty() {
            body.insert("code".into(), code.into());
        }
        let description = description.into();
        if !description.is_empty() {
            body.insert("description".into(), description.into());
        }
        ApiError { status, body }
    }

    /// 401 with the contract's fixed body.
    pub fn unauthorized() -> ApiError {
        let mut body = Map::new();
        body.insert("message".into(), "Unauthorized".into());
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            body,
        }
    }

    /// 403: the key lacks the grant.
    pub fn forbidden(grant: &str) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "",
            format!("this API key lacks the {grant} grant"),
        )
    }

    /// 422 `1400`: a required field is missing.
    pub fn missing(description: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "required field is missing",
            "1400",
            description,
        )
    }

    /// 422 `1300`: a field has the wrong form.
    pub fn invalid(description: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid data format/type",
            "1300",
            description,
        )
    }

    /// 400 `1200`: the body is not what the endpoint takes.
    pub fn bad_request(description: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid params",
            "1200",
            description,
        )
    }

    /// 404 `1600`.
    pub fn not_found(description: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "resource not found",
            "1600",
            description,
        )
    }

    /// 413 `1300`: over a size limit, naming it. The contract gives 413 no code of its own;
    /// `1300` is the one a field over its length limit already gets.
    pub fn too_large(description: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request is too large",
            "1300",
            description,
        )
    }

    /// 409 `1602`: the resource already exists or is in use.
    pub fn conflict(description: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::CONFLICT,
            "resource conflict",
            "1602",
            description,
        )
    }

    /// 422 `3000`: content that does not compile, naming the part and line.
    pub fn template_syntax(part: &str, line: u32, description: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "substitution language syntax error in template content",
            "3000",
            description,
        )
        .with("part", part.into())
        .with("line", line.into())
    }

    /// Adds a field to the error object (`part`, `line`, `response`).
    pub fn with(mut self, key: &str, value: Value) -> ApiError {
        self.body.insert(key.into(), value);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error object, for lists such as `rcpt_to_errors`.
    pub fn into_object(self) -> Value {
        Value::Object(self.body)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        tracing::error!(error = %error, "request failed on the spool");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service unavailable",
            "",
            "the spool cannot accept writes right now; nothing was accepted",
        )
    }
}

impl From<sled::Error> for ApiError {
    fn from(error: sled::Error) -> ApiError {
        ApiError::from(StoreError::Storage(error))
    }
}

/// Gives errors that axum answers itself (a body over the size limit, a query string that does
/// not parse, a wrong method) SparkPost's error body, so clients can read every error alike.
pub async fn sparkpost_shape(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap_or_default();
    let message = status.canonical_reason().unwrap_or("error").to_lowercase();
    let description = String::from_utf8_lossy(&body).trim().to_string();
    ApiError::new(status, &message, code_for(status), description).into_response()
}

/// The code our own errors carry for a status axum answers itself; none where no error of ours
/// has that status (405, for one).
fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "1200",
        StatusCode::NOT_FOUND => "1600",
        StatusCode::PAYLOAD_TOO_LARGE => "1300",
        _ => "",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "errors": [Value::Object(self.body)] })),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answered(response: Response) -> Value {
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap_or_default();
        serde_json::from_slice(&body).unwrap_or_default()
    }

    #[test]
    fn size_and_conflict_errors_carry_codes() {
        let large = ApiError::too_large("recipients: at most 2 recipients per transmission");
        assert_eq!(large.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(large.into_object()["code"], "1300");
        let conflict = ApiError::conflict("a snippet with id \"footer\" already exists");
        assert_eq!(conflict.status(), StatusCode::CONFLICT);
        assert_eq!(conflict.into_object()["code"], "1602");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_answered_by_axum_gets_the_same_code() {
        let plain = (StatusCode::PAYLOAD_TOO_LARGE, "length limit exceeded").into_response();
        let shaped = sparkpost_shape(plain).await;
        assert_eq!(shaped.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = answered(shaped).await;
        assert_eq!(body["errors"][0]["code"], "1300", "{body}");
        assert_eq!(body["errors"][0]["description"], "length limit exceeded");
        let wrong_method = (StatusCode::METHOD_NOT_ALLOWED, "").into_response();
        let body = answered(sparkpost_shape(wrong_method).await).await;
        assert!(body["errors"][0].get("code").is_none(), "{body}");
    }
}
