//! Recipient matching for scripted replies.
//!
//! A pattern is `local@domain` or just `local`. Each part is compared case-insensitively and is
//! either exact, a prefix ending in `*`, or `*` alone for anything; a pattern without `@`
//! matches that local part at any domain. So `later@b.test` matches one address, `bounce*`
//! matches `bounce1@x.test` and `Bounce-2@y.test`, and `*@b.test` matches the whole domain.

/// A recipient pattern, built from a string (see the module docs for the syntax).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matcher {
    local: Part,
    /// `None` when the pattern had no `@`, meaning any domain.
    domain: Option<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Any,
    Exact(String),
    Prefix(String),
}

impl Matcher {
    /// Builds a matcher from a pattern such as `later@b.test`, `bounce*` or `*@b.test`.
    pub fn new(pattern: &str) -> Matcher {
        match pattern.rsplit_once('@') {
            Some((local, domain)) => Matcher {
                local: Part::new(local),
                domain: Some(Part::new(domain)),
            },
            None => Matcher {
                local: Part::new(pattern),
                domain: None,
            },
        }
    }

    /// Whether `address` (a bare mailbox such as `user@host`, no angle brackets) matches.
    pub fn matches(&self, address: &str) -> bool {
        let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
        let domain_matches = self.domain.as_ref().is_none_or(|part| part.matches(domain));
        domain_matches && self.local.matches(local)
    }
}

impl Part {
    fn new(pattern: &str) -> Part {
        let pattern = pattern.to_lowercase();
        if pattern == "*" {
            Part::Any
        } else if let Some(prefix) = pattern.strip_suffix('*') {
            Part::Prefix(prefix.to_owned())
        } else {
            Part::Exact(pattern)
        }
    }

    fn matches(&self, text: &str) -> bool {
        let text = text.to_lowercase();
        match self {
            Part::Any => true,
            Part::Exact(exact) => text == *exact,
            Part::Prefix(prefix) => text.starts_with(prefix.as_str()),
        }
    }
}

impl From<&str> for Matcher {
    fn from(pattern: &str) -> Matcher {
        Matcher::new(pattern)
    }
}

impl From<String> for Matcher {
    fn from(pattern: String) -> Matcher {
        Matcher::new(&pattern)
    }
}

impl From<&String> for Matcher {
    fn from(pattern: &String) -> Matcher {
        Matcher::new(pattern)
    }
}

#[cfg(test)]
mod tests {
    use super::Matcher;

    #[test]
    fn exact_address_ignores_case() {
        let matcher = Matcher::new("Later@B.test");
        assert!(matcher.matches("later@b.TEST"));
        assert!(!matcher.matches("later@c.test"));
        assert!(!matcher.matches("later2@b.test"));
    }

    #[test]
    fn local_prefix_matches_any_domain() {
        let matcher = Matcher::new("bounce*");
        assert!(matcher.matches("bounce@x.test"));
        assert!(matcher.matches("Bounce-42@y.test"));
        assert!(!matcher.matches("nobounce@x.test"));
    }

    #[test]
    fn bare_local_part_is_exact_at_any_domain() {
        let matcher = Matcher::new("postmaster");
        assert!(matcher.matches("postmaster@x.test"));
        assert!(matcher.matches("postmaster"));
        assert!(!matcher.matches("postmaster2@x.test"));
    }

    #[test]
    fn wildcards_cover_domains_and_everything() {
        assert!(Matcher::new("*@b.test").matches("anyone@b.test"));
        assert!(!Matcher::new("*@b.test").matches("anyone@c.test"));
        assert!(Matcher::new("user@*").matches("user@anywhere.test"));
        assert!(Matcher::new("*").matches("x@y.test"));
        assert!(Matcher::new("*").matches(""));
    }
}
