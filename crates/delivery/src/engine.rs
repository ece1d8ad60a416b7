//! The delivery engine: due messages arrive from the scheduler, are routed to their site, wait
//! in a ready queue per (egress source, site), and are carried by that queue's connections at
//! the pace its throttle allows.
//!
//! Ready queues hold message records, never bodies; a body is read from the spool just before
//! it is sent.
//!
//! A provider site sends every hosted domain over connections opened to the MX hosts of the
//! latest domain routed to it. The shipped providers accept mail for all their domains on any
//! of their hosts, which makes that safe; a provider that does not belongs out of the list.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use sluice_core::config::{Config, DeliveryConfig, ShapingConfig};
use sluice_queue::{QueuedMessage, Spool};
use tokio::sync::{mpsc, Notify};

use crate::classify::{local_failure, BounceRules, RulesError, Verdict};
use crate::connection::drive_connection;
use crate::egress::{Egress, Source};
use crate::outcome::{attempt_facts, record};
use crate::route::{Route, RouteError, Router};
use crate::site::{Providers, ProvidersError, Site};
use crate::throttle::Throttle;

/// Identifies a ready queue.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct QueueKey {
    pub source: Source,
    pub site: Site,
}

pub(crate) struct ReadyQueue {
    pub waiting: VecDeque<QueuedMessage>,
    pub connections: usize,
    pub idle: usize,
    pub more: Arc<Notify>,
    /// The latest route of a domain in this site: where new connections go.
    pub route: Arc<Route>,
    pub throttle: Arc<Throttle>,
}

/// TLS client configurations, one per STARTTLS policy that upgrades.
#[derive(Clone, Default)]
pub struct TlsClients {
    /// For `opportunistic`: accepts any certificate. `None` never upgrades.
    pub opportunistic: Option<Arc<rustls::ClientConfig>>,
    /// For `required`: verifies certificates. `None` makes every `required` site fail
    /// temporarily, since sending in clear is not an option.
    pub verified: Option<Arc<rustls::ClientConfig>>,
}

/// Why a reload was refused; the running rules stay as they were.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The provider file is unusable.
    #[error(transparent)]
    Providers(#[from] ProvidersError),
    /// The bounce rule file is unusable.
    #[error(transparent)]
    Rules(#[from] RulesError),
}

/// Delivers messages handed over by the scheduler. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub spool: Spool,
    pub router: Router,
    pub egress: Egress,
    pub tls: TlsClients,
    pub shaping: RwLock<Arc<ShapingConfig>>,
    pub rules: RwLock<Arc<BounceRules>>,
    pub queues: Mutex<HashMap<QueueKey, ReadyQueue>>,
}

impl Engine {
    /// An engine that records outcomes in `spool`, classifying replies with `rules`.
    pub fn new(
        spool: Spool,
        router: Router,
        egress: Egress,
        shaping: ShapingConfig,
        rules: BounceRules,
        tls: TlsClients,
    ) -> Engine {
        Engine {
            shared: Arc::new(Shared {
                spool,
                router,
                egress,
                tls,
                shaping: RwLock::new(Arc::new(shaping)),
                rules: RwLock::new(Arc::new(rules)),
                queues: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Takes messages from the scheduler until it stops. A domain with a fresh route is queued
    /// at once; one that needs DNS is routed on a task of its own, so a slow lookup holds back
    /// no other domain.
    pub async fn run(self, mut due: mpsc::Receiver<QueuedMessage>) {
        while let Some(message) = due.recv().await {
            match self.shared.router.cached(&message.domain) {
                Some(route) => enqueue(&self.shared, message, route),
                None => {
                    let shared = self.shared.clone();
                    tokio::spawn(route_and_enqueue(shared, message));
                }
            }
        }
    }

    /// Whether `name` can be a site this engine sends to; see [`Router::is_site`].
    pub fn is_site(&self, name: &str) -> bool {
        self.shared.router.is_site(name)
    }

    /// Applies the shaping, provider and bounce rule sections of `config` to new and queued
    /// mail alike. Nothing queued is dropped; a bad file leaves everything as it was.
    pub fn reload(&self, config: &Config) -> Result<(), ReloadError> {
        let delivery: &DeliveryConfig = &config.delivery;
        let providers = Providers::load(delivery.providers_file.as_deref())?;
        providers.check_shaping(&config.shaping)?;
        let rules = BounceRules::load(delivery.bounce_rules_file.as_deref())?;
        let shaping = Arc::new(config.shaping.clone());
        *write(&self.shared.rules) = Arc::new(rules);
        *write(&self.shared.shaping) = shaping.clone();
        self.shared.router.set_providers(providers);
        let queues = lock(&self.shared.queues);
        for (key, queue) in queues.iter() {
            let rule = shaping.rule_for(key.source.address, key.site.provider.as_deref());
            queue.throttle.set_rule(rule);
        }
        tracing::info!(
            queues = queues.len(),
            "shaping, providers and bounce rules reloaded"
        );
        Ok(())
    }
}

async fn route_and_enqueue(shared: Arc<Shared>, message: QueuedMessage) {
    match shared.router.route(&message.domain).await {
        Ok(route) => enqueue(&shared, message, route),
        Err(e) => {
            let what = format!("{}: {e}", message.domain);
            let verdict = match e {
                RouteError::NullMx | RouteError::NoSuchDomain => {
                    Verdict::Bounced(local_failure(10, &what))
                }
                RouteError::Temporary(_) => Verdict::Delayed(local_failure(21, &what)),
            };
            tracing::info!(message_id = %message.id, domain = %message.domain, error = %e, "no route");
            let facts = attempt_facts(&message, None, None);
            record(&shared, &message, &verdict, facts).await;
        }
    }
}

fn enqueue(shared: &Arc<Shared>, mut message: QueuedMessage, route: Arc<Route>) {
    if message.site.as_deref() != Some(route.site.name.as_str()) {
        message.site = Some(route.site.name.clone());
    }
    if shared.spool.is_site_suspended(&route.site.name) {
        hold(shared, message);
        return;
    }
    let key = QueueKey {
        source: shared.egress.pick(&message.pool),
        site: route.site.clone(),
    };
    let mut queues = lock(&shared.queues);
    let queue = queues
        .entry(key.clone())
        .or_insert_with(|| new_queue(shared, &key, route.clone()));
    queue.route = route;
    queue.waiting.push_back(message);
    if queue.idle > 0 {
        queue.more.notify_one();
    } else if queue.connections < queue.throttle.max_connections() {
        queue.connections += 1;
        tokio::spawn(drive_connection(shared.clone(), key));
    }
}

/// Puts a message of a suspended site back in the spool instead of sending it.
pub(crate) fn hold(shared: &Shared, message: QueuedMessage) {
    let id = message.id;
    if let Err(e) = shared.spool.hold_suspended(message) {
        tracing::error!(message_id = %id, error = %e, "holding a message of a suspended site failed; it is retried at the next start");
    }
}

fn new_queue(shared: &Shared, key: &QueueKey, route: Arc<Route>) -> ReadyQueue {
    let shaping = read(&shared.shaping).clone();
    let rule = shaping.rule_for(key.source.address, key.site.provider.as_deref());
    tracing::debug!(site = %key.site, source = ?key.source.address, "new ready queue");
    ReadyQueue {
        waiting: VecDeque::new(),
        connections: 0,
        idle: 0,
        more: Arc::new(Notify::new()),
        route,
        throttle: Arc::new(Throttle::new(rule)),
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
