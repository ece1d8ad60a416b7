//! State shared between the sink's handle and its connection tasks.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use super::record::{Received, SessionRecord};
use super::script::Script;
use super::tls::TlsIdentity;
use crate::recorder::{lock, Changes};

/// Index of a session in [`Recorded::sessions`]; sessions are never removed, so it stays valid.
pub(crate) type SessionId = usize;

pub(crate) struct Shared {
    script: Mutex<Script>,
    recorded: Mutex<Recorded>,
    pub(crate) changes: Changes,
    pub(crate) tls: TlsIdentity,
    queue_ids: AtomicU64,
}

#[derive(Default)]
pub(crate) struct Recorded {
    pub(crate) messages: Vec<Received>,
    pub(crate) sessions: Vec<SessionRecord>,
    open: usize,
    pub(crate) max_concurrent: usize,
}

impl Shared {
    pub(crate) fn new(script: Script, tls: TlsIdentity) -> Shared {
        Shared {
            script: Mutex::new(script),
            recorded: Mutex::new(Recorded::default()),
            changes: Changes::new(),
            tls,
            queue_ids: AtomicU64::new(1),
        }
    }

    /// Runs `f` on the live script; sequences advance in place.
    pub(crate) fn with_script<T>(&self, f: impl FnOnce(&mut Script) -> T) -> T {
        f(&mut lock(&self.script))
    }

    pub(crate) fn replace_script(&self, script: Script) {
        *lock(&self.script) = script;
    }

    pub(crate) fn recorded(&self) -> MutexGuard<'_, Recorded> {
        lock(&self.recorded)
    }

    /// Records a new connection; returns its id and how many connections are now open.
    pub(crate) fn open_session(&self, client: SocketAddr) -> (SessionId, usize) {
        let mut recorded = self.recorded();
        recorded.sessions.push(SessionRecord {
            client,
            ehlo: None,
            tls: false,
            started: Instant::now(),
            ended: None,
            commands: Vec::new(),
        });
        recorded.open += 1;
        recorded.max_concurrent = recorded.max_concurrent.max(recorded.open);
        (recorded.sessions.len() - 1, recorded.open)
    }

    pub(crate) fn close_session(&self, id: SessionId) {
        let mut recorded = self.recorded();
        recorded.open = recorded.open.saturating_sub(1);
        if let Some(session) = recorded.sessions.get_mut(id) {
            session.ended = Some(Instant::now());
        }
    }

    pub(crate) fn update_session(&self, id: SessionId, f: impl FnOnce(&mut SessionRecord)) {
        if let Some(session) = self.recorded().sessions.get_mut(id) {
            f(session);
        }
    }

    pub(crate) fn record_message(&self, message: Received) {
        self.recorded().messages.push(message);
        self.changes.bump();
    }

    pub(crate) fn next_queue_id(&self) -> String {
        format!("TK{:08X}", self.queue_ids.fetch_add(1, Ordering::Relaxed))
    }
}
