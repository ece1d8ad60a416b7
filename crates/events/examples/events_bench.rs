//! Event stream benchmark: appends `--events` sample delivery events to a fresh log, then lets
//! one webhook's dispatcher send them all to a local receiver that only counts them, and reports
//! events per second for both steps.
//!
//! Run with `cargo run --release -p sluice-events --example events_bench -- --events 200000`.
//! The receiver runs in this process, on the same cores as the dispatcher.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use serde::de::IgnoredAny;
use sluice_core::config::WebhookConfig;
use sluice_core::{EventKind, Store};
use sluice_events::{catalogue, Dispatcher, EventLog, Webhook, WebhookStore};

/// Events appended per `append` call, as a busy transmission would.
const APPEND_CHUNK: usize = 1000;

#[derive(Default)]
struct Counts {
    events: AtomicU64,
    batches: AtomicU64,
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn receive(State(counts): State<Arc<Counts>>, body: Bytes) -> &'static str {
    let events: Vec<IgnoredAny> = serde_json::from_slice(&body).unwrap_or_default();
    counts
        .events
        .fetch_add(events.len() as u64, Ordering::Relaxed);
    counts.batches.fetch_add(1, Ordering::Relaxed);
    "ok"
}

async fn start_receiver(counts: Arc<Counts>) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/", post(receive))
        .layer(axum::extract::DefaultBodyLimit::max(256 << 20))
        .with_state(counts);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/"))
}

fn append_all(log: &EventLog, total: usize) -> anyhow::Result<Duration> {
    let sample = catalogue::sample(EventKind::Delivery);
    let started = Instant::now();
    let mut left = total;
    while left > 0 {
        let n = left.min(APPEND_CHUNK);
        log.append(std::iter::repeat_n(sample.clone(), n))?;
        left -= n;
    }
    Ok(started.elapsed())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The webhook HTTP client needs the process-wide crypto provider, as in the server.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let total = arg("--events", 100_000);
    let batch_size = arg("--batch-size", 300);
    let dir = std::env::temp_dir().join(format!("sluice-events-bench-{}", std::process::id()));
    let store = Store::open(&dir, 256 << 20)?;
    let log = EventLog::open(&store)?;
    let appended = append_all(&log, total)?;
    store.durable().await?;

    let counts = Arc::new(Counts::default());
    let target = start_receiver(counts.clone()).await?;
    let webhooks = WebhookStore::open(&store)?;
    let webhook = Webhook {
        id: "bench".into(),
        name: "bench".into(),
        target,
        active: true,
        auth_type: "none".into(),
        signing_secret: sluice_events::sign::new_secret(),
        ..Webhook::default()
    };
    webhooks.create(&webhook, 0)?;
    let config = WebhookConfig {
        batch_size,
        batch_interval: Duration::from_millis(10),
        ..WebhookConfig::default()
    };
    let dispatcher = Dispatcher::new(log, store.clone(), webhooks, config)?;
    let started = Instant::now();
    dispatcher.start_all()?;
    while counts.events.load(Ordering::Relaxed) < total as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let dispatched = started.elapsed();

    let rate = |d: Duration| total as f64 / d.as_secs_f64();
    println!("events: {total}, batch size: {batch_size}");
    println!(
        "append to log: {:.0} events/s ({:.2?})",
        rate(appended),
        appended
    );
    println!(
        "log to receiver: {:.0} events/s ({:.2?}, {} batches)",
        rate(dispatched),
        dispatched,
        counts.batches.load(Ordering::Relaxed)
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
