//! What every handler can reach.

use std::collections::HashSet;
use std::sync::Arc;

use sluice_core::config::{ApiConfig, QueueConfig};
use sluice_core::{IdGenerator, Store};
use sluice_events::{Dispatcher, EventLog, WebhookStore};
use sluice_queue::Spool;

use crate::admin::Reload;
use crate::auth::Keys;
use crate::dkim::Keyring;
use crate::snippets::SnippetStore;
use crate::templates::TemplateStore;

/// Whether a name is a site delivery can send to. Delivery owns the provider list and the
/// static routes, and reloads them, so the API asks it rather than keeping a copy.
pub type SiteCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Shared handler state. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The durable store.
    pub store: Store,
    /// Accepted messages go here.
    pub spool: Spool,
    /// Events go here.
    pub log: EventLog,
    /// Registered webhooks.
    pub webhooks: WebhookStore,
    /// Starts and stops webhook delivery.
    pub dispatcher: Dispatcher,
    /// API keys.
    pub keys: Keys,
    /// DKIM keys of the sending domains.
    pub keyring: Keyring,
    /// Transmission and message ids.
    pub ids: Arc<IdGenerator>,
    /// Listener settings and limits.
    pub config: Arc<ApiConfig>,
    /// IP pools that exist, lower-cased.
    pub pools: Arc<HashSet<String>>,
    /// Whether a site an operator names exists.
    pub sites: SiteCheck,
    /// How long messages may stay queued.
    pub queue: Arc<QueueConfig>,
    /// Stored templates.
    pub templates: TemplateStore,
    /// Stored snippets, compiled.
    pub snippets: SnippetStore,
    /// Applies a re-read configuration to the running server.
    pub reload: Reload,
}

impl AppState {
    /// The maximum age of a message, in milliseconds.
    pub fn max_age_ms(&self, transactional: bool) -> u64 {
        let age = if transactional {
            self.queue
                .max_age_transactional
                .unwrap_or(self.queue.max_age)
        } else {
            self.queue.max_age
        };
        age.as_millis() as u64
    }
}
