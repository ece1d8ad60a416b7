//! `[shaping]`: how fast and how widely mail flows to each site from each egress IP.
//!
//! A rule is assembled in three layers: `[shaping.default]` holds every setting, then the
//! entry of the site's provider (`[shaping.provider.google]`) and the entry of the sending IP
//! (`[shaping.ip."192.0.2.10"]`) replace the settings they name. The IP entry wins.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use super::Rate;

/// `[shaping]`: the default rule and its overrides.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ShapingConfig {
    /// Settings for every (egress IP, site) unless an override says otherwise.
    pub default: ShapingRule,
    /// Overrides for sites run by a named provider (see `[delivery] providers_file`).
    pub provider: BTreeMap<String, ShapingOverride>,
    /// Overrides for one sending IP, keyed by its address written as text.
    pub ip: BTreeMap<String, ShapingOverride>,
}

/// How STARTTLS is used towards a site.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsPolicy {
    /// Upgrade when offered, without checking the certificate; fall back to clear text when the
    /// handshake fails.
    #[default]
    Opportunistic,
    /// Upgrade or do not send: the certificate must verify against the system's roots or
    /// `[delivery] tls_ca_file`. A failure is a temporary failure, never a send in clear.
    Required,
    /// Never upgrade.
    Disabled,
}

/// The full set of shaping settings for one (egress IP, site).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct ShapingRule {
    /// Connections open at once. Default 10.
    pub max_connections: usize,
    /// Messages per period, like `"300/s"` or `"20000/h"`. Default: no limit.
    pub max_message_rate: Option<Rate>,
    /// New connections per period, like `"10/s"`. Default: no limit.
    pub max_connection_rate: Option<Rate>,
    /// How many messages or connections may go at once before a rate's pacing applies.
    /// Default 1: evenly spaced.
    pub burst: u32,
    /// Messages sent over one connection before it is closed. Default 100.
    pub max_deliveries_per_connection: usize,
    /// Time allowed to open a TCP connection. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time allowed for each reply to a command and for the TLS handshake. Default `60s`.
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// Time allowed for the reply after the message content. Default `5m`.
    #[serde(with = "humantime_serde")]
    pub data_timeout: Duration,
    /// How long an idle connection waits for the next message. Default `5s`.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// STARTTLS policy. Default `opportunistic`.
    pub tls: TlsPolicy,
    /// After a 421 or a "too many connections" reply, rate and connections are halved for this
    /// long, then climb back one step per period. Default `5m`.
    #[serde(with = "humantime_serde")]
    pub back_pressure_period: Duration,
}

impl Default for ShapingRule {
    fn default() -> Self {
        ShapingRule {
            max_connections: 10,
            max_message_rate: None,
            max_connection_rate: None,
            burst: 1,
            max_deliveries_per_connection: 100,
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(60),
            data_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(5),
            tls: TlsPolicy::Opportunistic,
            back_pressure_period: Duration::from_secs(300),
        }
    }
}

/// Settings that replace the default rule's; each is documented on [`ShapingRule`].
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ShapingOverride {
    /// Replaces [`ShapingRule::max_connections`].
    pub max_connections: Option<usize>,
    /// Replaces [`ShapingRule::max_message_rate`].
    pub max_message_rate: Option<Rate>,
    /// Replaces [`ShapingRule::max_connection_rate`].
    pub max_connection_rate: Option<Rate>,
    /// Replaces [`ShapingRule::burst`].
    pub burst: Option<u32>,
    /// Replaces [`ShapingRule::max_deliveries_per_connection`].
    pub max_deliveries_per_connection: Option<usize>,
    /// Replaces [`ShapingRule::connect_timeout`].
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Option<Duration>,
    /// Replaces [`ShapingRule::command_timeout`].
    #[serde(with = "humantime_serde")]
    pub command_timeout: Option<Duration>,
    /// Replaces [`ShapingRule::data_timeout`].
    #[serde(with = "humantime_serde")]
    pub data_timeout: Option<Duration>,
    /// Replaces [`ShapingRule::idle_timeout`].
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
    /// Replaces [`ShapingRule::tls`].
    pub tls: Option<TlsPolicy>,
    /// Replaces [`ShapingRule::back_pressure_period`].
    #[serde(with = "humantime_serde")]
    pub back_pressure_period: Option<Duration>,
}

impl ShapingOverride {
    /// `rule` with this entry's settings put over it.
    pub fn apply(&self, rule: &mut ShapingRule) {
        let r = rule;
        put(&mut r.max_connections, self.max_connections);
        put(&mut r.burst, self.burst);
        put(
            &mut r.max_deliveries_per_connection,
            self.max_deliveries_per_connection,
        );
        put(&mut r.connect_timeout, self.connect_timeout);
        put(&mut r.command_timeout, self.command_timeout);
        put(&mut r.data_timeout, self.data_timeout);
        put(&mut r.idle_timeout, self.idle_timeout);
        put(&mut r.tls, self.tls);
        put(&mut r.back_pressure_period, self.back_pressure_period);
        if self.max_message_rate.is_some() {
            r.max_message_rate = self.max_message_rate;
        }
        if self.max_connection_rate.is_some() {
            r.max_connection_rate = self.max_connection_rate;
        }
    }
}

fn put<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

impl ShapingConfig {
    /// The rule for mail from `ip` to a site run by `provider` (`None` for unknown providers).
    pub fn rule_for(&self, ip: Option<IpAddr>, provider: Option<&str>) -> ShapingRule {
        let mut rule = self.default.clone();
        if let Some(entry) = provider.and_then(|p| self.provider.get(p)) {
            entry.apply(&mut rule);
        }
        let ip_entry = ip.and_then(|ip| {
            self.ip
                .iter()
                .find(|(text, _)| text.parse::<IpAddr>().ok() == Some(ip))
        });
        if let Some((_, entry)) = ip_entry {
            entry.apply(&mut rule);
        }
        rule
    }

    /// One sentence per setting that parses but cannot work.
    pub fn problems(&self) -> Vec<String> {
        let mut out = rule_problems("shaping.default", &self.default);
        let entries = self
            .provider
            .iter()
            .map(|(name, e)| (format!("shaping.provider.{name}"), e))
            .chain(
                self.ip
                    .iter()
                    .map(|(ip, e)| (format!("shaping.ip.{ip:?}"), e)),
            );
        for (path, entry) in entries {
            let mut rule = self.default.clone();
            entry.apply(&mut rule);
            out.extend(rule_problems(&path, &rule));
        }
        for ip in self.ip.keys() {
            if ip.parse::<IpAddr>().is_err() {
                out.push(format!("shaping.ip.{ip:?} is not an IP address"));
            }
        }
        out
    }
}

fn rule_problems(path: &str, rule: &ShapingRule) -> Vec<String> {
    let mut out = Vec::new();
    for (key, value) in [
        ("max_connections", rule.max_connections),
        ("burst", rule.burst as usize),
        (
            "max_deliveries_per_connection",
            rule.max_deliveries_per_connection,
        ),
    ] {
        if value == 0 {
            out.push(format!("{path}.{key} must be at least 1"));
        }
    }
    if rule.back_pressure_period.is_zero() {
        out.push(format!(
            "{path}.back_pressure_period must be longer than 0s"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shaping(text: &str) -> ShapingConfig {
        toml::from_str(text).expect("valid shaping config")
    }

    #[test]
    fn provider_and_ip_entries_override_the_default_in_that_order() {
        let config = shaping(
            "[default]\nmax_connections = 5\nmax_message_rate = \"100/s\"\n\
             [provider.google]\nmax_connections = 3\nmax_message_rate = \"20000/h\"\n\
             [ip.\"192.0.2.1\"]\nmax_connections = 1\n",
        );
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let plain = config.rule_for(None, None);
        assert_eq!(plain.max_connections, 5);
        let google = config.rule_for(None, Some("google"));
        assert_eq!(google.max_connections, 3);
        assert_eq!(
            google.max_message_rate.map(|r| r.to_string()).as_deref(),
            Some("20000/h")
        );
        let both = config.rule_for(Some(ip), Some("google"));
        assert_eq!(both.max_connections, 1);
        assert_eq!(both.max_message_rate, google.max_message_rate);
    }

    #[test]
    fn zero_limits_and_bad_addresses_are_problems() {
        let config = shaping("[provider.x]\nburst = 0\n[ip.\"nope\"]\nmax_connections = 2\n");
        let problems = config.problems().join("; ");
        assert!(problems.contains("shaping.provider.x.burst"), "{problems}");
        assert!(
            problems.contains("\"nope\" is not an IP address"),
            "{problems}"
        );
    }
}
