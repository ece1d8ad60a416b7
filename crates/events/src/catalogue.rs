//! The event catalogue behind `GET /webhooks/events/documentation` and `…/samples`: one sample
//! event per type, run through the same wire-form code as real events, and a description of
//! every field that form can carry, so documentation and samples cannot drift from what
//! receivers get.
//!
//! The track and unsubscribe types have no producer yet, and the event model has no place for
//! their own fields (`user_agent`, `geo_ip`, `target_link_url`), so their samples carry only
//! the common fields until those producers and fields exist.

use serde_json::{json, Map, Value};
use sluice_core::event::{AttemptFacts, MessageFacts};
use sluice_core::{Event, EventKind, MessageId};

/// Every field the webhook form can carry, with what it means.
const FIELDS: &[(&str, &str)] = &[
    ("type", "Type of event"),
    ("event_id", "Unique event identifier"),
    ("timestamp", "Event date and time, in Unix seconds"),
    ("message_id", "Message identifier, unique per recipient"),
    (
        "transmission_id",
        "Transmission which originated this message",
    ),
    ("campaign_id", "Campaign of which this message was a part"),
    (
        "template_id",
        "Stored template used to generate this message",
    ),
    ("template_version", "Version of the stored template used"),
    ("customer_id", "Account which sent the message"),
    (
        "subaccount_id",
        "Subaccount which sent the message; 0 is the primary account",
    ),
    ("rcpt_to", "Lower-cased envelope recipient"),
    ("raw_rcpt_to", "Envelope recipient exactly as given"),
    ("rcpt_type", "cc or bcc for copies of the message"),
    ("rcpt_meta", "Metadata of the transmission and recipient"),
    ("rcpt_tags", "Tags of the recipient"),
    ("recipient_domain", "Domain of the recipient address"),
    ("routing_domain", "Domain whose MX was used for delivery"),
    ("friendly_from", "Address in the From header"),
    ("msg_from", "Envelope sender"),
    ("subject", "Subject line of the message"),
    ("msg_size", "Size of the message in bytes"),
    ("ip_pool", "IP pool the message was sent from"),
    ("sending_ip", "Our address the message was sent from"),
    ("ip_address", "Address of the receiving mail server"),
    ("delv_method", "Protocol used to deliver the message"),
    ("recv_method", "Protocol the message was injected with"),
    (
        "queue_time",
        "Milliseconds between injection and this attempt",
    ),
    ("num_retries", "Earlier failed delivery attempts"),
    (
        "outbound_tls",
        "1 when TLS was used, 0 when not offered, -1 when it failed",
    ),
    ("bounce_class", "Classification of the bounce"),
    ("error_code", "SMTP reply code"),
    (
        "raw_reason",
        "Reply of the remote server exactly as received",
    ),
    ("reason", "Reply of the remote server with addresses masked"),
    ("injection_time", "When the message was injected, ISO 8601"),
    (
        "scheduled_time",
        "When a scheduled message was due, in Unix seconds",
    ),
    (
        "transactional",
        "1 for a transactional message, 0 for a non-transactional one",
    ),
    ("open_tracking", "Whether open tracking was on"),
    ("click_tracking", "Whether click tracking was on"),
    (
        "initial_pixel",
        "Whether a tracking pixel was placed at the top of the message",
    ),
    ("amp_enabled", "Whether an AMP part was sent"),
];

/// What each category of events is about.
fn category_description(category: &str) -> &'static str {
    match category {
        "message_event" => "Message events describe the life cycle of a message: its injection, delivery attempts and their outcome.",
        "gen_event" => "Generation events describe messages that could not be generated.",
        "track_event" => "Engagement events describe how recipients interact with a message.",
        "unsubscribe_event" => "Unsubscribe events describe recipients asking to receive no more messages.",
        _ => "",
    }
}

/// What one event type means.
pub fn kind_description(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Injection => "Message is received by or injected into Sluice.",
        EventKind::Delivery => "Remote server accepted the message.",
        EventKind::Delay => "Remote server deferred the message; it will be tried again.",
        EventKind::Bounce => "Remote server rejected the message permanently, or it expired.",
        EventKind::OutOfBand => "A bounce arrived by mail after the message was delivered.",
        EventKind::SpamComplaint => "The recipient reported the message as spam.",
        EventKind::PolicyRejection => "Sluice refused to send to the recipient, e.g. suppressed.",
        EventKind::GenerationFailure => "The message could not be generated.",
        EventKind::GenerationRejection => "The message was refused while it was generated.",
        EventKind::Open => "The recipient opened the message.",
        EventKind::InitialOpen => "The pixel at the top of the message was loaded.",
        EventKind::Click => "The recipient followed a tracked link.",
        EventKind::ListUnsubscribe => {
            "The recipient unsubscribed with the List-Unsubscribe header."
        }
        EventKind::LinkUnsubscribe => "The recipient unsubscribed with a link in the message.",
    }
}

/// A realistic event of `kind`, with the fields that kind carries.
pub fn sample(kind: EventKind) -> Event {
    let mut message = MessageFacts {
        message_id: Some(MessageId(7_432_781_938_212_864_001)),
        transmission_id: "7432781938212864000".into(),
        campaign_id: "welcome-series".into(),
        template_id: "welcome".into(),
        template_version: "0".into(),
        raw_rcpt_to: "Recipient@Example.com".into(),
        rcpt_to: "recipient@example.com".into(),
        rcpt_meta: Map::from_iter([("customer".into(), json!("123"))]),
        rcpt_tags: vec!["new".into()],
        recipient_domain: "example.com".into(),
        friendly_from: "news@sender.example".into(),
        msg_from: "bounces@sender.example".into(),
        subject: "Welcome aboard".into(),
        msg_size: 4210,
        ip_pool: "default".into(),
        injection_time_ms: 1_460_989_500_000,
        transactional: true,
        ..MessageFacts::default()
    };
    if matches!(
        kind,
        EventKind::GenerationFailure | EventKind::GenerationRejection
    ) {
        message.message_id = None;
    }
    Event {
        event_id: 7_432_781_938_216_000_123,
        kind,
        timestamp_ms: 1_460_989_507_000,
        message,
        attempt: sample_attempt(kind),
    }
}

fn sample_attempt(kind: EventKind) -> AttemptFacts {
    let remote = AttemptFacts {
        routing_domain: Some("example.com".into()),
        sending_ip: Some("192.0.2.10".into()),
        ip_address: Some("198.51.100.25".into()),
        queue_time_ms: Some(7000),
        num_retries: Some(0),
        outbound_tls: Some(1),
        ..AttemptFacts::default()
    };
    let refusal = |class: u16, code: u16, reply: &str| AttemptFacts {
        bounce_class: Some(class),
        error_code: Some(code),
        raw_reason: Some(reply.to_string()),
        reason: Some(reply.to_string()),
        ..remote.clone()
    };
    match kind {
        EventKind::Delivery => remote,
        EventKind::Delay => refusal(22, 452, "452 4.2.2 mailbox full"),
        EventKind::Bounce | EventKind::OutOfBand => refusal(10, 550, "550 5.1.1 user unknown"),
        EventKind::PolicyRejection | EventKind::GenerationRejection => AttemptFacts {
            bounce_class: Some(25),
            error_code: Some(554),
            raw_reason: Some("554 5.7.1 recipient address was suppressed".into()),
            reason: Some("554 5.7.1 recipient address was suppressed".into()),
            ..AttemptFacts::default()
        },
        EventKind::GenerationFailure => AttemptFacts {
            error_code: Some(554),
            raw_reason: Some("554 5.3.3 substitution failed".into()),
            reason: Some("554 5.3.3 substitution failed".into()),
            ..AttemptFacts::default()
        },
        _ => AttemptFacts::default(),
    }
}

/// The webhook form of the sample of each kind in `kinds`.
pub fn samples(kinds: &[EventKind]) -> Vec<Value> {
    kinds.iter().map(|k| sample(*k).to_webhook_json()).collect()
}

/// The documentation of every event type, grouped by category, in SparkPost's shape:
/// `{"<category>":{"description","events":{"<type>":{"description","event":{…}}}}}`.
pub fn documentation() -> Value {
    let mut categories = Map::new();
    for kind in EventKind::ALL {
        let entry = categories.entry(kind.category()).or_insert_with(
            || json!({"description": category_description(kind.category()), "events": {}}),
        );
        entry["events"][kind.as_str()] =
            json!({"description": kind_description(kind), "event": document_fields(kind)});
    }
    Value::Object(categories)
}

/// `{"<field>":{"description","sampleValue"}}` for the fields the sample of `kind` carries.
fn document_fields(kind: EventKind) -> Value {
    let wire = sample(kind).to_webhook_json();
    let body = wire["msys"][kind.category()]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let fields = body.into_iter().map(|(name, value)| {
        let description = field_description(&name).unwrap_or("");
        (
            name,
            json!({"description": description, "sampleValue": value}),
        )
    });
    Value::Object(fields.collect())
}

fn field_description(name: &str) -> Option<&'static str> {
    FIELDS
        .iter()
        .find(|(field, _)| *field == name)
        .map(|(_, d)| *d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_of_every_sample_is_described() {
        for kind in EventKind::ALL {
            let wire = sample(kind).to_webhook_json();
            let body = wire["msys"][kind.category()]
                .as_object()
                .cloned()
                .unwrap_or_default();
            assert!(!body.is_empty(), "{kind:?}");
            for name in body.keys() {
                assert!(field_description(name).is_some(), "{name} of {kind:?}");
            }
        }
    }

    #[test]
    fn documentation_names_every_kind_under_its_category() {
        let docs = documentation();
        for kind in EventKind::ALL {
            let event = &docs[kind.category()]["events"][kind.as_str()];
            assert_eq!(event["event"]["type"]["sampleValue"], kind.as_str());
            assert!(!event["description"].as_str().unwrap_or("").is_empty());
        }
    }

    #[test]
    fn samples_use_the_wire_types() {
        let delivery = &samples(&[EventKind::Delivery])[0]["msys"]["message_event"];
        assert_eq!(delivery["timestamp"], "1460989507");
        assert_eq!(delivery["queue_time"], "7000");
        let bounce = &samples(&[EventKind::Bounce])[0]["msys"]["message_event"];
        assert_eq!(bounce["bounce_class"], "10");
    }
}
