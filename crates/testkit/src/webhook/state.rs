//! State shared between the receiver's handle and its request handlers.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::behaviour::Behaviour;
use super::RecordedRequest;
use crate::recorder::{lock, Changes};

pub(crate) struct Shared {
    live: Mutex<Live>,
    recorded: Mutex<Recorded>,
    /// Issued OAuth2 tokens and when each expires.
    tokens: Mutex<HashMap<String, Instant>>,
    tokens_issued: AtomicU64,
    pub(crate) changes: Changes,
}

/// The behaviour in force and what is left of its status sequence.
struct Live {
    behaviour: Behaviour,
    pending_statuses: VecDeque<u16>,
}

#[derive(Default)]
pub(crate) struct Recorded {
    pub(crate) requests: Vec<RecordedRequest>,
    /// Events from accepted requests, flattened, in arrival order.
    pub(crate) events: Vec<Value>,
}

impl Shared {
    pub(crate) fn new(behaviour: Behaviour) -> Shared {
        Shared {
            live: Mutex::new(Live::new(behaviour)),
            recorded: Mutex::new(Recorded::default()),
            tokens: Mutex::new(HashMap::new()),
            tokens_issued: AtomicU64::new(0),
            changes: Changes::new(),
        }
    }

    pub(crate) fn behaviour(&self) -> Behaviour {
        lock(&self.live).behaviour.clone()
    }

    pub(crate) fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.live) = Live::new(behaviour);
    }

    /// The next status from the sequence, or the default once it is used up.
    pub(crate) fn next_status(&self) -> u16 {
        let mut live = lock(&self.live);
        let default = live.behaviour.status;
        live.pending_statuses.pop_front().unwrap_or(default)
    }

    pub(crate) fn recorded(&self) -> std::sync::MutexGuard<'_, Recorded> {
        lock(&self.recorded)
    }

    /// Records a request; the events of an accepted one join the flattened event list.
    pub(crate) fn record(&self, request: RecordedRequest) {
        let events = if request.is_success() {
            request.events()
        } else {
            Vec::new()
        };
        let mut recorded = self.recorded();
        recorded.requests.push(request);
        recorded.events.extend(events);
        drop(recorded);
        self.changes.bump();
    }

    /// Issues a new token valid for `lifetime`.
    pub(crate) fn issue_token(&self, lifetime: Duration) -> String {
        let serial = self.tokens_issued.fetch_add(1, Ordering::Relaxed) + 1;
        let token = format!("sluice-testkit-token-{serial}");
        let expiry = Instant::now() + lifetime;
        lock(&self.tokens).insert(token.clone(), expiry);
        token
    }

    pub(crate) fn token_is_valid(&self, token: &str) -> bool {
        lock(&self.tokens)
            .get(token)
            .is_some_and(|expiry| Instant::now() < *expiry)
    }

    pub(crate) fn tokens_issued(&self) -> u64 {
        self.tokens_issued.load(Ordering::Relaxed)
    }
}

impl Live {
    fn new(behaviour: Behaviour) -> Live {
        let pending_statuses = behaviour.statuses.iter().copied().collect();
        Live {
            behaviour,
            pending_statuses,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(status: u16, body: &'static [u8]) -> RecordedRequest {
        RecordedRequest {
            method: "POST".into(),
            path: "/webhook".into(),
            query: None,
            headers: Vec::new(),
            body: bytes::Bytes::from_static(body),
            status,
            at: Instant::now(),
        }
    }

    #[test]
    fn accepted_bodies_are_flattened_into_events() {
        let shared = Shared::new(Behaviour::new());
        shared.record(request(200, br#"[{"msys":{}},{"msys":{"a":1}}]"#));
        shared.record(request(500, br#"[{"msys":{"lost":true}}]"#));
        shared.record(request(202, br#"{"msys":{}}"#));
        shared.record(request(200, b"not json"));
        let recorded = shared.recorded();
        assert_eq!(recorded.requests.len(), 4);
        assert_eq!(
            recorded.events,
            [
                json!({"msys":{}}),
                json!({"msys":{"a":1}}),
                json!({"msys":{}})
            ]
        );
    }

    #[test]
    fn status_sequence_is_consumed_then_default_repeats() {
        let shared = Shared::new(Behaviour::new().statuses(vec![500, 503]).status(202));
        let statuses: Vec<u16> = (0..4).map(|_| shared.next_status()).collect();
        assert_eq!(statuses, [500, 503, 202, 202]);
    }

    #[test]
    fn expired_tokens_are_rejected() {
        let shared = Shared::new(Behaviour::new());
        let fresh = shared.issue_token(Duration::from_secs(60));
        let stale = shared.issue_token(Duration::ZERO);
        assert!(shared.token_is_valid(&fresh));
        assert!(!shared.token_is_valid(&stale));
        assert!(!shared.token_is_valid("made-up"));
        assert_eq!(shared.tokens_issued(), 2);
    }
}
