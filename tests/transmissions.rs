//! Transmission fields and options end to end: what each recipient field does to its message and
//! events, a scheduled send that waits for its `start_time` and can be cancelled until then, and
//! `perform_substitutions: false`.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use sluice_core::clock::{iso8601_ms, now_ms};
use sluice_testkit::smtp::{Script, SmtpSink};
use sluice_testkit::webhook::{Behaviour, WebhookReceiver};
use support::{fast_config, hop, message_events, Server};

const WAIT: Duration = Duration::from_secs(30);

async fn sink() -> SmtpSink {
    SmtpSink::start("127.0.0.1:0".parse().expect("addr"), Script::new())
        .await
        .expect("starting the sink")
}

async fn send(server: &Server, request: Value) -> String {
    let (status, answer) = server.post("/transmissions", &request).await;
    assert_eq!(status, 200, "{answer}");
    answer["results"]["id"]
        .as_str()
        .expect("a transmission id")
        .to_string()
}

#[tokio::test]
async fn every_recipient_field_reaches_the_message_and_its_events() {
    let sink = sink().await;
    let receiver = WebhookReceiver::start("127.0.0.1:0".parse().expect("addr"), Behaviour::new())
        .await
        .expect("starting the receiver");
    let server = Server::start("fields", &fast_config(&hop(sink.addr()))).await;
    let hook = json!({"name": "t", "target": receiver.url(), "events": ["delivery"]});
    assert_eq!(server.post("/webhooks", &hook).await.0, 200);

    send(
        &server,
        json!({
            "return_path": "bounces@sender.test",
            "metadata": {"plan": "basic", "region": "eu"},
            "substitution_data": {"plan": "pro", "greeting": "Hello"},
            "recipients": [
                {"address": {"email": "ann@example.test", "name": "Ann"},
                 "return_path": "ann-bounces@sender.test", "tags": ["new", "eu"],
                 "metadata": {"region": "fr", "plan": "gold"},
                 "substitution_data": {"plan": "platinum"}},
                {"address": {"email": "copy@example.test", "header_to": "ann@example.test"}},
            ],
            "content": {
                "from": {"email": "shop@sender.test", "name": "Shop"},
                "subject": "{{greeting}} {{address.name or 'friend'}}",
                "reply_to": "Help <help@sender.test>",
                "headers": {"X-Plan": "{{plan}}", "X-Region": "{{region}}"},
                "text": "t",
            },
        }),
    )
    .await;

    let received = sink.wait_for_messages(2, WAIT).await;
    let to = |rcpt: &str| {
        received
            .iter()
            .find(|m| m.rcpt_to == [rcpt])
            .unwrap_or_else(|| panic!("no message to {rcpt}"))
    };
    let ann = to("ann@example.test");
    assert_eq!(ann.mail_from, "ann-bounces@sender.test");
    assert_eq!(ann.header("Subject").as_deref(), Some("Hello Ann"));
    assert_eq!(
        ann.header("Reply-To").as_deref(),
        Some("\"Help\" <help@sender.test>")
    );
    // Recipient substitution data, then recipient metadata, then the transmission's.
    assert_eq!(ann.header("X-Plan").as_deref(), Some("platinum"));
    assert_eq!(ann.header("X-Region").as_deref(), Some("fr"));
    let copy = to("copy@example.test");
    assert_eq!(copy.mail_from, "bounces@sender.test");
    assert_eq!(copy.header("To").as_deref(), Some("<ann@example.test>"));
    assert_eq!(copy.header("X-Plan").as_deref(), Some("pro"));
    assert_eq!(copy.header("X-Region").as_deref(), Some("eu"));

    let events = receiver
        .wait_for_events(|e| message_events(e, "delivery").len() == 2, WAIT)
        .await;
    let deliveries = message_events(&events, "delivery");
    let event = |rcpt: &str| {
        deliveries
            .iter()
            .find(|e| e["rcpt_to"] == rcpt)
            .unwrap_or_else(|| panic!("no delivery event for {rcpt}"))
    };
    let ann = event("ann@example.test");
    assert_eq!(ann["rcpt_tags"], json!(["new", "eu"]));
    assert_eq!(ann["rcpt_meta"], json!({"plan": "gold", "region": "fr"}));
    assert_eq!(ann["msg_from"], "ann-bounces@sender.test");
    let copy = event("copy@example.test");
    assert_eq!(copy["rcpt_type"], "bcc", "{copy}");
    assert_eq!(copy["rcpt_meta"], json!({"plan": "basic", "region": "eu"}));
}

#[tokio::test]
async fn a_scheduled_send_waits_for_its_start_time_and_can_be_cancelled_before() {
    let sink = sink().await;
    let server = Server::start("scheduled", &fast_config(&hop(sink.addr()))).await;
    let start = now_ms() + 5_000;
    let scheduled = |rcpt: &str| {
        json!({
            "options": {"start_time": iso8601_ms(start)},
            "recipients": [{"address": rcpt}],
            "content": {"from": "shop@sender.test", "subject": "later", "text": "t"},
        })
    };
    let kept = send(&server, scheduled("kept@example.test")).await;
    let dropped = send(&server, scheduled("dropped@example.test")).await;

    let (status, answer) = server.delete(&format!("/transmissions/{dropped}")).await;
    assert_eq!(status, 204, "{answer}");
    let (_, record) = server.get(&format!("/transmissions/{dropped}")).await;
    assert_eq!(record["results"]["transmission"]["state"], "Canceled");
    let (_, record) = server.get(&format!("/transmissions/{kept}")).await;
    let options = &record["results"]["transmission"]["options"];
    assert_eq!(options["start_time"], iso8601_ms(start), "{record}");

    // Well before the start time nothing is sent; after it, only the send not cancelled.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(sink.messages().is_empty(), "sent before its start time");
    let received = sink.wait_for_messages(1, WAIT).await;
    assert!(now_ms() >= start, "sent before its start time");
    assert_eq!(received[0].rcpt_to, ["kept@example.test"]);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(sink.messages().len(), 1, "the cancelled send was sent");

    // A transmission with nothing left to cancel is 404.
    let (status, _) = server.delete(&format!("/transmissions/{kept}")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn without_substitutions_the_body_is_sent_as_written() {
    let sink = sink().await;
    let server = Server::start("no-substitutions", &fast_config(&hop(sink.addr()))).await;
    send(
        &server,
        json!({
            "options": {"perform_substitutions": false},
            "substitution_data": {"name": "Ann"},
            "recipients": [{"address": "ann@example.test"}],
            "content": {"from": "shop@sender.test", "subject": "Hi {{name}}",
                        "text": "Dear {{name}}", "html": "<p>{{if name}}x{{end}}</p>"},
        }),
    )
    .await;
    let received = sink.wait_for_messages(1, WAIT).await;
    let message = mail_parser::MessageParser::default()
        .parse(&received[0].data)
        .expect("parses");
    assert_eq!(
        message.subject(),
        Some("Hi Ann"),
        "headers are still rendered"
    );
    assert_eq!(message.body_text(0).as_deref(), Some("Dear {{name}}"));
    assert_eq!(
        message.body_html(0).as_deref(),
        Some("<p>{{if name}}x{{end}}</p>")
    );
}

#[tokio::test]
async fn a_transmission_too_slow_to_generate_is_refused_whole() {
    let sink = sink().await;
    let api = "max_generation_time = \"20ms\"\n";
    let server = Server::start_with_api("slow", api, &fast_config(&hop(sink.addr()))).await;
    let recipients: Vec<Value> = (0..40)
        .map(|i| json!({"address": format!("r{i}@example.test")}))
        .collect();
    // 90,000 loop iterations per recipient: far over 20 ms for the forty, on any machine.
    let items: Vec<u32> = (0..300).collect();
    let (status, answer) = server
        .post(
            "/transmissions",
            &json!({
                "substitution_data": {"rows": items, "cols": items},
                "recipients": recipients,
                "content": {"from": "a@sender.test", "subject": "s",
                            "text": "{{each rows}}{{each cols}}.{{end}}{{end}}"},
            }),
        )
        .await;
    assert_eq!(status, 413, "{answer}");
    let description = answer["errors"][0]["description"].as_str().unwrap_or("");
    assert!(description.contains("max_generation_time"), "{answer}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(sink.messages().is_empty(), "nothing was queued");
}

/// node-sparkpost makes a cc copy's `header_to` every primary recipient, joined with commas,
/// and both client libraries put the `CC` header beside a stored template's id.
#[tokio::test]
async fn cc_copies_show_every_primary_recipient_and_work_with_stored_templates() {
    let sink = sink().await;
    let server = Server::start("cc-copies", &fast_config(&hop(sink.addr()))).await;
    let template = json!({"id": "note", "name": "note", "published": true,
        "content": {"from": "shop@sender.test", "subject": "Hi {{address.name}}", "text": "t"}});
    assert_eq!(server.post("/templates", &template).await.0, 200);
    let copy = json!({"email": "cc@example.test", "header_to": "\"Ann\" <ann@example.test>, bob@example.test"});
    for (content, copies) in [
        (
            json!({"from": "shop@sender.test", "subject": "s", "text": "t"}),
            "inline",
        ),
        (json!({"template_id": "note"}), "template"),
    ] {
        let mut content = content;
        content["headers"] = json!({"CC": "cc@example.test"});
        let request = json!({
            "campaign_id": copies,
            "recipients": [
                {"address": {"email": "ann@example.test", "name": "Ann"}},
                {"address": "bob@example.test"},
                {"address": copy},
            ],
            "content": content,
        });
        let (status, answer) = server.post("/transmissions", &request).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer["results"]["total_accepted_recipients"], 3,
            "{answer}"
        );
        let received = sink.wait_for_messages(3, WAIT).await;
        let cc = received
            .iter()
            .find(|m| m.rcpt_to == ["cc@example.test"])
            .unwrap_or_else(|| panic!("no copy for the cc ({copies})"));
        assert_eq!(
            cc.header("To").as_deref(),
            Some("\"Ann\" <ann@example.test>, <bob@example.test>"),
            "{copies}"
        );
        assert_eq!(
            cc.header("CC").as_deref(),
            Some("cc@example.test"),
            "{copies}"
        );
        sink.drain_messages();
    }
}

#[tokio::test]
async fn without_a_return_path_the_built_ins_show_the_from_address() {
    let sink = sink().await;
    let server = Server::start("env-from", &fast_config(&hop(sink.addr()))).await;
    let request = json!({
        "recipients": [{"address": "ann@example.test"}],
        "content": {"from": "shop@sender.test", "subject": "s", "text": "[{{return_path}}][{{env_from}}]"},
    });
    send(&server, request).await;
    let received = sink.wait_for_messages(1, WAIT).await;
    assert_eq!(received[0].mail_from, "shop@sender.test");
    assert!(
        received[0]
            .body_text()
            .contains("[shop@sender.test][shop@sender.test]"),
        "{}",
        received[0].body_text()
    );
}
