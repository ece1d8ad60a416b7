//! The durable store: one sled database under the data directory, shared by every crate, each of
//! which owns its own trees in it.
//!
//! Writes go to sled's in-memory log at once and reach the disk on a flush. A caller that must
//! not answer before its writes are on disk awaits [`Store::durable`]; concurrent callers share
//! one flush (group commit), so durability costs one fsync per round, not one per message.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

/// A failure of the store. Every variant means the caller's writes may not be durable.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an error (disk full, read-only file system, I/O error, corruption).
    #[error("spool storage failed: {0}")]
    Storage(#[from] sled::Error),
    /// The flush task is gone: the store is shutting down.
    #[error("spool is shutting down")]
    Closed,
    /// An earlier flush failed; the store refuses writes until restarted.
    #[error("spool is unavailable after a failed write to disk")]
    Failed,
}

/// A handle to the database and its group-commit task. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    flush_requests: mpsc::UnboundedSender<oneshot::Sender<Result<(), String>>>,
    failed: Arc<AtomicBool>,
}

impl Store {
    /// Opens (or creates) the database at `path` and starts the group-commit task.
    ///
    /// `cache_bytes` bounds sled's page cache. Must be called inside a Tokio runtime.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            // Sluice decides when to flush; sled's own timer would add fsyncs nobody waits for.
            .flush_every_ms(None)
            .open()?;
        let failed = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run_group_commit(db.clone(), rx, failed.clone()));
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
            .send(tx)
            .map_err(|_| StoreError::Closed)?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(StoreError::Failed),
            Err(_) => Err(StoreError::Closed),
        }
    }

    /// Asks for a flush without waiting for it. Used where losing the last moments of writes in
    /// a crash costs a repeated attempt, never a lost message: recording delivery outcomes.
    pub fn flush_soon(&self) {
        let (tx, _) = oneshot::channel();
        let _ = self.flush_requests.send(tx);
    }

    /// Flushes synchronously; used at shutdown.
    pub fn flush_now(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

/// Waits for flush requests, then serves every request that arrived meanwhile with one flush.
///
/// A request that arrives while a flush runs waits for the next one: its writes may have missed
/// the flush in progress.
async fn run_group_commit(
    db: sled::Db,
    mut requests: mpsc::UnboundedReceiver<oneshot::Sender<Result<(), String>>>,
    failed: Arc<AtomicBool>,
) {
    let mut waiting = Vec::new();
    while let Some(first) = requests.recv().await {
        waiting.push(first);
        while let Ok(more) = requests.try_recv() {
            waiting.push(more);
        }
        let flush_db = db.clone();
        let outcome = match tokio::task::spawn_blocking(move || flush_db.flush()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        };
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
