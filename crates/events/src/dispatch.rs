//! Webhook dispatch: one task per active webhook follows the event log from the webhook's
//! cursor, gathers wanted events into batches and POSTs them until the target answers 2xx.
//!
//! A batch is recorded before its first attempt, so its id stays the same on every retry, and
//! the cursor moves only after a 2xx (or after the retry window gives up on the batch, whose
//! events then stay in the log). Delivery is therefore at least once and in log order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use sluice_core::clock::now_ms;
use sluice_core::config::WebhookConfig;
use sluice_core::{Event, Store, StoreError};
use tokio::task::JoinHandle;

use crate::log::EventLog;
use crate::webhook::{BatchStatus, PendingBatch, Webhook, WebhookStore};
use crate::{oauth, sign};

/// What a target answered to one POST.
#[derive(Clone, Debug)]
pub struct PostOutcome {
    /// HTTP status, or 0 when no answer came.
    pub status: u16,
    /// Response headers, lower-case names.
    pub headers: serde_json::Map<String, Value>,
    /// Response body, lossily decoded, cut to 4 KiB.
    pub body: String,
    /// Why there was no answer (connect refused, timeout), when there was none.
    pub failure: Option<String>,
    /// How long the attempt took.
    pub latency: Duration,
}

impl PostOutcome {
    /// An attempt that got no HTTP answer, for the reason given.
    pub fn unanswered(failure: String, started: Instant) -> PostOutcome {
        PostOutcome {
            status: 0,
            headers: serde_json::Map::new(),
            body: String::new(),
            failure: Some(failure),
            latency: started.elapsed(),
        }
    }

    /// Whether the target accepted the batch.
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Starts, stops and restarts the per-webhook delivery tasks. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    shared: Arc<Shared>,
}

struct Shared {
    log: EventLog,
    store: Store,
    webhooks: WebhookStore,
    config: WebhookConfig,
    client: reqwest::Client,
    tasks: Mutex<HashMap<String, JoinHandle<()>>>,
}

impl Dispatcher {
    /// A dispatcher over `log`; call [`Dispatcher::start_all`] to begin delivering.
    pub fn new(
        log: EventLog,
        store: Store,
        webhooks: WebhookStore,
        config: WebhookConfig,
    ) -> Result<Dispatcher, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let tasks = Mutex::new(HashMap::new());
        let shared = Arc::new(Shared {
            log,
            store,
            webhooks,
            config,
            client,
            tasks,
        });
        Ok(Dispatcher { shared })
    }

    /// Starts a task for every active webhook.
    pub fn start_all(&self) -> Result<(), StoreError> {
        for webhook in self.shared.webhooks.list()? {
            self.restart(&webhook.id);
        }
        Ok(())
    }

    /// (Re)starts the task of one webhook after it was created or changed; stops it when the
    /// webhook is gone or inactive. A pending batch survives the restart with its id.
    pub fn restart(&self, id: &str) {
        let mut tasks = self.shared.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(task) = tasks.remove(id) {
            task.abort();
        }
        let Ok(Some(webhook)) = self.shared.webhooks.get(id) else {
            return;
        };
        if webhook.active {
            let shared = self.shared.clone();
            tasks.insert(
                id.to_string(),
                tokio::spawn(deliver_forever(shared, webhook.id)),
            );
        }
    }

    /// Stops a webhook's task, moves its cursor to `cursor` and starts it again, so delivery
    /// resumes with the event after `cursor`. The task is awaited before the cursor moves, so a
    /// batch it was finishing cannot move the cursor back past the replay point.
    pub async fn replay(&self, id: &str, cursor: u64) -> Result<(), StoreError> {
        let task = self
            .shared
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
        self.shared.webhooks.rewind(id, cursor)?;
        tracing::info!(webhook = %id, cursor, "webhook replays from the log");
        self.restart(id);
        Ok(())
    }

    /// POSTs `body` to a webhook's target with its headers, signature and authentication. An
    /// OAuth2 token is fetched or renewed on the way and left on `webhook` for the caller to
    /// store.
    pub async fn post(&self, webhook: &mut Webhook, batch_id: &str, body: &Value) -> PostOutcome {
        post_with_auth(&self.shared.client, webhook, batch_id, body).await
    }

    /// Fetches a fresh OAuth2 token onto `webhook`, for a webhook just created or changed.
    pub async fn fetch_token(&self, webhook: &mut Webhook) -> Result<(), oauth::TokenError> {
        oauth::fetch(&self.shared.client, webhook).await
    }
}

/// Delivers a webhook's batches until the task is aborted.
async fn deliver_forever(shared: Arc<Shared>, id: String) {
    loop {
        match deliver_one_batch(&shared, &id).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::error!(webhook = %id, error = %e, "webhook dispatch failed on the spool");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}

/// Forms (or resumes) one batch and tries it until it is accepted or given up.
/// Returns false when the webhook no longer exists.
///
/// The task writes back its copy of the webhook (last success or failure, a renewed OAuth2
/// token). An API update that lands while an attempt is in flight can be overwritten by that
/// copy, because the task is aborted only after the update is written; storing delivery state
/// apart from the settings the API edits would remove the overlap.
async fn deliver_one_batch(shared: &Shared, id: &str) -> Result<bool, StoreError> {
    let Some(mut webhook) = shared.webhooks.get(id)? else {
        return Ok(false);
    };
    // A batch recorded before a restart is read back from the log; a new one arrives with the
    // events it was formed from.
    let (mut batch, events) = match shared.webhooks.pending(id)? {
        Some(batch) => {
            let events = batch_events(shared, &webhook, &batch)?;
            (batch, events)
        }
        None => match next_batch(shared, &webhook).await? {
            Some(formed) => formed,
            None => return Ok(true),
        },
    };
    if events.is_empty() {
        // Retention removed the batch's events before they could be sent.
        shared.webhooks.advance(id, batch.upto)?;
        return Ok(true);
    }
    let body = Value::Array(events.iter().map(Event::to_webhook_json).collect());
    // Nothing is sent that a crash could still take back.
    shared.store.durable().await?;
    loop {
        let outcome = post_with_auth(&shared.client, &mut webhook, &batch.batch_id, &body).await;
        batch.attempts += 1;
        if outcome.accepted() {
            tracing::debug!(webhook = %id, batch = %batch.batch_id, events = events.len(), "batch delivered");
            webhook.last_successful_ms = Some(now_ms());
            shared.webhooks.record_delivery_state(&webhook)?;
            shared.webhooks.advance(id, batch.upto)?;
            return Ok(true);
        }
        record_failure(shared, &mut webhook, &batch, &outcome)?;
        let elapsed = Duration::from_millis(now_ms().saturating_sub(batch.first_attempt_ms));
        let wait = retry_wait(&shared.config, batch.attempts);
        if elapsed + wait > shared.config.retry_window {
            tracing::warn!(webhook = %id, batch = %batch.batch_id, attempts = batch.attempts, "giving up on batch after its retry window; its events stay in the log");
            shared.webhooks.advance(id, batch.upto)?;
            return Ok(true);
        }
        shared.webhooks.set_pending(id, &batch)?;
        tokio::time::sleep(wait).await;
    }
}

/// Waits for wanted events after the cursor, records them as the next batch, and returns it with
/// its wanted events. Returns None when the events read were all filtered out (the cursor moves
/// past them).
async fn next_batch(
    shared: &Shared,
    webhook: &Webhook,
) -> Result<Option<(PendingBatch, Vec<Event>)>, StoreError> {
    let after = shared.webhooks.cursor(&webhook.id)?;
    let events = gather(shared, after).await?;
    let Some(upto) = events.last().map(|e| e.event_id) else {
        return Ok(None);
    };
    if !events.iter().any(|e| webhook.wants(e.kind)) {
        shared.webhooks.advance(&webhook.id, upto)?;
        return Ok(None);
    }
    let batch = PendingBatch {
        batch_id: uuid::Uuid::new_v4().to_string(),
        after,
        upto,
        first_attempt_ms: now_ms(),
        attempts: 0,
    };
    shared.webhooks.set_pending(&webhook.id, &batch)?;
    let wanted = events
        .into_iter()
        .filter(|e| webhook.wants(e.kind))
        .collect();
    Ok(Some((batch, wanted)))
}

/// How often a filling batch checks whether it is full.
const FILL_CHECK: Duration = Duration::from_millis(25);

/// Reads events after `after`: waits for the first, then up to `batch_interval` for the batch
/// to fill, so a quiet stream is sent at once and a busy one in full batches.
async fn gather(shared: &Shared, after: u64) -> Result<Vec<Event>, StoreError> {
    let size = shared.config.batch_size;
    let mut newest = shared.log.subscribe();
    while *newest.borrow_and_update() <= after {
        if newest.changed().await.is_err() {
            return Ok(Vec::new());
        }
    }
    let deadline = Instant::now() + shared.config.batch_interval;
    loop {
        // Count keys, decode nothing, and look at most every FILL_CHECK: re-reading the batch on
        // every append cost more CPU than delivering the mail the events describe.
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() || shared.log.count_after(after, size)? >= size {
            return shared.log.read_after(after, size);
        }
        tokio::time::sleep(remaining.min(FILL_CHECK)).await;
    }
}

/// The wanted events of a recorded batch, read back from the log.
fn batch_events(
    shared: &Shared,
    webhook: &Webhook,
    batch: &PendingBatch,
) -> Result<Vec<Event>, StoreError> {
    let mut out = Vec::new();
    let mut after = batch.after;
    while after < batch.upto {
        let page = shared
            .log
            .read_after(after, shared.config.batch_size.max(1))?;
        let Some(last) = page.last().map(|e| e.event_id) else {
            break;
        };
        out.extend(
            page.into_iter()
                .filter(|e| e.event_id <= batch.upto && webhook.wants(e.kind)),
        );
        after = last;
    }
    Ok(out)
}

fn record_failure(
    shared: &Shared,
    webhook: &mut Webhook,
    batch: &PendingBatch,
    outcome: &PostOutcome,
) -> Result<(), StoreError> {
    tracing::info!(webhook = %webhook.id, batch = %batch.batch_id, status = outcome.status, failure = outcome.failure.as_deref().unwrap_or(""), "webhook target refused a batch");
    webhook.last_failure_ms = Some(now_ms());
    shared.webhooks.record_delivery_state(webhook)?;
    shared.webhooks.record_status(
        &webhook.id,
        &BatchStatus {
            batch_id: batch.batch_id.clone(),
            ts_ms: now_ms(),
            attempts: batch.attempts,
            response_code: outcome.status,
            failure_code: outcome.failure.clone(),
            latency_ms: outcome.latency.as_millis() as u64,
        },
    )
}

/// The wait before attempt `attempts + 1`; the schedule's last entry repeats.
fn retry_wait(config: &WebhookConfig, attempts: u32) -> Duration {
    let index = (attempts as usize).saturating_sub(1);
    config
        .retry_schedule
        .get(index)
        .or(config.retry_schedule.last())
        .copied()
        .unwrap_or(Duration::from_secs(60))
}

/// [`post`], with the OAuth2 token fetched first when there is none or it is about to expire,
/// and fetched again with one more attempt when the target answers 400 or 401, which is how
/// receivers say a token expired.
async fn post_with_auth(
    client: &reqwest::Client,
    webhook: &mut Webhook,
    batch_id: &str,
    body: &Value,
) -> PostOutcome {
    if !oauth::in_use(webhook) {
        return post(client, webhook, batch_id, body).await;
    }
    let started = Instant::now();
    if oauth::needs_token(webhook, now_ms()) {
        if let Err(e) = oauth::fetch(client, webhook).await {
            return PostOutcome::unanswered(e.to_string(), started);
        }
    }
    let outcome = post(client, webhook, batch_id, body).await;
    if !matches!(outcome.status, 400 | 401) {
        return outcome;
    }
    tracing::info!(webhook = %webhook.id, status = outcome.status, "target refused the oauth2 token; fetching a new one");
    if let Err(e) = oauth::fetch(client, webhook).await {
        tracing::info!(webhook = %webhook.id, error = %e, "oauth2 token refresh failed");
        return outcome;
    }
    post(client, webhook, batch_id, body).await
}

/// One POST of `body`, signed, with the webhook's headers and credentials.
async fn post(
    client: &reqwest::Client,
    webhook: &Webhook,
    batch_id: &str,
    body: &Value,
) -> PostOutcome {
    let started = Instant::now();
    // Serialising a JSON value into memory cannot fail.
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut request = client
        .post(&webhook.target)
        .header("Content-Type", "application/json")
        .header("X-MessageSystems-Batch-ID", batch_id);
    if !webhook.signing_secret.is_empty() {
        let t = now_ms() / 1000;
        let signature = sign::signature(&webhook.signing_secret, t, &bytes);
        request = request.header(sign::HEADER, signature);
    }
    for (name, value) in &webhook.custom_headers {
        request = request.header(name.as_str(), value.as_str());
    }
    if let Some(token) = &webhook.auth_token {
        request = request.header("X-MessageSystems-Webhook-Token", token.as_str());
    }
    if let Some(header) = authorization(webhook) {
        request = request.header("Authorization", header);
    }
    match request.body(bytes).send().await {
        Ok(response) => read_outcome(response, started).await,
        Err(e) => {
            let failure = if e.is_timeout() {
                "timeout".into()
            } else {
                e.to_string()
            };
            PostOutcome::unanswered(failure, started)
        }
    }
}

/// The `Authorization` value for basic and oauth2 webhooks.
fn authorization(webhook: &Webhook) -> Option<String> {
    if oauth::in_use(webhook) {
        return oauth::bearer(webhook).map(|token| format!("Bearer {token}"));
    }
    basic_auth(webhook)
}

fn basic_auth(webhook: &Webhook) -> Option<String> {
    if webhook.auth_type != "basic" {
        return None;
    }
    let credentials = webhook.auth_credentials.as_ref()?;
    let user = credentials.get("username")?.as_str()?;
    let password = credentials
        .get("password")
        .and_then(Value::as_str)
        .unwrap_or("");
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    Some(format!("Basic {encoded}"))
}

async fn read_outcome(response: reqwest::Response, started: Instant) -> PostOutcome {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                Value::from(String::from_utf8_lossy(value.as_bytes()).into_owned()),
            )
        })
        .collect();
    let bytes = response.bytes().await.unwrap_or_default();
    let body = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).into_owned();
    PostOutcome {
        status,
        headers,
        body,
        failure: None,
        latency: started.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_waits_follow_the_schedule_then_repeat_its_last_entry() {
        let config = WebhookConfig {
            retry_schedule: vec![Duration::from_secs(1), Duration::from_secs(5)],
            ..WebhookConfig::default()
        };
        assert_eq!(retry_wait(&config, 1), Duration::from_secs(1));
        assert_eq!(retry_wait(&config, 2), Duration::from_secs(5));
        assert_eq!(retry_wait(&config, 9), Duration::from_secs(5));
    }
}
