//! The event log: a sled tree keyed by event id, where ids increase in the order events are
//! appended, so a reader that has seen id `n` has seen every event below it.

use std::sync::{Arc, Mutex};

use sluice_core::{Event, IdGenerator, Store, StoreError};
use tokio::sync::watch;

/// Appends events and lets readers follow the log. Cheap to clone.
#[derive(Clone)]
pub struct EventLog {
    tree: sled::Tree,
    ids: Arc<IdGenerator>,
    /// Held while ids are assigned and written, so ids enter the tree in increasing order.
    append_order: Arc<Mutex<()>>,
    newest: watch::Sender<u64>,
}

impl EventLog {
    /// Opens the log in the store's `events` tree.
    pub fn open(store: &Store) -> Result<EventLog, StoreError> {
        let tree = store.tree("events")?;
        let newest = tree
            .last()?
            .and_then(|(key, _)| key.get(..8).and_then(|k| k.try_into().ok()))
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        Ok(EventLog {
            tree,
            ids: Arc::new(IdGenerator::new()),
            append_order: Arc::new(Mutex::new(())),
            newest: watch::Sender::new(newest),
        })
    }

    /// Appends events, giving each its id. They are durable once the store's next flush ends.
    pub fn append(&self, events: impl IntoIterator<Item = Event>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        let guard = self
            .append_order
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut last = None;
        for mut event in events {
            event.event_id = self.ids.next();
            last = Some(event.event_id);
            batch.insert(&event.event_id.to_be_bytes(), encode(&event));
        }
        self.tree.apply_batch(batch)?;
        drop(guard);
        if let Some(last) = last {
            self.newest.send_replace(last);
        }
        Ok(())
    }

    /// Up to `limit` events with ids above `after`, oldest first.
    pub fn read_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let start = after.saturating_add(1).to_be_bytes();
        let mut out = Vec::new();
        for entry in self.tree.range(start..).take(limit) {
            let (_, value) = entry?;
            match serde_json::from_slice(&value) {
                Ok(event) => out.push(event),
                Err(e) => tracing::error!(error = %e, "skipping an event the log cannot decode"),
            }
        }
        Ok(out)
    }

    /// The id of the newest event appended so far (0 when the log is empty).
    pub fn newest(&self) -> u64 {
        *self.newest.borrow()
    }

    /// A receiver that changes whenever events are appended.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.newest.subscribe()
    }
}

fn encode(event: &Event) -> Vec<u8> {
    // Serialising a plain struct of strings and numbers into memory cannot fail.
    serde_json::to_vec(event).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::event::{AttemptFacts, EventKind, MessageFacts};

    fn event(kind: EventKind) -> Event {
        Event {
            event_id: 0,
            kind,
            timestamp_ms: 1,
            message: MessageFacts::default(),
            attempt: AttemptFacts::default(),
        }
    }

    #[tokio::test]
    async fn readers_see_events_in_append_order() -> Result<(), StoreError> {
        let dir = std::env::temp_dir().join(format!("sluice-log-{}", std::process::id()));
        let store = Store::open(&dir, 8 << 20)?;
        let log = EventLog::open(&store)?;
        log.append([event(EventKind::Injection), event(EventKind::Delivery)])?;
        log.append([event(EventKind::Bounce)])?;
        let all = log.read_after(0, 10)?;
        let kinds: Vec<_> = all.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [EventKind::Injection, EventKind::Delivery, EventKind::Bounce]
        );
        assert_eq!(log.newest(), all[2].event_id);
        assert_eq!(log.read_after(all[0].event_id, 10)?.len(), 2);
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }
}
