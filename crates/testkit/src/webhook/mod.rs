//! The webhook receiver: an HTTP server that records every request Sluice posts to it and
//! answers per a [`Behaviour`], with an optional OAuth2 token endpoint at `POST /token`.
//!
//! [`WebhookReceiver`] is the handle a test holds; dropping it shuts the server down.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

mod auth;
mod behaviour;
mod handler;
mod oauth;
mod state;

pub use behaviour::Behaviour;

use state::Shared;

/// Largest request body accepted; well above any sane batch, far below the machine's memory.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// One HTTP request as the receiver saw it. Token requests to `/token` are not recorded.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The method, e.g. `POST`.
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// Headers in arrival order, with lower-case names.
    pub headers: Vec<(String, String)>,
    /// The body as received.
    pub body: Bytes,
    /// The status the receiver answered with.
    pub status: u16,
    /// When the request arrived (before any scripted delay).
    pub at: Instant,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut matching = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        matching.next().map(|(_, value)| value.as_str())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The events in the body: each element of a JSON array, or a lone JSON value as one
    /// event. A body that is not JSON has none.
    pub fn events(&self) -> Vec<Value> {
        match self.json() {
            Some(Value::Array(events)) => events,
            Some(event) => vec![event],
            None => Vec::new(),
        }
    }

    /// Whether the receiver answered with a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A running webhook receiver.
pub struct WebhookReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Dropping this sender starts graceful shutdown: no new connections, open ones drained.
    _stop: oneshot::Sender<()>,
}

impl WebhookReceiver {
    /// Binds `bind` (port 0 picks a free port) and starts serving with `behaviour`.
    pub async fn start(bind: SocketAddr, behaviour: Behaviour) -> io::Result<WebhookReceiver> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(behaviour));
        let router = Router::new()
            .route("/token", post(oauth::token))
            .fallback(handler::record)
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let server = axum::serve(listener, router).with_graceful_shutdown(async move {
            // Resolves with an error when the sender is dropped, which is the signal.
            let _ = stopped.await;
        });
        tokio::spawn(async move {
            if let Err(error) = server.await {
                tracing::warn!(%error, "webhook receiver: server failed");
            }
        });
        Ok(WebhookReceiver {
            addr,
            shared,
            _stop: stop,
        })
    }

    /// The address the receiver listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to configure as the webhook target: `http://ADDR/webhook`.
    pub fn url(&self) -> String {
        format!("http://{}/webhook", self.addr)
    }

    /// The URL of the OAuth2 token endpoint: `http://ADDR/token`.
    pub fn token_url(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// Every request so far (minus any drained), whatever its status, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.recorded().requests.clone()
    }

    /// The requests answered with a 2xx status.
    pub fn batches(&self) -> Vec<RecordedRequest> {
        let recorded = self.shared.recorded();
        recorded
            .requests
            .iter()
            .filter(|request| request.is_success())
            .cloned()
            .collect()
    }

    /// The events of all accepted batches, flattened: each element of each JSON array body.
    pub fn events(&self) -> Vec<Value> {
        self.shared.recorded().events.clone()
    }

    /// How many OAuth2 tokens the token endpoint has issued.
    pub fn tokens_issued(&self) -> u64 {
        self.shared.tokens_issued()
    }

    /// Removes and returns the recorded requests, together with their events.
    pub fn drain_requests(&self) -> Vec<RecordedRequest> {
        let mut recorded = self.shared.recorded();
        recorded.events.clear();
        let drained = std::mem::take(&mut recorded.requests);
        drop(recorded);
        self.shared.changes.bump();
        drained
    }

    /// Waits until `predicate` holds for the accepted events or `timeout` passes, then returns
    /// the events. The predicate sees a snapshot, so it may call back into the receiver.
    pub async fn wait_for_events(
        &self,
        predicate: impl Fn(&[Value]) -> bool,
        timeout: Duration,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        let holds = || predicate(&self.events());
        self.shared.changes.wait_until(deadline, holds).await;
        self.events()
    }

    /// Waits until at least `n` requests are recorded or `timeout` passes, then returns them.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let deadline = tokio::time::Instant::now() + timeout;
        let enough = || self.shared.recorded().requests.len() >= n;
        self.shared.changes.wait_until(deadline, enough).await;
        self.requests()
    }

    /// Replaces the behaviour for requests from now on; its status sequence starts afresh.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.shared.set_behaviour(behaviour);
    }
}
