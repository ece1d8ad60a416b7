//! `/api/v1/sending-domains`: the domains Sluice sends from and their DKIM keys. A domain made
//! with a key (generated or imported) signs its mail at once: Sluice cannot check DNS from every
//! network it runs in, so publishing the record is the operator's step, and the answer says
//! exactly what to publish.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::dkim::{Algorithm, DomainKey};
use crate::error::ApiError;
use crate::state::AppState;

const GRANT: &str = "sending_domains/manage";

/// Body of `POST /sending-domains`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CreateBody {
    domain: Option<String>,
    dkim: Option<ImportedKey>,
    generate_dkim: Option<bool>,
    dkim_key_length: Option<usize>,
    /// Sluice's extension: `rsa` (default) or `ed25519` for a generated key.
    dkim_algorithm: Option<Algorithm>,
}

/// An imported key: `private` is base64 DER or PEM, `public` as it is published.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ImportedKey {
    private: Option<String>,
    public: Option<String>,
    selector: Option<String>,
}

/// `POST /sending-domains`.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateBody>,
) -> Result<Json<Value>, ApiError> {
    caller.require(GRANT)?;
    let domain = body
        .domain
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .ok_or_else(|| ApiError::missing("domain is required"))?;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let domain = domain.as_str();
    if !is_dns_name(domain) || !domain.contains('.') {
        return Err(ApiError::invalid(format!(
            "domain: {domain:?} is not a domain name"
        )));
    }
    if state.keyring.get(domain)?.is_some() {
        return Err(ApiError::conflict(format!(
            "sending domain {domain} already exists"
        )));
    }
    let key = match body.dkim {
        Some(imported) => import(domain, imported)?,
        None if body.generate_dkim != Some(false) => {
            generate(domain, body.dkim_algorithm, body.dkim_key_length).await?
        }
        None => {
            return Err(ApiError::invalid(
                "a sending domain needs a DKIM key: give dkim or leave generate_dkim true",
            ))
        }
    };
    state.keyring.put(&key).map_err(ApiError::invalid)?;
    state.store.durable().await?;
    tracing::info!(domain = %key.domain, selector = %key.selector, "sending domain created");
    Ok(Json(
        json!({"results": {"message": "Successfully Created domain.", "domain": key.domain, "dkim": dkim_json(&key)}}),
    ))
}

async fn generate(
    domain: &str,
    algorithm: Option<Algorithm>,
    bits: Option<usize>,
) -> Result<DomainKey, ApiError> {
    let bits = bits.unwrap_or(2048);
    // ring, which signs, refuses RSA keys under 2048 bits, as receivers increasingly do.
    if ![2048, 3072, 4096].contains(&bits) {
        return Err(ApiError::invalid(
            "dkim_key_length must be 2048, 3072 or 4096",
        ));
    }
    let (domain, algorithm) = (domain.to_string(), algorithm.unwrap_or(Algorithm::Rsa));
    // Selectors name the month the key was made, so a rotated key gets a new one.
    let now = sluice_core::clock::iso8601_ms(sluice_core::clock::now_ms());
    let selector = format!(
        "sluice{}{}",
        now.get(..4).unwrap_or("0000"),
        now.get(5..7).unwrap_or("00")
    );
    // RSA key generation takes a while; keep it off the async workers.
    tokio::task::spawn_blocking(move || DomainKey::generate(&domain, &selector, algorithm, bits))
        .await
        .map_err(|e| ApiError::invalid(e.to_string()))?
        .map_err(ApiError::invalid)
}

fn import(domain: &str, imported: ImportedKey) -> Result<DomainKey, ApiError> {
    let private = imported
        .private
        .ok_or_else(|| ApiError::missing("dkim.private is required to import a key"))?;
    let selector = imported
        .selector
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::missing("dkim.selector is required"))?;
    if !is_dns_name(&selector) {
        return Err(ApiError::invalid(format!(
            "dkim.selector: {selector:?} is not a DNS label"
        )));
    }
    DomainKey::import(domain, &selector, &private, imported.public.as_deref())
        .map_err(ApiError::invalid)
}

/// Whether `name` is a DNS name of ASCII letters, digits, hyphens and underscores, in labels of
/// 1 to 63 characters that do not start or end with a hyphen: what a domain or selector must be
/// before it goes into a DKIM-Signature header or a DNS record.
fn is_dns_name(name: &str) -> bool {
    let numeric_tld = name
        .rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    name.len() <= 253
        && !numeric_tld
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// `GET /sending-domains`.
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(GRANT)?;
    let domains: Vec<Value> = state.keyring.list()?.iter().map(domain_json).collect();
    Ok(Json(json!({ "results": domains })))
}

/// `GET /sending-domains/{domain}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(domain): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(GRANT)?;
    let key = state
        .keyring
        .get(&domain)?
        .ok_or_else(|| ApiError::not_found(format!("no sending domain {domain}")))?;
    Ok(Json(json!({ "results": domain_json(&key) })))
}

/// `DELETE /sending-domains/{domain}`.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(domain): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(GRANT)?;
    if !state.keyring.remove(&domain)? {
        return Err(ApiError::not_found(format!("no sending domain {domain}")));
    }
    state.store.durable().await?;
    Ok(StatusCode::NO_CONTENT)
}

fn dkim_json(key: &DomainKey) -> Value {
    json!({
        "public": key.public,
        "selector": key.selector,
        "signing_domain": key.domain,
        "headers": "from:to:subject:date:message-id:reply-to:cc:mime-version:content-type",
        "txt_record": key.txt_record(),
        "txt_name": format!("{}._domainkey.{}", key.selector, key.domain),
    })
}

fn domain_json(key: &DomainKey) -> Value {
    json!({
        "domain": key.domain,
        "dkim": dkim_json(key),
        "status": {"ownership_verified": true, "dkim_status": "valid", "compliance_status": "valid"},
    })
}
