//! The configuration file: TOML, every section optional, every default named.
//!
//! An unknown key is an error, and all unknown keys are reported together so an operator fixes
//! a file in one pass. Durations are written like `"90s"`, `"5m"`, `"72h"`; rates like `"300/s"`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

mod shaping;

pub use shaping::{ShapingConfig, ShapingOverride, ShapingRule, TlsPolicy};

/// A configuration that could not be used; the message names the file and every bad key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or a value has the wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's explanation, with line and column.
        message: String,
    },
    /// Keys Sluice does not know, all of them.
    #[error("{path}: unknown keys: {}", keys.join(", "))]
    UnknownKeys {
        /// The file.
        path: PathBuf,
        /// Dotted paths of the unknown keys.
        keys: Vec<String>,
    },
    /// Values that parse but cannot work together.
    #[error("{path}: {}", problems.join("; "))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// One sentence per problem.
        problems: Vec<String>,
    },
}

/// The whole configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    /// The HTTP API listener.
    pub api: ApiConfig,
    /// Where durable state lives.
    pub spool: SpoolConfig,
    /// API keys accepted besides those created through the API.
    pub api_keys: Vec<ApiKeyConfig>,
    /// DNS resolution for MX lookups.
    pub dns: DnsConfig,
    /// SMTP delivery settings.
    pub delivery: DeliveryConfig,
    /// Pace and limits per (egress IP, site); reloaded on SIGHUP.
    pub shaping: ShapingConfig,
    /// Static next hops: recipient domain to `host:port`, used instead of the domain's MX.
    pub routes: BTreeMap<String, String>,
    /// Sending addresses and the pools they belong to.
    pub sending_ips: Vec<SendingIpConfig>,
    /// Retry and expiry of queued messages.
    pub queue: QueueConfig,
    /// Event delivery to webhooks.
    pub webhooks: WebhookConfig,
    /// How long the event log keeps events.
    pub events: EventsConfig,
}

/// `[api]`: the HTTP listener.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct ApiConfig {
    /// Address and port to listen on. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes; larger requests get 413. Default 30 MiB, which
    /// leaves room for 20 MB of content once base64 and JSON overhead is added.
    pub max_body_bytes: usize,
    /// Most recipients accepted in one transmission. Default 10,000.
    pub max_recipients: usize,
    /// Most bytes of generated messages one transmission may hold before they are spooled
    /// together; a transmission whose messages come to more is refused whole with 413. A
    /// request is spooled in one batch so that it is accepted or refused as a unit, which means
    /// its messages are all in memory at once: this bounds that memory, which peaks at about
    /// four times the messages' size while the batch is written. Concurrent requests add up;
    /// nothing limits them together yet. Default 256 MiB.
    pub max_transmission_bytes: usize,
    /// Longest one transmission may spend generating its messages; a transmission still
    /// generating then is refused whole with 413, so that one request with a costly template and
    /// many recipients cannot hold a core for minutes. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub max_generation_time: Duration,
    /// PEM certificate chain; with `tls_key`, the listener serves HTTPS instead of HTTP.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 30 << 20,
            max_recipients: 10_000,
            max_transmission_bytes: 256 << 20,
            max_generation_time: Duration::from_secs(60),
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// `[spool]`: the data directory.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct SpoolConfig {
    /// Directory of the sled database holding all of Sluice's state. Default `./sluice-data`.
    pub path: PathBuf,
    /// Memory sled may use for its page cache, in bytes. Default 256 MiB.
    pub cache_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            path: PathBuf::from("./sluice-data"),
            cache_bytes: 256 << 20,
        }
    }
}

/// `[[api_keys]]`: a key and what it may do.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The key, sent by clients as the `Authorization` header.
    pub key: String,
    /// SparkPost grant names (`transmissions/modify`, `webhooks/modify`, …) or `*` for all.
    #[serde(default = "all_grants")]
    pub grants: Vec<String>,
}

fn all_grants() -> Vec<String> {
    vec!["*".to_string()]
}

/// `[dns]`: how MX records are resolved.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct DnsConfig {
    /// Nameservers as `ip:port`. Empty (the default) uses the system's resolver configuration.
    pub nameservers: Vec<SocketAddr>,
}

/// `[delivery]`: SMTP client settings shared by all destinations. Limits and timeouts live in
/// `[shaping]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct DeliveryConfig {
    /// TCP port used for every MX host. Default 25; tests point it elsewhere.
    pub mx_port: u16,
    /// Name sent in EHLO by sending IPs that have no hostname of their own. Default `localhost`.
    pub ehlo_hostname: String,
    /// A TOML file of providers and the MX host suffixes they run, replacing the shipped
    /// list (`deploy/providers.toml`). Default: the shipped list. Reloaded on SIGHUP.
    pub providers_file: Option<PathBuf>,
    /// A TOML file of bounce classification rules, replacing the shipped table
    /// (`deploy/bounce-rules.toml`). Default: the shipped table.
    pub bounce_rules_file: Option<PathBuf>,
    /// PEM certificates trusted, besides the system's roots, by sites whose `tls` is
    /// `required`. Default: system roots only.
    pub tls_ca_file: Option<PathBuf>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            mx_port: 25,
            ehlo_hostname: "localhost".to_string(),
            providers_file: None,
            bounce_rules_file: None,
            tls_ca_file: None,
        }
    }
}

/// `[[sending_ips]]`: one egress address.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SendingIpConfig {
    /// The local address connections are bound to. It must be configured on this host.
    pub address: IpAddr,
    /// Name said in EHLO from this address; should match its reverse DNS.
    pub hostname: String,
    /// The pool this address sends for. Default `default`.
    #[serde(default = "default_pool")]
    pub pool: String,
}

fn default_pool() -> String {
    "default".to_string()
}

/// `[queue]`: retries and expiry.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct QueueConfig {
    /// Waits between attempts; the last one repeats until the message expires.
    /// Default 1m, 2m, 5m, 10m, 20m, 40m, 1h, 2h, 3h, 4h.
    #[serde(deserialize_with = "durations")]
    pub retry_schedule: Vec<Duration>,
    /// Each wait is moved by up to this fraction either way, so retries of messages deferred
    /// together spread out. Default 0.1.
    pub retry_jitter: f64,
    /// How long a message may stay queued before it bounces. Default `72h`.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// `max_age` for transactional messages; default the same as `max_age`.
    #[serde(with = "humantime_serde", default)]
    pub max_age_transactional: Option<Duration>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        let minutes = [1, 2, 5, 10, 20, 40, 60, 120, 180, 240];
        QueueConfig {
            retry_schedule: minutes
                .iter()
                .map(|m| Duration::from_secs(m * 60))
                .collect(),
            retry_jitter: 0.1,
            max_age: Duration::from_secs(72 * 3600),
            max_age_transactional: None,
        }
    }
}

/// `[webhooks]`: batching and retries of event delivery.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct WebhookConfig {
    /// Longest a batch waits to fill before it is sent. Default `1s`.
    #[serde(with = "humantime_serde")]
    pub batch_interval: Duration,
    /// Most events in one batch. Default 300.
    pub batch_size: usize,
    /// Time allowed for the receiver to answer. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Waits between attempts at one batch; the last one repeats.
    /// Default 1m, 2m, 4m, 8m, 16m, 32m, 60m, 60m, 90m, 90m, 117m.
    #[serde(deserialize_with = "durations")]
    pub retry_schedule: Vec<Duration>,
    /// How long a batch is retried before it is recorded as failed. Default `8h`.
    #[serde(with = "humantime_serde")]
    pub retry_window: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        let minutes = [1, 2, 4, 8, 16, 32, 60, 60, 90, 90, 117];
        WebhookConfig {
            batch_interval: Duration::from_secs(1),
            batch_size: 300,
            request_timeout: Duration::from_secs(10),
            retry_schedule: minutes
                .iter()
                .map(|m| Duration::from_secs(m * 60))
                .collect(),
            retry_window: Duration::from_secs(8 * 3600),
        }
    }
}

/// `[events]`: the event log's retention.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct EventsConfig {
    /// Events older than this are deleted from the log, and so from search and replay, whether
    /// or not every webhook has taken them: a webhook that has not for this long is dead or
    /// inactive, and keeping its backlog forever would let it fill the disk. Default `10d`.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// How often old events are looked for and deleted. Default `1h`.
    #[serde(with = "humantime_serde")]
    pub compaction_interval: Duration,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            retention: Duration::from_secs(10 * 86_400),
            compaction_interval: Duration::from_secs(3600),
        }
    }
}

fn durations<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Duration>, D::Error> {
    let texts = Vec::<String>::deserialize(deserializer)?;
    texts
        .iter()
        .map(|t| {
            humantime::parse_duration(t)
                .map_err(|e| serde::de::Error::custom(format!("{t:?}: {e}")))
        })
        .collect()
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let mut unknown = Vec::new();
        let deserializer = toml::Deserializer::new(text);
        let config: Config = serde_ignored::deserialize(deserializer, |key| {
            unknown.push(moved_hint(&key.to_string()));
        })
        .map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            message: e.to_string(),
        })?;
        if !unknown.is_empty() {
            return Err(ConfigError::UnknownKeys {
                path: origin.to_owned(),
                keys: unknown,
            });
        }
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: origin.to_owned(),
                problems,
            });
        }
        Ok(config)
    }

    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.queue.retry_schedule.is_empty() {
            out.push("queue.retry_schedule needs at least one wait".to_string());
        }
        if self.webhooks.retry_schedule.is_empty() {
            out.push("webhooks.retry_schedule needs at least one wait".to_string());
        }
        if !(0.0..1.0).contains(&self.queue.retry_jitter) {
            out.push("queue.retry_jitter must be at least 0 and below 1".to_string());
        }
        if self.events.compaction_interval.is_zero() {
            out.push("events.compaction_interval must be above zero".to_string());
        }
        if self.webhooks.batch_size == 0 {
            out.push("webhooks.batch_size must be at least 1".to_string());
        }
        out.extend(self.shaping.problems());
        for (domain, hop) in &self.routes {
            if hop
                .rsplit_once(':')
                .and_then(|(_, port)| port.parse::<u16>().ok())
                .is_none()
            {
                out.push(format!("routes.{domain:?} must be host:port, not {hop:?}"));
            }
        }
        if self.api.tls_cert.is_some() != self.api.tls_key.is_some() {
            out.push("api.tls_cert and api.tls_key must be given together".to_string());
        }
        for key in &self.api_keys {
            if key.key.trim().is_empty() {
                out.push("api_keys.key must not be empty".to_string());
            }
        }
        out
    }
}

/// Keys that once lived in `[delivery]` name their new home, so an old file is fixed quickly.
fn moved_hint(key: &str) -> String {
    const MOVED: &[&str] = &[
        "max_connections",
        "max_deliveries_per_connection",
        "connect_timeout",
        "command_timeout",
        "data_timeout",
        "idle_timeout",
    ];
    match key.strip_prefix("delivery.") {
        Some(name) if MOVED.contains(&name) => format!("{key} (moved to shaping.default.{name})"),
        _ => key.to_string(),
    }
}

/// A rate such as `300/s`, `20000/h` or `1000/d`: `count` events per `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Events allowed per period; at least 1.
    pub count: u32,
    /// The period.
    pub per: Duration,
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Rate, String> {
        let (count, unit) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("rate {text:?} must look like \"300/s\""))?;
        let count: u32 = count
            .trim()
            .parse()
            .ok()
            .filter(|c| *c > 0)
            .ok_or_else(|| format!("rate {text:?} needs a positive whole count"))?;
        let per = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            other => return Err(format!("rate unit {other:?} must be s, m, h or d")),
        };
        Ok(Rate { count, per })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "m",
            3600 => "h",
            _ => "d",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Rate, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_gives_defaults() {
        let config = parse("").expect("empty config parses");
        assert_eq!(config.api.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.spool.path, PathBuf::from("./sluice-data"));
        assert_eq!(config.queue.max_age, Duration::from_secs(72 * 3600));
    }

    #[test]
    fn every_unknown_key_is_named_at_once() {
        let err = parse("[api]\nlisten = \"127.0.0.1:1\"\nlisen = 1\n[spool]\npth = \"x\"\n")
            .expect_err("unknown keys are errors");
        let text = err.to_string();
        assert!(
            text.contains("api.lisen") && text.contains("spool.pth"),
            "{text}"
        );
    }

    #[test]
    fn durations_and_routes_parse() {
        let config = parse(
            "[queue]\nretry_schedule = [\"1s\", \"90s\"]\nmax_age = \"10m\"\n\
             [routes]\n\"example.test\" = \"127.0.0.1:2525\"\n",
        )
        .expect("valid config");
        assert_eq!(
            config.queue.retry_schedule,
            [Duration::from_secs(1), Duration::from_secs(90)]
        );
        assert_eq!(config.routes["example.test"], "127.0.0.1:2525");
    }

    #[test]
    fn bad_values_are_reported_together() {
        let err = parse("[queue]\nretry_schedule = []\n[routes]\n\"a.test\" = \"nowhere\"\n")
            .expect_err("invalid values");
        let text = err.to_string();
        assert!(
            text.contains("retry_schedule") && text.contains("a.test"),
            "{text}"
        );
    }

    #[test]
    fn the_shipped_example_is_valid_and_matches_the_defaults() {
        let example = include_str!("../../../deploy/sluice.example.toml");
        let config = parse(example).expect("deploy/sluice.example.toml parses");
        let defaults = Config::default();
        assert_eq!(config.queue.retry_schedule, defaults.queue.retry_schedule);
        assert_eq!(
            config.webhooks.retry_schedule,
            defaults.webhooks.retry_schedule
        );
        assert_eq!(config.api.max_body_bytes, defaults.api.max_body_bytes);
        assert_eq!(config.shaping.default, defaults.shaping.default);
        assert_eq!(config.delivery.mx_port, defaults.delivery.mx_port);
        assert_eq!(config.events.retention, defaults.events.retention);
        assert_eq!(
            config.events.compaction_interval,
            defaults.events.compaction_interval
        );
    }

    #[test]
    fn event_retention_parses_days_and_refuses_a_zero_interval() {
        let config = parse("[events]\nretention = \"2d\"\ncompaction_interval = \"5m\"\n")
            .expect("valid events section");
        assert_eq!(config.events.retention, Duration::from_secs(2 * 86_400));
        assert_eq!(config.events.compaction_interval, Duration::from_secs(300));
        assert!(parse("[events]\ncompaction_interval = \"0s\"\n").is_err());
        assert!(parse("[events]\nretension = \"1d\"\n").is_err());
    }

    #[test]
    fn limits_moved_out_of_delivery_say_where_they_went() {
        let err = parse("[delivery]\nmax_connections = 3\n").expect_err("moved key");
        assert!(
            err.to_string()
                .contains("delivery.max_connections (moved to shaping.default.max_connections)"),
            "{err}"
        );
    }

    #[test]
    fn rates_round_trip() {
        for text in ["300/s", "20000/h", "1/m", "1000/d"] {
            let rate: Rate = text.parse().expect("valid rate");
            assert_eq!(rate.to_string(), text);
        }
        for bad in ["", "300", "0/s", "-1/s", "10/w", "x/s"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?} should not parse");
        }
    }
}
