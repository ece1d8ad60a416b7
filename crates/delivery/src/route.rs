//! Routing: where a recipient domain's mail goes. A static route from the configuration wins;
//! otherwise the domain's MX records, in preference order, each host with all its addresses.
//!
//! The resolver caches answers by their TTL, negative answers included. On top of that a route
//! (hosts and site) is kept per domain until its MX answer expires, so the hot path of a busy
//! domain is one map lookup.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use sluice_core::config::DnsConfig;

use crate::site::{is_host_set, Providers, Site};

/// Longest a route is kept, whatever its TTL, so a provider change shows within minutes.
const MAX_ROUTE_AGE: Duration = Duration::from_secs(300);
/// How long a domain without MX (implicit MX) keeps its route.
const IMPLICIT_ROUTE_AGE: Duration = Duration::from_secs(60);
/// Routes kept before expired ones are swept out, so a stream of one-off domains cannot grow
/// the cache without bound.
const SWEEP_ABOVE: usize = 50_000;

/// One mail exchanger and its addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// The MX host name (or the route's host), for TLS SNI and logs.
    pub name: String,
    /// Where to connect, in the order to try.
    pub addrs: Vec<SocketAddr>,
}

/// Where a domain's mail goes, and the site it is shaped with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The site the domain belongs to.
    pub site: Site,
    /// The hosts to try, best first.
    pub hosts: Vec<Host>,
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
    providers: RwLock<Arc<Providers>>,
    cache: Mutex<HashMap<String, (Arc<Route>, Instant)>>,
}

impl Router {
    /// A router using `dns` for lookups, `routes` as static next hops, and `mx_port` for MX hosts.
    pub fn new(
        dns: &DnsConfig,
        routes: BTreeMap<String, String>,
        mx_port: u16,
        providers: Providers,
    ) -> Result<Router, NetError> {
        let mut builder = if dns.nameservers.is_empty() {
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
        // Every address of a host, IPv4 first: mailbox providers hold IPv6 senders to stricter
        // rules, and a sending IP reaches only its own family anyway.
        builder.options_mut().ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        let routes = routes
            .into_iter()
            .map(|(d, hop)| (d.to_ascii_lowercase(), hop))
            .collect();
        Ok(Router {
            resolver: builder.build()?,
            routes,
            mx_port,
            providers: RwLock::new(Arc::new(providers)),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Replaces the provider list; routes already known are forgotten so new ones use it.
    pub fn set_providers(&self, providers: Providers) {
        *self.providers.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(providers);
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Whether `name` can be a site this router sends to: a provider of its list, `route:HOP`
    /// for a static route, or an MX host set. A host set is checked by its form only, since
    /// which hosts a domain's MX records name is known only once the domain is routed.
    pub fn is_site(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        if let Some(hop) = name.strip_prefix("route:") {
            return self.routes.values().any(|h| h.eq_ignore_ascii_case(hop));
        }
        let providers = self.providers.read().unwrap_or_else(|p| p.into_inner());
        providers.knows(&name) || is_host_set(&name)
    }

    /// The route for `domain` if one is known and fresh, without any lookup.
    pub fn cached(&self, domain: &str) -> Option<Arc<Route>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let (route, until) = cache.get(domain)?;
        (Instant::now() < *until).then(|| route.clone())
    }

    /// The route for `domain`: from the cache, or resolved now.
    pub async fn route(&self, domain: &str) -> Result<Arc<Route>, RouteError> {
        if let Some(route) = self.cached(domain) {
            return Ok(route);
        }
        let (route, until) = self.resolve(domain).await?;
        let route = Arc::new(route);
        let until = until.min(Instant::now() + MAX_ROUTE_AGE);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= SWEEP_ABOVE {
            let now = Instant::now();
            cache.retain(|_, (_, until)| *until > now);
        }
        cache.insert(domain.to_string(), (route.clone(), until));
        Ok(route)
    }

    async fn resolve(&self, domain: &str) -> Result<(Route, Instant), RouteError> {
        if let Some(hop) = self.routes.get(domain) {
            let host = self.static_hop(hop).await?;
            let site = Site {
                name: format!("route:{hop}"),
                provider: None,
            };
            let route = Route {
                site,
                hosts: vec![host],
            };
            return Ok((route, Instant::now() + MAX_ROUTE_AGE));
        }
        let (exchanges, until) = self.exchanges(domain).await?;
        let providers = self
            .providers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let site = providers.site_for(&exchanges);
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
        Ok((Route { site, hosts }, until))
    }

    /// MX host names in preference order, and when the answer expires; the domain itself when
    /// it has no MX (implicit MX).
    async fn exchanges(&self, domain: &str) -> Result<(Vec<String>, Instant), RouteError> {
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        let lookup = match self.resolver.mx_lookup(fqdn.as_str()).await {
            Ok(lookup) => lookup,
            Err(e) if e.is_nx_domain() => return Err(RouteError::NoSuchDomain),
            Err(e) if e.is_no_records_found() => {
                return Ok((vec![fqdn], Instant::now() + IMPLICIT_ROUTE_AGE))
            }
            Err(e) => return Err(RouteError::Temporary(e.to_string())),
        };
        let until = lookup.valid_until();
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
        Ok((records.into_iter().map(|r| r.1).collect(), until))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        let dns = DnsConfig {
            nameservers: vec!["127.0.0.1:53".parse().expect("address")],
        };
        let routes = BTreeMap::from([("example.test".into(), "127.0.0.1:2525".into())]);
        let providers = Providers::parse("[google]\nmx_suffixes = [\"google.com\"]\n", "test")
            .expect("providers");
        Router::new(&dns, routes, 25, providers).expect("router")
    }

    #[tokio::test]
    async fn sites_are_providers_static_routes_or_mx_host_sets() {
        let router = router();
        for site in [
            "google",
            "Google",
            "route:127.0.0.1:2525",
            "mx1.x.test,mx2.x.test",
        ] {
            assert!(router.is_site(site), "{site}");
        }
        for not_a_site in ["gogle", "route:127.0.0.1:25", "route:", "mx1.x.test,"] {
            assert!(!router.is_site(not_a_site), "{not_a_site}");
        }
        router.set_providers(Providers::default());
        assert!(
            !router.is_site("google"),
            "a reloaded list is the one asked"
        );
    }
}
