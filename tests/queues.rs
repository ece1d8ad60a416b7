//! End-to-end: the operator's queue endpoints as a client sees them: how bodies are read,
//! which scopes can be suspended, how errors are shaped, that neither retrying nor resuming
//! sends a scheduled message before its start time, and that a suspension also holds what
//! delivery has already queued.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice_core::clock::{iso8601_ms, now_ms};
use sluice_testkit::smtp::{Reply, Script, SmtpSink};
use support::{hop, Server, KEY};

const WAIT: Duration = Duration::from_secs(30);

/// Config routing `example.test` to `route_to` whose retry wait (10 minutes) no test outlives:
/// whatever is sent again is sent because an operator asked.
fn slow_retry_config(route_to: &str) -> String {
    format!(
        "[routes]\n\"example.test\" = \"{route_to}\"\n\
         [queue]\nretry_schedule = [\"10m\"]\nretry_jitter = 0.0\n"
    )
}

async fn sink(script: Script) -> SmtpSink {
    SmtpSink::start("127.0.0.1:0".parse().expect("addr"), script)
        .await
        .expect("starting the sink")
}

/// Sends one message to `rcpt`, at `start_ms` if given, and returns the transmission id.
async fn send(server: &Server, rcpt: &str, start_ms: Option<u64>) -> String {
    let mut request = json!({
        "recipients": [{"address": rcpt}],
        "content": {"from": "shop@sender.test", "subject": "s", "text": "t"},
    });
    if let Some(start) = start_ms {
        request["options"] = json!({"start_time": iso8601_ms(start)});
    }
    let (status, answer) = server.post("/transmissions", &request).await;
    assert_eq!(status, 200, "{answer}");
    answer["results"]["id"].as_str().expect("an id").to_string()
}

/// The id of the message injected for `rcpt`, from the events search.
async fn message_id(server: &Server, rcpt: &str) -> String {
    let path =
        format!("/events/message?to=2100-01-01T00:00:00Z&events=injection&recipients={rcpt}");
    let (status, page) = server.get(&path).await;
    assert_eq!(status, 200, "{page}");
    page["results"][0]["message_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no injection event for {rcpt}: {page}"))
        .to_string()
}

/// The queue state `GET /messages/{id}` reports.
async fn state(server: &Server, id: &str) -> Value {
    let (status, body) = server.get(&format!("/messages/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body["results"]["state"].clone()
}

/// The queue's summary of `example.test`, once `ready` holds for it or `WAIT` has passed.
async fn example_test_once(server: &Server, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, summary) = server.get("/queues").await;
        let domain = summary["results"]["domains"]["example.test"].clone();
        if ready(&domain) || Instant::now() > deadline {
            return domain;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// POSTs `body` as it is, with no `Content-Type`, and returns the status and answer.
async fn post_raw(server: &Server, path: &str, body: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", server.api))
        .header("Authorization", KEY)
        .body(body.to_string())
        .send()
        .await
        .expect("calling the API");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn queue_bodies_are_read_as_json_without_a_content_type() {
    let server = Server::start("queues-no-content-type", "").await;
    let (status, body) = post_raw(&server, "/queues/suspend", r#"{"domain":"example.test"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"]["suspended"], "domain:example.test");
    let (status, body) = post_raw(&server, "/queues/resume", r#"{"domain":"example.test"}"#).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post_raw(&server, "/queues/retry", r#"{"campaign_id":"spring"}"#).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post_raw(&server, "/queues/cancel", r#"{"campaign_id":"spring"}"#).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn bad_queue_bodies_get_sparkpost_errors_with_a_code() {
    let server = Server::start("queues-error-codes", "").await;
    let cases = [
        ("not json", 400, "1200"),
        (r#"{"domain": 5}"#, 422, "1300"),
        ("{}", 422, "1400"),
        (r#"{"campaign_id":"spring"}"#, 422, "1300"),
    ];
    for (sent, status, code) in cases {
        let (got, body) = post_raw(&server, "/queues/suspend", sent).await;
        assert_eq!(got, status, "{sent}: {body}");
        assert_eq!(body["errors"][0]["code"], code, "{sent}: {body}");
        assert!(body["errors"][0]["message"].is_string(), "{sent}: {body}");
    }
    let (_, body) = server
        .post("/queues/suspend", &json!({"transmission_id": "1"}))
        .await;
    let description = body["errors"][0]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(description.contains("a site"), "{body}");
}

#[tokio::test]
async fn only_a_site_delivery_can_send_to_can_be_suspended() {
    let server = Server::start("queues-sites", &support::fast_config("127.0.0.1:2525")).await;
    for site in [
        "google",
        "route:127.0.0.1:2525",
        "mx1.example.test,mx2.example.test",
    ] {
        let (status, body) = server.post("/queues/suspend", &json!({"site": site})).await;
        assert_eq!(status, 200, "{site}: {body}");
        assert_eq!(body["results"]["suspended"], format!("site:{site}"));
    }
    for site in ["gogle", "route:127.0.0.1:25", "mx1.example.test,", "a/b"] {
        let (status, body) = server.post("/queues/suspend", &json!({"site": site})).await;
        assert_eq!(status, 422, "{site}: {body}");
        assert_eq!(body["errors"][0]["code"], "1300", "{body}");
        let description = body["errors"][0]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(description.starts_with("site: "), "{body}");
    }
    let (_, summary) = server.get("/queues").await;
    assert_eq!(
        summary["results"]["suspended"].as_array().map(Vec::len),
        Some(3)
    );
    // Lifting a suspension never asks, so none can be left stuck.
    let (status, body) = server
        .post("/queues/resume", &json!({"site": "gogle"}))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn retry_sends_a_deferred_message_now_but_a_scheduled_one_only_at_its_start_time() {
    let script = Script::new().rcpt(
        "deferred@example.test",
        vec![Reply::new(451, "4.3.0 try again later"), Reply::ok()],
    );
    let sink = sink(script).await;
    let server = Server::start("queues-retry", &slow_retry_config(&hop(sink.addr()))).await;
    let start = now_ms() + 60_000;
    let scheduled = send(&server, "scheduled@example.test", Some(start)).await;
    send(&server, "deferred@example.test", None).await;
    let domain = example_test_once(&server, |d| d["last_reply"].is_string()).await;
    assert!(domain["last_reply"].is_string(), "no deferral: {domain}");

    let by_transmission = json!({"transmission_id": scheduled});
    let (status, answer) = server.post("/queues/retry", &by_transmission).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"]["messages"], 0, "{answer}");
    let by_domain = json!({"domain": "example.test"});
    let (_, answer) = server.post("/queues/retry", &by_domain).await;
    assert_eq!(
        answer["results"]["messages"], 1,
        "only the deferred one: {answer}"
    );

    let received = sink.wait_for_messages(1, WAIT).await;
    assert_eq!(received[0].rcpt_to, ["deferred@example.test"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sink.messages().len(), 1, "the scheduled send went early");
    let id = message_id(&server, "scheduled@example.test").await;
    assert_eq!(state(&server, &id).await, "scheduled");
    let domain = example_test_once(&server, |d| d["count"] == 1).await;
    assert_eq!(domain["next_attempt"], iso8601_ms(start), "{domain}");
}

#[tokio::test]
async fn suspend_and_resume_keep_a_future_start_time_and_release_what_came_due_meanwhile() {
    let sink = sink(Script::new()).await;
    let server = Server::start("queues-resume", &slow_retry_config(&hop(sink.addr()))).await;
    let scope = json!({"domain": "example.test"});
    let (status, answer) = server.post("/queues/suspend", &scope).await;
    assert_eq!(status, 200, "{answer}");
    let far = now_ms() + 60_000;
    let soon = now_ms() + 2_000;
    send(&server, "far@example.test", Some(far)).await;
    send(&server, "soon@example.test", Some(soon)).await;

    // The near start time arrives while the domain is suspended: held, and reported so.
    let soon_id = message_id(&server, "soon@example.test").await;
    tokio::time::sleep(Duration::from_millis(soon.saturating_sub(now_ms()) + 2_000)).await;
    assert!(sink.messages().is_empty(), "sent while suspended");
    assert_eq!(state(&server, &soon_id).await, "suspended");

    let (status, answer) = server.post("/queues/resume", &scope).await;
    assert_eq!(status, 200, "{answer}");
    let received = sink.wait_for_messages(1, WAIT).await;
    assert_eq!(received[0].rcpt_to, ["soon@example.test"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        sink.messages().len(),
        1,
        "the far scheduled send went early"
    );
    let far_id = message_id(&server, "far@example.test").await;
    assert_eq!(state(&server, &far_id).await, "scheduled");
}

#[tokio::test]
async fn suspending_a_domain_holds_messages_already_waiting_for_their_turn_to_send() {
    let sink = sink(Script::new()).await;
    let shaping = "[shaping.default]\nmax_message_rate = \"30/m\"\nmax_connections = 1\n";
    let config = slow_retry_config(&hop(sink.addr())) + shaping;
    let server = Server::start("queues-suspend-ready", &config).await;
    let recipients: Vec<Value> = (0..6)
        .map(|i| json!({"address": format!("r{i}@example.test")}))
        .collect();
    let request = json!({
        "recipients": recipients,
        "content": {"from": "shop@sender.test", "subject": "s", "text": "t"},
    });
    let (status, answer) = server.post("/transmissions", &request).await;
    assert_eq!(status, 200, "{answer}");

    // At one message every 2 s, the rest wait in delivery's queue when the suspension comes.
    sink.wait_for_messages(1, WAIT).await;
    let scope = json!({"domain": "example.test"});
    assert_eq!(server.post("/queues/suspend", &scope).await.0, 200);
    // By then each one has had its turn (the last at about 10 s) and been held, not sent.
    tokio::time::sleep(Duration::from_secs(13)).await;
    let sent = sink.messages().len();
    assert!(sent <= 2, "{sent} of 6 sent after the suspension");
    // Held for one retry step: 10 minutes.
    let (_, summary) = server.get("/queues").await;
    let domain = &summary["results"]["domains"]["example.test"];
    assert_eq!(domain["count"], 6 - sent, "{domain}");
    let held_until = iso8601_ms(now_ms() + 300_000);
    assert!(
        domain["next_attempt"].as_str() > Some(held_until.as_str()),
        "{domain}"
    );

    assert_eq!(server.post("/queues/resume", &scope).await.0, 200);
    assert_eq!(sink.wait_for_messages(6, WAIT).await.len(), 6);
}
