//! Integration tests for the webhook receiver, driven with raw HTTP/1.1 over TCP.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_json::{json, Value};
use sluice_testkit::{Behaviour, WebhookReceiver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LOOPBACK: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
const STEP: Duration = Duration::from_secs(10);

/// A parsed HTTP response: status, lower-cased header block, body.
struct Response {
    status: u16,
    head: String,
    body: String,
}

/// Sends one request on a fresh connection and reads the response to EOF.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(text.as_bytes()).await?;
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.map(|_| raw)
    };
    let raw = tokio::time::timeout(STEP, exchange)
        .await
        .expect("in time")
        .expect("HTTP exchange");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
    let status = head
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    Response {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

async fn post_json(receiver: &WebhookReceiver, headers: &[(&str, &str)], body: &Value) -> u16 {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    request(receiver.addr(), "POST", "/webhook", &all, &body.to_string())
        .await
        .status
}

fn delivery(message_id: &str) -> Value {
    json!({"msys": {"message_event": {"type": "delivery", "message_id": message_id}}})
}

#[tokio::test]
async fn batches_are_recorded_and_failed_ones_excluded_from_events() {
    let behaviour = Behaviour::new().statuses(vec![503]);
    let receiver = WebhookReceiver::start(LOOPBACK, behaviour)
        .await
        .expect("start");
    assert!(receiver.url().ends_with("/webhook"));
    let batch = json!([delivery("m1"), delivery("m2")]);
    let batch_id = [("X-MessageSystems-Batch-ID", "b-1")];
    assert_eq!(post_json(&receiver, &batch_id, &batch).await, 503);
    assert_eq!(post_json(&receiver, &batch_id, &batch).await, 200);

    let enough = |events: &[Value]| events.len() >= 2;
    let events = receiver.wait_for_events(enough, STEP).await;
    assert_eq!(events, [delivery("m1"), delivery("m2")]);
    let requests = receiver.requests();
    assert_eq!(
        requests.iter().map(|r| r.status).collect::<Vec<_>>(),
        [503, 200]
    );
    assert_eq!(requests[0].header("X-MESSAGESYSTEMS-BATCH-ID"), Some("b-1"));
    assert_eq!(requests[1].path, "/webhook");
    assert_eq!(receiver.batches().len(), 1);
    assert_eq!(receiver.batches()[0].json(), Some(batch));
}

#[tokio::test]
async fn basic_auth_and_required_header_are_enforced() {
    let behaviour = Behaviour::new()
        .basic_auth("user", "pass")
        .require_header("X-Tenant", "t1");
    let receiver = WebhookReceiver::start(LOOPBACK, behaviour)
        .await
        .expect("start");
    let body = json!([delivery("m1")]);
    let unauthenticated = request(receiver.addr(), "POST", "/webhook", &[], "[]").await;
    assert_eq!(unauthenticated.status, 401);
    assert!(unauthenticated.head.contains("www-authenticate: basic"));
    // "dXNlcjpwYXNz" is base64 for "user:pass".
    let auth = ("Authorization", "Basic dXNlcjpwYXNz");
    assert_eq!(post_json(&receiver, &[auth], &body).await, 400);
    assert_eq!(
        post_json(&receiver, &[auth, ("X-Tenant", "t1")], &body).await,
        200
    );
    let get = request(
        receiver.addr(),
        "GET",
        "/webhook",
        &[auth, ("X-Tenant", "t1")],
        "",
    )
    .await;
    assert_eq!(get.status, 405);
    assert_eq!(receiver.requests().len(), 4);
    assert_eq!(receiver.events().len(), 1);
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

/// Requests a token with `client_secret_post` credentials.
async fn token_request(receiver: &WebhookReceiver, secret: &str) -> Response {
    let form = format!("grant_type=client_credentials&client_id=sluice&client_secret={secret}");
    request(receiver.addr(), "POST", "/token", &[FORM], &form).await
}

#[tokio::test]
async fn token_endpoint_checks_client_credentials() {
    let behaviour = Behaviour::new().oauth2("sluice", "s3cret");
    let receiver = WebhookReceiver::start(LOOPBACK, behaviour)
        .await
        .expect("start");
    assert_eq!(token_request(&receiver, "wrong").await.status, 401);
    let issued = token_request(&receiver, "s3cret").await;
    assert_eq!(issued.status, 200);
    let token: Value = serde_json::from_str(&issued.body).expect("a JSON token response");
    assert_eq!(token["expires_in"], 3600);
    assert_eq!(token["token_type"], "bearer");
    // client_secret_basic: "c2x1aWNlOnMzY3JldA==" is base64 for "sluice:s3cret".
    let basic = [FORM, ("Authorization", "Basic c2x1aWNlOnMzY3JldA==")];
    let body = "grant_type=client_credentials";
    assert_eq!(
        request(receiver.addr(), "POST", "/token", &basic, body)
            .await
            .status,
        200
    );
    // A SparkPost-style token request: a JSON object without grant_type.
    let json_type = [("Content-Type", "application/json")];
    let sparkpost_style = r#"{"client_id":"sluice","client_secret":"s3cret"}"#;
    let via_json = request(
        receiver.addr(),
        "POST",
        "/token",
        &json_type,
        sparkpost_style,
    )
    .await;
    assert_eq!(via_json.status, 200);
    let wrong_grant = "grant_type=password&client_id=sluice&client_secret=s3cret";
    let refused = request(receiver.addr(), "POST", "/token", &[FORM], wrong_grant).await;
    assert_eq!(refused.status, 400);
    assert_eq!(receiver.tokens_issued(), 3);
    assert!(
        receiver.requests().is_empty(),
        "token requests are not recorded"
    );
}

#[tokio::test]
async fn issued_tokens_are_accepted_as_bearer_until_they_expire() {
    let behaviour = Behaviour::new().oauth2("sluice", "s3cret");
    let receiver = WebhookReceiver::start(LOOPBACK, behaviour.clone())
        .await
        .expect("start");
    let token: Value = serde_json::from_str(&token_request(&receiver, "s3cret").await.body)
        .expect("a JSON token response");
    let bearer = format!(
        "Bearer {}",
        token["access_token"].as_str().expect("a token")
    );
    let body = json!([delivery("m1")]);
    assert_eq!(
        post_json(&receiver, &[("Authorization", &bearer)], &body).await,
        200
    );
    assert_eq!(
        post_json(&receiver, &[("Authorization", "Bearer forged")], &body).await,
        401
    );

    receiver.set_behaviour(behaviour.token_lifetime(Duration::ZERO));
    let token: Value = serde_json::from_str(&token_request(&receiver, "s3cret").await.body)
        .expect("a JSON token response");
    let expired = format!(
        "Bearer {}",
        token["access_token"].as_str().expect("a token")
    );
    assert_eq!(
        post_json(&receiver, &[("Authorization", &expired)], &body).await,
        401
    );
}

#[tokio::test]
async fn behaviour_can_change_while_running_and_requests_can_be_drained() {
    let receiver = WebhookReceiver::start(LOOPBACK, Behaviour::new())
        .await
        .expect("start");
    let body = json!([delivery("m1")]);
    assert_eq!(post_json(&receiver, &[], &body).await, 200);
    receiver.set_behaviour(
        Behaviour::new()
            .status(500)
            .delay(Duration::from_millis(20)),
    );
    assert_eq!(post_json(&receiver, &[], &body).await, 500);
    assert_eq!(receiver.wait_for_requests(2, STEP).await.len(), 2);
    assert_eq!(receiver.drain_requests().len(), 2);
    assert!(receiver.requests().is_empty() && receiver.events().is_empty());
    let none = receiver.wait_for_events(|events| !events.is_empty(), Duration::from_millis(50));
    assert!(none.await.is_empty());
}
