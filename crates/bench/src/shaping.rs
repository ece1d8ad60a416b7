//! The shaping measurement: Sluice delivers to one site limited by `[shaping.default]` (a
//! message rate with a burst, and a connection cap), the benchmark submits every message as
//! fast as Sluice accepts it, and the sink's arrival times and connection count show how closely
//! the limits hold.
//!
//! A rate of `r` per second with a burst of `b` lets at most `b + r·t` messages through in any
//! window of `t` seconds, so the figures are read against `r + b` for one second and `10·r + b`
//! for ten.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{json, Value};
use sluice_testkit::smtp::{Script, SmtpSink};

use crate::{bench_config, send_all, start_sluice, wait_ready, Options};

/// How far the ten-second count may exceed what the limit allows and still pass.
const TOLERANCE: f64 = 0.10;

/// Runs the measurement and returns its report.
pub async fn run(options: &Options) -> anyhow::Result<Value> {
    let sink = SmtpSink::start("127.0.0.1:0".parse()?, Script::new()).await?;
    let extra = format!(
        "[routes]\n\"bench.test\" = \"{}\"\n[shaping.default]\nmax_message_rate = \"{}/s\"\n\
         burst = {}\nmax_connections = {}\n",
        sink.addr(),
        options.shaping_rate,
        options.shaping_burst,
        options.shaping_connections
    );
    let (dir, config, port) = bench_config("sluice-bench-shaping", &extra)?;
    let _server = start_sluice(options, &config)?;
    let api = format!("http://127.0.0.1:{port}/api/v1/transmissions");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency)
        .build()?;
    wait_ready(&client, &api).await?;

    send_all(&client, &api, options).await?;
    // Twice the time the limit needs, and two minutes for a slow start.
    let drain_s = options.messages as f64 / f64::from(options.shaping_rate.max(1));
    let timeout = Duration::from_secs_f64(2.0 * drain_s + 120.0);
    let received = sink.wait_for_messages(options.messages, timeout).await;
    let _ = std::fs::remove_dir_all(&dir);
    if received.len() < options.messages {
        bail!(
            "only {} of {} messages arrived within {} s",
            received.len(),
            options.messages,
            timeout.as_secs()
        );
    }
    let mut arrivals: Vec<Instant> = received.iter().map(|m| m.at).collect();
    arrivals.sort();
    Ok(report(options, &arrivals, sink.max_concurrent()))
}

/// The report of a run whose messages arrived at `arrivals` (sorted) over at most
/// `connections` connections at once.
fn report(options: &Options, arrivals: &[Instant], connections: usize) -> Value {
    let (rate, burst) = (options.shaping_rate, options.shaping_burst);
    let allowed_in_10s = 10 * rate + burst;
    let most_in_10s = most_in_window(arrivals, Duration::from_secs(10));
    let within_limits = most_in_10s as f64 <= f64::from(allowed_in_10s) * (1.0 + TOLERANCE)
        && connections <= options.shaping_connections;
    json!({
        "system": "sluice",
        "messages": options.messages,
        "size_kb": options.size_kb,
        "limit": {"rate_per_s": rate, "burst": burst, "connections": options.shaping_connections},
        "steady_per_s": steady_rate(arrivals),
        "first_second": first_second(arrivals),
        "most_in_1s": most_in_window(arrivals, Duration::from_secs(1)),
        "allowed_in_1s": rate + burst,
        "most_in_10s": most_in_10s,
        "allowed_in_10s": allowed_in_10s,
        "most_connections": connections,
        "within_limits": within_limits,
    })
}

/// Messages that arrived in the second starting with the first arrival: the burst, plus
/// whatever the rate let through in that second.
fn first_second(arrivals: &[Instant]) -> usize {
    let Some(&first) = arrivals.first() else {
        return 0;
    };
    arrivals
        .iter()
        .take_while(|&&at| at.duration_since(first) < Duration::from_secs(1))
        .count()
}

/// Mean arrivals per second after the first second, up to the last arrival.
fn steady_rate(arrivals: &[Instant]) -> Option<f64> {
    let start = *arrivals.first()? + Duration::from_secs(1);
    let last = *arrivals.last()?;
    let span = last.checked_duration_since(start)?.as_secs_f64();
    let steady = arrivals.iter().filter(|&&at| at > start).count();
    (span > 0.0).then(|| steady as f64 / span)
}

/// The most arrivals in any window of length `window` (sorted `arrivals`).
fn most_in_window(arrivals: &[Instant], window: Duration) -> usize {
    let mut start = 0;
    let mut most = 0;
    for (end, at) in arrivals.iter().enumerate() {
        while arrivals
            .get(start)
            .is_some_and(|&first| at.duration_since(first) >= window)
        {
            start += 1;
        }
        most = most.max(end + 1 - start);
    }
    most
}

/// Prints the report as a header and one table row.
pub fn print_row(report: &Value) {
    let limit = &report["limit"];
    println!(
        "{} messages of {} KiB to one site limited to {}/s, burst {}, {} connections",
        report["messages"],
        report["size_kb"],
        limit["rate_per_s"],
        limit["burst"],
        limit["connections"]
    );
    println!(
        "{:<14}{:>14}{:>16}{:>16}{:>18}",
        "steady rate", "first second", "most in 1 s", "most in 10 s", "most connections"
    );
    let steady = report["steady_per_s"]
        .as_f64()
        .map_or("-".into(), |r| format!("{r:.1}/s"));
    let against = |most: &str, allowed: &Value| format!("{} (<= {allowed})", report[most]);
    println!(
        "{steady:<14}{:>14}{:>16}{:>16}{:>18}",
        // `Value`'s Display ignores width, so each figure is made a string first.
        report["first_second"].to_string(),
        against("most_in_1s", &report["allowed_in_1s"]),
        against("most_in_10s", &report["allowed_in_10s"]),
        against("most_connections", &limit["connections"]),
    );
    let verdict = if report["within_limits"] == true {
        "within"
    } else {
        "NOT within"
    };
    println!("{verdict} the limits (ten-second count within 10%, connections never above)");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, ms: &[u64]) -> Vec<Instant> {
        ms.iter()
            .map(|&m| start + Duration::from_millis(m))
            .collect()
    }

    #[test]
    fn windows_count_arrivals_less_than_a_window_apart() {
        let arrivals = at(Instant::now(), &[0, 100, 999, 1000, 1050, 1099, 3000]);
        assert_eq!(most_in_window(&arrivals, Duration::from_secs(1)), 5);
        assert_eq!(first_second(&arrivals), 3);
        assert_eq!(most_in_window(&[], Duration::from_secs(1)), 0);
    }

    #[test]
    fn steady_rate_leaves_out_the_first_second() {
        // Ten at once, then one every 20 ms for two seconds: 50/s after the burst.
        let mut ms = vec![0; 10];
        ms.extend((1..=150).map(|i| i * 20));
        let rate = steady_rate(&at(Instant::now(), &ms)).expect("a rate");
        assert!((rate - 50.0).abs() < 1.0, "{rate}");
    }
}
