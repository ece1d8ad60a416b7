//! The message event model: what happened to a message, in the vocabulary SparkPost's webhooks
//! and events API use (`injection`, `delivery`, `delay`, `bounce`, …).
//!
//! Events are stored in the event log with full fidelity (times in milliseconds, numbers as
//! numbers). The wire forms are made here, in one place: webhook batches use string-typed numbers
//! and Unix-second timestamps, the events search uses ISO-8601 times.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::clock::iso8601_ms;
use crate::id::MessageId;

/// Every event type Sluice knows. Types whose producers do not exist yet (tracking, inbound
/// feedback) are modelled so that documentation, samples and filters already name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A message was accepted through the API.
    Injection,
    /// The receiving server accepted the message.
    Delivery,
    /// A temporary failure; the message will be tried again.
    Delay,
    /// A permanent failure, or the message expired or was cancelled.
    Bounce,
    /// A bounce that arrived later, by mail, after a delivery.
    OutOfBand,
    /// The recipient reported the message as spam through a feedback loop.
    SpamComplaint,
    /// Sluice refused to send to the recipient (suppressed, policy).
    PolicyRejection,
    /// The message could not be generated (template error at render time).
    GenerationFailure,
    /// The message was refused while being generated.
    GenerationRejection,
    /// The tracking pixel was loaded.
    Open,
    /// The pixel at the top of the message was loaded.
    InitialOpen,
    /// A tracked link was followed.
    Click,
    /// The recipient unsubscribed through the List-Unsubscribe header.
    ListUnsubscribe,
    /// The recipient unsubscribed through a link in the message.
    LinkUnsubscribe,
}

impl EventKind {
    /// Every kind, in documentation order.
    pub const ALL: [EventKind; 14] = [
        EventKind::Injection,
        EventKind::Delivery,
        EventKind::Delay,
        EventKind::Bounce,
        EventKind::OutOfBand,
        EventKind::SpamComplaint,
        EventKind::PolicyRejection,
        EventKind::GenerationFailure,
        EventKind::GenerationRejection,
        EventKind::Open,
        EventKind::InitialOpen,
        EventKind::Click,
        EventKind::ListUnsubscribe,
        EventKind::LinkUnsubscribe,
    ];

    /// The `type` value on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Injection => "injection",
            EventKind::Delivery => "delivery",
            EventKind::Delay => "delay",
            EventKind::Bounce => "bounce",
            EventKind::OutOfBand => "out_of_band",
            EventKind::SpamComplaint => "spam_complaint",
            EventKind::PolicyRejection => "policy_rejection",
            EventKind::GenerationFailure => "generation_failure",
            EventKind::GenerationRejection => "generation_rejection",
            EventKind::Open => "open",
            EventKind::InitialOpen => "initial_open",
            EventKind::Click => "click",
            EventKind::ListUnsubscribe => "list_unsubscribe",
            EventKind::LinkUnsubscribe => "link_unsubscribe",
        }
    }

    /// Parses a wire `type` value.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The category key that wraps the event in a webhook batch (`{"msys":{"<category>":…}}`).
    pub fn category(self) -> &'static str {
        match self {
            EventKind::Injection
            | EventKind::Delivery
            | EventKind::Delay
            | EventKind::Bounce
            | EventKind::OutOfBand
            | EventKind::SpamComplaint
            | EventKind::PolicyRejection => "message_event",
            EventKind::GenerationFailure | EventKind::GenerationRejection => "gen_event",
            EventKind::Open | EventKind::InitialOpen | EventKind::Click => "track_event",
            EventKind::ListUnsubscribe | EventKind::LinkUnsubscribe => "unsubscribe_event",
        }
    }
}

/// What is known about a message when it is accepted, and repeated on each of its events.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MessageFacts {
    /// The message; absent on generation events, where no message came to be.
    pub message_id: Option<MessageId>,
    /// The transmission the message belongs to.
    pub transmission_id: String,
    /// `campaign_id` of the transmission, or empty.
    pub campaign_id: String,
    /// Stored template id, or empty for inline content.
    pub template_id: String,
    /// Stored template version, or empty.
    pub template_version: String,
    /// Subaccount that sent it; 0 is the primary account.
    pub subaccount_id: u32,
    /// Envelope recipient as given.
    pub raw_rcpt_to: String,
    /// Envelope recipient, lower-cased.
    pub rcpt_to: String,
    /// `cc` or `bcc` for copies made with `header_to`.
    pub rcpt_type: Option<String>,
    /// Merged transmission and recipient metadata (recipient wins).
    pub rcpt_meta: Map<String, Value>,
    /// The recipient's tags.
    pub rcpt_tags: Vec<String>,
    /// The domain of the recipient's address.
    pub recipient_domain: String,
    /// The address in the `From:` header.
    pub friendly_from: String,
    /// The envelope sender.
    pub msg_from: String,
    /// The subject as rendered.
    pub subject: String,
    /// Size of the generated message in bytes.
    pub msg_size: u64,
    /// The IP pool the message is sent from.
    pub ip_pool: String,
    /// When the message was accepted, in Unix milliseconds.
    pub injection_time_ms: u64,
    /// For a scheduled send, when it was due, in Unix milliseconds.
    pub scheduled_time_ms: Option<u64>,
    /// `options.transactional`.
    pub transactional: bool,
    /// `options.open_tracking`.
    pub open_tracking: bool,
    /// `options.click_tracking`.
    pub click_tracking: bool,
    /// `options.initial_open`.
    pub initial_pixel: bool,
    /// Whether an AMP part was sent.
    pub amp_enabled: bool,
}

impl MessageFacts {
    /// The domain of the From header's address: the domain the message is sent as.
    pub fn sending_domain(&self) -> &str {
        self.friendly_from
            .rsplit_once('@')
            .map_or("", |(_, domain)| domain)
    }
}

/// What one delivery attempt (or policy decision) adds to the message facts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttemptFacts {
    /// The domain whose MX was used.
    pub routing_domain: Option<String>,
    /// Our source address for the connection.
    pub sending_ip: Option<String>,
    /// The remote server's address.
    pub ip_address: Option<String>,
    /// Milliseconds from injection to this attempt.
    pub queue_time_ms: Option<u64>,
    /// Earlier failed attempts.
    pub num_retries: Option<u32>,
    /// 1 when TLS was used, 0 when not offered, -1 when it failed.
    pub outbound_tls: Option<i8>,
    /// SparkPost bounce class.
    pub bounce_class: Option<u16>,
    /// The SMTP reply code, or the code we assign to a local failure.
    pub error_code: Option<u16>,
    /// The reply exactly as received.
    pub raw_reason: Option<String>,
    /// The reply with addresses masked.
    pub reason: Option<String>,
    /// The mailbox provider whose servers the attempt went to, when the MX hosts matched one.
    pub mailbox_provider: Option<String>,
}

/// One entry of the event log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id; also the event's key in the log, so ids increase in log order.
    pub event_id: u64,
    /// The event type.
    pub kind: EventKind,
    /// When it happened, in Unix milliseconds.
    pub timestamp_ms: u64,
    /// The message it is about.
    pub message: MessageFacts,
    /// The attempt that produced it, for delivery, delay and bounce events.
    pub attempt: AttemptFacts,
}

impl Event {
    /// The event as it appears in a webhook batch: `{"msys":{"<category>":{…}}}`.
    pub fn to_webhook_json(&self) -> Value {
        let mut body = self.common_fields(false);
        body.insert(
            "timestamp".into(),
            (self.timestamp_ms / 1000).to_string().into(),
        );
        let mut category = Map::new();
        category.insert(self.kind.category().into(), Value::Object(body));
        let mut msys = Map::new();
        msys.insert("msys".into(), Value::Object(category));
        Value::Object(msys)
    }

    /// The event as the events search returns it: flat, with an ISO-8601 `timestamp`.
    pub fn to_search_json(&self) -> Value {
        let mut body = self.common_fields(true);
        body.insert("timestamp".into(), iso8601_ms(self.timestamp_ms).into());
        body.insert(
            "sending_domain".into(),
            self.message.sending_domain().into(),
        );
        if let Some(provider) = &self.attempt.mailbox_provider {
            body.insert("mailbox_provider".into(), provider.clone().into());
        }
        Value::Object(body)
    }

    fn common_fields(&self, iso_times: bool) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("type".into(), self.kind.as_str().into());
        out.insert("event_id".into(), self.event_id.to_string().into());
        self.put_message_fields(&mut out, iso_times);
        self.put_attempt_fields(&mut out);
        out
    }

    fn put_message_fields(&self, out: &mut Map<String, Value>, iso_times: bool) {
        let m = &self.message;
        if let Some(id) = m.message_id {
            out.insert("message_id".into(), id.to_string().into());
        }
        for (key, value) in [
            ("transmission_id", &m.transmission_id),
            ("campaign_id", &m.campaign_id),
            ("template_id", &m.template_id),
            ("template_version", &m.template_version),
            ("rcpt_to", &m.rcpt_to),
            ("raw_rcpt_to", &m.raw_rcpt_to),
            ("recipient_domain", &m.recipient_domain),
            ("friendly_from", &m.friendly_from),
            ("msg_from", &m.msg_from),
            ("subject", &m.subject),
            ("ip_pool", &m.ip_pool),
        ] {
            out.insert(key.into(), value.clone().into());
        }
        out.insert("customer_id".into(), "1".into());
        out.insert("subaccount_id".into(), m.subaccount_id.to_string().into());
        if let Some(rcpt_type) = &m.rcpt_type {
            out.insert("rcpt_type".into(), rcpt_type.clone().into());
        }
        out.insert("rcpt_meta".into(), Value::Object(m.rcpt_meta.clone()));
        out.insert("rcpt_tags".into(), m.rcpt_tags.clone().into());
        out.insert("msg_size".into(), m.msg_size.to_string().into());
        out.insert("recv_method".into(), "rest".into());
        out.insert(
            "injection_time".into(),
            iso8601_ms(m.injection_time_ms).into(),
        );
        if let Some(at) = m.scheduled_time_ms {
            let value = if iso_times {
                iso8601_ms(at)
            } else {
                (at / 1000).to_string()
            };
            out.insert("scheduled_time".into(), value.into());
        }
        out.insert(
            "transactional".into(),
            if m.transactional { "1" } else { "0" }.into(),
        );
        out.insert("open_tracking".into(), m.open_tracking.into());
        out.insert("click_tracking".into(), m.click_tracking.into());
        out.insert("initial_pixel".into(), m.initial_pixel.into());
        out.insert("amp_enabled".into(), m.amp_enabled.into());
    }

    fn put_attempt_fields(&self, out: &mut Map<String, Value>) {
        let a = &self.attempt;
        let strings = [
            ("routing_domain", a.routing_domain.clone()),
            ("sending_ip", a.sending_ip.clone()),
            ("ip_address", a.ip_address.clone()),
            ("raw_reason", a.raw_reason.clone()),
            ("reason", a.reason.clone()),
            ("queue_time", a.queue_time_ms.map(|v| v.to_string())),
            ("num_retries", a.num_retries.map(|v| v.to_string())),
            ("outbound_tls", a.outbound_tls.map(|v| v.to_string())),
            ("bounce_class", a.bounce_class.map(|v| v.to_string())),
            ("error_code", a.error_code.map(|v| v.to_string())),
        ];
        for (key, value) in strings {
            if let Some(value) = value {
                out.insert(key.into(), value.into());
            }
        }
        if a.sending_ip.is_some() || a.ip_address.is_some() {
            out.insert("delv_method".into(), "esmtp".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery() -> Event {
        Event {
            event_id: 42,
            kind: EventKind::Delivery,
            timestamp_ms: 1_460_989_507_123,
            message: MessageFacts {
                message_id: Some(MessageId(7)),
                rcpt_to: "a@b.test".into(),
                msg_size: 1234,
                transactional: true,
                ..MessageFacts::default()
            },
            attempt: AttemptFacts {
                queue_time_ms: Some(250),
                num_retries: Some(0),
                outbound_tls: Some(0),
                ..AttemptFacts::default()
            },
        }
    }

    #[test]
    fn webhook_form_uses_strings_for_numbers() {
        let json = delivery().to_webhook_json();
        let body = &json["msys"]["message_event"];
        assert_eq!(body["type"], "delivery");
        assert_eq!(body["timestamp"], "1460989507");
        assert_eq!(body["event_id"], "42");
        assert_eq!(body["message_id"], "7");
        assert_eq!(body["msg_size"], "1234");
        assert_eq!(body["queue_time"], "250");
        assert_eq!(body["num_retries"], "0");
        assert_eq!(body["outbound_tls"], "0");
        assert_eq!(body["transactional"], "1");
        assert_eq!(body["open_tracking"], false);
        assert_eq!(body["injection_time"], "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn search_form_is_flat_with_iso_time() {
        let json = delivery().to_search_json();
        assert_eq!(json["timestamp"], "2016-04-18T14:25:07.123Z");
        assert!(json.get("msys").is_none());
    }

    #[test]
    fn every_kind_parses_back_from_its_name() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
    }
}
