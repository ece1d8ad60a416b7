//! The Postfix side: the same workload through a Postfix instance configured by `scripts/bench`
//! (relaying everything to a sink on 127.0.0.1:2525), fed by Postfix's own `smtp-source` over 20
//! sessions, measured the same way from first message sent to last message received.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use sluice_testkit::smtp::{Script, SmtpSink};

use crate::measure::machine_busy_s;
use crate::Options;

/// Where the benchmark's Postfix listens and where it relays to (see deploy/bench/).
const POSTFIX_SMTPD: &str = "127.0.0.1:2500";
const RELAY_SINK: &str = "127.0.0.1:2525";

/// Runs the workload through Postfix and reports it.
pub async fn run(options: &Options) -> anyhow::Result<Value> {
    let sink = SmtpSink::start(RELAY_SINK.parse()?, Script::new())
        .await
        .context("starting the sink Postfix relays to on 127.0.0.1:2525")?;
    let busy_before = machine_busy_s();
    let started = Instant::now();
    let status = Command::new("smtp-source")
        .args(["-s", "20", "-m", &options.messages.to_string()])
        .args(["-l", &(options.size_kb * 1024).to_string()])
        .args([
            "-f",
            "bench@sender.test",
            "-t",
            "rcpt@bench.test",
            POSTFIX_SMTPD,
        ])
        .status()
        .context("running smtp-source (installed with Postfix by scripts/bench)")?;
    if !status.success() {
        bail!("smtp-source failed: {status}");
    }
    let injected_in = started.elapsed();
    let received = sink
        .wait_for_messages(options.messages, Duration::from_secs(1800))
        .await
        .len();
    let delivered_in = started.elapsed();
    if received < options.messages {
        bail!(
            "Postfix relayed only {received} of {} messages within 30 minutes",
            options.messages
        );
    }
    let busy = busy_before.zip(machine_busy_s()).map(|(a, b)| b - a);
    let n = options.messages as f64;
    Ok(json!({
        "system": "postfix",
        "accepted_per_s": n / injected_in.as_secs_f64(),
        "delivered_per_s": n / delivered_in.as_secs_f64(),
        "machine_cpu_s": busy,
    }))
}
