//! Outcomes: what an attempt's verdict does to the message in the spool, and the facts its
//! event carries.

use sluice_core::clock::now_ms;
use sluice_core::event::AttemptFacts;
use sluice_core::StoreError;
use sluice_queue::QueuedMessage;

use crate::classify::{Failure, Verdict};
use crate::engine::{QueueKey, Shared};
use crate::smtp::{Connection, TlsOutcome};

/// The state a connection carries into each message's events.
pub(crate) struct Session {
    pub conn: Connection,
    /// `outbound_tls`: 1 encrypted, 0 not offered or not wanted, -1 retried in clear.
    pub tls: i8,
}

impl Session {
    /// A session whose TLS state is what the connection negotiated.
    pub fn new(conn: Connection) -> Session {
        let tls = match conn.tls() {
            TlsOutcome::Established => 1,
            TlsOutcome::NotOffered => 0,
        };
        Session { conn, tls }
    }
}

/// The facts of one attempt; `key` is absent when the message never reached a ready queue.
pub(crate) fn attempt_facts(
    message: &QueuedMessage,
    key: Option<&QueueKey>,
    session: Option<&Session>,
) -> AttemptFacts {
    let configured = key.and_then(|k| k.source.address).map(|a| a.to_string());
    AttemptFacts {
        routing_domain: Some(message.domain.clone()),
        sending_ip: session
            .map(|s| s.conn.local_addr().ip().to_string())
            .or(configured),
        ip_address: session.map(|s| s.conn.peer_addr().ip().to_string()),
        queue_time_ms: Some(now_ms().saturating_sub(message.facts.injection_time_ms)),
        num_retries: Some(message.attempts),
        outbound_tls: session.map(|s| s.tls),
        mailbox_provider: key.and_then(|k| k.site.provider.clone()),
        ..AttemptFacts::default()
    }
}

/// Records `verdict` for `message` in the spool, which emits its event.
pub(crate) async fn record(
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

/// A short name for logs.
pub(crate) fn verdict_name(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Delivered => "delivered",
        Verdict::Delayed(_) => "delayed",
        Verdict::Bounced(_) => "bounced",
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
