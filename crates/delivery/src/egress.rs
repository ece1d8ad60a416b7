//! Egress: the local addresses mail leaves from, grouped into pools. Each message names a pool;
//! each connection is bound to one address of it and greets with that address's hostname.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use sluice_core::config::SendingIpConfig;

/// A sending address, or the system's choice when no address is configured for a pool.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Source {
    /// Bound before connecting; `None` lets the system pick.
    pub address: Option<IpAddr>,
    /// Said in EHLO.
    pub hostname: String,
}

/// The pools and a round-robin position in each.
pub struct Egress {
    pools: HashMap<String, Vec<Source>>,
    next: HashMap<String, AtomicUsize>,
    fallback: Source,
}

impl Egress {
    /// Pools from the configured sending IPs; pools without addresses send from `fallback_hostname`
    /// on the system's choice of address.
    pub fn new(ips: &[SendingIpConfig], fallback_hostname: &str) -> Egress {
        let mut pools: HashMap<String, Vec<Source>> = HashMap::new();
        for ip in ips {
            let source = Source {
                address: Some(ip.address),
                hostname: ip.hostname.clone(),
            };
            pools
                .entry(ip.pool.to_ascii_lowercase())
                .or_default()
                .push(source);
        }
        let next = pools
            .keys()
            .map(|name| (name.clone(), AtomicUsize::new(0)))
            .collect();
        let fallback = Source {
            address: None,
            hostname: fallback_hostname.to_string(),
        };
        Egress {
            pools,
            next,
            fallback,
        }
    }

    /// Whether a pool of this name is configured (`default` always is).
    pub fn has_pool(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case("default") || self.pools.contains_key(&name.to_ascii_lowercase())
    }

    /// The next source of `pool`, in turn.
    pub fn pick(&self, pool: &str) -> Source {
        let pool = pool.to_ascii_lowercase();
        let (Some(sources), Some(next)) = (self.pools.get(&pool), self.next.get(&pool)) else {
            return self.fallback.clone();
        };
        let turn = next.fetch_add(1, Ordering::Relaxed);
        sources
            .get(turn % sources.len().max(1))
            .cloned()
            .unwrap_or_else(|| self.fallback.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_rotate_through_their_addresses() {
        let ips: Vec<SendingIpConfig> = ["127.0.0.2", "127.0.0.3"]
            .iter()
            .map(|a| SendingIpConfig {
                address: a.parse().expect("ip"),
                hostname: format!("mta-{a}"),
                pool: "Bulk".into(),
            })
            .collect();
        let egress = Egress::new(&ips, "localhost");
        let picks: Vec<_> = (0..4).map(|_| egress.pick("bulk").hostname).collect();
        assert_eq!(
            picks,
            [
                "mta-127.0.0.2",
                "mta-127.0.0.3",
                "mta-127.0.0.2",
                "mta-127.0.0.3"
            ]
        );
        assert_eq!(egress.pick("default").address, None);
        assert!(egress.has_pool("BULK") && egress.has_pool("default") && !egress.has_pool("x"));
    }
}
