//! The durable store: one sled database under the data directory, shared by every crate, each of
//! which owns its own trees in it.
//!
//! Writes go to sled's in-memory log at once and reach the disk on a flush. A caller that must
//! not answer before its writes are on disk awaits [`Store::durable`]; concurrent callers share
//! one flush (group commit), so durability costs one fsync per round, not one per message.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// A failure of the store. Every variant means the caller's writes may not be durable.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an error (disk full, read-only file system, I/O error, corruption).
    #[error("spool storage failed: {0}")]
    Storage(#[from] sled::Error),
    /// The flush thread is gone: the store is shutting down.
    #[error("spool is shutting down")]
    Closed,
    /// An earlier flush failed; the store refuses writes until restarted.
    #[error("spool is unavailable after a failed write to disk")]
    Failed,
}

/// A handle to the database and its group-commit thread. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    flush_requests: mpsc::Sender<FlushRequest>,
    failed: Arc<AtomicBool>,
}

impl Store {
    /// Opens (or creates) the database at `path` and starts the group-commit thread.
    ///
    /// `cache_bytes` bounds sled's page cache.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            // Sluice decides when to flush; sled's own timer would add fsyncs nobody waits for.
            .flush_every_ms(None)
            .open()?;
        let failed = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let (flush_db, flush_failed) = (db.clone(), failed.clone());
        std::thread::Builder::new()
            .name("sluice-flush".into())
            .spawn(move || run_group_commit(flush_db, rx, flush_failed))
            .map_err(|e| StoreError::Storage(sled::Error::Io(e)))?;
        Ok(Store {
            db,
            flush_requests: tx,
            failed,
        })
    }

    /// Opens one of the database's trees by name.
    pub fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.check()?;
        Ok(self.db.open_tree(name)?)
    }

    /// The underlying database, for the owners of trees.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Fails at once when an earlier flush failed, so no new work is accepted on a bad disk.
    pub fn check(&self) -> Result<(), StoreError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(StoreError::Failed);
        }
        Ok(())
    }

    /// Returns once every write made before this call is on disk.
    pub async fn durable(&self) -> Result<(), StoreError> {
        self.check()?;
        let (tx, rx) = oneshot::channel();
        self.flush_requests
            .send(FlushRequest::Now(tx))
            .map_err(|_| StoreError::Closed)?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(StoreError::Failed),
            Err(_) => Err(StoreError::Closed),
        }
    }

    /// Asks for a flush within [`SOON`] without waiting for it. Used where losing the last
    /// moments of writes in a crash costs a repeated attempt, never a lost message: recording
    /// delivery outcomes. Coalescing them matters: a flush per outcome would cost an fsync per
    /// delivered message.
    pub fn flush_soon(&self) {
        let _ = self.flush_requests.send(FlushRequest::Soon);
    }

    /// Flushes synchronously; used at shutdown.
    pub fn flush_now(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

/// How long a [`Store::flush_soon`] request may wait to share a flush with others.
pub const SOON: Duration = Duration::from_millis(20);

/// A request to the flush thread.
enum FlushRequest {
    /// Flush as soon as possible and report the outcome.
    Now(oneshot::Sender<Result<(), String>>),
    /// Flush within [`SOON`]; nobody waits.
    Soon,
}

/// Waits for flush requests, then serves every request that arrived meanwhile with one flush.
/// Runs on a thread of its own: a flush blocks on the disk, and a dedicated thread costs one
/// wake-up per round where a blocking-pool task per round cost several.
///
/// A request that arrives while a flush runs waits for the next one: its writes may have missed
/// the flush in progress. When only `Soon` requests are pending, the thread gathers more for up
/// to [`SOON`], unless a `Now` request arrives first.
fn run_group_commit(db: sled::Db, requests: mpsc::Receiver<FlushRequest>, failed: Arc<AtomicBool>) {
    let mut waiting = Vec::new();
    while let Ok(first) = requests.recv() {
        let deadline = Instant::now() + SOON;
        let mut request = Some(first);
        while let Some(next) = request.take() {
            if let FlushRequest::Now(waiter) = next {
                waiting.push(waiter);
            }
            request = match requests.try_recv() {
                Ok(more) => Some(more),
                Err(_) if waiting.is_empty() => requests
                    .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                    .ok(),
                Err(_) => None,
            };
        }
        let outcome = db.flush().map(|_| ()).map_err(|e| e.to_string());
        if let Err(reason) = &outcome {
            tracing::error!(error = %reason, "flushing the spool to disk failed");
            failed.store(true, Ordering::Release);
        }
        for waiter in waiting.drain(..) {
            let _ = waiter.send(outcome.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_writers_share_flushes() -> Result<(), StoreError> {
        let dir = std::env::temp_dir().join(format!("sluice-store-{}", std::process::id()));
        let store = Store::open(&dir, 16 << 20)?;
        let tree = store.tree("t")?;
        let mut tasks = Vec::new();
        for i in 0u32..64 {
            let (store, tree) = (store.clone(), tree.clone());
            tasks.push(tokio::spawn(async move {
                tree.insert(i.to_be_bytes(), &b"x"[..])?;
                store.durable().await
            }));
        }
        for task in tasks {
            task.await.map_err(|_| StoreError::Closed)??;
        }
        assert_eq!(tree.len(), 64);
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }
}
