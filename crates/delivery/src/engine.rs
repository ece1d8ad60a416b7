//! The delivery engine: due messages arrive from the scheduler, wait in a ready queue per
//! (egress source, destination domain), and are carried by up to `max_connections` connections
//! per queue, each reused for up to `max_deliveries_per_connection` messages.
//!
//! Ready queues hold message records, never bodies; a body is read from the spool just before
//! it is sent.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use sluice_core::clock::now_ms;
use sluice_core::config::DeliveryConfig;
use sluice_core::event::AttemptFacts;
use sluice_core::StoreError;
use sluice_queue::{QueuedMessage, Spool};
use tokio::sync::{mpsc, Notify};

use crate::classify::{classify_error, classify_reply, local_failure, Failure, Verdict};
use crate::egress::{Egress, Source};
use crate::route::{Host, RouteError, Router};
use crate::smtp::{Connection, ConnectionSettings, Phase, SmtpError, TlsOutcome};

/// Identifies a ready queue.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct QueueKey {
    source: Source,
    domain: String,
}

#[derive(Default)]
struct ReadyQueue {
    waiting: VecDeque<QueuedMessage>,
    connections: usize,
    idle: usize,
    more: Arc<Notify>,
}

/// Delivers messages handed over by the scheduler. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

struct Shared {
    spool: Spool,
    router: Router,
    egress: Egress,
    config: DeliveryConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    queues: Mutex<HashMap<QueueKey, ReadyQueue>>,
}

/// The state a connection carries into each message's events.
struct Session {
    conn: Connection,
    tls: i8,
}

impl Engine {
    /// An engine that records outcomes in `spool`.
    pub fn new(
        spool: Spool,
        router: Router,
        egress: Egress,
        config: DeliveryConfig,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Engine {
        let queues = Mutex::new(HashMap::new());
        Engine {
            shared: Arc::new(Shared {
                spool,
                router,
                egress,
                config,
                tls,
                queues,
            }),
        }
    }

    /// Takes messages from the scheduler until it stops.
    pub async fn run(self, mut due: mpsc::Receiver<QueuedMessage>) {
        while let Some(message) = due.recv().await {
            self.enqueue(message);
        }
    }

    fn enqueue(&self, message: QueuedMessage) {
        let key = QueueKey {
            source: self.shared.egress.pick(&message.pool),
            domain: message.domain.clone(),
        };
        let mut queues = lock(&self.shared.queues);
        let queue = queues.entry(key.clone()).or_default();
        queue.waiting.push_back(message);
        if queue.idle > 0 {
            queue.more.notify_one();
        } else if queue.connections < self.shared.config.max_connections {
            queue.connections += 1;
            tokio::spawn(drive_connection(self.shared.clone(), key));
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One connection's life: take a message, open a session for it, then keep taking messages
/// from the same queue until the per-connection limit or the idle timeout.
async fn drive_connection(shared: Arc<Shared>, key: QueueKey) {
    if let Some(first) = take(&shared, &key) {
        if let Some(mut session) = open_session(&shared, &key, &first).await {
            deliver(&shared, &key, &mut session, first).await;
            let mut sent = 1;
            while sent < shared.config.max_deliveries_per_connection {
                let Some(next) = next_message(&shared, &key).await else {
                    break;
                };
                if !deliver(&shared, &key, &mut session, next).await {
                    break;
                }
                sent += 1;
            }
            session.conn.quit().await;
        }
    }
    release(&shared, &key);
}

fn take(shared: &Shared, key: &QueueKey) -> Option<QueuedMessage> {
    lock(&shared.queues).get_mut(key)?.waiting.pop_front()
}

/// The next message for an open connection, waiting up to the idle timeout for one to arrive.
async fn next_message(shared: &Shared, key: &QueueKey) -> Option<QueuedMessage> {
    let more = {
        let mut queues = lock(&shared.queues);
        let queue = queues.get_mut(key)?;
        if let Some(message) = queue.waiting.pop_front() {
            return Some(message);
        }
        queue.idle += 1;
        queue.more.clone()
    };
    let _ = tokio::time::timeout(shared.config.idle_timeout, more.notified()).await;
    let mut queues = lock(&shared.queues);
    let queue = queues.get_mut(key)?;
    queue.idle -= 1;
    queue.waiting.pop_front()
}

/// A connection ends: forget the queue when it is empty, or start a replacement connection
/// when messages still wait and none is left to carry them.
fn release(shared: &Arc<Shared>, key: &QueueKey) {
    let mut queues = lock(&shared.queues);
    let Some(queue) = queues.get_mut(key) else {
        return;
    };
    queue.connections -= 1;
    if queue.connections == 0 && queue.waiting.is_empty() {
        queues.remove(key);
    } else if queue.connections == 0 {
        queue.connections = 1;
        tokio::spawn(drive_connection(shared.clone(), key.clone()));
    }
}

/// Resolves the destination and connects to the first host that answers. When none does, the
/// message in hand (and, if this was the queue's only connection, every waiting message) is
/// deferred or bounced with the reason.
async fn open_session(shared: &Shared, key: &QueueKey, first: &QueuedMessage) -> Option<Session> {
    let hosts = match shared.router.resolve(&key.domain).await {
        Ok(hosts) => hosts,
        Err(e) => {
            let verdict = match e {
                RouteError::NullMx | RouteError::NoSuchDomain => {
                    Verdict::Bounced(local_failure(10, &format!("{}: {e}", key.domain)))
                }
                RouteError::Temporary(_) => {
                    Verdict::Delayed(local_failure(21, &format!("{}: {e}", key.domain)))
                }
            };
            fail_queue(shared, key, first, verdict).await;
            return None;
        }
    };
    match connect_any(shared, key, &hosts).await {
        Ok(session) => Some(session),
        Err(verdict) => {
            fail_queue(shared, key, first, verdict).await;
            None
        }
    }
}

async fn connect_any(shared: &Shared, key: &QueueKey, hosts: &[Host]) -> Result<Session, Verdict> {
    let mut last = Verdict::Delayed(local_failure(20, "no host to connect to"));
    for host in hosts {
        for addr in &host.addrs {
            match connect(shared, key, &host.name, *addr, shared.tls.clone()).await {
                Ok(conn) => {
                    return Ok(Session {
                        tls: tls_code(conn.tls()),
                        conn,
                    })
                }
                Err(SmtpError::Tls(reason)) => {
                    tracing::info!(host = %host.name, %addr, %reason, "STARTTLS failed; retrying in clear");
                    if let Ok(conn) = connect(shared, key, &host.name, *addr, None).await {
                        return Ok(Session { conn, tls: -1 });
                    }
                }
                Err(e) => {
                    tracing::info!(host = %host.name, %addr, error = %e, "connection failed");
                    last = classify_error(&e, &addr.to_string());
                    // A 5xx greeting refuses this host, not the message: try the next host.
                    if let Verdict::Bounced(failure) = last {
                        last = Verdict::Delayed(failure);
                    }
                }
            }
        }
    }
    Err(last)
}

async fn connect(
    shared: &Shared,
    key: &QueueKey,
    name: &str,
    addr: std::net::SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<Connection, SmtpError> {
    let settings = ConnectionSettings {
        bind: key.source.address,
        ehlo_name: key.source.hostname.clone(),
        tls,
        connect_timeout: shared.config.connect_timeout,
        command_timeout: shared.config.command_timeout,
        data_timeout: shared.config.data_timeout,
    };
    tracing::debug!(host = name, %addr, source = ?key.source.address, "connecting");
    Connection::open(addr, name, settings).await
}

fn tls_code(outcome: TlsOutcome) -> i8 {
    match outcome {
        TlsOutcome::Established => 1,
        TlsOutcome::NotOffered => 0,
    }
}

/// Records `verdict` for `first` and, when no other connection serves the queue, for every
/// message waiting in it: they would meet the same failure.
async fn fail_queue(shared: &Shared, key: &QueueKey, first: &QueuedMessage, verdict: Verdict) {
    record(shared, first, &verdict, attempt_facts(key, first, None)).await;
    let drained: Vec<QueuedMessage> = {
        let mut queues = lock(&shared.queues);
        match queues.get_mut(key) {
            Some(queue) if queue.connections == 1 => queue.waiting.drain(..).collect(),
            _ => Vec::new(),
        }
    };
    for message in drained {
        record(
            shared,
            &message,
            &verdict,
            attempt_facts(key, &message, None),
        )
        .await;
    }
}

/// Sends one message on the session and records the outcome. Returns whether the connection
/// can carry another message.
async fn deliver(
    shared: &Shared,
    key: &QueueKey,
    session: &mut Session,
    message: QueuedMessage,
) -> bool {
    let body = match shared.spool.body(message.id) {
        Ok(Some(body)) => body,
        Ok(None) => {
            tracing::error!(message_id = %message.id, "message has no body in the spool; skipping it");
            return true;
        }
        Err(e) => {
            tracing::error!(message_id = %message.id, error = %e, "reading a body from the spool failed");
            return false;
        }
    };
    let result = session
        .conn
        .send(&message.mail_from, &message.rcpt_to, &body)
        .await;
    let facts = attempt_facts(key, &message, Some(session));
    let peer = session.conn.peer_addr().to_string();
    let (verdict, usable) = match &result {
        Ok(reply) => (classify_reply(reply, Phase::DataEnd), true),
        Err(e) => (classify_error(e, &peer), e.connection_usable()),
    };
    tracing::info!(message_id = %message.id, rcpt = %message.rcpt_to, outcome = ?verdict_name(&verdict), "attempt finished");
    record(shared, &message, &verdict, facts).await;
    usable
}

fn verdict_name(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Delivered => "delivered",
        Verdict::Delayed(_) => "delayed",
        Verdict::Bounced(_) => "bounced",
    }
}

fn attempt_facts(
    key: &QueueKey,
    message: &QueuedMessage,
    session: Option<&Session>,
) -> AttemptFacts {
    AttemptFacts {
        routing_domain: Some(key.domain.clone()),
        sending_ip: session
            .map(|s| s.conn.local_addr().ip().to_string())
            .or(key.source.address.map(|a| a.to_string())),
        ip_address: session.map(|s| s.conn.peer_addr().ip().to_string()),
        queue_time_ms: Some(now_ms().saturating_sub(message.facts.injection_time_ms)),
        num_retries: Some(message.attempts),
        outbound_tls: session.map(|s| s.tls),
        ..AttemptFacts::default()
    }
}

async fn record(
    shared: &Shared,
    message: &QueuedMessage,
    verdict: &Verdict,
    mut facts: AttemptFacts,
) {
    let result = match verdict {
        Verdict::Delivered => shared.spool.delivered(message, facts).await,
        Verdict::Delayed(failure) => {
            put_failure(&mut facts, failure);
            shared.spool.deferred(message, facts).await
        }
        Verdict::Bounced(failure) => {
            put_failure(&mut facts, failure);
            facts.outbound_tls = None;
            shared.spool.bounced(message, facts).await
        }
    };
    match result {
        Ok(()) => {}
        // At shutdown the store stops taking writes; the message is recovered at the next start.
        Err(StoreError::Closed) => {
            tracing::info!(message_id = %message.id, "outcome not recorded: shutting down; the message will be retried")
        }
        Err(e) => {
            tracing::error!(message_id = %message.id, error = %e, "recording a delivery outcome failed; the message stays queued")
        }
    }
}

fn put_failure(facts: &mut AttemptFacts, failure: &Failure) {
    facts.bounce_class = Some(failure.bounce_class);
    facts.error_code = Some(failure.error_code);
    facts.reason = Some(mask_addresses(&failure.raw_reason));
    facts.raw_reason = Some(failure.raw_reason.clone());
}

/// The normalised `reason`: IPv4 addresses masked as `a.b.c.d`, as SparkPost does.
fn mask_addresses(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            let core = word.trim_matches(|c: char| !c.is_ascii_digit());
            if core.parse::<std::net::Ipv4Addr>().is_ok() {
                word.replace(core, "a.b.c.d")
            } else {
                word.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_mask_ipv4_addresses() {
        assert_eq!(
            mask_addresses("554 5.7.1 Service unavailable; Client host [192.0.2.7] blocked"),
            "554 5.7.1 Service unavailable; Client host [a.b.c.d] blocked"
        );
    }
}
