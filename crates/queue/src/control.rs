//! Operator control of the spool: what is waiting and why, suspending and resuming a
//! destination or a pool, cancelling, and retrying now.
//!
//! Suspensions are durable (tree `suspensions`) and mirrored in memory, since the scheduler
//! checks every due message against them. Summaries, cancellation and retry walk the `messages`
//! tree: their cost grows with the queue, which is fine for an operator's occasional call but is
//! why nothing on the delivery path uses them.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use sluice_core::clock::now_ms;
use sluice_core::event::AttemptFacts;
use sluice_core::{EventKind, MessageId, StoreError};

use crate::message::QueuedMessage;
use crate::spool::{encode, event, schedule_key, Spool};

/// A set of messages an operator acts on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Messages to one recipient domain.
    Domain(String),
    /// Messages sent from one IP pool.
    Pool(String),
    /// Messages whose latest attempt went to one site (a mailbox provider, or an MX host
    /// set). Messages not yet attempted join it when delivery routes them there.
    Site(String),
    /// Messages of one campaign.
    Campaign(String),
    /// Messages of one transmission.
    Transmission(String),
}

impl Scope {
    /// Whether `message` is in this scope. Domains and pools compare case-insensitively.
    pub fn contains(&self, message: &QueuedMessage) -> bool {
        match self {
            Scope::Domain(d) => message.domain.eq_ignore_ascii_case(d),
            Scope::Pool(p) => message.pool.eq_ignore_ascii_case(p),
            Scope::Site(s) => message
                .site
                .as_ref()
                .is_some_and(|site| site.eq_ignore_ascii_case(s)),
            Scope::Campaign(c) => message.facts.campaign_id == *c,
            Scope::Transmission(t) => message.facts.transmission_id == *t,
        }
    }

    /// Whether this kind of scope can be suspended: destinations, sites and pools can,
    /// campaigns and transmissions are cancelled instead.
    pub fn suspendable(&self) -> bool {
        matches!(self, Scope::Domain(_) | Scope::Pool(_) | Scope::Site(_))
    }

    fn key(&self) -> String {
        self.to_string().to_ascii_lowercase()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Domain(d) => write!(f, "domain:{d}"),
            Scope::Pool(p) => write!(f, "pool:{p}"),
            Scope::Site(s) => write!(f, "site:{s}"),
            Scope::Campaign(c) => write!(f, "campaign:{c}"),
            Scope::Transmission(t) => write!(f, "transmission:{t}"),
        }
    }
}

/// The durable set of suspended scopes, mirrored in memory.
#[derive(Clone)]
pub(crate) struct Suspensions {
    tree: sled::Tree,
    active: Arc<RwLock<HashSet<String>>>,
}

impl Suspensions {
    pub(crate) fn open(tree: sled::Tree) -> Result<Suspensions, StoreError> {
        let mut active = HashSet::new();
        for key in tree.iter().keys() {
            active.insert(String::from_utf8_lossy(&key?).into_owned());
        }
        Ok(Suspensions {
            tree,
            active: Arc::new(RwLock::new(active)),
        })
    }

    pub(crate) fn holds(&self, message: &QueuedMessage) -> bool {
        let active = self.active.read().unwrap_or_else(|p| p.into_inner());
        if active.is_empty() {
            return false;
        }
        let domain = Scope::Domain(message.domain.clone()).key();
        let pool = Scope::Pool(message.pool.clone()).key();
        let site = message.site.as_ref().map(|s| Scope::Site(s.clone()).key());
        active.contains(&domain)
            || active.contains(&pool)
            || site.is_some_and(|site| active.contains(&site))
    }

    fn holds_site(&self, site: &str) -> bool {
        self.has(&Scope::Site(site.to_string()))
    }

    /// Whether `scope` itself is suspended, not whether a message in it is held.
    fn has(&self, scope: &Scope) -> bool {
        let active = self.active.read().unwrap_or_else(|p| p.into_inner());
        !active.is_empty() && active.contains(&scope.key())
    }

    /// Marks each group of `groups`, named for a scope made by `scope`, suspended when that
    /// scope is: a pool is not shown suspended because one of its sites is.
    fn mark(&self, groups: &mut BTreeMap<String, QueueStats>, scope: fn(String) -> Scope) {
        for (name, stats) in groups.iter_mut() {
            stats.suspended = self.has(&scope(name.clone()));
        }
    }

    fn set(&self, scope: &Scope, on: bool) -> Result<bool, StoreError> {
        let key = scope.key();
        let mut active = self.active.write().unwrap_or_else(|p| p.into_inner());
        let changed = if on {
            self.tree.insert(key.as_bytes(), &now_ms().to_be_bytes())?;
            active.insert(key)
        } else {
            self.tree.remove(key.as_bytes())?;
            active.remove(&key)
        };
        Ok(changed)
    }

    fn list(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .active
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        out.sort();
        out
    }
}

/// What delivery may do with a message it was handed; see [`Spool::standing`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Send it.
    Live,
    /// An operator cancelled it: report a bounce with this reason instead.
    Cancelled(String),
    /// It left the spool (cancelled before delivery marked it): nothing to do.
    Gone,
}

/// The attempt facts of an operator's cancellation: a class 25 bounce.
pub fn cancel_facts(reason: &str) -> AttemptFacts {
    AttemptFacts {
        bounce_class: Some(25),
        error_code: Some(554),
        raw_reason: Some(reason.to_string()),
        reason: Some(reason.to_string()),
        ..AttemptFacts::default()
    }
}

/// Counts and times for one group of queued messages.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct QueueStats {
    /// Messages in the group.
    pub count: usize,
    /// Acceptance time of the oldest, Unix milliseconds.
    pub oldest_ms: Option<u64>,
    /// The soonest next attempt, Unix milliseconds.
    pub next_attempt_ms: Option<u64>,
    /// The most recent temporary failure seen in the group.
    pub last_reply: Option<String>,
    /// Whether an operator suspended this group itself; a message may also be held by the
    /// suspension of another group it is in.
    pub suspended: bool,
}

/// What is queued, by recipient domain and by pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct QueueSummary {
    /// Messages in the spool.
    pub total: usize,
    /// By recipient domain.
    pub domains: BTreeMap<String, QueueStats>,
    /// By IP pool.
    pub pools: BTreeMap<String, QueueStats>,
    /// By the site of the latest attempt; messages not yet attempted are in none.
    pub sites: BTreeMap<String, QueueStats>,
    /// Suspended scopes, as `domain:…`, `site:…` and `pool:…`.
    pub suspended: Vec<String>,
}

/// Why a message is where it is.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MessageStatus {
    /// The record.
    pub message: QueuedMessage,
    /// `in_flight`, `due`, `scheduled` (a `start_time` send), `backoff` or `suspended`.
    pub state: &'static str,
    /// A sentence for the operator.
    pub reason: String,
}

impl Spool {
    /// Suspends a domain, site or pool: its messages wait (with `delay` events) until
    /// resumed. Returns whether the suspension is new.
    pub fn suspend(&self, scope: &Scope) -> Result<bool, StoreError> {
        self.suspensions.set(scope, true)
    }

    /// Lifts a suspension and makes the scope's held and deferred messages due now (see
    /// [`Spool::retry_now`]); a scheduled send still waits for its `start_time`.
    pub fn resume(&self, scope: &Scope) -> Result<bool, StoreError> {
        let changed = self.suspensions.set(scope, false)?;
        self.retry_now(scope)?;
        Ok(changed)
    }

    /// Whether the message's domain, site or pool is suspended.
    pub fn is_suspended(&self, message: &QueuedMessage) -> bool {
        self.suspensions.holds(message)
    }

    /// Whether an operator suspended this site. Delivery asks once it has routed a message,
    /// since a message's site is known only then.
    pub fn is_site_suspended(&self, site: &str) -> bool {
        self.suspensions.holds_site(site)
    }

    /// Puts back a message delivery was handed but may not send because its queue is
    /// suspended: a `delay` event, and a wait of one more backoff step.
    pub fn hold_suspended(&self, message: QueuedMessage) -> Result<(), StoreError> {
        self.hold(message, now_ms())
    }

    /// Makes the messages of `scope` that wait for a retry due now: those deferred after an
    /// attempt and those a suspension held. A scheduled send is never brought before its
    /// `start_time`; one whose start time has passed is retried like any other. Messages in
    /// flight are left alone. Returns how many were brought forward.
    pub fn retry_now(&self, scope: &Scope) -> Result<usize, StoreError> {
        let now = now_ms();
        let mut moved = 0;
        for scanned in self.scan(scope)? {
            let _moving = self.lock_moves();
            // Read again under the lock: the scanned copy may have been delivered, deferred or
            // cancelled since.
            let Some(message) = self.message(scanned.id)? else {
                continue;
            };
            let due = message.not_before(now);
            if due >= message.due_ms || self.inflight.contains_key(message.id.to_be_bytes())? {
                continue;
            }
            self.reschedule(message, due)?;
            moved += 1;
        }
        self.wake.notify_one();
        Ok(moved)
    }

    /// Moves a waiting message's record and schedule entry to `due_ms`.
    fn reschedule(&self, message: QueuedMessage, due_ms: u64) -> Result<(), StoreError> {
        let old = schedule_key(message.due_ms, message.id);
        let mut next = message;
        next.due_ms = due_ms;
        self.messages.insert(next.id.to_be_bytes(), encode(&next))?;
        self.schedule.insert(schedule_key(due_ms, next.id), &[])?;
        self.schedule.remove(old)?;
        Ok(())
    }

    /// Removes every message of `scope`, each reported as a `bounce` of class 25 with `reason`
    /// (for example `554 5.7.1 [internal] Campaign cancelled`). A message on the wire right now
    /// may still be delivered; its outcome is recorded as it happens.
    pub async fn cancel(&self, scope: &Scope, reason: &str) -> Result<usize, StoreError> {
        let mut events = Vec::new();
        let mut cancelled = 0;
        for scanned in self.scan(scope)? {
            let _moving = self.lock_moves();
            let key = scanned.id.to_be_bytes();
            // Read again under the lock, so a message finished since is not brought back.
            let Some(message) = self.message(scanned.id)? else {
                continue;
            };
            if self.inflight.contains_key(key)? {
                // Delivery holds it: mark it, and delivery reports the one final event.
                cancelled += usize::from(self.mark_cancelled(message.id, reason)?);
                continue;
            }
            // Only the call that removes the record reports it, so racing cancels bounce once.
            if self.messages.remove(key)?.is_none() {
                continue;
            }
            self.schedule
                .remove(schedule_key(message.due_ms, message.id))?;
            self.bodies.remove(key)?;
            events.push(event(EventKind::Bounce, &message, cancel_facts(reason)));
            cancelled += 1;
        }
        self.log.append(events)?;
        self.store.durable().await?;
        Ok(cancelled)
    }

    /// Marks a message in flight as cancelled, for delivery to end it with `reason`. Delivery
    /// does not take the move lock, so the record is swapped only if unchanged since read: a
    /// record delivery removed meanwhile is not brought back, and one it rewrote is marked as
    /// rewritten. A deferral that read the record just before the mark can still write over it;
    /// the message then keeps retrying, and a second cancel ends it.
    fn mark_cancelled(&self, id: MessageId, reason: &str) -> Result<bool, StoreError> {
        let key = id.to_be_bytes();
        loop {
            let Some(stored) = self.messages.get(key)? else {
                return Ok(false);
            };
            let Ok(mut marked) = serde_json::from_slice::<QueuedMessage>(&stored) else {
                return Ok(false);
            };
            marked.cancelled = Some(reason.to_string());
            let swapped =
                self.messages
                    .compare_and_swap(key, Some(&stored), Some(encode(&marked)))?;
            if swapped.is_ok() {
                return Ok(true);
            }
        }
    }

    /// Whether delivery may still send a message it was handed: `Live`, `Cancelled` with the
    /// operator's reason, or `Gone` when it left the spool meanwhile.
    pub fn standing(&self, id: MessageId) -> Result<Standing, StoreError> {
        Ok(match self.message(id)? {
            None => Standing::Gone,
            Some(QueuedMessage {
                cancelled: Some(reason),
                ..
            }) => Standing::Cancelled(reason),
            Some(_) => Standing::Live,
        })
    }

    /// Counts by domain, site and pool.
    pub fn summary(&self) -> Result<QueueSummary, StoreError> {
        let mut summary = QueueSummary {
            suspended: self.suspensions.list(),
            ..QueueSummary::default()
        };
        for entry in self.messages.iter().values() {
            let Ok(message) = serde_json::from_slice::<QueuedMessage>(&entry?) else {
                continue;
            };
            summary.total += 1;
            add(
                summary.domains.entry(message.domain.clone()).or_default(),
                &message,
            );
            add(
                summary.pools.entry(message.pool.clone()).or_default(),
                &message,
            );
            if let Some(site) = &message.site {
                add(summary.sites.entry(site.clone()).or_default(), &message);
            }
        }
        self.suspensions.mark(&mut summary.domains, Scope::Domain);
        self.suspensions.mark(&mut summary.pools, Scope::Pool);
        self.suspensions.mark(&mut summary.sites, Scope::Site);
        Ok(summary)
    }

    /// A message's record and why it is waiting; `None` once it has left the spool.
    pub fn status(&self, id: MessageId) -> Result<Option<MessageStatus>, StoreError> {
        let Some(message) = self.message(id)? else {
            return Ok(None);
        };
        let now = now_ms();
        let (state, reason) = if self.inflight.contains_key(id.to_be_bytes())? {
            (
                "in_flight",
                "handed to delivery; waiting for a connection or on the wire".to_string(),
            )
        } else if self.is_suspended(&message) {
            (
                "suspended",
                "its domain, site or pool is suspended by an operator".to_string(),
            )
        } else {
            waiting(&message, now)
        };
        Ok(Some(MessageStatus {
            message,
            state,
            reason,
        }))
    }

    /// A suspended message met at its due time: report a `delay` and wait one more backoff
    /// step, or bounce it once it is past its age.
    pub(crate) fn hold(&self, message: QueuedMessage, now: u64) -> Result<(), StoreError> {
        let reason = "421 4.4.5 [internal] queue suspended by operator".to_string();
        let attempt = AttemptFacts {
            bounce_class: Some(if now >= message.expires_ms { 25 } else { 70 }),
            error_code: Some(421),
            raw_reason: Some(reason.clone()),
            reason: Some(reason),
            ..AttemptFacts::default()
        };
        let key = message.id.to_be_bytes();
        self.inflight.remove(key)?;
        if now >= message.expires_ms {
            self.messages.remove(key)?;
            self.bodies.remove(key)?;
            self.log
                .append([event(EventKind::Bounce, &message, attempt)])?;
        } else {
            let mut next = message.clone();
            let wait = self.retry_wait(message.attempts + 1).as_millis() as u64;
            next.due_ms = message.not_before(now + wait);
            self.messages.insert(key, encode(&next))?;
            self.schedule
                .insert(schedule_key(next.due_ms, next.id), &[])?;
            self.log
                .append([event(EventKind::Delay, &message, attempt)])?;
        }
        self.store.flush_soon();
        Ok(())
    }

    fn scan(&self, scope: &Scope) -> Result<Vec<QueuedMessage>, StoreError> {
        let mut out = Vec::new();
        for entry in self.messages.iter().values() {
            if let Ok(message) = serde_json::from_slice::<QueuedMessage>(&entry?) {
                if scope.contains(&message) {
                    out.push(message);
                }
            }
        }
        Ok(out)
    }
}

/// The state and reason of a message neither in flight nor suspended.
fn waiting(message: &QueuedMessage, now: u64) -> (&'static str, String) {
    if message.due_ms <= now {
        return ("due", "due now; waiting for the scheduler".to_string());
    }
    if message.start_ms().is_some_and(|start| start > now) {
        return ("scheduled", "waiting for its start_time".to_string());
    }
    if message.attempts == 0 {
        // Not yet attempted and not due: only a suspension, since lifted, puts it there.
        return (
            "backoff",
            "waiting one retry step after a suspension held it".to_string(),
        );
    }
    let last = message.last_reply.clone().unwrap_or_default();
    let reason = format!(
        "retrying after {} failed attempts; last reply: {last}",
        message.attempts
    );
    ("backoff", reason)
}

fn add(stats: &mut QueueStats, message: &QueuedMessage) {
    stats.count += 1;
    let injected = message.facts.injection_time_ms;
    stats.oldest_ms = Some(stats.oldest_ms.map_or(injected, |o| o.min(injected)));
    stats.next_attempt_ms = Some(
        stats
            .next_attempt_ms
            .map_or(message.due_ms, |n| n.min(message.due_ms)),
    );
    if message.last_reply.is_some() {
        stats.last_reply.clone_from(&message.last_reply);
    }
}
