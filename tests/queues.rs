//! End-to-end: the operator's queue endpoints as a client sees them: how bodies are read,
//! which scopes can be suspended, and how errors are shaped.

mod support;

use serde_json::{json, Value};
use support::{Server, KEY};

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
