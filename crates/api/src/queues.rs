//! Queue control for operators, under `/api/v1/queues` and `/api/v1/messages` (grant
//! `queues/manage`, an extension of SparkPost's grants), and SparkPost's cancellation of a
//! campaign's or a scheduled transmission's messages.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sluice_core::clock::iso8601_ms;
use sluice_core::MessageId;
use sluice_queue::{QueueStats, Scope};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::transmission::parse_body;

const GRANT: &str = "queues/manage";

/// Names one scope; exactly one field is given.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ScopeBody {
    domain: Option<String>,
    pool: Option<String>,
    site: Option<String>,
    campaign_id: Option<String>,
    transmission_id: Option<String>,
}

impl ScopeBody {
    fn scope(self) -> Result<Scope, ApiError> {
        let clean = |value: Option<String>, field: &str| -> Result<Option<String>, ApiError> {
            let Some(value) = value else { return Ok(None) };
            let value = value.trim().to_string();
            if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ApiError::invalid(format!(
                    "{field}: {value:?} is not a valid name"
                )));
            }
            Ok(Some(value))
        };
        let given = [
            clean(self.domain, "domain")?
                .map(queued_domain)
                .transpose()?
                .map(Scope::Domain),
            clean(self.pool, "pool")?.map(|p| Scope::Pool(p.to_ascii_lowercase())),
            clean(self.site, "site")?.map(|s| Scope::Site(s.to_ascii_lowercase())),
            clean(self.campaign_id, "campaign_id")?.map(Scope::Campaign),
            clean(self.transmission_id, "transmission_id")?.map(Scope::Transmission),
        ];
        let mut scopes = given.into_iter().flatten();
        match (scopes.next(), scopes.next()) {
            (Some(scope), None) => Ok(scope),
            _ => Err(ApiError::missing(
                "exactly one of domain, site, pool, campaign_id or transmission_id is required",
            )),
        }
    }
}

/// A domain as messages are queued under it: lower case, without the root's trailing dot.
fn queued_domain(domain: String) -> Result<String, ApiError> {
    let name = domain.strip_suffix('.').unwrap_or(&domain);
    if name.is_empty() || name.len() > 255 || name.contains("..") {
        return Err(ApiError::invalid(format!(
            "domain: {domain:?} is not a domain name"
        )));
    }
    Ok(name.to_ascii_lowercase())
}

/// `GET /queues`: counts by domain, site and pool, oldest message, next attempt, last reply.
pub async fn summary(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(GRANT)?;
    let summary = state.spool.summary()?;
    let group = |stats: &std::collections::BTreeMap<String, QueueStats>| -> Value {
        stats
            .iter()
            .map(|(name, s)| (name.clone(), stats_json(s)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    Ok(Json(json!({"results": {
        "total": summary.total,
        "domains": group(&summary.domains),
        "sites": group(&summary.sites),
        "pools": group(&summary.pools),
        "suspended": summary.suspended,
    }})))
}

fn stats_json(stats: &QueueStats) -> Value {
    json!({
        "count": stats.count,
        "oldest": stats.oldest_ms.map(iso8601_ms),
        "next_attempt": stats.next_attempt_ms.map(iso8601_ms),
        "last_reply": stats.last_reply,
        "suspended": stats.suspended,
    })
}

/// `POST /queues/suspend`: a domain, site or pool stops sending until resumed; its messages report
/// `delay` events, never bounces (until they expire).
pub async fn suspend(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(GRANT)?;
    let body: ScopeBody = parse_body(&body)?;
    let scope = suspendable(&state, body)?;
    if let Scope::Site(site) = &scope {
        known_site(&state, site)?;
    }
    let new = state.spool.suspend(&scope)?;
    state.store.durable().await?;
    tracing::warn!(%scope, "queue suspended by operator");
    Ok(Json(
        json!({"results": {"suspended": scope.to_string(), "changed": new}}),
    ))
}

/// `POST /queues/resume`: lifts a suspension; the scope's held messages are due at once, a
/// scheduled send at its `start_time`.
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(GRANT)?;
    let body: ScopeBody = parse_body(&body)?;
    let scope = suspendable(&state, body)?;
    let changed = state.spool.resume(&scope)?;
    state.store.durable().await?;
    tracing::info!(%scope, "queue resumed by operator");
    Ok(Json(
        json!({"results": {"resumed": scope.to_string(), "changed": changed}}),
    ))
}

fn suspendable(state: &AppState, body: ScopeBody) -> Result<Scope, ApiError> {
    let scope = suspendable_kind(body.scope()?)?;
    if let Scope::Pool(pool) = &scope {
        if !state.pools.contains(pool) {
            return Err(ApiError::invalid(format!(
                "pool: no IP pool named {pool:?}"
            )));
        }
    }
    Ok(scope)
}

/// Refuses to suspend a site delivery cannot send to, such as a mistyped provider. Resuming
/// does not ask, so a suspension outlives a provider removed from the list without being stuck.
fn known_site(state: &AppState, site: &str) -> Result<(), ApiError> {
    if (state.sites)(site) {
        return Ok(());
    }
    Err(ApiError::invalid(format!(
        "site: {site:?} is neither a provider of the provider list, route:HOP of a static \
         route, nor a set of MX host names"
    )))
}

/// `scope` if its kind can be suspended at all.
fn suspendable_kind(scope: Scope) -> Result<Scope, ApiError> {
    if scope.suspendable() {
        return Ok(scope);
    }
    Err(ApiError::invalid(concat!(
        "only a domain, a site or a pool can be suspended; ",
        "cancel campaigns and transmissions instead"
    )))
}

/// `POST /queues/retry`: the scope's deferred and held messages are due now; a scheduled send
/// still waits for its `start_time`.
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(GRANT)?;
    let body: ScopeBody = parse_body(&body)?;
    let scope = body.scope()?;
    let moved = state.spool.retry_now(&scope)?;
    Ok(Json(
        json!({"results": {"scope": scope.to_string(), "messages": moved}}),
    ))
}

/// `POST /queues/cancel`: removes the scope's messages, each reported as a class 25 bounce.
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(GRANT)?;
    let body: ScopeBody = parse_body(&body)?;
    let scope = body.scope()?;
    let count = state
        .spool
        .cancel(&scope, "554 5.7.1 [internal] Cancelled by operator")
        .await?;
    tracing::warn!(%scope, count, "messages cancelled by operator");
    Ok(Json(
        json!({"results": {"scope": scope.to_string(), "messages": count}}),
    ))
}

/// `GET /messages/{id}`: a queued message's state and why it waits.
pub async fn message(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(GRANT)?;
    let parsed: MessageId = id
        .parse()
        .map_err(|_| ApiError::invalid(format!("{id:?} is not a message id")))?;
    let status = state.spool.status(parsed)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "message {id} is not queued: it was delivered, bounced, expired or never accepted"
        ))
    })?;
    let m = &status.message;
    Ok(Json(json!({"results": {
        "id": m.id,
        "state": status.state,
        "reason": status.reason,
        "rcpt_to": m.rcpt_to,
        "mail_from": m.mail_from,
        "ip_pool": m.pool,
        "campaign_id": m.facts.campaign_id,
        "transmission_id": m.facts.transmission_id,
        "attempts": m.attempts,
        "last_reply": m.last_reply,
        "next_attempt": iso8601_ms(m.due_ms),
        "expires": iso8601_ms(m.expires_ms),
        "injection_time": iso8601_ms(m.facts.injection_time_ms),
    }})))
}

/// Query of `DELETE /transmissions`.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct CampaignQuery {
    campaign_id: Option<String>,
}

/// `DELETE /transmissions?campaign_id=X`: answers 204 at once; the campaign's queued messages
/// are cancelled in the background, each reported as a bounce.
pub async fn cancel_campaign(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<CampaignQuery>,
) -> Result<StatusCode, ApiError> {
    caller.require("transmissions/modify")?;
    let campaign = query
        .campaign_id
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::missing("campaign_id is required"))?;
    tokio::spawn(async move {
        let scope = Scope::Campaign(campaign);
        match state
            .spool
            .cancel(&scope, "554 5.7.1 [internal] Campaign cancelled")
            .await
        {
            Ok(count) => tracing::info!(%scope, count, "campaign cancelled"),
            Err(e) => tracing::error!(%scope, error = %e, "cancelling a campaign failed"),
        }
    });
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /transmissions/{id}`: cancels a transmission's messages that have not been sent.
pub async fn cancel_transmission(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require("transmissions/modify")?;
    let count = state
        .spool
        .cancel(
            &Scope::Transmission(id.clone()),
            "554 5.7.1 [internal] Transmission cancelled",
        )
        .await?;
    if count == 0 {
        return Err(ApiError::not_found(format!(
            "no queued messages of transmission {id}"
        )));
    }
    crate::transmission::record::mark_canceled(&state, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn description(error: ApiError) -> String {
        error.into_object()["description"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn a_domain_scope_is_the_domain_as_queued() {
        let scope = |domain: &str| {
            let body = ScopeBody {
                domain: Some(domain.into()),
                ..ScopeBody::default()
            };
            body.scope().map_err(description)
        };
        let queued = Scope::Domain("example.test".into());
        assert_eq!(scope("Example.TEST.").ok(), Some(queued.clone()));
        assert_eq!(scope("example.test").ok(), Some(queued));
        for bad in [".", "a..b", &"a".repeat(256)] {
            let error = scope(bad).expect_err(bad);
            assert!(error.contains("is not a domain name"), "{error}");
        }
    }

    #[test]
    fn refusing_to_suspend_a_campaign_names_every_suspendable_scope() {
        let error = suspendable_kind(Scope::Campaign("spring".into())).expect_err("refused");
        assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            description(error),
            "only a domain, a site or a pool can be suspended; \
             cancel campaigns and transmissions instead"
        );
        for scope in [
            Scope::Domain("example.test".into()),
            Scope::Site("google".into()),
            Scope::Pool("default".into()),
        ] {
            assert_eq!(suspendable_kind(scope.clone()).ok(), Some(scope));
        }
    }
}
