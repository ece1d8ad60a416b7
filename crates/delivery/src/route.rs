//! Routing: where a recipient domain's mail goes. A static route from the configuration wins;
//! otherwise the domain's MX records, in preference order, each host with all its addresses.
//!
//! The resolver caches answers by their TTL, negative answers included, so repeated lookups for
//! a busy domain cost nothing.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use sluice_core::config::DnsConfig;

/// One mail exchanger and its addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// The MX host name (or the route's host), for TLS SNI and logs.
    pub name: String,
    /// Where to connect, in the order to try.
    pub addrs: Vec<SocketAddr>,
}

/// Why a domain has no usable route.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The domain says it accepts no mail (RFC 7505 null MX): bounce.
    #[error("domain publishes a null MX and accepts no mail")]
    NullMx,
    /// The domain does not exist: bounce.
    #[error("domain does not exist")]
    NoSuchDomain,
    /// DNS failed or gave nothing usable this time: try again later.
    #[error("DNS lookup failed: {0}")]
    Temporary(String),
}

/// Resolves recipient domains to hosts.
pub struct Router {
    resolver: TokioResolver,
    routes: BTreeMap<String, String>,
    mx_port: u16,
}

impl Router {
    /// A router using `dns` for lookups, `routes` as static next hops, and `mx_port` for MX hosts.
    pub fn new(
        dns: &DnsConfig,
        routes: BTreeMap<String, String>,
        mx_port: u16,
    ) -> Result<Router, NetError> {
        let builder = if dns.nameservers.is_empty() {
            TokioResolver::builder_tokio()?
        } else {
            let servers = dns.nameservers.iter().map(|addr| {
                let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                for connection in &mut server.connections {
                    connection.port = addr.port();
                }
                server
            });
            let config = ResolverConfig::from_name_servers(servers.collect());
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        };
        let routes = routes
            .into_iter()
            .map(|(d, hop)| (d.to_ascii_lowercase(), hop))
            .collect();
        Ok(Router {
            resolver: builder.build()?,
            routes,
            mx_port,
        })
    }

    /// The hosts to try for `domain`, best first.
    pub async fn resolve(&self, domain: &str) -> Result<Vec<Host>, RouteError> {
        if let Some(hop) = self.routes.get(domain) {
            return self.static_hop(hop).await.map(|host| vec![host]);
        }
        let exchanges = self.exchanges(domain).await?;
        let mut hosts = Vec::with_capacity(exchanges.len());
        for name in exchanges {
            match self.addresses(&name, self.mx_port).await {
                Ok(addrs) if !addrs.is_empty() => hosts.push(Host { name, addrs }),
                Ok(_) => {}
                Err(e) => tracing::debug!(host = %name, error = %e, "MX host has no address"),
            }
        }
        if hosts.is_empty() {
            return Err(RouteError::Temporary(format!(
                "no MX host of {domain} has an address"
            )));
        }
        Ok(hosts)
    }

    /// MX host names in preference order; the domain itself when it has no MX (implicit MX).
    async fn exchanges(&self, domain: &str) -> Result<Vec<String>, RouteError> {
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        let lookup = match self.resolver.mx_lookup(fqdn.as_str()).await {
            Ok(lookup) => lookup,
            Err(e) if e.is_nx_domain() => return Err(RouteError::NoSuchDomain),
            Err(e) if e.is_no_records_found() => return Ok(vec![fqdn]),
            Err(e) => return Err(RouteError::Temporary(e.to_string())),
        };
        let mut records: Vec<(u16, String, bool)> = lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::MX(mx) => {
                    Some((mx.preference, mx.exchange.to_ascii(), mx.exchange.is_root()))
                }
                _ => None,
            })
            .collect();
        if records.len() == 1 && records[0].2 {
            return Err(RouteError::NullMx);
        }
        records.retain(|r| !r.2);
        records.sort_by_key(|r| r.0);
        Ok(records.into_iter().map(|r| r.1).collect())
    }

    async fn static_hop(&self, hop: &str) -> Result<Host, RouteError> {
        if let Ok(addr) = hop.parse::<SocketAddr>() {
            return Ok(Host {
                name: addr.ip().to_string(),
                addrs: vec![addr],
            });
        }
        let (name, port) = hop
            .rsplit_once(':')
            .and_then(|(name, port)| Some((name, port.parse::<u16>().ok()?)))
            .ok_or_else(|| RouteError::Temporary(format!("route {hop:?} is not host:port")))?;
        let addrs = self.addresses(name, port).await?;
        Ok(Host {
            name: name.to_string(),
            addrs,
        })
    }

    async fn addresses(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, RouteError> {
        if let Ok(ip) = name.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let lookup = self
            .resolver
            .lookup_ip(name)
            .await
            .map_err(|e| RouteError::Temporary(e.to_string()))?;
        Ok(lookup.iter().map(|ip| SocketAddr::new(ip, port)).collect())
    }
}
