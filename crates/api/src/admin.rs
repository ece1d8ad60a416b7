//! Administration endpoints that act on the running server rather than on stored data.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Re-reads the configuration file and applies what can change while running. Returns a
/// sentence describing the failure when the new configuration is refused.
pub type Reload = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// `POST /admin/reload`: re-reads shaping, provider and bounce rules, as SIGHUP does.
pub async fn reload(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require("admin/manage")?;
    match (state.reload)() {
        Ok(()) => Ok(Json(json!({ "results": { "reloaded": true } }))),
        Err(reason) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "configuration refused",
            "",
            reason,
        )),
    }
}
