//! `sluice-bench`: Sluice's throughput, latency, memory and CPU, measured through its real
//! interfaces, and optionally Postfix's on the same workload in the same run.
//!
//! The Sluice side starts a release build with a config of its own and an in-process SMTP sink
//! with no artificial limits, sends one-recipient transmissions through the HTTP API at a chosen
//! concurrency, and waits until the sink has every message. The sink and the load generator run
//! in this process, on the same cores as the system under test: the report shows the machine's
//! total CPU and this process's share, so the split is visible.

mod deferred;
mod dkim;
mod measure;
mod postfix;
mod shaping;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use serde_json::{json, Value};
use sluice_testkit::smtp::{Script, SmtpSink};
use sluice_testkit::webhook::{Behaviour, WebhookReceiver};
use tokio::sync::Semaphore;

use measure::{machine_busy_s, peak_rss_mib, percentiles, process_cpu_s};

/// The domain every benchmark message is sent from.
pub(crate) const FROM_DOMAIN: &str = "sender.test";

/// Benchmark options.
#[derive(Parser)]
pub struct Options {
    /// Messages to send, one recipient each (1,500 with --shaping).
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// API requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Recipients per transmission (each gets its own message).
    #[arg(long, default_value_t = 1)]
    recipients: usize,
    /// Size of each message's text part, in KiB (1 with --shaping).
    #[arg(long, default_value_t = 10)]
    size_kb: usize,
    /// The sluice binary to run.
    #[arg(long, default_value = "target/release/sluice")]
    sluice: PathBuf,
    /// Submit at this steady rate (messages per second) instead of as fast as Sluice accepts,
    /// so acceptance-to-arrival latency measures Sluice, not a growing queue.
    #[arg(long)]
    rate: Option<u32>,
    /// Register no webhook at all (the baseline for --dead-webhook).
    #[arg(long)]
    no_webhook: bool,
    /// Make the benchmark's webhook answer 503 to every batch after it is registered, to show
    /// what a dead receiver costs delivery.
    #[arg(long)]
    dead_webhook: bool,
    /// Instead of delivering, fill the queue with undeliverable messages and report memory, idle
    /// CPU and restart time while they wait.
    #[arg(long)]
    deferred: bool,
    /// Create a sending domain for the From domain first, with a generated key of this kind
    /// (RSA is 2048-bit), so every message is DKIM-signed.
    #[arg(long, value_enum)]
    dkim: Option<dkim::Algorithm>,
    /// Instead of measuring throughput, limit the sink's site by `[shaping.default]`, submit
    /// every message at once, and report how closely arrivals and connections keep the limits.
    #[arg(long)]
    shaping: bool,
    /// With --shaping: the site's `max_message_rate`, in messages per second.
    #[arg(long, default_value_t = 50)]
    shaping_rate: u32,
    /// With --shaping: the site's `burst`.
    #[arg(long, default_value_t = 10)]
    shaping_burst: u32,
    /// With --shaping: the site's `max_connections`.
    #[arg(long, default_value_t = 5)]
    shaping_connections: usize,
    /// Also run the workload through Postfix (configured and started by scripts/bench).
    #[arg(long)]
    postfix: bool,
    /// Where to write the JSON report.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub(crate) struct Process(pub(crate) Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = parse_options()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    if options.deferred {
        let report = deferred::run(&options).await?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let report = if options.shaping {
        let report = shaping::run(&options).await?;
        shaping::print_row(&report);
        report
    } else {
        let report = run_throughput(&options).await?;
        print_table(&report);
        report
    };
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing the report to {}", path.display()))?;
    }
    Ok(())
}

/// Parses the command line. `--shaping` wants few and small messages, since they drain at the
/// configured rate: it changes the defaults of `--messages` and `--size-kb`, not given values.
fn parse_options() -> anyhow::Result<Options> {
    let matches = Options::command().get_matches();
    let mut options = Options::from_arg_matches(&matches)?;
    let defaulted = |id: &str| matches.value_source(id) == Some(ValueSource::DefaultValue);
    if options.shaping && defaulted("messages") {
        options.messages = 1_500;
    }
    if options.shaping && defaulted("size_kb") {
        options.size_kb = 1;
    }
    Ok(options)
}

/// The throughput run through Sluice, and through Postfix if asked.
async fn run_throughput(options: &Options) -> anyhow::Result<Value> {
    let mut runs = vec![run_sluice(options).await?];
    if options.postfix {
        runs.push(postfix::run(options).await?);
    }
    let dkim = options.dkim.map(dkim::Algorithm::name);
    Ok(json!({
        "messages": options.messages, "size_kb": options.size_kb, "concurrency": options.concurrency,
        "rate": options.rate, "dkim": dkim, "runs": runs,
    }))
}

/// Starts Sluice, drives it, and reports.
async fn run_sluice(options: &Options) -> anyhow::Result<Value> {
    let sink = SmtpSink::start("127.0.0.1:0".parse()?, Script::new()).await?;
    let route = format!(
        "[routes]\n\"bench.test\" = \"{}\"\n[shaping.default]\nmax_connections = 20\n",
        sink.addr()
    );
    let (dir, config, port) = bench_config("sluice-bench", &route)?;
    let server = start_sluice(options, &config)?;
    let pid = server.0.id();
    let api = format!("http://127.0.0.1:{port}/api/v1/transmissions");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency)
        .build()?;
    wait_ready(&client, &api).await?;
    if let Some(algorithm) = options.dkim {
        dkim::create_sending_domain(
            &client,
            &format!("http://127.0.0.1:{port}/api/v1"),
            algorithm,
        )
        .await?;
    }
    let receiver = WebhookReceiver::start("127.0.0.1:0".parse()?, Behaviour::new()).await?;
    if !options.no_webhook {
        register_webhook(&client, &api, &receiver).await?;
    }
    if options.dead_webhook {
        receiver.set_behaviour(Behaviour::new().status(503));
    }

    let busy_before = machine_busy_s();
    let started = Instant::now();
    let accepted = send_all(&client, &api, options).await?;
    let accepted_in = started.elapsed();
    let received = sink
        .wait_for_messages(options.messages, Duration::from_secs(1800))
        .await;
    let delivered_in = started.elapsed();
    if received.len() < options.messages {
        bail!(
            "only {} of {} messages arrived within 30 minutes",
            received.len(),
            options.messages
        );
    }
    if let Some(algorithm) = options.dkim {
        dkim::check_signed(&received, algorithm)?;
    }
    let busy = busy_before.zip(machine_busy_s()).map(|(a, b)| b - a);
    let mut accept_latency: Vec<Duration> =
        accepted.values().map(|(_, latency)| *latency).collect();
    let mut arrival_latency: Vec<Duration> = received
        .iter()
        .filter_map(|m| Some(m.at.saturating_duration_since(accepted.get(m.rcpt_to.first()?)?.0)))
        .collect();
    let (a50, a99, amax) = percentiles(&mut accept_latency);
    let (e50, e99, emax) = percentiles(&mut arrival_latency);
    let n = options.messages as f64;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({
        "system": "sluice",
        "accepted_per_s": n / accepted_in.as_secs_f64(),
        "delivered_per_s": n / delivered_in.as_secs_f64(),
        "accept_latency_ms": {"p50": a50, "p99": a99, "max": amax},
        "accept_to_arrival_ms": {"p50": e50, "p99": e99, "max": emax},
        "peak_rss_mib": peak_rss_mib(pid),
        "process_cpu_s": process_cpu_s(pid),
        "bench_cpu_s": process_cpu_s(std::process::id()),
        "machine_cpu_s": busy,
        "webhook_events_per_s": if options.dead_webhook || options.no_webhook { None } else { events_per_s(&receiver, options.messages, started).await },
    }))
}

/// Starts `sluice serve` with `config`; it is stopped when the returned value is dropped.
pub(crate) fn start_sluice(options: &Options, config: &Path) -> anyhow::Result<Process> {
    let child = Command::new(&options.sluice)
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (cargo build --release -p sluice)",
                options.sluice.display()
            )
        })?;
    Ok(Process(child))
}

/// Writes a config in a fresh temporary directory: a free API port, the spool inside that
/// directory, the benchmark's key, and `extra`. Returns the directory, the file and the port.
pub(crate) fn bench_config(name: &str, extra: &str) -> anyhow::Result<(PathBuf, PathBuf, u16)> {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = dir.join("bench.toml");
    let text = format!(
        "[api]\nlisten = \"127.0.0.1:{port}\"\n[spool]\npath = \"{}\"\n[[api_keys]]\nkey = \"bench\"\n{extra}",
        dir.join("data").display()
    );
    std::fs::write(&config, text)?;
    Ok((dir, config, port))
}

/// Registers the in-process receiver for injection and delivery events.
async fn register_webhook(
    client: &reqwest::Client,
    api: &str,
    receiver: &WebhookReceiver,
) -> anyhow::Result<()> {
    let webhooks = api.replace("/transmissions", "/webhooks");
    let body =
        json!({"name": "bench", "target": receiver.url(), "events": ["injection", "delivery"]});
    let response = client
        .post(webhooks)
        .header("Authorization", "bench")
        .json(&body)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!(
            "registering the benchmark webhook failed: HTTP {}",
            response.status()
        );
    }
    Ok(())
}

/// Injection and delivery events per second reaching the webhook, from the first request to
/// the last event, once every delivery's event has arrived (or after a minute more).
async fn events_per_s(
    receiver: &WebhookReceiver,
    messages: usize,
    started: Instant,
) -> Option<f64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let batches = receiver.batches();
        let events: usize = batches.iter().map(|b| b.events().len()).sum();
        if events >= 2 * messages {
            let last = batches.iter().map(|b| b.at).max()?;
            return Some(events as f64 / last.saturating_duration_since(started).as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    None
}

/// Waits until Sluice's API answers at `api`.
pub(crate) async fn wait_ready(client: &reqwest::Client, api: &str) -> anyhow::Result<()> {
    for _ in 0..600 {
        if client.get(api).send().await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("sluice did not answer within 30 s")
}

/// Sends every transmission; returns, by recipient, when it was accepted and how long that took.
pub(crate) async fn send_all(
    client: &reqwest::Client,
    api: &str,
    options: &Options,
) -> anyhow::Result<HashMap<String, (Instant, Duration)>> {
    let text = "x".repeat(options.size_kb * 1024);
    let permits = Arc::new(Semaphore::new(options.concurrency));
    let per_request = options.recipients.max(1);
    let requests = options.messages.div_ceil(per_request);
    let mut tasks = Vec::with_capacity(requests);
    let mut pace = options.rate.map(|r| {
        let per_second = f64::from(r.max(1)) / per_request as f64;
        let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        ticks
    });
    for request in 0..requests {
        if let Some(pace) = pace.as_mut() {
            pace.tick().await;
        }
        let permit = permits.clone().acquire_owned().await?;
        let first = request * per_request;
        let rcpts: Vec<String> = (first..(first + per_request).min(options.messages))
            .map(|i| format!("r{i}@bench.test"))
            .collect();
        let recipients: Vec<Value> = rcpts
            .iter()
            .enumerate()
            .map(|(i, rcpt)| json!({"address": rcpt, "substitution_data": {"n": first + i}}))
            .collect();
        let body = json!({
            "recipients": recipients,
            "content": {"from": format!("bench@{FROM_DOMAIN}"), "subject": "Message {{n}}", "text": text},
        });
        let (client, api) = (client.clone(), api.to_string());
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let response = client
                .post(api)
                .header("Authorization", "bench")
                .json(&body)
                .send()
                .await;
            drop(permit);
            match response {
                Ok(r) if r.status().is_success() => Ok((rcpts, (Instant::now(), sent.elapsed()))),
                Ok(r) => Err(anyhow::anyhow!("transmission refused: HTTP {}", r.status())),
                Err(e) => Err(anyhow::anyhow!("transmission failed: {e}")),
            }
        }));
    }
    let mut accepted = HashMap::with_capacity(options.messages);
    for task in tasks {
        let (rcpts, times) = task.await??;
        accepted.extend(rcpts.into_iter().map(|r| (r, times)));
    }
    Ok(accepted)
}

fn print_table(report: &Value) {
    let runs = report["runs"].as_array().cloned().unwrap_or_default();
    let signing = match report["dkim"].as_str() {
        Some(algorithm) => format!(", DKIM-signed ({algorithm})"),
        None => String::new(),
    };
    println!(
        "{} messages of {} KiB, {} concurrent API clients{signing}",
        report["messages"], report["size_kb"], report["concurrency"]
    );
    println!(
        "{:<28}{:>14}{:>14}",
        "",
        "sluice",
        if runs.len() > 1 { "postfix" } else { "" }
    );
    let row = |label: &str, key: &str, unit: &str| {
        let values: Vec<String> = runs
            .iter()
            .map(|r| {
                r[key]
                    .as_f64()
                    .map_or("-".into(), |v| format!("{v:.0}{unit}"))
            })
            .collect();
        println!(
            "{label:<28}{:>14}{:>14}",
            values.first().cloned().unwrap_or_default(),
            values.get(1).cloned().unwrap_or_default()
        );
    };
    row("accepted", "accepted_per_s", "/s");
    row("delivered end to end", "delivered_per_s", "/s");
    row("machine CPU (all cores)", "machine_cpu_s", " s");
    row("webhook events", "webhook_events_per_s", "/s");
    if let Some(sluice) = runs.first() {
        let ms = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
        let (a, e) = (
            &sluice["accept_latency_ms"],
            &sluice["accept_to_arrival_ms"],
        );
        println!(
            "sluice accept latency       p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
            ms(a, "p50"),
            ms(a, "p99"),
            ms(a, "max")
        );
        println!(
            "sluice accept->arrival      p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
            ms(e, "p50"),
            ms(e, "p99"),
            ms(e, "max")
        );
        println!(
            "sluice peak RSS             {:.0} MiB",
            ms(sluice, "peak_rss_mib")
        );
        println!(
            "sluice process CPU          {:.1} s (load tool and sink: {:.1} s)",
            ms(sluice, "process_cpu_s"),
            ms(sluice, "bench_cpu_s")
        );
    }
    if let [sluice, postfix] = runs.as_slice() {
        let ratio =
            |k: &str| sluice[k].as_f64().unwrap_or(0.0) / postfix[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "sluice/postfix delivered    {:.1}x",
            ratio("delivered_per_s")
        );
    }
}
