//! End-to-end tests of the event stream: the real `sluice` binary posting signed, authenticated
//! batches to a testkit webhook receiver through outages and a crash, replaying from the log,
//! and answering the events search.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{json, Value};
use sluice_testkit::smtp::{Script, SmtpSink};
use sluice_testkit::webhook::{Behaviour, RecordedRequest, WebhookReceiver};
use support::{hop, message_events, Server};

const WAIT: Duration = Duration::from_secs(30);

async fn sink() -> SmtpSink {
    SmtpSink::start("127.0.0.1:0".parse().expect("addr"), Script::new())
        .await
        .expect("starting the sink")
}

async fn receiver(behaviour: Behaviour) -> WebhookReceiver {
    WebhookReceiver::start("127.0.0.1:0".parse().expect("addr"), behaviour)
        .await
        .expect("starting the receiver")
}

/// Fast retries and small batches, so outages and retries happen within a test's time.
fn config(route_to: &str) -> String {
    format!(
        "[routes]\n\"example.test\" = \"{route_to}\"\n\
         [queue]\nretry_schedule = [\"1s\"]\nretry_jitter = 0.0\n\
         [webhooks]\nbatch_interval = \"100ms\"\nbatch_size = 4\nretry_schedule = [\"200ms\"]\n"
    )
}

async fn create_webhook(server: &Server, body: Value) -> Value {
    let (status, answer) = server.post("/webhooks", &body).await;
    assert_eq!(status, 200, "creating the webhook: {answer}");
    answer["results"].clone()
}

async fn send(server: &Server, campaign: &str, locals: &[&str]) {
    let recipients: Vec<Value> = locals
        .iter()
        .map(|l| json!({"address": format!("{l}@example.test")}))
        .collect();
    let (status, body) = server
        .post(
            "/transmissions",
            &json!({
                "campaign_id": campaign,
                "recipients": recipients,
                "content": {"from": "shop@sender.test", "subject": "Hello", "text": "Hi"}
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Recipients with both an injection and a delivery event among `events`.
fn fully_reported(events: &[Value]) -> BTreeSet<String> {
    let rcpts = |kind: &str| -> BTreeSet<String> {
        message_events(events, kind)
            .iter()
            .filter_map(|e| e["rcpt_to"].as_str().map(str::to_string))
            .collect()
    };
    rcpts("injection")
        .intersection(&rcpts("delivery"))
        .cloned()
        .collect()
}

/// The event ids in a request's body.
fn event_ids(request: &RecordedRequest) -> BTreeSet<String> {
    request
        .events()
        .iter()
        .filter_map(|e| e.get("msys")?.as_object()?.values().next()?.get("event_id"))
        .filter_map(|id| id.as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn every_event_arrives_through_outage_slowness_and_a_crash_with_stable_batch_ids() {
    let sink = sink().await;
    let receiver = receiver(Behaviour::new()).await;
    let mut server = Server::start("events-outage", &config(&hop(sink.addr()))).await;
    create_webhook(
        &server,
        json!({"name": "outage", "target": receiver.url(), "events": ["injection", "delivery"]}),
    )
    .await;

    // Down: every batch is refused for a while.
    receiver.set_behaviour(Behaviour::new().statuses(vec![500; 6]));
    send(&server, "first", &["a1", "a2", "a3", "a4", "a5"]).await;
    receiver.wait_for_requests(4, WAIT).await;

    // A crash in the middle of the retries.
    server.kill();
    server.restart().await;

    // Slow, then healthy.
    receiver.set_behaviour(Behaviour::new().delay(Duration::from_millis(300)));
    send(&server, "second", &["b1", "b2", "b3", "b4", "b5"]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    receiver.set_behaviour(Behaviour::new());

    let events = receiver
        .wait_for_events(|events| fully_reported(events).len() == 10, WAIT)
        .await;
    assert_eq!(fully_reported(&events).len(), 10, "log:\n{}", server.log());

    // Each batch keeps its id and its events on every attempt, across the crash too.
    let requests: Vec<RecordedRequest> = receiver
        .requests()
        .into_iter()
        .filter(|r| r.header("x-messagesystems-batch-id").is_some() && !event_ids(r).is_empty())
        .collect();
    let mut by_batch: BTreeMap<String, Vec<&RecordedRequest>> = BTreeMap::new();
    for request in &requests {
        let id = request.header("x-messagesystems-batch-id").unwrap_or("");
        by_batch.entry(id.to_string()).or_default().push(request);
    }
    let failed = requests.iter().filter(|r| !r.is_success()).count();
    assert!(failed >= 4, "the outage refused {failed} batches");
    for (id, attempts) in &by_batch {
        assert!(
            attempts.iter().any(|r| r.is_success()),
            "batch {id} was never accepted"
        );
        let first = event_ids(attempts[0]);
        assert!(
            attempts.iter().all(|r| event_ids(r) == first),
            "batch {id} changed its events between attempts"
        );
    }
    assert!(
        by_batch.values().any(|attempts| attempts.len() > 1),
        "some batch should have been retried"
    );
}

fn verify_signature(request: &RecordedRequest, secret: &str) {
    let header = request
        .header("x-sluice-signature")
        .expect("every request is signed");
    let (t, v1) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .expect("signature has t= and v1=");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(&request.body);
    let expected: String = ring::hmac::sign(&key, &signed)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1, expected, "signature of {:?}", request.body);
}

#[tokio::test]
async fn requests_are_signed_and_basic_auth_is_sent() {
    let sink = sink().await;
    let receiver = receiver(Behaviour::new().basic_auth("hook", "s3cret")).await;
    let server = Server::start("events-basic", &config(&hop(sink.addr()))).await;

    let (status, body) = server
        .post("/webhooks", &json!({"name": "b", "target": receiver.url(), "auth_type": "basic", "auth_credentials": {"username": "hook", "password": "wrong"}}))
        .await;
    assert_eq!(status, 400, "a wrong password fails the test batch: {body}");
    let (status, body) = server
        .post(
            "/webhooks",
            &json!({"name": "b", "target": receiver.url(), "auth_type": "basic"}),
        )
        .await;
    assert_eq!(status, 422, "basic without credentials: {body}");

    let created = create_webhook(&server, json!({"name": "b", "target": receiver.url(), "auth_type": "basic", "auth_credentials": {"username": "hook", "password": "s3cret"}})).await;
    let secret = created["signing_secret"]
        .as_str()
        .expect("a signing secret")
        .to_string();
    let id = created["id"].as_str().expect("id");
    let (_, shown) = server.get(&format!("/webhooks/{id}")).await;
    assert_eq!(shown["results"]["signing_secret"], secret.as_str());

    send(&server, "signed", &["s1", "s2"]).await;
    receiver
        .wait_for_events(|events| fully_reported(events).len() == 2, WAIT)
        .await;
    let accepted: Vec<_> = receiver
        .requests()
        .into_iter()
        .filter(|r| r.is_success())
        .collect();
    assert!(accepted.len() >= 2);
    for request in &accepted {
        verify_signature(request, &secret);
    }
}

#[tokio::test]
async fn oauth2_tokens_are_fetched_and_renewed_when_the_target_refuses_one() {
    let sink = sink().await;
    let receiver = receiver(Behaviour::new().oauth2("client", "secret")).await;
    let server = Server::start("events-oauth2", &config(&hop(sink.addr()))).await;
    let details = |secret: &str| json!({"url": receiver.token_url(), "body": {"client_id": "client", "client_secret": secret}});

    let (status, body) = server
        .post("/webhooks", &json!({"name": "o", "target": receiver.url(), "auth_type": "oauth2", "auth_request_details": details("wrong")}))
        .await;
    assert_eq!(
        status, 400,
        "a refused token request refuses the webhook: {body}"
    );
    let (status, _) = server
        .post("/webhooks", &json!({"name": "o", "target": receiver.url(), "auth_type": "oauth2", "auth_request_details": {"url": 5}}))
        .await;
    assert_eq!(status, 422);

    let created = create_webhook(&server, json!({"name": "o", "target": receiver.url(), "auth_type": "oauth2", "auth_request_details": details("secret")})).await;
    let issued = receiver.tokens_issued();
    assert_eq!(issued, 1);
    let (_, shown) = server
        .get(&format!(
            "/webhooks/{}",
            created["id"].as_str().unwrap_or("")
        ))
        .await;
    assert!(
        shown["results"]["auth_credentials"]["access_token"].is_string(),
        "{shown}"
    );

    // The target says the token expired: a new one is fetched and the batch sent again at once.
    receiver.set_behaviour(
        Behaviour::new()
            .oauth2("client", "secret")
            .statuses(vec![401]),
    );
    send(&server, "oauth", &["o1"]).await;
    receiver
        .wait_for_events(|events| fully_reported(events).len() == 1, WAIT)
        .await;
    assert_eq!(
        receiver.tokens_issued(),
        2,
        "one token at creation, one after the 401"
    );
    assert!(receiver.batches().iter().all(|r| r
        .header("authorization")
        .is_some_and(|a| a.starts_with("Bearer "))));
}

#[tokio::test]
async fn replay_sends_the_log_again_and_the_catalogue_answers() {
    let sink = sink().await;
    let receiver = receiver(Behaviour::new()).await;
    let server = Server::start("events-replay", &config(&hop(sink.addr()))).await;
    let created = create_webhook(&server, json!({"name": "r", "target": receiver.url()})).await;
    let id = created["id"].as_str().expect("id").to_string();
    let before = "2020-01-01T00:00:00Z";

    send(&server, "replayed", &["r1", "r2"]).await;
    receiver
        .wait_for_events(|events| fully_reported(events).len() == 2, WAIT)
        .await;
    let first = message_events(&receiver.events(), "delivery").len();

    for bad in [
        json!({}),
        json!({"from": "yesterday"}),
        json!({"from": "2999-01-01T00:00:00Z"}),
    ] {
        let (status, body) = server.post(&format!("/webhooks/{id}/replay"), &bad).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    let (status, _) = server
        .post("/webhooks/nope/replay", &json!({"from": before}))
        .await;
    assert_eq!(status, 404);
    let (status, body) = server
        .post(&format!("/webhooks/{id}/replay"), &json!({"from": before}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["results"]["message"].is_string());
    receiver
        .wait_for_events(
            |events| message_events(events, "delivery").len() >= 2 * first,
            WAIT,
        )
        .await;
    assert_eq!(
        message_events(&receiver.events(), "delivery").len(),
        2 * first
    );

    let (status, docs) = server.get("/webhooks/events/documentation").await;
    assert_eq!(status, 200);
    let delivery = &docs["results"]["message_event"]["events"]["delivery"];
    assert_eq!(delivery["event"]["type"]["sampleValue"], "delivery");
    let (status, samples) = server
        .get("/webhooks/events/samples?events=delivery,click")
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        samples["results"][0]["msys"]["message_event"]["type"],
        "delivery"
    );
    assert_eq!(
        samples["results"][1]["msys"]["track_event"]["type"],
        "click"
    );
    let (status, _) = server.get("/webhooks/events/samples?events=nope").await;
    assert_eq!(status, 422);
}

/// An events search path for `query`. The default window ends a minute ago, so the tests,
/// which search events of the last seconds, give the end of the window themselves.
fn search(query: &str) -> String {
    format!("/events/message?to=2100-01-01T00:00:00Z&{query}")
}

/// Follows `links.next` from `path` and returns every event and each page's `total_count`.
async fn all_pages(server: &Server, path: &str) -> (Vec<Value>, Vec<u64>) {
    let (mut events, mut totals) = (Vec::new(), Vec::new());
    let mut next = Some(path.to_string());
    while let Some(path) = next.take() {
        let (status, page) = server.get(&path).await;
        assert_eq!(status, 200, "{path}: {page}");
        events.extend(page["results"].as_array().cloned().unwrap_or_default());
        totals.push(page["total_count"].as_u64().unwrap_or(0));
        next = page["links"]["next"]
            .as_str()
            .map(|link| link.trim_start_matches("/api/v1").to_string());
    }
    (events, totals)
}

#[tokio::test]
async fn events_search_filters_and_pages_return_exactly_the_matching_events() {
    let sink = sink().await;
    let server = Server::start("events-search", &config(&hop(sink.addr()))).await;
    send(&server, "spring-sale", &["p1", "p2", "p3", "p4"]).await;
    send(&server, "autumn", &["q1", "q2", "q3"]).await;
    sink.wait_for_messages(7, WAIT).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, page) = server.get(&search("events=delivery")).await;
        if page["total_count"] == 7 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (all, _) = all_pages(&server, &search("per_page=100")).await;
    assert_eq!(all.len(), 14, "7 injections and 7 deliveries");
    let (paged, totals) = all_pages(&server, &search("per_page=3")).await;
    assert_eq!(totals.len(), 5);
    assert!(totals.iter().all(|t| *t == 14));
    let ids = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .map(|e| e["event_id"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(ids(&paged), ids(&all));

    let (sale, totals) = all_pages(
        &server,
        &search("events=delivery&campaigns=sale&per_page=2"),
    )
    .await;
    assert_eq!(sale.len(), 4);
    assert_eq!(totals, [4, 4]);
    assert!(sale
        .iter()
        .all(|e| e["type"] == "delivery" && e["campaign_id"] == "spring-sale"));
    let (one, _) = all_pages(&server, &search("recipients=Q2@example.test")).await;
    assert_eq!(one.len(), 2);
    assert!(one.iter().all(|e| e["rcpt_to"] == "q2@example.test"));
    let message = one[0]["message_id"].as_str().unwrap_or("").to_string();
    let (by_message, _) = all_pages(
        &server,
        &search(&format!("messages={message}&events=injection")),
    )
    .await;
    assert_eq!(by_message.len(), 1);
    assert!(by_message[0]["timestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let (none, _) = all_pages(
        &server,
        &search("campaigns=sale&recipients=q1@example.test"),
    )
    .await;
    assert!(none.is_empty());

    let wanted = [&all[0], &all[5]].map(|e| e["event_id"].as_str().unwrap_or("").to_string());
    let (by_id, _) = all_pages(&server, &search(&format!("event_ids={}", wanted.join(",")))).await;
    assert_eq!(ids(&by_id), wanted);
    let count = |events: Vec<Value>| events.len();
    for (filter, expected) in [
        ("sending_domains=sender.test", 14),
        ("sending_domains=sender", 14),
        ("sending_domains=other.test", 0),
        ("subaccounts=0", 14),
        ("subaccounts=3", 0),
        ("reasons=unknown", 0),
        ("mailbox_providers=google", 0),
        ("ab_tests=welcome", 0),
    ] {
        let (found, _) = all_pages(&server, &search(filter)).await;
        assert_eq!(count(found), expected, "{filter}");
    }
    assert!(all.iter().all(|e| e["sending_domain"] == "sender.test"));

    let (_, page) = server.get(&search("events=injection&per_page=1")).await;
    let next = page["links"]["next"].as_str().unwrap_or("");
    assert!(
        next.contains("events=injection")
            && next.contains("per_page=1")
            && next.contains("cursor="),
        "{next}"
    );
    for bad in [
        "per_page=0",
        "events=nope",
        "cursor=x",
        "from=tomorrow",
        "event_ids=seven",
        "ab_test_versions=1",
    ] {
        let (status, body) = server.get(&format!("/events/message?{bad}")).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(body["errors"][0]["message"].is_string());
    }
}
