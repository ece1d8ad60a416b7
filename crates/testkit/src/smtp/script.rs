//! [`Script`]: how the sink behaves, as a builder, plus the lookups the sessions make into it.
//!
//! Reply sequences live inside the script and advance as they are used. The running sink keeps
//! one script behind a lock shared by all connections, so a sequence such as "451, then 250"
//! advances across connections, and [`crate::SmtpSink::set_script`] starts every sequence afresh.

use std::net::IpAddr;
use std::time::Duration;

use super::matcher::Matcher;
use super::reply::Reply;

/// Size limit advertised with `SIZE` and enforced on message data, unless overridden.
const DEFAULT_MAX_MESSAGE_SIZE: usize = 100 * 1024 * 1024;

/// The verb under which [`Script::command_reply`] and [`Script::garbage_after`] address the
/// reply given after the message data's final dot.
pub const END_OF_DATA: &str = ".";

/// The sink's behaviour: accept everything unless told otherwise.
///
/// Scripted replies are looked up most specific first: a matching [`Script::rcpt`] or
/// [`Script::data_reply`] rule (the first added that matches), then a [`Script::command_reply`]
/// for the verb, then the sink's default. A rule or sequence built from an empty `Vec` is ignored.
#[derive(Clone, Debug)]
pub struct Script {
    greetings: Vec<(Option<IpAddr>, Reply)>,
    rcpt_rules: Vec<(Matcher, Sequence)>,
    data_rules: Vec<(Matcher, Sequence)>,
    verb_rules: Vec<(String, Sequence)>,
    drop_mid_data: Vec<Matcher>,
    delay: Duration,
    tls: bool,
    eight_bit_mime: bool,
    max_connections: Option<usize>,
    max_message_size: usize,
}

/// Replies handed out one per use; the last one repeats forever.
#[derive(Clone, Debug)]
struct Sequence {
    replies: Vec<Reply>,
    used: usize,
}

impl Sequence {
    fn new(replies: Vec<Reply>) -> Sequence {
        Sequence { replies, used: 0 }
    }

    fn next(&mut self) -> Option<Reply> {
        let index = self.used.min(self.replies.len().checked_sub(1)?);
        self.used = self.used.saturating_add(1);
        self.replies.get(index).cloned()
    }
}

impl Default for Script {
    fn default() -> Script {
        Script::new()
    }
}

impl Script {
    /// The accept-everything script: 220 greeting, 250 to every command, 354 to DATA.
    pub fn new() -> Script {
        Script {
            greetings: Vec::new(),
            rcpt_rules: Vec::new(),
            data_rules: Vec::new(),
            verb_rules: Vec::new(),
            drop_mid_data: Vec::new(),
            delay: Duration::ZERO,
            tls: false,
            eight_bit_mime: true,
            max_connections: None,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }

    /// Replies to `RCPT TO` for recipients matching `recipient`, one per attempt, across
    /// connections; the last reply repeats. A positive reply accepts the recipient.
    pub fn rcpt(mut self, recipient: impl Into<Matcher>, replies: Vec<Reply>) -> Script {
        self.rcpt_rules
            .push((recipient.into(), Sequence::new(replies)));
        self
    }

    /// Replies after the final dot of messages whose first accepted recipient matches
    /// `recipient`. Only messages answered positively are recorded.
    pub fn data_reply(mut self, recipient: impl Into<Matcher>, replies: Vec<Reply>) -> Script {
        self.data_rules
            .push((recipient.into(), Sequence::new(replies)));
        self
    }

    /// Replies to every use of `verb` (e.g. `"EHLO"`, `"MAIL"`, or [`END_OF_DATA`]) that no
    /// more specific rule answers. A negative or non-SMTP reply leaves the command without effect.
    pub fn command_reply(mut self, verb: &str, replies: Vec<Reply>) -> Script {
        self.verb_rules
            .push((verb.to_ascii_uppercase(), Sequence::new(replies)));
        self
    }

    /// Answers `verb` with a line that is not SMTP (see [`Reply::garbage`]).
    pub fn garbage_after(self, verb: &str) -> Script {
        self.command_reply(verb, vec![Reply::garbage()])
    }

    /// Replaces the greeting for every client. A greeting that is not 2xx is followed by
    /// closing the connection, so `Reply::new(421, ...)` models a server turning clients away.
    pub fn on_connect(mut self, greeting: Reply) -> Script {
        self.greetings.push((None, greeting));
        self
    }

    /// Like [`Script::on_connect`], but only for connections from `ip`; takes precedence over it.
    pub fn on_connect_from(mut self, ip: IpAddr, greeting: Reply) -> Script {
        self.greetings.push((Some(ip), greeting));
        self
    }

    /// Waits `delay` before every reply, greeting included, to model a slow server.
    pub fn delay(mut self, delay: Duration) -> Script {
        self.delay = delay;
        self
    }

    /// Closes the connection after the first line of message data when the first accepted
    /// recipient matches, to model a connection lost mid-transfer. Applies on every attempt.
    pub fn drop_mid_data(mut self, recipient: impl Into<Matcher>) -> Script {
        self.drop_mid_data.push(recipient.into());
        self
    }

    /// Offers STARTTLS (with the sink's self-signed certificate) when `enabled`.
    pub fn tls(mut self, enabled: bool) -> Script {
        self.tls = enabled;
        self
    }

    /// Advertises 8BITMIME in the EHLO reply when `enabled` (the default). Either way the sink
    /// takes 8-bit message content, as most servers do.
    pub fn eight_bit_mime(mut self, enabled: bool) -> Script {
        self.eight_bit_mime = enabled;
        self
    }

    /// Greets connections beyond `limit` open at once with `421 4.7.0` and closes them.
    pub fn max_connections(mut self, limit: usize) -> Script {
        self.max_connections = Some(limit);
        self
    }

    /// Sets the size advertised with `SIZE` and enforced with `552` (default 100 MiB).
    pub fn max_message_size(mut self, bytes: usize) -> Script {
        self.max_message_size = bytes;
        self
    }

    pub(crate) fn greeting_for(&self, ip: IpAddr) -> Option<Reply> {
        let for_ip = self.greetings.iter().find(|(only, _)| *only == Some(ip));
        let for_all = || self.greetings.iter().find(|(only, _)| only.is_none());
        for_ip
            .or_else(for_all)
            .map(|(_, greeting)| greeting.clone())
    }

    pub(crate) fn next_rcpt_reply(&mut self, recipient: &str) -> Option<Reply> {
        next_matching(&mut self.rcpt_rules, recipient).or_else(|| self.next_command_reply("RCPT"))
    }

    pub(crate) fn next_data_reply(&mut self, first_recipient: &str) -> Option<Reply> {
        next_matching(&mut self.data_rules, first_recipient)
            .or_else(|| self.next_command_reply(END_OF_DATA))
    }

    pub(crate) fn next_command_reply(&mut self, verb: &str) -> Option<Reply> {
        self.verb_rules
            .iter_mut()
            .find(|(rule_verb, sequence)| rule_verb == verb && !sequence.replies.is_empty())
            .and_then(|(_, sequence)| sequence.next())
    }

    pub(crate) fn drops_mid_data(&self, first_recipient: &str) -> bool {
        self.drop_mid_data
            .iter()
            .any(|matcher| matcher.matches(first_recipient))
    }

    pub(crate) fn reply_delay(&self) -> Duration {
        self.delay
    }

    pub(crate) fn offers_tls(&self) -> bool {
        self.tls
    }

    pub(crate) fn offers_8bitmime(&self) -> bool {
        self.eight_bit_mime
    }

    pub(crate) fn connection_limit(&self) -> Option<usize> {
        self.max_connections
    }

    pub(crate) fn size_limit(&self) -> usize {
        self.max_message_size
    }
}

/// Advances the first rule whose matcher accepts `recipient` and has replies left to give.
fn next_matching(rules: &mut [(Matcher, Sequence)], recipient: &str) -> Option<Reply> {
    rules
        .iter_mut()
        .find(|(matcher, sequence)| !sequence.replies.is_empty() && matcher.matches(recipient))
        .and_then(|(_, sequence)| sequence.next())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(script: &mut Script, recipient: &str, attempts: usize) -> Vec<Option<u16>> {
        (0..attempts)
            .map(|_| script.next_rcpt_reply(recipient).and_then(|r| r.code()))
            .collect()
    }

    #[test]
    fn rcpt_sequence_is_consumed_then_last_reply_repeats() {
        let mut script = Script::new().rcpt(
            "later@b.test",
            vec![Reply::new(451, "4.3.0 later"), Reply::ok()],
        );
        assert_eq!(
            codes(&mut script, "LATER@b.test", 3),
            [Some(451), Some(250), Some(250)]
        );
        assert_eq!(codes(&mut script, "other@b.test", 1), [None]);
    }

    #[test]
    fn first_matching_rule_wins_over_command_reply() {
        let mut script = Script::new()
            .command_reply("rcpt", vec![Reply::new(550, "5.1.1 no")])
            .rcpt("bounce*", vec![Reply::new(552, "5.2.2 full")])
            .rcpt("*", vec![Reply::new(450, "4.2.0 busy")]);
        assert_eq!(codes(&mut script, "bounce1@x.test", 1), [Some(552)]);
        assert_eq!(codes(&mut script, "x@x.test", 1), [Some(450)]);
        assert_eq!(
            script.next_command_reply("RCPT").and_then(|r| r.code()),
            Some(550)
        );
    }

    #[test]
    fn empty_sequences_are_ignored() {
        let mut script = Script::new()
            .rcpt("*", Vec::new())
            .data_reply("*", Vec::new());
        assert_eq!(codes(&mut script, "a@b.test", 1), [None]);
        assert_eq!(script.next_data_reply("a@b.test"), None);
    }

    #[test]
    fn greeting_for_a_specific_ip_beats_the_general_one() {
        let special: IpAddr = [127, 0, 0, 2].into();
        let script = Script::new()
            .on_connect(Reply::new(421, "4.3.2 closing"))
            .on_connect_from(special, Reply::new(554, "5.7.1 blocked"));
        assert_eq!(
            script.greeting_for(special).and_then(|r| r.code()),
            Some(554)
        );
        assert_eq!(
            script
                .greeting_for([127, 0, 0, 1].into())
                .and_then(|r| r.code()),
            Some(421)
        );
        assert_eq!(Script::new().greeting_for(special), None);
    }

    #[test]
    fn scripts_can_be_shared_across_tasks() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Script>();
    }

    #[test]
    fn garbage_after_end_of_data_uses_the_dot_verb() {
        let mut script = Script::new().garbage_after(END_OF_DATA);
        assert_eq!(script.next_data_reply("a@b.test"), Some(Reply::garbage()));
        assert!(Script::new()
            .drop_mid_data("drop*")
            .drops_mid_data("Drop-1@x.test"));
    }
}
