//! The scheduler: hands due messages to delivery, and sleeps exactly until the next one is due
//! or a new message is accepted. It never polls on a fixed interval.

use std::time::Duration;

use sluice_core::clock::now_ms;
use tokio::sync::mpsc;

use crate::message::QueuedMessage;
use crate::spool::Spool;

/// How many messages are moved to in-flight per scan.
const SCAN_LIMIT: usize = 512;

/// Feeds due messages into `ready` until the receiver is dropped. The channel is bounded, so a
/// delivery side that falls behind leaves messages in the schedule rather than in memory.
pub async fn run_scheduler(spool: Spool, ready: mpsc::Sender<QueuedMessage>) {
    loop {
        let due = match spool.take_due(now_ms(), SCAN_LIMIT) {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "reading the schedule failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if due.is_empty() {
            wait_for_work(&spool).await;
            continue;
        }
        tracing::debug!(count = due.len(), "handing due messages to delivery");
        for message in due {
            if ready.send(message).await.is_err() {
                return;
            }
        }
    }
}

/// Sleeps until the earliest scheduled message is due, or until a message is accepted.
async fn wait_for_work(spool: &Spool) {
    let sleep = match spool.next_due() {
        Ok(Some(due)) => Duration::from_millis(due.saturating_sub(now_ms())),
        // Nothing scheduled: only an acceptance can create work.
        Ok(None) => Duration::from_secs(3600),
        Err(_) => Duration::from_secs(1),
    };
    tracing::debug!(sleep_ms = sleep.as_millis() as u64, "scheduler idle");
    tokio::select! {
        _ = tokio::time::sleep(sleep) => {}
        _ = spool.accepted() => {}
    }
}
