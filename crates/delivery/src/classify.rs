//! Classification: every attempt's result becomes delivered, delayed or bounced, with a
//! SparkPost bounce class.
//!
//! Rules are tried in order; the first whose code range, enhanced code prefix and text words
//! all match decides the class. The table is built in; an operator-editable file is the next
//! step, and the rules are shaped so that file can carry them unchanged.

use crate::smtp::{Phase, Reply, SmtpError};

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

struct Rule {
    codes: (u16, u16),
    enhanced: &'static str,
    words: &'static [&'static str],
    class: u16,
}

const fn rule(
    codes: (u16, u16),
    enhanced: &'static str,
    words: &'static [&'static str],
    class: u16,
) -> Rule {
    Rule {
        codes,
        enhanced,
        words,
        class,
    }
}

/// Ordered: specific before general.
const RULES: &[Rule] = &[
    rule(
        (500, 599),
        "",
        &["spamhaus", "blocklist", "blacklist", "listed at", "rbl"],
        51,
    ),
    rule((500, 599), "", &["spam"], 51),
    rule((500, 599), "", &["relay"], 54),
    rule((500, 599), "", &["virus", "attachment"], 53),
    rule((500, 599), "5.1.", &[], 10),
    rule(
        (500, 599),
        "",
        &[
            "user unknown",
            "no such user",
            "does not exist",
            "unknown user",
            "invalid recipient",
            "no mailbox",
            "mailbox unavailable",
        ],
        10,
    ),
    rule(
        (400, 599),
        "",
        &[
            "mailbox full",
            "quota",
            "over quota",
            "insufficient storage",
        ],
        22,
    ),
    rule((400, 599), "5.2.2", &[], 22),
    rule((400, 599), "4.2.2", &[], 22),
    rule((500, 599), "5.3.4", &[], 23),
    rule(
        (500, 599),
        "",
        &["too large", "size limit", "message size"],
        23,
    ),
    rule((500, 599), "5.7.", &[], 50),
    rule((500, 599), "", &["blocked", "denied", "rejected"], 50),
    rule((400, 499), "", &["timeout", "timed out"], 24),
];

/// Classifies a server's final reply to a message.
pub fn classify_reply(reply: &Reply, phase: Phase) -> Verdict {
    if reply.is_positive() {
        return Verdict::Delivered;
    }
    let failure = Failure {
        bounce_class: class_of(reply, phase),
        error_code: reply.code,
        raw_reason: reply.one_line(),
    };
    if reply.code >= 500 {
        Verdict::Bounced(failure)
    } else {
        Verdict::Delayed(failure)
    }
}

/// Classifies a failed attempt: a refusal by reply, or a local failure (connect, timeout, TLS,
/// a dropped connection), which is always temporary.
pub fn classify_error(error: &SmtpError, peer: &str) -> Verdict {
    if let SmtpError::Rejected { phase, reply } = error {
        return classify_reply(reply, *phase);
    }
    let class = match error {
        SmtpError::Timeout(_) => 24,
        _ => 20,
    };
    Verdict::Delayed(local_failure(class, &format!("{error} ({peer})")))
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

fn class_of(reply: &Reply, phase: Phase) -> u16 {
    let text = reply.one_line().to_ascii_lowercase();
    let enhanced = reply.enhanced_code().unwrap_or("");
    let matched = RULES.iter().find(|r| {
        (r.codes.0..=r.codes.1).contains(&reply.code)
            && enhanced.starts_with(r.enhanced)
            && (r.words.is_empty() || r.words.iter().any(|w| text.contains(w)))
    });
    match matched {
        Some(rule) => rule.class,
        None if reply.code < 500 => 20,
        None if phase == Phase::RcptTo => 30,
        None => 1,
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
        match classify_reply(&reply(code, text), Phase::RcptTo) {
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
        assert!(matches!(
            classify_reply(&reply(550, "no"), Phase::RcptTo),
            Verdict::Bounced(_)
        ));
        assert!(matches!(
            classify_reply(&reply(421, "busy"), Phase::Greeting),
            Verdict::Delayed(_)
        ));
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
