//! Sites: destinations grouped by the provider that runs their mail exchangers, so every domain
//! hosted by one provider shares one ready queue and one set of limits per egress IP.
//!
//! Providers are known by the MX host suffixes they use, from a TOML file: the shipped
//! `deploy/providers.toml` unless `[delivery] providers_file` names another.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use sluice_core::config::ShapingConfig;

/// The provider list built into Sluice.
const SHIPPED: &str = include_str!("../../../deploy/providers.toml");

/// A group of destinations shaped together.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Site {
    /// The provider's name, the sorted MX host set for an unknown provider, or `route:HOP`
    /// for a static route.
    pub name: String,
    /// The provider, when the hosts matched one; it selects `[shaping.provider.<name>]`.
    pub provider: Option<String>,
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Why a provider file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProvidersError {
    /// The file could not be read.
    #[error("reading providers file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a table of providers with `mx_suffixes`.
    #[error("providers file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's explanation.
        message: String,
    },
    /// `[shaping.provider.<name>]` names a provider the provider list does not have: a typo
    /// that would otherwise leave the provider unshaped without a word.
    #[error("shaping names providers the provider list does not know: {}", names.join(", "))]
    UnknownInShaping {
        /// The unknown names, as written.
        names: Vec<String>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    mx_suffixes: Vec<String>,
}

/// Known providers by MX host suffix.
#[derive(Clone, Debug, Default)]
pub struct Providers {
    /// (suffix, provider), longest suffix first so the most specific match wins.
    suffixes: Vec<(String, String)>,
}

impl Providers {
    /// The shipped list.
    pub fn shipped() -> Providers {
        Providers::parse(SHIPPED, "deploy/providers.toml").unwrap_or_else(|e| {
            tracing::error!(error = %e, "the built-in provider list is invalid; no providers known");
            Providers::default()
        })
    }

    /// The list in `path`, or the shipped one when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Providers, ProvidersError> {
        let Some(path) = path else {
            return Ok(Providers::shipped());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ProvidersError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Providers::parse(&text, &path.display().to_string())
    }

    /// Parses a provider file; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Providers, ProvidersError> {
        let table: BTreeMap<String, Entry> =
            toml::from_str(text).map_err(|e| ProvidersError::Parse {
                path: origin.to_string(),
                message: e.to_string(),
            })?;
        let mut suffixes: Vec<(String, String)> = table
            .into_iter()
            .flat_map(|(name, entry)| {
                entry
                    .mx_suffixes
                    .into_iter()
                    .map(move |s| (normalise(&s), name.to_ascii_lowercase()))
            })
            .collect();
        suffixes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.cmp(b)));
        Ok(Providers { suffixes })
    }

    /// Whether the list has a provider named `name`, in any case.
    pub fn knows(&self, name: &str) -> bool {
        self.suffixes
            .iter()
            .any(|(_, p)| p.eq_ignore_ascii_case(name))
    }

    /// Fails when `[shaping.provider.<name>]` names a provider this list does not know.
    pub fn check_shaping(&self, shaping: &ShapingConfig) -> Result<(), ProvidersError> {
        let names: Vec<String> = shaping
            .provider
            .keys()
            .filter(|name| !self.knows(name))
            .cloned()
            .collect();
        if names.is_empty() {
            Ok(())
        } else {
            Err(ProvidersError::UnknownInShaping { names })
        }
    }

    /// The provider running `host`, if known.
    pub fn provider_of(&self, host: &str) -> Option<&str> {
        let host = normalise(host);
        self.suffixes
            .iter()
            .find(|(suffix, _)| {
                host == *suffix
                    || host
                        .strip_suffix(suffix.as_str())
                        .is_some_and(|rest| rest.ends_with('.'))
            })
            .map(|(_, name)| name.as_str())
    }

    /// The site of a domain whose MX hosts are `hosts`, most preferred first.
    pub fn site_for(&self, hosts: &[String]) -> Site {
        if let Some(provider) = hosts.iter().find_map(|h| self.provider_of(h)) {
            return Site {
                name: provider.to_string(),
                provider: Some(provider.to_string()),
            };
        }
        let mut names: Vec<String> = hosts.iter().map(|h| normalise(h)).collect();
        names.sort();
        names.dedup();
        Site {
            name: names.join(","),
            provider: None,
        }
    }
}

/// Whether `name` has the form of a site made of an MX host set (see [`Providers::site_for`]):
/// host names of two labels or more, joined with commas.
pub fn is_host_set(name: &str) -> bool {
    let label = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    name.split(',')
        .all(|host| host.contains('.') && host.split('.').all(label))
}

fn normalise(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_shipped_list_knows_the_big_providers() {
        let providers = Providers::shipped();
        assert_eq!(providers.provider_of("aspmx.l.google.com."), Some("google"));
        assert_eq!(
            providers.provider_of("example-com.mail.protection.outlook.com"),
            Some("microsoft")
        );
        assert_eq!(
            providers.provider_of("mta7.am0.yahoodns.net"),
            Some("yahoo")
        );
        assert_eq!(providers.provider_of("mx01.mail.icloud.com"), Some("apple"));
        assert_eq!(providers.provider_of("mx1.comcast.net"), Some("comcast"));
        assert_eq!(providers.provider_of("notgoogle.com"), None);
    }

    #[test]
    fn domains_of_one_provider_share_a_site_and_others_are_their_host_set() {
        let providers = Providers::parse("[acme]\nmx_suffixes = [\"acme.test\"]\n", "t")
            .expect("valid providers");
        let a = providers.site_for(&hosts(&["mx1.acme.test.", "backup.other.test"]));
        let b = providers.site_for(&hosts(&["mx2.ACME.test"]));
        assert_eq!(a, b);
        assert_eq!(a.provider.as_deref(), Some("acme"));
        let unknown = providers.site_for(&hosts(&["mx2.x.test.", "mx1.x.test"]));
        assert_eq!(unknown.name, "mx1.x.test,mx2.x.test");
        assert_eq!(unknown.provider, None);
    }

    #[test]
    fn an_mx_host_set_site_has_the_form_site_for_gives_it() {
        let providers = Providers::default();
        let site = providers.site_for(&hosts(&["MX2.x.test.", "mx1.x-y.test"]));
        assert!(is_host_set(&site.name), "{}", site.name);
        assert!(is_host_set("mx.example.test"));
        for bad in [
            "gogle",
            "mx1.x.test,",
            "mx1..test",
            "mx1.x.test,,mx2.x.test",
            "a/b.test",
        ] {
            assert!(!is_host_set(bad), "{bad}");
        }
    }

    #[test]
    fn unknown_keys_in_a_provider_file_are_errors() {
        let err = Providers::parse("[acme]\nmx_suffix = [\"a\"]\n", "p.toml").expect_err("bad");
        assert!(err.to_string().contains("mx_suffix"), "{err}");
    }

    #[test]
    fn shaping_for_an_unknown_provider_is_refused_by_name() {
        let providers = Providers::parse("[google]\nmx_suffixes = [\"google.com\"]\n", "test")
            .expect("providers");
        let mut shaping = ShapingConfig::default();
        shaping.provider.insert("google".into(), Default::default());
        assert!(providers.check_shaping(&shaping).is_ok());
        shaping.provider.insert("gogle".into(), Default::default());
        let error = providers
            .check_shaping(&shaping)
            .expect_err("typo")
            .to_string();
        assert!(
            error.contains("gogle") && !error.contains("google,"),
            "{error}"
        );
    }
}
