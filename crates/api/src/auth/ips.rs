//! `valid_ips` of a key: single addresses or CIDR ranges, IPv4 or IPv6.

use std::net::IpAddr;

/// One entry of `valid_ips`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Parses `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or an IPv6 `addr/n`.
    pub fn parse(text: &str) -> Result<IpRange, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR range"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?} has a prefix length over {max}"))?,
            None => max,
        };
        Ok(IpRange { network, prefix })
    }

    /// Whether `ip` lies in the range. An IPv4 address seen as IPv6 (`::ffff:a.b.c.d`) counts
    /// as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                same_prefix(u32::from(net).into(), u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(u128::from(net), u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn same_prefix(a: u128, b: u128, prefix: u8, bits: u32) -> bool {
    let host_bits = bits - u32::from(prefix);
    host_bits >= 128 || (a >> host_bits) == (b >> host_bits)
}

/// Whether `ip` is allowed by `valid_ips`; an empty list allows every address. An unknown peer
/// address is allowed only when the list is empty.
pub fn allowed(valid_ips: &[String], ip: Option<IpAddr>) -> bool {
    if valid_ips.is_empty() {
        return true;
    }
    let Some(ip) = ip else {
        return false;
    };
    valid_ips
        .iter()
        .filter_map(|text| IpRange::parse(text).ok())
        .any(|range| range.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn ranges_parse_and_match() {
        let range = IpRange::parse("10.1.0.0/16").expect("range");
        assert!(range.contains(ip("10.1.200.3")));
        assert!(!range.contains(ip("10.2.0.1")));
        assert!(range.contains(ip("::ffff:10.1.0.9")));
        let single = IpRange::parse("2001:db8::1").expect("address");
        assert!(single.contains(ip("2001:db8::1")));
        assert!(!single.contains(ip("2001:db8::2")));
        assert!(IpRange::parse("0.0.0.0/0")
            .expect("all")
            .contains(ip("8.8.8.8")));
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!(IpRange::parse("10.0.0.0/33").is_err());
        assert!(IpRange::parse("example.com").is_err());
        assert!(IpRange::parse("10.0.0.0/x").is_err());
    }

    #[test]
    fn an_empty_list_allows_everyone_and_an_unknown_peer_only_then() {
        assert!(allowed(&[], None));
        let list = vec!["127.0.0.1".to_string()];
        assert!(allowed(&list, Some(ip("127.0.0.1"))));
        assert!(!allowed(&list, Some(ip("127.0.0.2"))));
        assert!(!allowed(&list, None));
    }
}
