//! One connection's life in a ready queue: wait for the throttle, connect to the first host that
//! answers, then carry messages from the queue until the per-connection limit, the idle
//! timeout, or back pressure closes it.

use std::net::SocketAddr;
use std::sync::Arc;

use sluice_core::config::{ShapingRule, TlsPolicy};
use sluice_queue::{cancel_facts, QueuedMessage, Standing};

use crate::classify::{asks_to_slow_down, local_failure, Verdict};
use crate::engine::{hold, lock, read, QueueKey, Shared};
use crate::outcome::{attempt_facts, record, verdict_name, Session};
use crate::route::Host;
use crate::smtp::{Connection, ConnectionSettings, Phase, SmtpError};
use crate::throttle::Throttle;

/// Opens a connection for the queue at `key` and carries its messages until done.
pub(crate) async fn drive_connection(shared: Arc<Shared>, key: QueueKey) {
    if let Some((throttle, hosts)) = queue_state(&shared, &key) {
        throttle.connection_permit().await;
        throttle.message_permit().await;
        if let Some(first) = take(&shared, &key) {
            if let Some(session) = open_session(&shared, &key, &throttle, &hosts, &first).await {
                carry(&shared, &key, &throttle, session, first).await;
            }
        }
    }
    release(&shared, &key);
}

/// Sends `first`, then the queue's next messages, over one session.
async fn carry(
    shared: &Shared,
    key: &QueueKey,
    throttle: &Throttle,
    mut session: Session,
    first: QueuedMessage,
) {
    let mut usable = deliver(shared, key, throttle, &mut session, first).await;
    let mut sent = 1;
    while usable && sent < throttle.rule().max_deliveries_per_connection && !over_limit(shared, key)
    {
        let Some(next) = next_message(shared, key, throttle.rule().idle_timeout).await else {
            break;
        };
        throttle.message_permit().await;
        usable = deliver(shared, key, throttle, &mut session, next).await;
        sent += 1;
    }
    session.conn.quit().await;
}

fn queue_state(shared: &Shared, key: &QueueKey) -> Option<(Arc<Throttle>, Vec<Host>)> {
    let queues = lock(&shared.queues);
    let queue = queues.get(key)?;
    Some((queue.throttle.clone(), queue.route.hosts.clone()))
}

/// Whether the queue has more connections than back pressure now allows.
fn over_limit(shared: &Shared, key: &QueueKey) -> bool {
    let queues = lock(&shared.queues);
    queues
        .get(key)
        .is_some_and(|q| q.connections > q.throttle.max_connections())
}

fn take(shared: &Shared, key: &QueueKey) -> Option<QueuedMessage> {
    lock(&shared.queues).get_mut(key)?.waiting.pop_front()
}

/// The next message for an open connection, waiting up to `idle` for one to arrive.
async fn next_message(
    shared: &Shared,
    key: &QueueKey,
    idle: std::time::Duration,
) -> Option<QueuedMessage> {
    let more = {
        let mut queues = lock(&shared.queues);
        let queue = queues.get_mut(key)?;
        if let Some(message) = queue.waiting.pop_front() {
            return Some(message);
        }
        queue.idle += 1;
        queue.more.clone()
    };
    let _ = tokio::time::timeout(idle, more.notified()).await;
    let mut queues = lock(&shared.queues);
    let queue = queues.get_mut(key)?;
    queue.idle -= 1;
    queue.waiting.pop_front()
}

/// A connection ends: forget the queue when it is empty and its site is not pushing back (the
/// throttle remembers back pressure), or start a replacement connection when messages still
/// wait and none is left to carry them.
fn release(shared: &Arc<Shared>, key: &QueueKey) {
    let mut queues = lock(&shared.queues);
    let Some(queue) = queues.get_mut(key) else {
        return;
    };
    queue.connections -= 1;
    if queue.connections > 0 {
        return;
    }
    if !queue.waiting.is_empty() {
        queue.connections = 1;
        tokio::spawn(drive_connection(shared.clone(), key.clone()));
    } else if queue.throttle.level() == 0 {
        queues.remove(key);
    }
}

/// Connects to the first host that answers. When none does, the message in hand (and, if this
/// was the queue's only connection, every waiting message) is deferred with the reason.
async fn open_session(
    shared: &Shared,
    key: &QueueKey,
    throttle: &Throttle,
    hosts: &[Host],
    first: &QueuedMessage,
) -> Option<Session> {
    match connect_any(shared, key, throttle, hosts).await {
        Ok(session) => Some(session),
        Err(verdict) => {
            fail_queue(shared, key, first, verdict).await;
            None
        }
    }
}

/// Tries every address of every host in order. A refusal at greeting refuses the host, not
/// the message, so it only moves on to the next one.
async fn connect_any(
    shared: &Shared,
    key: &QueueKey,
    throttle: &Throttle,
    hosts: &[Host],
) -> Result<Session, Verdict> {
    let rule = throttle.rule();
    let mut last = Verdict::Delayed(local_failure(20, "no host to connect to"));
    // A socket bound to an IPv4 sending address cannot reach an IPv6 host, nor the reverse.
    let source = key.source.address;
    let reachable = |addr: &&SocketAddr| source.is_none_or(|ip| ip.is_ipv4() == addr.is_ipv4());
    if !hosts.iter().flat_map(|h| &h.addrs).any(|a| reachable(&a)) {
        let what = match source {
            Some(ip) => format!("no MX host address has the family of the sending IP {ip}"),
            None => "no host to connect to".to_string(),
        };
        return Err(Verdict::Delayed(local_failure(20, &what)));
    }
    for host in hosts {
        for addr in host.addrs.iter().filter(reachable) {
            let error = match connect_host(shared, key, &rule, &host.name, *addr).await {
                Ok(session) => return Ok(session),
                Err(e) => e,
            };
            tracing::info!(host = %host.name, %addr, error = %error, "connection failed");
            if asks_to_slow_down(&error) {
                throttle.back_off();
            }
            last = match read(&shared.rules).classify_error(&error, &addr.to_string()) {
                Verdict::Bounced(failure) => Verdict::Delayed(failure),
                other => other,
            };
        }
    }
    Err(last)
}

/// Opens a session to one address under the rule's TLS policy. An opportunistic handshake
/// that fails is retried in clear on a new connection; a required one never is.
async fn connect_host(
    shared: &Shared,
    key: &QueueKey,
    rule: &ShapingRule,
    name: &str,
    addr: SocketAddr,
) -> Result<Session, SmtpError> {
    let (tls, required) = match rule.tls {
        TlsPolicy::Opportunistic => (shared.tls.opportunistic.clone(), false),
        TlsPolicy::Required => (shared.tls.verified.clone(), true),
        TlsPolicy::Disabled => (None, false),
    };
    let settings = ConnectionSettings {
        bind: key.source.address,
        ehlo_name: key.source.hostname.clone(),
        tls,
        require_tls: required,
        connect_timeout: rule.connect_timeout,
        command_timeout: rule.command_timeout,
        data_timeout: rule.data_timeout,
    };
    tracing::debug!(host = name, %addr, source = ?key.source.address, site = %key.site, "connecting");
    match Connection::open(addr, name, settings.clone()).await {
        Err(SmtpError::Tls(reason)) if !required => {
            tracing::info!(host = name, %addr, %reason, "STARTTLS failed; retrying in clear");
            let clear = ConnectionSettings {
                tls: None,
                ..settings
            };
            let conn = Connection::open(addr, name, clear).await?;
            Ok(Session { conn, tls: -1 })
        }
        result => result.map(Session::new),
    }
}

/// Records `verdict` for `first` and, when no other connection serves the queue, for every
/// message waiting in it: they would meet the same failure.
async fn fail_queue(shared: &Shared, key: &QueueKey, first: &QueuedMessage, verdict: Verdict) {
    record(
        shared,
        first,
        &verdict,
        attempt_facts(first, Some(key), None),
    )
    .await;
    let drained: Vec<QueuedMessage> = {
        let mut queues = lock(&shared.queues);
        match queues.get_mut(key) {
            Some(queue) if queue.connections == 1 => queue.waiting.drain(..).collect(),
            _ => Vec::new(),
        }
    };
    for message in drained {
        let facts = attempt_facts(&message, Some(key), None);
        record(shared, &message, &verdict, facts).await;
    }
}

/// Sends one message on the session and records the outcome. Returns whether the connection
/// can carry another message.
async fn deliver(
    shared: &Shared,
    key: &QueueKey,
    throttle: &Throttle,
    session: &mut Session,
    message: QueuedMessage,
) -> bool {
    match shared.spool.standing(message.id) {
        Ok(Standing::Live) => {}
        Ok(Standing::Gone) => {
            tracing::debug!(message_id = %message.id, "message left the spool before sending (cancelled)");
            return true;
        }
        Ok(Standing::Cancelled(reason)) => {
            let facts = cancel_facts(&reason);
            if let Err(e) = shared.spool.bounced(&message, facts).await {
                tracing::error!(message_id = %message.id, error = %e, "recording a cancellation failed");
            }
            return true;
        }
        Err(e) => {
            tracing::error!(message_id = %message.id, error = %e, "reading a message from the spool failed");
            return false;
        }
    }
    // The scheduler checked the domain and pool when it handed the message over; a suspension
    // made since, while the message waited here for its turn, holds it too.
    if shared.spool.is_suspended(&message) || shared.spool.is_site_suspended(&key.site.name) {
        hold(shared, message);
        return true;
    }
    let body = match shared.spool.body(message.id) {
        Ok(Some(body)) => body,
        Ok(None) => {
            tracing::debug!(message_id = %message.id, "message left the spool before sending (cancelled)");
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
    let facts = attempt_facts(&message, Some(key), Some(session));
    let peer = session.conn.peer_addr().to_string();
    let rules = read(&shared.rules).clone();
    let (verdict, usable) = match &result {
        Ok(reply) => (rules.classify_reply(reply, Phase::DataEnd), true),
        Err(e) => {
            if asks_to_slow_down(e) {
                throttle.back_off();
            }
            (rules.classify_error(e, &peer), e.connection_usable())
        }
    };
    tracing::info!(message_id = %message.id, rcpt = %message.rcpt_to, site = %key.site, outcome = verdict_name(&verdict), "attempt finished");
    record(shared, &message, &verdict, facts).await;
    usable && session.conn.is_open()
}
