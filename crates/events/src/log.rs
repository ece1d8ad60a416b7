//! The event log: a sled tree keyed by event id, where ids increase in the order events are
//! appended, so a reader that has seen id `n` has seen every event below it.
//!
//! Beside it, the `events_by` tree indexes events by message, recipient and campaign, keyed
//! `<field>\0<value>\0<event id, big-endian>`, so a search for one of them reads only its events.
//! The index is written just before the log, so no logged event lacks its index entries.

use std::sync::{Arc, Mutex};

use sluice_core::{Event, IdGenerator, Store, StoreError};
use tokio::sync::watch;

/// Appends events and lets readers follow the log. Cheap to clone.
#[derive(Clone)]
pub struct EventLog {
    tree: sled::Tree,
    index: sled::Tree,
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
            index: store.tree("events_by")?,
            ids: Arc::new(IdGenerator::new()),
            append_order: Arc::new(Mutex::new(())),
            newest: watch::Sender::new(newest),
        })
    }

    /// Appends events, giving each its id. They are durable once the store's next flush ends.
    pub fn append(&self, events: impl IntoIterator<Item = Event>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        let mut index = sled::Batch::default();
        let guard = self
            .append_order
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut last = None;
        for mut event in events {
            event.event_id = self.ids.next();
            last = Some(event.event_id);
            batch.insert(&event.event_id.to_be_bytes(), encode(&event));
            for key in index_keys(&event) {
                index.insert(key, &[]);
            }
        }
        self.write(batch, index)?;
        drop(guard);
        if let Some(last) = last {
            // Appends finish out of order once the lock is released: an appender preempted
            // here must not move the newest id back below what another has since written, or a
            // dispatcher waiting for events past it would sleep while they sit in the log.
            self.newest.send_if_modified(|newest| {
                let newer = last > *newest;
                if newer {
                    *newest = last;
                }
                newer
            });
        }
        Ok(())
    }

    /// How many events have ids above `after`, counting no further than `limit`. Reads keys
    /// only.
    pub fn count_after(&self, after: u64, limit: usize) -> Result<usize, StoreError> {
        let start = after.saturating_add(1).to_be_bytes();
        let mut count = 0;
        for key in self.tree.range(start..).keys().take(limit) {
            key?;
            count += 1;
        }
        Ok(count)
    }

    /// Up to `limit` events with ids above `after`, oldest first.
    pub fn read_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let start = after.saturating_add(1).to_be_bytes();
        let mut out = Vec::new();
        for entry in self.tree.range(start..).take(limit) {
            let (_, value) = entry?;
            out.extend(decode(&value));
        }
        Ok(out)
    }

    /// Applies an index batch, then the log batch it belongs to. Index first: sled recovers
    /// its writes in order, so after a crash every logged event still has its index entries;
    /// at worst the index names an event the log never got, which searches skip. One sled
    /// transaction over both trees would say the same more directly, but costs several times
    /// the append rate with batches of a thousand events.
    fn write(&self, log: sled::Batch, index: sled::Batch) -> Result<(), StoreError> {
        self.index.apply_batch(index)?;
        self.tree.apply_batch(log)?;
        Ok(())
    }

    /// One event by id.
    pub fn get(&self, id: u64) -> Result<Option<Event>, StoreError> {
        Ok(self.tree.get(id.to_be_bytes())?.and_then(|v| decode(&v)))
    }

    /// Events with ids in `lo..hi`, oldest first.
    pub fn range(&self, lo: u64, hi: u64) -> impl Iterator<Item = Result<Event, StoreError>> + '_ {
        self.tree
            .range(lo.to_be_bytes()..hi.to_be_bytes())
            .filter_map(|entry| match entry {
                Ok((_, value)) => decode(&value).map(Ok),
                Err(e) => Some(Err(StoreError::Storage(e))),
            })
    }

    /// Ids in `lo..hi` of the events whose `field` has `value` (as [`IndexField::values`]
    /// spells it), oldest first.
    pub fn ids_by(
        &self,
        field: IndexField,
        value: &str,
        lo: u64,
        hi: u64,
    ) -> Result<Vec<u64>, StoreError> {
        let prefix = index_prefix(field, value);
        let mut out = Vec::new();
        for key in self
            .index
            .range(index_key(&prefix, lo)..index_key(&prefix, hi))
            .keys()
        {
            let key = key?;
            let tail = key
                .get(prefix.len()..)
                .and_then(|t| <[u8; 8]>::try_from(t).ok());
            if let Some(id) = tail {
                out.push(u64::from_be_bytes(id));
            }
        }
        Ok(out)
    }

    /// Deletes events with ids below `before`, with their index entries, a slice at a time so
    /// the log stays writable meanwhile. Returns how many were deleted.
    pub fn delete_before(&self, before: u64) -> Result<u64, StoreError> {
        const SLICE: usize = 1000;
        let mut deleted = 0;
        loop {
            let mut log = sled::Batch::default();
            let mut index = sled::Batch::default();
            let mut count = 0;
            for entry in self.tree.range(..before.to_be_bytes()).take(SLICE) {
                let (key, value) = entry?;
                if let Some(event) = decode(&value) {
                    for key in index_keys(&event) {
                        index.remove(key);
                    }
                }
                log.remove(key);
                count += 1;
            }
            if count == 0 {
                return Ok(deleted);
            }
            self.write(log, index)?;
            deleted += count;
        }
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

/// The fields the `events_by` tree indexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexField {
    /// `message_id`.
    Message,
    /// `rcpt_to`, lower-cased.
    Recipient,
    /// `campaign_id`, lower-cased, whole and by keyword.
    Campaign,
}

impl IndexField {
    fn tag(self) -> &'static str {
        match self {
            IndexField::Message => "message",
            IndexField::Recipient => "recipient",
            IndexField::Campaign => "campaign",
        }
    }

    /// The index values of an event for this field.
    fn values(self, event: &Event) -> Vec<String> {
        let m = &event.message;
        match self {
            IndexField::Message => m.message_id.map(|id| id.to_string()).into_iter().collect(),
            IndexField::Recipient => vec![m.rcpt_to.to_lowercase()],
            IndexField::Campaign => keywords(&m.campaign_id, false),
        }
    }
}

/// A value and its keywords, lower-cased: the words split on space, `-` and `_` (and `.` for
/// domains). Keyword filters of the events search match any of these.
pub fn keywords(value: &str, domain: bool) -> Vec<String> {
    let value = value.to_lowercase();
    if value.is_empty() {
        return Vec::new();
    }
    let split = |c: char| c == ' ' || c == '-' || c == '_' || (domain && c == '.');
    let mut out = vec![value.clone()];
    for word in value.split(split).filter(|w| !w.is_empty()) {
        if !out.iter().any(|o| o == word) {
            out.push(word.to_string());
        }
    }
    out
}

fn index_prefix(field: IndexField, value: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(field.tag().len() + value.len() + 10);
    key.extend_from_slice(field.tag().as_bytes());
    key.push(0);
    key.extend_from_slice(value.as_bytes());
    key.push(0);
    key
}

fn index_key(prefix: &[u8], id: u64) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&id.to_be_bytes());
    key
}

fn index_keys(event: &Event) -> Vec<Vec<u8>> {
    let fields = [
        IndexField::Message,
        IndexField::Recipient,
        IndexField::Campaign,
    ];
    let mut out = Vec::new();
    for field in fields {
        for value in field.values(event).iter().filter(|v| !v.is_empty()) {
            out.push(index_key(&index_prefix(field, value), event.event_id));
        }
    }
    out
}

fn decode(value: &[u8]) -> Option<Event> {
    match serde_json::from_slice(value) {
        Ok(event) => Some(event),
        Err(e) => {
            tracing::error!(error = %e, "skipping an event the log cannot decode");
            None
        }
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

    fn for_recipient(rcpt: &str, campaign: &str) -> Event {
        let mut e = event(EventKind::Delivery);
        e.message.rcpt_to = rcpt.into();
        e.message.campaign_id = campaign.into();
        e
    }

    #[tokio::test]
    async fn the_index_finds_events_by_field_and_loses_them_with_the_log() -> Result<(), StoreError>
    {
        let dir = std::env::temp_dir().join(format!("sluice-index-{}", std::process::id()));
        let store = Store::open(&dir, 8 << 20)?;
        let log = EventLog::open(&store)?;
        log.append([
            for_recipient("a@x.test", "Spring-Sale"),
            for_recipient("b@x.test", "other"),
        ])?;
        log.append([for_recipient("a@x.test", "spring")])?;
        let all: Vec<u64> = log.read_after(0, 10)?.iter().map(|e| e.event_id).collect();

        let by = |field, value: &str| log.ids_by(field, value, 0, u64::MAX);
        assert_eq!(by(IndexField::Recipient, "a@x.test")?, [all[0], all[2]]);
        assert_eq!(by(IndexField::Campaign, "spring")?, [all[0], all[2]]);
        assert_eq!(by(IndexField::Campaign, "spring-sale")?, [all[0]]);
        assert_eq!(
            log.ids_by(IndexField::Recipient, "a@x.test", all[1], u64::MAX)?,
            [all[2]]
        );

        assert_eq!(log.delete_before(all[2])?, 2);
        assert_eq!(by(IndexField::Recipient, "a@x.test")?, [all[2]]);
        assert!(by(IndexField::Recipient, "b@x.test")?.is_empty());
        assert_eq!(log.range(0, u64::MAX).count(), 1);
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[test]
    fn keywords_split_on_separators_and_dots_only_for_domains() {
        assert_eq!(
            keywords("Spring-Sale_2", false),
            ["spring-sale_2", "spring", "sale", "2"]
        );
        assert_eq!(keywords("mail.example.com", false), ["mail.example.com"]);
        assert_eq!(
            keywords("mail.example.com", true),
            ["mail.example.com", "mail", "example", "com"]
        );
        assert!(keywords("", false).is_empty());
    }
}
