//! What the benchmark reads off the machine: CPU time of a process and of the whole machine,
//! peak memory, and latency percentiles. Linux only (`/proc`).

use std::time::Duration;

/// Clock ticks per second of `/proc` CPU counters (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// User plus system CPU seconds of one process.
pub fn process_cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS)
}

/// Busy CPU seconds of the whole machine, all cores, since boot: everything but idle and
/// iowait. The difference over a run counts processes that came and went, which matters for
/// Postfix, whose work is spread over short-lived processes.
pub fn machine_busy_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<f64> = cpu
        .split_whitespace()
        .filter_map(|t| t.parse().ok())
        .collect();
    let total: f64 = ticks.iter().sum();
    let idle = ticks.get(3)? + ticks.get(4).unwrap_or(&0.0);
    Some((total - idle) / TICKS)
}

/// Peak resident memory (`VmHWM`) of a process, in MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// p50, p99 and max of `samples`, in milliseconds.
pub fn percentiles(samples: &mut [Duration]) -> (f64, f64, f64) {
    samples.sort();
    let pick = |q: f64| {
        let index = ((samples.len() as f64 * q) as usize).min(samples.len().saturating_sub(1));
        samples.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    (pick(0.50), pick(0.99), pick(1.0))
}
