//! The spool's trees and the transitions of a message through them.
//!
//! A schedule key is the due time (big-endian Unix milliseconds) followed by the message id, so
//! a range scan from the start yields due messages oldest first. Handing a message to delivery
//! moves its key from `schedule` to `inflight`; after a crash, everything in `inflight` is due
//! again at once. Outcome writes and their events reach disk in the next group commit, which
//! they ask for without waiting: a delivery attempt never stalls on a flush. The price is that a
//! crash may forget outcomes of the last flush interval, whose messages are then sent again:
//! a repeat, never a loss.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::Rng;
use sluice_core::clock::now_ms;
use sluice_core::config::QueueConfig;
use sluice_core::event::AttemptFacts;
use sluice_core::{Event, EventKind, MessageId, Store, StoreError};
use sluice_events::EventLog;
use tokio::sync::Notify;

use crate::control::{cancel_facts, Standing, Suspensions};
use crate::message::{NewMessage, QueuedMessage};

/// The durable queue. Cheap to clone.
#[derive(Clone)]
pub struct Spool {
    pub(crate) store: Store,
    pub(crate) log: EventLog,
    pub(crate) messages: sled::Tree,
    pub(crate) bodies: sled::Tree,
    pub(crate) schedule: sled::Tree,
    pub(crate) inflight: sled::Tree,
    pub(crate) config: Arc<QueueConfig>,
    pub(crate) wake: Arc<Notify>,
    pub(crate) suspensions: Suspensions,
    /// Held while a message moves out of or within the schedule: by the scheduler taking due
    /// messages, and by an operator's retry or cancel. Without it, a retry that read a message
    /// just before the scheduler took it would schedule it again, and it would be handed to
    /// delivery twice. Deferral and delivery outcomes need not take it: they only touch
    /// messages in flight, which retry and cancel leave alone while holding it.
    pub(crate) moving: Arc<Mutex<()>>,
}

impl Spool {
    /// Opens the spool's trees and makes every message that was in flight at the last stop due
    /// again now.
    pub fn open(store: &Store, log: EventLog, config: QueueConfig) -> Result<Spool, StoreError> {
        let spool = Spool {
            store: store.clone(),
            log,
            messages: store.tree("messages")?,
            bodies: store.tree("bodies")?,
            schedule: store.tree("schedule")?,
            inflight: store.tree("inflight")?,
            config: Arc::new(config),
            wake: Arc::new(Notify::new()),
            suspensions: Suspensions::open(store.tree("suspensions")?)?,
            moving: Arc::default(),
        };
        spool.recover_inflight()?;
        Ok(spool)
    }

    fn recover_inflight(&self) -> Result<(), StoreError> {
        let now = now_ms();
        let mut recovered = 0usize;
        for key in self.inflight.iter().keys() {
            let key = key?;
            if let Some(id) = MessageId::from_be_slice(&key) {
                self.schedule.insert(schedule_key(now, id), &[])?;
                recovered += 1;
            }
            self.inflight.remove(key)?;
        }
        if recovered > 0 {
            tracing::info!(
                recovered,
                "messages in flight at the last stop are due again"
            );
        }
        Ok(())
    }

    /// Stores messages and their injection events, and returns once they are on disk.
    pub async fn accept(&self, batch: Vec<NewMessage>) -> Result<(), StoreError> {
        self.store.check()?;
        let mut records = sled::Batch::default();
        let mut bodies = sled::Batch::default();
        let mut schedule = sled::Batch::default();
        let mut events = Vec::with_capacity(batch.len());
        for NewMessage { message, body } in &batch {
            let key = message.id.to_be_bytes();
            bodies.insert(&key, body.as_slice());
            records.insert(&key, encode(message));
            schedule.insert(&schedule_key(message.due_ms, message.id)[..], &[]);
            events.push(event(
                EventKind::Injection,
                message,
                AttemptFacts::default(),
            ));
        }
        // Bodies and records first: a schedule entry must never point at nothing.
        self.bodies.apply_batch(bodies)?;
        self.messages.apply_batch(records)?;
        self.schedule.apply_batch(schedule)?;
        self.log.append(events)?;
        self.store.durable().await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Moves up to `limit` messages due at `now` from the schedule to in-flight and returns them.
    pub fn take_due(&self, now: u64, limit: usize) -> Result<Vec<QueuedMessage>, StoreError> {
        let _moving = self.lock_moves();
        let mut out = Vec::new();
        let end = schedule_key(now, MessageId(u64::MAX));
        for entry in self.schedule.range(..end).keys().take(limit) {
            let key = entry?;
            let Some(id) = key.get(8..).and_then(MessageId::from_be_slice) else {
                self.schedule.remove(&key)?;
                continue;
            };
            self.inflight.insert(id.to_be_bytes(), &[])?;
            self.schedule.remove(&key)?;
            match self.message(id)? {
                Some(message) if self.is_suspended(&message) => self.hold(message, now)?,
                Some(message) => out.push(message),
                // A stale index entry for a message already finished: drop it.
                None => {
                    self.inflight.remove(id.to_be_bytes())?;
                }
            }
        }
        Ok(out)
    }

    /// The lock of [`Spool::moving`]. Nothing panics while holding it, and the trees stay
    /// consistent whatever the holder did, so a poisoned lock is taken as it is.
    pub(crate) fn lock_moves(&self) -> MutexGuard<'_, ()> {
        self.moving.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the earliest scheduled message is due, if any is scheduled.
    pub fn next_due(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.schedule.first()?.and_then(|(key, _)| due_of(&key)))
    }

    /// Resolves when messages were accepted or rescheduled, so an idle scheduler looks again.
    pub async fn accepted(&self) {
        self.wake.notified().await;
    }

    /// A message's record.
    pub fn message(&self, id: MessageId) -> Result<Option<QueuedMessage>, StoreError> {
        Ok(self
            .messages
            .get(id.to_be_bytes())?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// A message's body.
    pub fn body(&self, id: MessageId) -> Result<Option<sled::IVec>, StoreError> {
        Ok(self.bodies.get(id.to_be_bytes())?)
    }

    /// Number of messages in the spool, in flight or waiting. Walks the whole tree: for
    /// operators and tests, never for the delivery path.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether the spool holds no message.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The receiving server accepted the message: record a `delivery` and forget the message.
    pub async fn delivered(
        &self,
        message: &QueuedMessage,
        attempt: AttemptFacts,
    ) -> Result<(), StoreError> {
        self.finish(message, EventKind::Delivery, attempt).await
    }

    /// The message failed permanently: record a `bounce` and forget the message.
    pub async fn bounced(
        &self,
        message: &QueuedMessage,
        attempt: AttemptFacts,
    ) -> Result<(), StoreError> {
        self.finish(message, EventKind::Bounce, attempt).await
    }

    /// The attempt failed temporarily: record a `delay` and schedule the next attempt, or
    /// record a `bounce` when the next attempt would come after the message expires.
    pub async fn deferred(
        &self,
        message: &QueuedMessage,
        attempt: AttemptFacts,
    ) -> Result<(), StoreError> {
        // Cancelled while on the wire: the cancellation, not a retry, is its end.
        match self.standing(message.id)? {
            Standing::Gone => {
                self.inflight.remove(message.id.to_be_bytes())?;
                return Ok(());
            }
            Standing::Cancelled(reason) => {
                return self
                    .finish(message, EventKind::Bounce, cancel_facts(&reason))
                    .await;
            }
            Standing::Live => {}
        }
        let now = now_ms();
        let mut next = message.clone();
        next.attempts += 1;
        next.last_reply = attempt.raw_reason.clone();
        let due = now + self.retry_wait(next.attempts).as_millis() as u64;
        if due >= message.expires_ms {
            tracing::info!(message_id = %message.id, attempts = next.attempts, "message expired");
            return self.finish(message, EventKind::Bounce, attempt).await;
        }
        next.due_ms = due;
        self.messages.insert(next.id.to_be_bytes(), encode(&next))?;
        self.schedule.insert(schedule_key(due, next.id), &[])?;
        self.inflight.remove(next.id.to_be_bytes())?;
        self.log
            .append([event(EventKind::Delay, message, attempt)])?;
        // The scheduler may be asleep until a later time; let it see the new entry.
        self.wake.notify_one();
        self.store.flush_soon();
        Ok(())
    }

    async fn finish(
        &self,
        message: &QueuedMessage,
        kind: EventKind,
        attempt: AttemptFacts,
    ) -> Result<(), StoreError> {
        let key = message.id.to_be_bytes();
        self.log.append([event(kind, message, attempt)])?;
        self.messages.remove(key)?;
        self.bodies.remove(key)?;
        self.inflight.remove(key)?;
        self.store.flush_soon();
        Ok(())
    }

    /// The wait after the `attempts`-th failure, with jitter.
    pub(crate) fn retry_wait(&self, attempts: u32) -> Duration {
        let schedule = &self.config.retry_schedule;
        let index = (attempts as usize)
            .saturating_sub(1)
            .min(schedule.len().saturating_sub(1));
        let base = schedule
            .get(index)
            .copied()
            .unwrap_or(Duration::from_secs(60));
        let jitter = self.config.retry_jitter;
        if jitter <= 0.0 {
            return base;
        }
        base.mul_f64(rand::rng().random_range(1.0 - jitter..=1.0 + jitter))
    }
}

/// The event for an outcome of `message`.
pub(crate) fn event(kind: EventKind, message: &QueuedMessage, attempt: AttemptFacts) -> Event {
    let mut attempt = attempt;
    if kind != EventKind::Injection {
        attempt.num_retries.get_or_insert(message.attempts);
    }
    Event {
        event_id: 0,
        kind,
        timestamp_ms: now_ms(),
        message: message.facts.clone(),
        attempt,
    }
}

pub(crate) fn schedule_key(due_ms: u64, id: MessageId) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&due_ms.to_be_bytes());
    key[8..].copy_from_slice(&id.to_be_bytes());
    key
}

fn due_of(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(..8)?.try_into().ok()?))
}

pub(crate) fn encode(message: &QueuedMessage) -> Vec<u8> {
    // A struct of strings, numbers and JSON values always serialises.
    serde_json::to_vec(message).unwrap_or_default()
}
