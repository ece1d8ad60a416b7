//! Retention: a background task that deletes events older than `[events] retention` from the
//! log and its index, every `compaction_interval`.
//!
//! It does not wait for webhooks whose cursors lag behind: see `EventsConfig::retention` for
//! why, and the dispatcher skips a batch whose events were deleted before it was sent.

use std::time::Duration;

use sluice_core::clock::now_ms;
use sluice_core::config::EventsConfig;
use sluice_core::id::first_id_at;
use sluice_core::StoreError;

use crate::log::EventLog;

/// Deletes old events every `compaction_interval`, the first time at once. Runs until aborted.
pub async fn run_retention(log: EventLog, config: EventsConfig) {
    let mut ticker = tokio::time::interval(config.compaction_interval.max(Duration::from_secs(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let log = log.clone();
        let retention = config.retention;
        // Deleting a large backlog is many sled writes; keep them off the async workers.
        let result = tokio::task::spawn_blocking(move || compact(&log, retention, now_ms())).await;
        match result {
            Ok(Ok(0)) => {}
            Ok(Ok(deleted)) => tracing::info!(deleted, "deleted events past their retention"),
            Ok(Err(e)) => tracing::error!(error = %e, "deleting old events failed on the spool"),
            Err(e) => tracing::error!(error = %e, "the event retention task failed"),
        }
    }
}

/// Deletes the events logged more than `retention` before `now` (Unix milliseconds).
pub fn compact(log: &EventLog, retention: Duration, now: u64) -> Result<u64, StoreError> {
    let retention_ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
    let cutoff = now.saturating_sub(retention_ms);
    log.delete_before(first_id_at(cutoff))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::event::{AttemptFacts, MessageFacts};
    use sluice_core::{Event, EventKind, Store};

    #[tokio::test]
    async fn only_events_older_than_the_retention_are_deleted() -> Result<(), StoreError> {
        let dir = std::env::temp_dir().join(format!("sluice-retention-{}", std::process::id()));
        let store = Store::open(&dir, 8 << 20)?;
        let log = EventLog::open(&store)?;
        let event = Event {
            event_id: 0,
            kind: EventKind::Delivery,
            timestamp_ms: now_ms(),
            message: MessageFacts::default(),
            attempt: AttemptFacts::default(),
        };
        log.append([event.clone(), event])?;
        let day = Duration::from_secs(86_400);
        assert_eq!(compact(&log, day, now_ms())?, 0);
        assert_eq!(log.read_after(0, 10)?.len(), 2);
        assert_eq!(compact(&log, day, now_ms() + 2 * 86_400_000)?, 2);
        assert!(log.read_after(0, 10)?.is_empty());
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }
}
