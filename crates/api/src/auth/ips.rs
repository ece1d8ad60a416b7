//! `valid_ips` of a key: single addresses or CIDR ranges, IPv4 or IPv6.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// The prefix length an IPv4-mapped IPv6 range (`::ffff:a.b.c.d/n`) has over its IPv4 form.
const MAPPED_PREFIX: u8 = 96;

/// One entry of `valid_ips`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

/// Why an entry of `valid_ips` was refused; every message names the entry.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum IpRangeError {
    /// The part before any `/` is not an address.
    #[error("{entry:?} is not an IP address or CIDR range")]
    NotAnAddress {
        /// The entry, trimmed.
        entry: String,
    },
    /// Nothing follows the `/`.
    #[error("{entry:?} has no prefix length after \"/\"")]
    MissingPrefix {
        /// The entry, trimmed.
        entry: String,
    },
    /// The prefix length is not a number in range for the address family.
    #[error("{entry:?}: prefix length must be 0–{max} for {family}")]
    BadPrefix {
        /// The entry, trimmed.
        entry: String,
        /// 32 or 128.
        max: u8,
        /// `IPv4` or `IPv6`.
        family: &'static str,
    },
    /// An IPv4-mapped range wider than the mapped addresses, which would also cover IPv6.
    #[error("{entry:?}: prefix length must be 96–128 for an IPv4-mapped address")]
    MappedPrefix {
        /// The entry, trimmed.
        entry: String,
    },
}

impl IpRange {
    /// Parses `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or an IPv6 `addr/n`, ignoring spaces
    /// around them. An IPv4-mapped address (`::ffff:a.b.c.d`) becomes the IPv4 address.
    pub fn parse(text: &str) -> Result<IpRange, IpRangeError> {
        let entry = text.trim();
        let (address, prefix) = match entry.split_once('/') {
            Some((address, prefix)) => (address.trim(), Some(prefix.trim())),
            None => (entry, None),
        };
        let network: IpAddr = address.parse().map_err(|_| IpRangeError::NotAnAddress {
            entry: entry.to_string(),
        })?;
        let (max, family) = if network.is_ipv4() {
            (32, "IPv4")
        } else {
            (128, "IPv6")
        };
        let prefix = match prefix {
            Some("") => {
                return Err(IpRangeError::MissingPrefix {
                    entry: entry.to_string(),
                })
            }
            Some(p) => prefix_length(p, max).ok_or_else(|| IpRangeError::BadPrefix {
                entry: entry.to_string(),
                max,
                family,
            })?,
            None => max,
        };
        IpRange { network, prefix }
            .unmapped(entry)
            .map(IpRange::masked)
    }

    /// The range with its host bits cleared, so `10.1.2.3/8` is stored as `10.0.0.0/8`.
    fn masked(self) -> IpRange {
        let network = match self.network {
            IpAddr::V4(v4) => {
                let kept = network_bits(u32::from(v4).into(), self.prefix, 32);
                IpAddr::V4(Ipv4Addr::from(kept as u32))
            }
            IpAddr::V6(v6) => IpAddr::V6(network_bits(u128::from(v6), self.prefix, 128).into()),
        };
        IpRange { network, ..self }
    }

    /// The IPv4 range of an IPv4-mapped one; other ranges as they are.
    fn unmapped(self, entry: &str) -> Result<IpRange, IpRangeError> {
        let IpAddr::V6(v6) = self.network else {
            return Ok(self);
        };
        let Some(v4) = v6.to_ipv4_mapped() else {
            return Ok(self);
        };
        if self.prefix < MAPPED_PREFIX {
            return Err(IpRangeError::MappedPrefix {
                entry: entry.to_string(),
            });
        }
        Ok(IpRange {
            network: IpAddr::V4(v4),
            prefix: self.prefix - MAPPED_PREFIX,
        })
    }

    /// Whether `ip` lies in the range. An IPv4 address seen as IPv6 (`::ffff:a.b.c.d`) counts
    /// as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, unmapped(ip)) {
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

/// The entry as stored: the address alone for a single address, else `address/prefix`.
impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let single = if self.network.is_ipv4() { 32 } else { 128 };
        if self.prefix == single {
            write!(f, "{}", self.network)
        } else {
            write!(f, "{}/{}", self.network, self.prefix)
        }
    }
}

/// A prefix length of decimal digits, at most `max`.
fn prefix_length(text: &str, max: u8) -> Option<u8> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u8>().ok().filter(|p| *p <= max)
}

/// `ip` as IPv4 when it is an IPv4-mapped IPv6 address.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `address`, of `bits` bits, with every bit after the first `prefix` cleared.
fn network_bits(address: u128, prefix: u8, bits: u32) -> u128 {
    let host_bits = bits - u32::from(prefix);
    address
        .checked_shr(host_bits)
        .unwrap_or(0)
        .checked_shl(host_bits)
        .unwrap_or(0)
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
    fn bad_entries_are_refused_naming_the_entry_and_what_is_wrong() {
        let error = |text: &str| IpRange::parse(text).expect_err("refused").to_string();
        let v4 = "prefix length must be 0–32 for IPv4";
        assert_eq!(error("1.2.3.4/-1"), format!("\"1.2.3.4/-1\": {v4}"));
        assert_eq!(error("10.0.0.0/33"), format!("\"10.0.0.0/33\": {v4}"));
        assert_eq!(error("10.0.0.0/x"), format!("\"10.0.0.0/x\": {v4}"));
        assert_eq!(error("10.0.0.0/+8"), format!("\"10.0.0.0/+8\": {v4}"));
        assert_eq!(
            error("2001:db8::/129"),
            "\"2001:db8::/129\": prefix length must be 0–128 for IPv6"
        );
        assert_eq!(
            error(" 1.2.3.4/ "),
            "\"1.2.3.4/\" has no prefix length after \"/\""
        );
        assert_eq!(
            error("example.com"),
            "\"example.com\" is not an IP address or CIDR range"
        );
        assert_eq!(
            error("::ffff:1.2.3.4/64"),
            "\"::ffff:1.2.3.4/64\": prefix length must be 96–128 for an IPv4-mapped address"
        );
    }

    #[test]
    fn mapped_entries_become_ipv4_and_match_both_forms_of_the_caller() {
        let range = IpRange::parse("::ffff:10.1.2.3").expect("mapped address");
        assert_eq!(range, IpRange::parse("10.1.2.3").expect("address"));
        assert_eq!(range.to_string(), "10.1.2.3");
        assert!(range.contains(ip("10.1.2.3")));
        assert!(range.contains(ip("::ffff:10.1.2.3")));
        let wide = IpRange::parse("::FFFF:10.1.0.0/112").expect("mapped range");
        assert_eq!(wide.to_string(), "10.1.0.0/16");
        assert!(wide.contains(ip("::ffff:10.1.9.9")));
        assert!(!wide.contains(ip("10.2.0.1")));
    }

    #[test]
    fn entries_print_back_in_one_canonical_form() {
        for (text, shown) in [
            (" 10.0.0.1 ", "10.0.0.1"),
            ("10.0.0.1/32", "10.0.0.1"),
            ("10.0.0.0 / 8", "10.0.0.0/8"),
            ("2001:DB8:0:0::1", "2001:db8::1"),
            ("2001:db8::/32", "2001:db8::/32"),
        ] {
            let range = IpRange::parse(text).expect("valid");
            assert_eq!(range.to_string(), shown);
            assert_eq!(IpRange::parse(shown), Ok(range), "round trip of {shown}");
        }
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
