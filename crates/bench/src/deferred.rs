//! The deferred-queue measurement: fill Sluice's queue with messages that cannot be delivered
//! (their route refuses connections, and the retry wait is an hour), then report resident
//! memory and CPU while they wait, and how long a restart takes to answer the API again.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{json, Value};

use crate::measure::process_cpu_s;
use crate::{bench_config, send_all, start_sluice, Options, Process};

/// Runs the measurement with `options.messages` deferred messages.
pub async fn run(options: &Options) -> anyhow::Result<Value> {
    // Nothing listens on `closed`: every attempt fails at connect, and waits an hour.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let extra = format!(
        "[routes]\n\"bench.test\" = \"127.0.0.1:{closed}\"\n[queue]\nretry_schedule = [\"1h\"]\n"
    );
    let (dir, config, port) = bench_config("sluice-bench-deferred", &extra)?;
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency)
        .build()?;

    let (server, _) = start(options, &config, &client, &api).await?;
    let started = Instant::now();
    send_all(&client, &format!("{api}/transmissions"), options).await?;
    let filled_in = started.elapsed();
    // Every message's first attempt fails and reschedules it an hour out; wait for all of them.
    let first_attempts = quiet(server.0.id()).await;
    let (rss_mib, idle_cpu) = settle(server.0.id()).await;
    let size_mib = dir_size(&dir.join("data")) as f64 / (1024.0 * 1024.0);
    drop(server);

    let (restarted, ready_in) = start(options, &config, &client, &api).await?;
    // Messages that were in flight at the stop are due again at once.
    let recovered = quiet(restarted.0.id()).await;
    let (rss_after_restart, idle_after_restart) = settle(restarted.0.id()).await;
    drop(restarted);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({
        "system": "sluice",
        "deferred": options.messages,
        "filled_per_s": options.messages as f64 / filled_in.as_secs_f64(),
        "first_attempts_done_s": first_attempts.as_secs_f64(),
        "spool_mib": size_mib,
        "rss_mib_waiting": rss_mib,
        "idle_cpu_percent": idle_cpu,
        "restart_to_api_s": ready_in.as_secs_f64(),
        "restart_to_quiet_s": recovered.as_secs_f64(),
        "rss_mib_after_restart": rss_after_restart,
        "idle_cpu_percent_after_restart": idle_after_restart,
    }))
}

/// Waits until the process uses under 5% of a core over 5 s (at most 30 minutes) and returns
/// how long that took.
async fn quiet(pid: u32) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(1800) {
        let before = process_cpu_s(pid);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let busy = before.zip(process_cpu_s(pid)).map(|(a, b)| (b - a) / 5.0);
        if busy.is_some_and(|share| share < 0.05) {
            break;
        }
    }
    started.elapsed()
}

/// Starts Sluice and returns it with the time until its API answered.
async fn start(
    options: &Options,
    config: &std::path::Path,
    client: &reqwest::Client,
    api: &str,
) -> anyhow::Result<(Process, Duration)> {
    let started = Instant::now();
    let process = start_sluice(options, config)?;
    for _ in 0..1200 {
        let answer = client
            .get(format!("{api}/webhooks"))
            .header("Authorization", "bench")
            .send()
            .await;
        if answer.is_ok_and(|r| r.status().is_success()) {
            return Ok((process, started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!("sluice did not answer within 30 s")
}

/// Current resident memory (MiB) and the CPU used over 10 s of waiting (percent of one core).
async fn settle(pid: u32) -> (Option<f64>, Option<f64>) {
    let before = process_cpu_s(pid);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let cpu = before.zip(process_cpu_s(pid)).map(|(a, b)| (b - a) * 10.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0);
    (rss, cpu)
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
