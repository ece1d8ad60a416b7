//! Classification: every attempt's result becomes delivered, delayed or bounced, with a
//! SparkPost bounce class.
//!
//! Rules are tried in order; the first whose code range, enhanced code prefix and text words
//! all match decides the class. They come from a TOML file: the shipped
//! `deploy/bounce-rules.toml` unless `[delivery] bounce_rules_file` names another.

use std::path::Path;

use serde::Deserialize;

use crate::smtp::{Phase, Reply, SmtpError};

/// The rule table built into Sluice.
const SHIPPED: &str = include_str!("../../../deploy/bounce-rules.toml");

/// What an attempt means for the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The server took responsibility for the message.
    Delivered,
    /// Try again later.
    Delayed(Failure),
    /// Give up now.
    Bounced(Failure),
}

/// Why an attempt failed, in the terms events carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// SparkPost bounce class.
    pub bounce_class: u16,
    /// SMTP code, or the code Sluice assigns to a local failure.
    pub error_code: u16,
    /// The whole reply, or a description of the local failure.
    pub raw_reason: String,
}

/// Why a bounce rule file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file could not be read.
    #[error("reading bounce rules file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid, with every problem found.
    #[error("bounce rules file {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// The parser's explanation, or one sentence per bad rule.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    rule: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    codes: [u16; 2],
    #[serde(default)]
    enhanced: String,
    #[serde(default)]
    words: Vec<String>,
    class: u16,
}

impl Rule {
    fn matches(&self, code: u16, enhanced: &str, text: &str) -> bool {
        (self.codes[0]..=self.codes[1]).contains(&code)
            && enhanced.starts_with(&self.enhanced)
            && (self.words.is_empty() || self.words.iter().any(|w| text.contains(w.as_str())))
    }
}

/// The ordered rule table; the first matching rule decides the class.
#[derive(Debug)]
pub struct BounceRules {
    rules: Vec<Rule>,
}

impl BounceRules {
    /// The shipped table.
    pub fn shipped() -> BounceRules {
        BounceRules::parse(SHIPPED, "deploy/bounce-rules.toml").unwrap_or_else(|e| {
            tracing::error!(error = %e, "the built-in bounce rules are invalid; using none");
            BounceRules { rules: Vec::new() }
        })
    }

    /// The table in `path`, or the shipped one when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<BounceRules, RulesError> {
        let Some(path) = path else {
            return Ok(BounceRules::shipped());
        };
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            path: path.display().to_string(),
            source,
        })?;
        BounceRules::parse(&text, &path.display().to_string())
    }

    /// Parses a rule file; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<BounceRules, RulesError> {
        let invalid = |message: String| RulesError::Invalid {
            path: origin.to_string(),
            message,
        };
        let mut file: RuleFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let problems: Vec<String> = file
            .rule
            .iter()
            .enumerate()
            .filter(|(_, r)| !(200..=599).contains(&r.codes[0]) || r.codes[0] > r.codes[1])
            .map(|(i, r)| {
                format!(
                    "rule {}: codes {:?} is not a range within 200-599",
                    i + 1,
                    r.codes
                )
            })
            .collect();
        if !problems.is_empty() {
            return Err(invalid(problems.join("; ")));
        }
        for rule in &mut file.rule {
            rule.words
                .iter_mut()
                .for_each(|w| *w = w.to_ascii_lowercase());
        }
        Ok(BounceRules { rules: file.rule })
    }

    /// Classifies a server's final reply to a message.
    pub fn classify_reply(&self, reply: &Reply, phase: Phase) -> Verdict {
        if reply.is_positive() {
            return Verdict::Delivered;
        }
        let failure = Failure {
            bounce_class: self.class_of(reply, phase),
            error_code: reply.code,
            raw_reason: reply.one_line(),
        };
        if reply.code >= 500 {
            Verdict::Bounced(failure)
        } else {
            Verdict::Delayed(failure)
        }
    }

    /// Classifies a failed attempt: a refusal by reply, an address the client would not send
    /// (permanent), or a local failure (connect, timeout, TLS, a dropped connection), which is
    /// always temporary.
    pub fn classify_error(&self, error: &SmtpError, peer: &str) -> Verdict {
        let local = |class| Verdict::Delayed(local_failure(class, &format!("{error} ({peer})")));
        match error {
            SmtpError::Rejected { phase, reply } => self.classify_reply(reply, *phase),
            SmtpError::UnsafeAddress { phase, .. } => {
                Verdict::Bounced(unsafe_address(*phase, error))
            }
            SmtpError::Timeout(_) => local(24),
            _ => local(20),
        }
    }

    fn class_of(&self, reply: &Reply, phase: Phase) -> u16 {
        let text = reply.one_line().to_ascii_lowercase();
        let enhanced = reply.enhanced_code().unwrap_or("");
        match self
            .rules
            .iter()
            .find(|r| r.matches(reply.code, enhanced, &text))
        {
            Some(rule) => rule.class,
            None if reply.code < 500 => 20,
            None if phase == Phase::RcptTo => 30,
            None => 1,
        }
    }
}

/// Whether a refusal asks us to slow down: a 421 (service closing, often "try later") or a
/// complaint about too many connections, whatever its code.
pub fn asks_to_slow_down(error: &SmtpError) -> bool {
    let SmtpError::Rejected { reply, .. } = error else {
        return false;
    };
    let text = reply.one_line().to_ascii_lowercase();
    reply.code == 421
        || text.contains("too many connections")
        || text.contains("too many concurrent")
}

/// An envelope address the client refused to send: class 10 (invalid recipient) for `RCPT TO`,
/// class 25 (admin failure) for `MAIL FROM`, with the enhanced code for bad address syntax.
fn unsafe_address(phase: Phase, error: &SmtpError) -> Failure {
    let (bounce_class, enhanced) = if phase == Phase::RcptTo {
        (10, "5.1.3")
    } else {
        (25, "5.1.7")
    };
    Failure {
        bounce_class,
        error_code: 553,
        raw_reason: format!("553 {enhanced} [internal] {error}"),
    }
}

/// A failure Sluice decided itself; reasons are marked `[internal]` so they are never mistaken
/// for a remote server's words.
pub fn local_failure(bounce_class: u16, what: &str) -> Failure {
    let (code, enhanced) = if (10..=19).contains(&bounce_class) {
        (554, "5.4.4")
    } else {
        (421, "4.4.1")
    };
    Failure {
        bounce_class,
        error_code: code,
        raw_reason: format!("{code} {enhanced} [internal] {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, text: &str) -> Reply {
        Reply {
            code,
            lines: vec![text.to_string()],
        }
    }

    fn class(code: u16, text: &str) -> u16 {
        match BounceRules::shipped().classify_reply(&reply(code, text), Phase::RcptTo) {
            Verdict::Bounced(f) | Verdict::Delayed(f) => f.bounce_class,
            Verdict::Delivered => 0,
        }
    }

    #[test]
    fn common_replies_land_in_their_class() {
        assert_eq!(class(250, "2.0.0 ok"), 0);
        assert_eq!(
            class(
                550,
                "5.1.1 <a@b.test>: Recipient address rejected: User unknown"
            ),
            10
        );
        assert_eq!(class(552, "5.2.2 mailbox full"), 22);
        assert_eq!(class(452, "4.2.2 The email account is over quota"), 22);
        assert_eq!(class(552, "5.3.4 Message size exceeds fixed limit"), 23);
        assert_eq!(
            class(
                554,
                "5.7.1 Service unavailable; client host blocked using Spamhaus"
            ),
            51
        );
        assert_eq!(class(550, "5.7.1 Relaying denied"), 54);
        assert_eq!(class(550, "5.7.1 policy"), 50);
        assert_eq!(class(451, "4.3.0 try again later"), 20);
        assert_eq!(class(550, "go away"), 30);
    }

    #[test]
    fn permanent_replies_bounce_and_temporary_ones_delay() {
        let rules = BounceRules::shipped();
        assert!(matches!(
            rules.classify_reply(&reply(550, "no"), Phase::RcptTo),
            Verdict::Bounced(_)
        ));
        assert!(matches!(
            rules.classify_reply(&reply(421, "busy"), Phase::Greeting),
            Verdict::Delayed(_)
        ));
    }

    #[test]
    fn an_edited_rule_file_replaces_the_table_and_bad_rules_are_named() {
        let rules = BounceRules::parse(
            "[[rule]]\ncodes = [500, 599]\nwords = [\"Nope\"]\nclass = 25\n",
            "r",
        )
        .expect("valid rules");
        let verdict = rules.classify_reply(&reply(550, "NOPE, not today"), Phase::DataEnd);
        assert!(matches!(verdict, Verdict::Bounced(f) if f.bounce_class == 25));
        let err = BounceRules::parse(
            "[[rule]]\ncodes = [599, 500]\nclass = 1\n[[rule]]\ncodes = [100, 200]\nclass = 1\n",
            "r",
        )
        .expect_err("bad ranges");
        assert!(
            err.to_string().contains("rule 1") && err.to_string().contains("rule 2"),
            "{err}"
        );
        assert!(BounceRules::parse("[[rule]]\ncode = [500, 599]\nclass = 1\n", "r").is_err());
    }

    #[test]
    fn back_pressure_is_a_421_or_too_many_connections() {
        let refused = |code, text: &str| SmtpError::Rejected {
            phase: Phase::Greeting,
            reply: reply(code, text),
        };
        assert!(asks_to_slow_down(&refused(421, "4.7.0 try later")));
        assert!(asks_to_slow_down(&refused(
            554,
            "Too many connections from your IP"
        )));
        assert!(!asks_to_slow_down(&refused(450, "4.2.1 mailbox busy")));
    }

    #[test]
    fn an_unsafe_address_bounces_at_once() {
        let rules = BounceRules::shipped();
        let error = SmtpError::UnsafeAddress {
            phase: Phase::RcptTo,
            address: "a@b.test\r\nRSET".into(),
            what: "a line break",
        };
        let Verdict::Bounced(failure) = rules.classify_error(&error, "192.0.2.1:25") else {
            panic!("an unsafe address is not retried");
        };
        assert_eq!((failure.bounce_class, failure.error_code), (10, 553));
        assert_eq!(
            failure.raw_reason,
            r#"553 5.1.3 [internal] rcptto address "a@b.test\r\nRSET" not sent: it contains a line break"#
        );
        assert!(!error.is_transient() && error.connection_usable());
    }

    #[test]
    fn local_failures_are_marked_internal() {
        let failure = local_failure(24, "connection timed out");
        assert_eq!(
            failure.raw_reason,
            "421 4.4.1 [internal] connection timed out"
        );
    }
}
