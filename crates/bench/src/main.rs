//! `sluice-bench`: starts a release build of Sluice with a config of its own and an in-process
//! SMTP sink with no artificial limits, sends one-recipient transmissions through the HTTP API
//! at a chosen concurrency, and reports acceptance rate, end-to-end delivery rate, acceptance
//! latency percentiles, and the Sluice process's peak memory and CPU time.
//!
//! The sink and the load run in this process, on the same two cores as Sluice: the report
//! gives this process's CPU time too, so the split is visible.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::json;
use sluice_testkit::smtp::{Script, SmtpSink};
use tokio::sync::Semaphore;

/// Benchmark options.
#[derive(Parser)]
struct Options {
    /// Transmissions to send, one recipient each.
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Size of each message's text part, in KiB.
    #[arg(long, default_value_t = 10)]
    size_kb: usize,
    /// The sluice binary to run.
    #[arg(long, default_value = "target/release/sluice")]
    sluice: PathBuf,
    /// Where to write the JSON report.
    #[arg(long)]
    json: Option<PathBuf>,
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sink = SmtpSink::start("127.0.0.1:0".parse()?, Script::new()).await?;
    let dir = std::env::temp_dir().join(format!("sluice-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let config = dir.join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\n[spool]\npath = \"{}\"\n[[api_keys]]\nkey = \"bench\"\n\
             [routes]\n\"bench.test\" = \"{}\"\n[shaping.default]\nmax_connections = 20\n",
            dir.join("data").display(),
            sink.addr()
        ),
    )?;
    let child = Command::new(&options.sluice)
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (build it with cargo build --release -p sluice)",
                options.sluice.display()
            )
        })?;
    let pid = child.id();
    let _server = Process(child);
    let api = format!("http://127.0.0.1:{port}/api/v1/transmissions");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency)
        .build()?;
    wait_ready(&client, &api).await?;

    let started = Instant::now();
    let latencies = send_all(&client, &api, &options).await?;
    let accepted_in = started.elapsed();
    let received = sink
        .wait_for_messages(options.messages, Duration::from_secs(600))
        .await
        .len();
    let delivered_in = started.elapsed();
    if received < options.messages {
        bail!(
            "only {received} of {} messages arrived within 10 minutes",
            options.messages
        );
    }
    let report = report(&options, pid, latencies, accepted_in, delivered_in);
    print_table(&report);
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_ready(client: &reqwest::Client, api: &str) -> anyhow::Result<()> {
    for _ in 0..600 {
        if client.get(api).send().await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("sluice did not answer within 30 s")
}

/// Sends every transmission and returns each one's acceptance latency.
async fn send_all(
    client: &reqwest::Client,
    api: &str,
    options: &Options,
) -> anyhow::Result<Vec<Duration>> {
    let text = "x".repeat(options.size_kb * 1024);
    let permits = Arc::new(Semaphore::new(options.concurrency));
    let mut tasks = Vec::with_capacity(options.messages);
    for i in 0..options.messages {
        let permit = permits.clone().acquire_owned().await?;
        let body = json!({
            "recipients": [{"address": format!("r{i}@bench.test"), "substitution_data": {"n": i}}],
            "content": {"from": "bench@sender.test", "subject": "Message {{n}}", "text": text},
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
                Ok(r) if r.status().is_success() => Ok(sent.elapsed()),
                Ok(r) => Err(anyhow::anyhow!("transmission refused: HTTP {}", r.status())),
                Err(e) => Err(anyhow::anyhow!("transmission failed: {e}")),
            }
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    for task in tasks {
        latencies.push(task.await??);
    }
    Ok(latencies)
}

fn report(
    options: &Options,
    pid: u32,
    mut latencies: Vec<Duration>,
    accepted_in: Duration,
    delivered_in: Duration,
) -> serde_json::Value {
    latencies.sort();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let n = options.messages as f64;
    json!({
        "messages": options.messages,
        "concurrency": options.concurrency,
        "size_kb": options.size_kb,
        "accepted_per_s": n / accepted_in.as_secs_f64(),
        "delivered_per_s": n / delivered_in.as_secs_f64(),
        "accept_latency_ms": {"p50": pick(0.50), "p99": pick(0.99), "max": pick(1.0)},
        "sluice_peak_rss_mb": peak_rss_kb(pid).map(|kb| kb as f64 / 1024.0),
        "sluice_cpu_s": cpu_seconds(pid),
        "bench_cpu_s": cpu_seconds(std::process::id()),
    })
}

fn print_table(r: &serde_json::Value) {
    println!("messages          {}", r["messages"]);
    println!("concurrency       {}", r["concurrency"]);
    println!("message size      {} KiB", r["size_kb"]);
    println!(
        "accepted          {:.0} msg/s",
        r["accepted_per_s"].as_f64().unwrap_or(0.0)
    );
    println!(
        "delivered (e2e)   {:.0} msg/s",
        r["delivered_per_s"].as_f64().unwrap_or(0.0)
    );
    let l = &r["accept_latency_ms"];
    println!(
        "accept latency    p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        l["p50"].as_f64().unwrap_or(0.0),
        l["p99"].as_f64().unwrap_or(0.0),
        l["max"].as_f64().unwrap_or(0.0)
    );
    println!(
        "sluice peak RSS   {:.0} MiB",
        r["sluice_peak_rss_mb"].as_f64().unwrap_or(0.0)
    );
    println!(
        "sluice CPU        {:.1} s",
        r["sluice_cpu_s"].as_f64().unwrap_or(0.0)
    );
    println!(
        "bench + sink CPU  {:.1} s",
        r["bench_cpu_s"].as_f64().unwrap_or(0.0)
    );
}

/// `VmHWM` of a process, in KiB (Linux).
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User plus system CPU time of a process, in seconds (Linux, 100 ticks per second).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
