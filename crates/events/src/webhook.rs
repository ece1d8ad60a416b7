//! Registered webhooks and the durable state of their delivery: each webhook's cursor into the
//! event log and the batch it is currently trying to deliver.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_core::{EventKind, Store, StoreError};

/// A webhook as registered through the API.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    /// A UUID.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// The URL batches are POSTed to.
    pub target: String,
    /// Event types it receives; empty means every type.
    pub events: Vec<EventKind>,
    /// Inactive webhooks keep their cursor but receive nothing.
    pub active: bool,
    /// `none`, `basic` or `oauth2`.
    pub auth_type: String,
    /// For `basic`: `{username, password}`.
    #[serde(default)]
    pub auth_credentials: Option<Value>,
    /// For `oauth2`: `{url, body}` of the token request.
    #[serde(default)]
    pub auth_request_details: Option<Value>,
    /// The deprecated shared token, sent as `X-MessageSystems-Webhook-Token`.
    #[serde(default)]
    pub auth_token: Option<String>,
    /// Extra headers sent with every batch.
    #[serde(default)]
    pub custom_headers: BTreeMap<String, String>,
    /// Key of the `X-Sluice-Signature` HMAC. Empty only for webhooks stored before signing
    /// existed; their requests go unsigned.
    #[serde(default)]
    pub signing_secret: String,
    /// For `oauth2`: when the token in `auth_credentials` expires, in Unix milliseconds; `None`
    /// when the token endpoint did not say, and then only the target's 400 or 401 renews it.
    #[serde(default)]
    pub token_expires_ms: Option<u64>,
    /// Unix milliseconds of the last batch the target accepted.
    #[serde(default)]
    pub last_successful_ms: Option<u64>,
    /// Unix milliseconds of the last failed attempt.
    #[serde(default)]
    pub last_failure_ms: Option<u64>,
}

impl Webhook {
    /// Whether this webhook receives events of `kind`.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.events.is_empty() || self.events.contains(&kind)
    }
}

/// A batch being delivered: the slice of the log it covers and how its attempts went.
/// Persisted, so its batch id stays the same across retries and restarts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingBatch {
    /// Sent as `X-MessageSystems-Batch-ID`.
    pub batch_id: String,
    /// The batch holds the wanted events with ids above this…
    pub after: u64,
    /// …up to and including this.
    pub upto: u64,
    /// When the first attempt was made, in Unix milliseconds.
    pub first_attempt_ms: u64,
    /// Attempts made so far.
    pub attempts: u32,
}

/// One failed or retried batch, as `batch-status` reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchStatus {
    /// The batch's id.
    pub batch_id: String,
    /// When this attempt was made, in Unix milliseconds.
    pub ts_ms: u64,
    /// Attempts made so far.
    pub attempts: u32,
    /// The HTTP status, or 0 when no answer came.
    pub response_code: u16,
    /// Why the attempt failed when there was no HTTP answer.
    pub failure_code: Option<String>,
    /// How long the attempt took, in milliseconds.
    pub latency_ms: u64,
}

/// The webhooks tree and the trees of their delivery state. Cheap to clone.
#[derive(Clone)]
pub struct WebhookStore {
    webhooks: sled::Tree,
    cursors: sled::Tree,
    pending: sled::Tree,
    statuses: sled::Tree,
}

impl WebhookStore {
    /// Opens the trees in `store`.
    pub fn open(store: &Store) -> Result<WebhookStore, StoreError> {
        Ok(WebhookStore {
            webhooks: store.tree("webhooks")?,
            cursors: store.tree("webhook_cursors")?,
            pending: store.tree("webhook_batches")?,
            statuses: store.tree("webhook_batch_status")?,
        })
    }

    /// Every registered webhook.
    pub fn list(&self) -> Result<Vec<Webhook>, StoreError> {
        let mut out = Vec::new();
        for entry in self.webhooks.iter() {
            let (_, value) = entry?;
            if let Ok(webhook) = serde_json::from_slice(&value) {
                out.push(webhook);
            }
        }
        Ok(out)
    }

    /// One webhook by id.
    pub fn get(&self, id: &str) -> Result<Option<Webhook>, StoreError> {
        Ok(self
            .webhooks
            .get(id)?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Creates a webhook whose cursor starts at `cursor`, so it receives events after it.
    pub fn create(&self, webhook: &Webhook, cursor: u64) -> Result<(), StoreError> {
        self.cursors.insert(&webhook.id, &cursor.to_be_bytes())?;
        self.webhooks.insert(&webhook.id, to_json(webhook))?;
        Ok(())
    }

    /// Replaces an existing webhook's settings, keeping the delivery times recorded since it
    /// was read. False, and nothing written, when the webhook was deleted meanwhile.
    pub fn update(&self, webhook: &Webhook) -> Result<bool, StoreError> {
        let previous = self.webhooks.fetch_and_update(&webhook.id, |current| {
            let bytes = current?;
            let mut next = webhook.clone();
            if let Ok(stored) = serde_json::from_slice::<Webhook>(bytes) {
                next.last_successful_ms = next.last_successful_ms.max(stored.last_successful_ms);
                next.last_failure_ms = next.last_failure_ms.max(stored.last_failure_ms);
            }
            Some(to_json(&next))
        })?;
        Ok(previous.is_some())
    }

    /// Writes back what delivery learned about a webhook: when a batch last succeeded or
    /// failed, and a fresh oauth2 token. Settings changed through the API meanwhile are kept,
    /// a token is kept only while the webhook still fetches tokens the same way, and a webhook
    /// deleted meanwhile stays deleted.
    pub fn record_delivery_state(&self, from: &Webhook) -> Result<(), StoreError> {
        self.webhooks.fetch_and_update(&from.id, |current| {
            let bytes = current?;
            let Ok(mut stored) = serde_json::from_slice::<Webhook>(bytes) else {
                return Some(bytes.to_vec());
            };
            stored.last_successful_ms = stored.last_successful_ms.max(from.last_successful_ms);
            stored.last_failure_ms = stored.last_failure_ms.max(from.last_failure_ms);
            if stored.auth_type == from.auth_type
                && stored.auth_request_details == from.auth_request_details
            {
                stored.auth_credentials = from.auth_credentials.clone();
                stored.token_expires_ms = from.token_expires_ms;
            }
            Some(to_json(&stored))
        })?;
        Ok(())
    }

    /// Removes a webhook and its delivery state.
    pub fn delete(&self, id: &str) -> Result<bool, StoreError> {
        self.cursors.remove(id)?;
        self.pending.remove(id)?;
        let prefix = status_prefix(id);
        for key in self.statuses.scan_prefix(&prefix).keys() {
            self.statuses.remove(key?)?;
        }
        Ok(self.webhooks.remove(id)?.is_some())
    }

    /// The id of the last event the webhook has been given (or skipped).
    pub fn cursor(&self, id: &str) -> Result<u64, StoreError> {
        Ok(self
            .cursors
            .get(id)?
            .and_then(|v| v.as_ref().try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    /// Moves the cursor and clears the pending batch together.
    pub fn advance(&self, id: &str, cursor: u64) -> Result<(), StoreError> {
        self.cursors.insert(id, &cursor.to_be_bytes())?;
        self.pending.remove(id)?;
        Ok(())
    }

    /// Moves the cursor to `cursor`, backwards or forwards, and forgets the pending batch: the
    /// next batch is formed afresh from there. The caller stops the webhook's task first.
    pub fn rewind(&self, id: &str, cursor: u64) -> Result<(), StoreError> {
        self.advance(id, cursor)
    }

    /// The batch the webhook is delivering, if any.
    pub fn pending(&self, id: &str) -> Result<Option<PendingBatch>, StoreError> {
        Ok(self
            .pending
            .get(id)?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Records the batch being delivered.
    pub fn set_pending(&self, id: &str, batch: &PendingBatch) -> Result<(), StoreError> {
        self.pending.insert(id, to_json(batch))?;
        Ok(())
    }

    /// Records a failed or retried attempt for `batch-status`.
    pub fn record_status(&self, id: &str, status: &BatchStatus) -> Result<(), StoreError> {
        let mut key = status_prefix(id);
        key.extend_from_slice(&status.ts_ms.to_be_bytes());
        key.extend_from_slice(status.batch_id.as_bytes());
        self.statuses.insert(key, to_json(status))?;
        Ok(())
    }

    /// The newest `limit` batch statuses of a webhook recorded after `since_ms`, newest first.
    pub fn statuses(
        &self,
        id: &str,
        since_ms: u64,
        limit: usize,
    ) -> Result<Vec<BatchStatus>, StoreError> {
        let mut out = Vec::new();
        for entry in self.statuses.scan_prefix(status_prefix(id)).rev() {
            let (_, value) = entry?;
            match serde_json::from_slice::<BatchStatus>(&value) {
                Ok(status) if status.ts_ms >= since_ms => out.push(status),
                Ok(_) => break,
                Err(_) => continue,
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}

fn status_prefix(id: &str) -> Vec<u8> {
    let mut key = id.as_bytes().to_vec();
    key.push(0);
    key
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // These are plain structs of strings, numbers and JSON values: serialising cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_state_never_undoes_an_update_or_a_delete() -> Result<(), StoreError> {
        let dir = std::env::temp_dir().join(format!("sluice-webhook-{}", std::process::id()));
        let store = Store::open(&dir, 8 << 20)?;
        let hooks = WebhookStore::open(&store)?;
        let old = Webhook {
            id: "w1".into(),
            target: "http://127.0.0.1:1/old".into(),
            auth_type: "none".into(),
            ..Webhook::default()
        };
        hooks.create(&old, 0)?;
        // The dispatcher holds `old` while an operator moves the webhook elsewhere.
        let moved = Webhook {
            target: "http://127.0.0.1:1/new".into(),
            ..old.clone()
        };
        assert!(hooks.update(&moved)?);
        let delivered = Webhook {
            last_successful_ms: Some(5),
            ..old.clone()
        };
        hooks.record_delivery_state(&delivered)?;
        let stored = hooks.get("w1")?.expect("webhook kept");
        assert_eq!(stored.target, "http://127.0.0.1:1/new");
        assert_eq!(stored.last_successful_ms, Some(5));

        assert!(hooks.delete("w1")?);
        hooks.record_delivery_state(&delivered)?;
        assert!(hooks.get("w1")?.is_none());
        assert!(!hooks.update(&moved)?);
        assert!(hooks.get("w1")?.is_none());
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }
}
