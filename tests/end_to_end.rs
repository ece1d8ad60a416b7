//! End-to-end: the real `sluice` binary, driven over its HTTP API, delivering to SMTP servers
//! on loopback and posting events to a webhook receiver.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use sluice_testkit::smtp::{Reply, Script, SmtpSink};
use sluice_testkit::webhook::{Behaviour, WebhookReceiver};
use support::{hop, message_events, Server};

const WAIT: Duration = Duration::from_secs(30);

async fn sink(script: Script) -> SmtpSink {
    SmtpSink::start("127.0.0.1:0".parse().expect("addr"), script)
        .await
        .expect("starting the sink")
}

async fn receiver() -> WebhookReceiver {
    WebhookReceiver::start("127.0.0.1:0".parse().expect("addr"), Behaviour::new())
        .await
        .expect("starting the receiver")
}

async fn register_webhook(server: &Server, receiver: &WebhookReceiver) -> String {
    let (status, body) = server
        .post("/webhooks", &json!({"name": "test", "target": receiver.url(), "events": ["injection", "delivery", "delay", "bounce"]}))
        .await;
    assert_eq!(status, 200, "creating the webhook: {body}");
    body["results"]["id"]
        .as_str()
        .expect("webhook id")
        .to_string()
}

fn fast_config(route_to: &str) -> String {
    format!(
        "[routes]\n\"example.test\" = \"{route_to}\"\n\
         [queue]\nretry_schedule = [\"1s\"]\nretry_jitter = 0.0\n\
         [webhooks]\nbatch_interval = \"200ms\"\nretry_schedule = [\"1s\"]\n"
    )
}

#[tokio::test]
async fn each_recipient_gets_one_personalised_message_and_its_events() {
    let sink = sink(Script::new()).await;
    let receiver = receiver().await;
    let server = Server::start("personalised", &fast_config(&hop(sink.addr()))).await;
    register_webhook(&server, &receiver).await;

    let people = [("ann", "Ann"), ("bob", "Bob"), ("zoe", "Zoë")];
    let recipients: Vec<Value> = people
        .iter()
        .map(|(local, name)| json!({"address": {"email": format!("{local}@example.test"), "name": name}, "substitution_data": {"first": name}}))
        .collect();
    let (status, body) = server
        .post("/transmissions", &json!({
            "campaign_id": "welcome",
            "recipients": recipients,
            "substitution_data": {"shop": "Sluice Store"},
            "content": {"from": "shop@sender.test", "subject": "Hello {{first}}", "text": "Dear {{first}}, welcome to {{shop}}."}
        }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"]["total_accepted_recipients"], 3);

    let messages = sink.wait_for_messages(3, WAIT).await;
    assert_eq!(messages.len(), 3, "log:\n{}", server.log());
    for (local, name) in people {
        let rcpt = format!("{local}@example.test");
        let mine: Vec<_> = messages
            .iter()
            .filter(|m| m.rcpt_to == [rcpt.clone()])
            .collect();
        assert_eq!(mine.len(), 1, "{rcpt} should get exactly one message");
        // Non-ASCII subjects arrive as RFC 2047 encoded words.
        let subject = mine[0].header("Subject").unwrap_or_default();
        assert!(
            subject == format!("Hello {name}") || subject.starts_with("=?utf-8?"),
            "{subject}"
        );
        // Non-ASCII text travels quoted-printable, names in headers as encoded words.
        let greeting = format!("Dear {name}, welcome to Sluice Store.").replace('ë', "=C3=AB");
        assert!(
            mine[0].body_text().contains(&greeting),
            "{}",
            mine[0].body_text()
        );
        let to = mine[0].header("To").unwrap_or_default();
        assert!(
            to.is_ascii() && (name.is_ascii() || to.contains("=?utf-8?")),
            "{to}"
        );
    }

    let events = receiver
        .wait_for_events(|events| message_events(events, "delivery").len() == 3, WAIT)
        .await;
    let ids = |kind: &str| {
        let mut ids: Vec<String> = message_events(&events, kind)
            .iter()
            .map(|e| e["message_id"].as_str().unwrap_or("").to_string())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids("injection").len(), 3);
    assert_eq!(ids("injection"), ids("delivery"));
    let delivery = &message_events(&events, "delivery")[0];
    assert_eq!(delivery["campaign_id"], "welcome");
    assert!(
        delivery["timestamp"].is_string() && delivery["queue_time"].is_string(),
        "{delivery}"
    );
    let batch = &receiver.batches()[1];
    assert!(batch
        .header("x-messagesystems-batch-id")
        .is_some_and(|id| !id.is_empty()));
}

#[tokio::test]
async fn permanent_failures_bounce_and_temporary_ones_delay_then_deliver() {
    let script = Script::new()
        .rcpt(
            "gone@example.test",
            vec![Reply::new(550, "5.1.1 no such user")],
        )
        .rcpt(
            "later@example.test",
            vec![Reply::new(451, "4.3.0 try again later"), Reply::ok()],
        );
    let sink = sink(script).await;
    let receiver = receiver().await;
    let server = Server::start("outcomes", &fast_config(&hop(sink.addr()))).await;
    register_webhook(&server, &receiver).await;

    let (status, body) = server
        .post(
            "/transmissions",
            &json!({
                "recipients": [{"address": "gone@example.test"}, {"address": "later@example.test"}],
                "content": {"from": "shop@sender.test", "subject": "s", "text": "t"}
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let events = receiver
        .wait_for_events(
            |e| {
                !message_events(e, "bounce").is_empty() && !message_events(e, "delivery").is_empty()
            },
            WAIT,
        )
        .await;
    let bounce = message_events(&events, "bounce");
    assert_eq!(bounce.len(), 1, "log:\n{}", server.log());
    assert_eq!(bounce[0]["rcpt_to"], "gone@example.test");
    assert_eq!(bounce[0]["bounce_class"], "10");
    assert_eq!(bounce[0]["error_code"], "550");
    assert_eq!(bounce[0]["raw_reason"], "550 5.1.1 no such user");

    let delay = message_events(&events, "delay");
    let delivery = message_events(&events, "delivery");
    assert_eq!(
        delay.len(),
        1,
        "events: {events:#?}\nlog:\n{}",
        server.log()
    );
    assert_eq!(delay[0]["rcpt_to"], "later@example.test");
    assert_eq!(delay[0]["error_code"], "451");
    assert_eq!(delivery.len(), 1, "log:\n{}", server.log());
    assert_eq!(delivery[0]["message_id"], delay[0]["message_id"]);
    assert_eq!(delivery[0]["num_retries"], "1");
    let delivered: Vec<_> = sink
        .messages()
        .into_iter()
        .filter(|m| m.rcpt_to == ["later@example.test"])
        .collect();
    assert_eq!(delivered.len(), 1);
}

#[tokio::test]
async fn messages_accepted_before_a_crash_are_delivered_after_restart() {
    // Nothing listens on the route yet: every attempt fails and the messages stay queued.
    let port = support::free_port();
    let mut server = Server::start("restart", &fast_config(&format!("127.0.0.1:{port}"))).await;
    let recipients: Vec<Value> = (0..20)
        .map(|i| json!({"address": format!("r{i}@example.test")}))
        .collect();
    let (status, body) = server
        .post("/transmissions", &json!({"recipients": recipients, "content": {"from": "a@sender.test", "subject": "s", "text": "t"}}))
        .await;
    assert_eq!(status, 200, "{body}");

    server.kill();
    let sink = SmtpSink::start(
        format!("127.0.0.1:{port}").parse().expect("addr"),
        Script::new(),
    )
    .await
    .expect("sink");
    server.restart().await;

    let messages = sink.wait_for_messages(20, WAIT).await;
    let mut rcpts: Vec<String> = messages.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    rcpts.sort();
    rcpts.dedup();
    assert_eq!(
        rcpts.len(),
        20,
        "every accepted message arrives after the restart; log:\n{}",
        server.log()
    );
    assert_eq!(messages.len(), 20, "and none twice");
}

#[tokio::test]
async fn bad_requests_are_refused_and_queue_nothing() {
    let sink = sink(Script::new()).await;
    let server = Server::start("bad-input", &fast_config(&hop(sink.addr()))).await;
    let cases = [
        (
            json!({"recipients": [{"address": "a@example.test"}]}),
            422,
            "1400",
        ),
        (
            json!({"recipients": [], "content": {"from": "a@sender.test", "subject": "s", "text": "t"}}),
            422,
            "1400",
        ),
        (
            json!({"recipients": [{"address": "a@example.test"}], "content": {"from": "a@sender.test", "text": "t"}}),
            422,
            "1400",
        ),
        (
            json!({"recipients": [{"address": "a@example.test"}], "content": {"from": "a@sender.test", "subject": "{{if}}", "text": "t"}}),
            422,
            "3000",
        ),
        (
            json!({"recipients": "nobody", "content": {"from": "a@sender.test", "subject": "s", "text": "t"}}),
            422,
            "1300",
        ),
        (
            json!({"recipients": [{"address": "not-an-address"}], "content": {"from": "a@sender.test", "subject": "s", "text": "t"}}),
            422,
            "5002",
        ),
        // Transmission fields over their limits, a stored list and an unknown pool.
        (
            json!({"campaign_id": "c".repeat(65), "recipients": [{"address": "a@example.test"}], "content": {"from": "a@sender.test", "subject": "s", "text": "t"}}),
            422,
            "1300",
        ),
        (
            json!({"metadata": {"m": "x".repeat(10 * 1024)}, "recipients": [{"address": "a@example.test"}], "content": {"from": "a@sender.test", "subject": "s", "text": "t"}}),
            422,
            "1300",
        ),
        (
            json!({"recipients": {"list_id": "members"}, "content": {"from": "a@sender.test", "subject": "s", "text": "t"}}),
            422,
            "1300",
        ),
        (
            json!({"options": {"ip_pool": "nowhere"}, "recipients": [{"address": "a@example.test"}], "content": {"from": "a@sender.test", "subject": "s", "text": "t"}}),
            422,
            "1300",
        ),
        (
            json!({"options": {"start_time": "2020-01-01 10:00"}, "recipients": [{"address": "a@example.test"}], "content": {"from": "a@sender.test", "subject": "s", "text": "t"}}),
            422,
            "1300",
        ),
        // A custom header may not duplicate one Sluice writes, such as a second From.
        (
            json!({"recipients": [{"address": "a@example.test"}], "content": {"from": "a@sender.test", "subject": "s", "text": "t", "headers": {"From": "evil@other.test"}}}),
            422,
            "1300",
        ),
        (
            json!({"recipients": [{"address": "a@b@example.test"}], "content": {"from": "a@sender.test", "subject": "s", "text": "t"}}),
            422,
            "5002",
        ),
        (
            json!({"recipients": [{"address": "a@example.test"}], "content": {"from": {"email": "a@sender.test", "name": "A\r\nBcc: e@example.test"}, "subject": "s", "text": "t"}}),
            422,
            "1300",
        ),
        (
            json!({"recipients": [{"address": "a@example.test"}], "content": {"template_id": "welcome", "subject": "ignored?"}}),
            422,
            "1300",
        ),
        (
            json!({"recipients": [{"address": "a@example.test"}], "content": {"from": "a@sender.test", "subject": "s", "text": "t", "attachments": [{"name": "fwd.eml", "type": "message/rfc822", "data": "AA=="}]}}),
            422,
            "1300",
        ),
        // A recipient's own metadata and substitution data have the transmission's limits.
        (
            json!({"recipients": [{"address": "a@example.test", "metadata": {"m": "x".repeat(10 * 1024)}}], "content": {"from": "a@sender.test", "subject": "s", "text": "t"}}),
            422,
            "5002",
        ),
        (
            json!({"recipients": [{"address": "a@example.test", "substitution_data": {"m": "x".repeat(100 * 1024)}}], "content": {"from": "a@sender.test", "subject": "s", "text": "t"}}),
            422,
            "5002",
        ),
        (
            json!({"recipients": [{"address": "a@example.test"}], "content": {"ab_test_id": "spring"}}),
            422,
            "1300",
        ),
        (
            json!({"recipients": [{"address": "a@example.test"}], "content": {"from": "a@sender.test", "subject": "s", "text": "t", "headers": {"Content-Disposition": "attachment"}}}),
            422,
            "1300",
        ),
        // Address headers must hold addresses, and a single-instance header comes once.
        (
            json!({"recipients": [{"address": "a@example.test"}], "content": {"from": "a@sender.test", "subject": "s", "text": "t", "reply_to": "the help desk"}}),
            422,
            "1300",
        ),
        (
            json!({"recipients": [{"address": "a@example.test"}], "content": {"from": "a@sender.test", "subject": "s", "text": "t", "headers": {"Cc": "Zoë, z@example.test"}}}),
            422,
            "1300",
        ),
        (
            json!({"recipients": [{"address": "a@example.test"}], "content": {"from": "a@sender.test", "subject": "s", "text": "t", "headers": {"Cc": "b@example.test", "cc": "c@example.test"}}}),
            422,
            "1300",
        ),
        (
            json!({"recipients": [{"address": "a@example.test"}], "content": {"email_rfc822": "From: a@sender.test\r\nSubject: one\r\nSubject: two\r\n\r\nt"}}),
            422,
            "1300",
        ),
        (
            json!({"recipients": [{"address": "a@example.test", "substitution_data": {"r": "nobody"}}], "content": {"from": "a@sender.test", "subject": "s", "text": "t", "reply_to": "{{r}}"}}),
            422,
            "5002",
        ),
        // Header injection, through every door: the recipient's name, header_to, and data.
        (
            json!({"recipients": [{"address": {"email": "a@example.test", "name": "A\r\nBcc: evil@example.test"}}], "content": {"from": "a@sender.test", "subject": "s", "text": "t"}}),
            422,
            "5002",
        ),
        (
            json!({"recipients": [{"address": "a@example.test", "return_path": "b@sender.test>\r\nRCPT TO:<evil@example.test"}], "content": {"from": "a@sender.test", "subject": "s", "text": "t"}}),
            422,
            "5002",
        ),
        (
            json!({"recipients": [{"address": {"email": "a@example.test", "header_to": "\"A\r\nBcc: e@example.test\" <a@example.test>"}}], "content": {"from": "a@sender.test", "subject": "s", "text": "t"}}),
            422,
            "5002",
        ),
        (
            json!({"recipients": [{"address": "a@example.test", "substitution_data": {"s": "x\r\nBcc: evil@example.test"}}], "content": {"from": "a@sender.test", "subject": "{{s}}", "text": "t"}}),
            422,
            "5002",
        ),
        (
            json!({"recipients": [{"address": "a@example.test", "substitution_data": {"s": "x\nBcc: evil@example.test"}}], "content": {"email_rfc822": "From: a@sender.test\r\nSubject: {{s}}\r\n\r\nt"}}),
            422,
            "5002",
        ),
        // Attachments, inline images and raw messages that cannot be sent.
        (
            json!({"recipients": [{"address": "a@example.test"}], "content": {"from": "a@sender.test", "subject": "s", "text": "t", "attachments": [{"name": "a", "type": "text/plain", "data": "%%%"}]}}),
            422,
            "1300",
        ),
        (
            json!({"recipients": [{"address": "a@example.test"}], "content": {"from": "a@sender.test", "subject": "s", "text": "t", "inline_images": [{"name": "i", "data": ""}]}}),
            422,
            "1400",
        ),
        (
            json!({"recipients": [{"address": "a@example.test"}], "content": {"email_rfc822": "no headers here"}}),
            422,
            "1400",
        ),
        (
            json!({"recipients": [{"address": "a@example.test"}], "content": {"email_rfc822": "From: a@sender.test\r\n\r\nt", "subject": "s"}}),
            422,
            "1300",
        ),
    ];
    for (body, status, code) in cases {
        let (got, answer) = server.post("/transmissions", &body).await;
        assert_eq!(got, status, "{body} -> {answer}");
        assert_eq!(answer["errors"][0]["code"], code, "{body} -> {answer}");
        assert!(answer["errors"][0]["message"].is_string());
    }
    let unauthorized = reqwest::Client::new()
        .post(format!("{}/transmissions", server.api))
        .header("Authorization", "wrong")
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(unauthorized.status().as_u16(), 401);
    let body: Value = unauthorized.json().await.expect("json");
    assert_eq!(body, json!({"errors": [{"message": "Unauthorized"}]}));

    // Errors axum answers itself get SparkPost's body too: wrong method, over the size limit
    // (last, since the server closes a connection whose body it did not read).
    let (status, answer) = server.put("/transmissions/", &json!({})).await;
    assert_eq!(status, 405);
    assert!(answer["errors"][0]["message"].is_string(), "{answer}");
    // An endpoint Sluice lacks is 404, but one SparkPost has is 501: for the suppression list,
    // SparkPost's 404 would mean "not suppressed".
    let (status, answer) = server.get("/no-such-thing").await;
    assert_eq!(
        (status, &answer["errors"][0]["code"]),
        (404, &json!("1600"))
    );
    for path in [
        "/suppression-list/a@example.test",
        "/metrics/deliverability",
        "/recipient-lists",
    ] {
        let (status, answer) = server.get(path).await;
        assert_eq!(status, 501, "{path}: {answer}");
        assert!(answer["errors"][0]["description"].is_string(), "{answer}");
    }

    let huge = json!({"recipients": [{"address": "a@example.test"}], "content": {"from": "a@sender.test", "subject": "s", "text": "x".repeat(31 << 20)}});
    let (status, answer) = server.post("/transmissions", &huge).await;
    assert_eq!(status, 413);
    assert!(answer["errors"][0]["message"].is_string(), "{answer}");
    assert_eq!(answer["errors"][0]["code"], "1300", "{answer}");

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sink.messages().is_empty(), "nothing was queued");
}

#[tokio::test]
async fn a_transmission_too_big_to_hold_is_refused_whole() {
    let sink = sink(Script::new()).await;
    let api = "max_transmission_bytes = 60000\n";
    let server = Server::start_with_api("held-bytes", api, &fast_config(&hop(sink.addr()))).await;
    let request = |count: usize| {
        let recipients: Vec<Value> = (0..count)
            .map(|i| json!({"address": format!("r{i}@example.test")}))
            .collect();
        json!({"recipients": recipients, "content": {
            "from": "a@sender.test", "subject": "s", "html": "<p>big</p>".repeat(1000)}})
    };

    // Ten messages of about 10 KB each come to more than the limit: none is queued.
    let (status, answer) = server.post("/transmissions", &request(10)).await;
    assert_eq!(status, 413, "{answer}");
    let description = answer["errors"][0]["description"].as_str().unwrap_or("");
    assert!(description.contains("max_transmission_bytes"), "{answer}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(sink.messages().is_empty(), "nothing was queued");

    // Fewer recipients per transmission fit.
    let (status, answer) = server.post("/transmissions", &request(3)).await;
    assert_eq!(status, 200, "{answer}");
    let deadline = tokio::time::Instant::now() + WAIT;
    while sink.messages().len() < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sink.messages().len(), 3);
}

/// Runs `sluice queue …` against `server` and returns its printed answer.
fn queue_cli(server: &Server, args: &[&str]) -> Value {
    let base = server.api.trim_end_matches("/api/v1");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("queue")
        .args(args)
        .env("SLUICE_URL", base)
        .env("SLUICE_API_KEY", support::KEY)
        .output()
        .expect("running sluice queue");
    assert!(
        output.status.success(),
        "sluice queue {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the CLI prints JSON")
}

/// Sends one message to a suspended queue and returns the `delay` event that reports it held.
async fn send_one_held(server: &Server, receiver: &WebhookReceiver) -> Value {
    let (status, body) = server
        .post("/transmissions", &json!({"recipients": [{"address": "held@example.test"}], "content": {"from": "a@sender.test", "subject": "s", "text": "t"}}))
        .await;
    assert_eq!(status, 200, "{body}");
    let events = receiver
        .wait_for_events(|e| !message_events(e, "delay").is_empty(), WAIT)
        .await;
    let delay = message_events(&events, "delay")[0].clone();
    assert_eq!(
        delay["raw_reason"],
        "421 4.4.5 [internal] queue suspended by operator"
    );
    delay
}

#[tokio::test]
async fn an_operator_suspends_a_domain_sees_why_mail_waits_and_resumes_it() {
    let sink = sink(Script::new()).await;
    let receiver = receiver().await;
    let server = Server::start("suspend", &fast_config(&hop(sink.addr()))).await;
    register_webhook(&server, &receiver).await;
    queue_cli(&server, &["suspend", "--domain", "example.test"]);

    let delay = send_one_held(&server, &receiver).await;
    let id = delay["message_id"]
        .as_str()
        .expect("message id")
        .to_string();

    let shown = queue_cli(&server, &["show", &id]);
    assert_eq!(shown["state"], "suspended", "{shown}");
    let summary = queue_cli(&server, &["summary"]);
    assert_eq!(summary["domains"]["example.test"]["count"], 1, "{summary}");
    assert_eq!(summary["suspended"], json!(["domain:example.test"]));
    assert!(
        sink.messages().is_empty(),
        "nothing is sent while suspended"
    );

    queue_cli(&server, &["resume", "--domain", "example.test"]);
    let delivered = sink.wait_for_messages(1, WAIT).await;
    assert_eq!(
        delivered.len(),
        1,
        "resuming sends at once; log:\n{}",
        server.log()
    );
    assert!(
        message_events(&receiver.events(), "bounce").is_empty(),
        "a suspension never bounces"
    );
}

#[tokio::test]
async fn an_operator_suspends_a_site_and_its_messages_wait_until_resumed() {
    let sink = sink(Script::new()).await;
    let receiver = receiver().await;
    let server = Server::start("suspend-site", &fast_config(&hop(sink.addr()))).await;
    register_webhook(&server, &receiver).await;
    // A static route is its own site, named after the hop.
    let site = format!("route:{}", hop(sink.addr()));
    queue_cli(&server, &["suspend", "--site", &site]);

    send_one_held(&server, &receiver).await;
    let summary = queue_cli(&server, &["summary"]);
    assert_eq!(summary["sites"][&site]["count"], 1, "{summary}");
    assert_eq!(summary["sites"][&site]["suspended"], true, "{summary}");
    assert!(
        sink.messages().is_empty(),
        "nothing is sent to a suspended site"
    );

    queue_cli(&server, &["resume", "--site", &site]);
    let delivered = sink.wait_for_messages(1, WAIT).await;
    assert_eq!(delivered.len(), 1, "log:\n{}", server.log());
}

#[tokio::test]
async fn cancelling_a_campaign_reports_each_queued_message_as_a_bounce() {
    let receiver = receiver().await;
    // Nothing listens on the route: the messages stay queued until cancelled.
    let port = support::free_port();
    let server = Server::start("cancel", &fast_config(&format!("127.0.0.1:{port}"))).await;
    register_webhook(&server, &receiver).await;
    let recipients: Vec<Value> = (0..3)
        .map(|i| json!({"address": format!("c{i}@example.test")}))
        .collect();
    let content = json!({"from": "a@sender.test", "subject": "s", "text": "t"});
    let (status, _) = server
        .post(
            "/transmissions",
            &json!({"campaign_id": "spring", "recipients": recipients, "content": content}),
        )
        .await;
    assert_eq!(status, 200);

    let response = reqwest::Client::new()
        .delete(format!("{}/transmissions?campaign_id=spring", server.api))
        .header("Authorization", support::KEY)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status().as_u16(), 204);
    let events = receiver
        .wait_for_events(|e| message_events(e, "bounce").len() == 3, WAIT)
        .await;
    let bounces = message_events(&events, "bounce");
    assert_eq!(bounces.len(), 3, "log:\n{}", server.log());
    for bounce in bounces {
        assert_eq!(bounce["bounce_class"], "25");
        assert_eq!(
            bounce["raw_reason"],
            "554 5.7.1 [internal] Campaign cancelled"
        );
        assert_eq!(bounce["campaign_id"], "spring");
    }
    let summary = queue_cli(&server, &["summary"]);
    assert_eq!(summary["total"], 0, "{summary}");
}
