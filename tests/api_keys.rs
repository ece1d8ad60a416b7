//! End-to-end: API keys created, listed, changed and revoked through the API, and the limits on
//! what one key may do to another.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::Server;

/// A second configured key that may manage keys and send, but holds nothing else.
const LIMITED: &str = "[[api_keys]]\nkey = \"limited-key\"\ngrants = [\"api_keys/manage\", \"transmissions/modify\"]\n";

async fn as_key(
    server: &Server,
    key: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> u16 {
    server.call_as(key, method, path, body).await.0
}

#[tokio::test]
async fn a_created_key_works_at_once_is_never_listed_and_stops_working_when_deleted() {
    let server = Server::start("keys-lifecycle", "").await;
    let body = json!({"label": "ci", "grants": ["templates/view"], "valid_ips": null});
    let (status, created) = server.post("/api-keys", &body).await;
    assert_eq!(status, 200, "{created}");
    let key = created["results"]["key"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let id = created["results"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(key.len(), 40, "{created}");
    assert_ne!(id, key);
    assert_eq!(created["results"]["short_key"], key[..4]);

    assert_eq!(
        as_key(&server, &key, Method::GET, "/templates", None).await,
        200
    );
    assert_eq!(
        as_key(&server, &key, Method::GET, "/webhooks", None).await,
        403
    );

    let (status, list) = server.get("/api-keys").await;
    assert_eq!(status, 200, "{list}");
    assert!(
        !list.to_string().contains(&key),
        "a listing never shows a key: {list}"
    );
    let listed = list["results"].as_array().cloned().unwrap_or_default();
    assert!(listed.iter().any(|k| k["id"] == id && k["label"] == "ci"));
    let (status, one) = server.get(&format!("/api-keys/{id}")).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["results"]["grants"], json!(["templates/view"]));
    assert!(one["results"].get("key").is_none());

    let change = json!({"label": "ci-2", "grants": ["webhooks/view"]});
    let (status, changed) = server.put(&format!("/api-keys/{id}"), &change).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        as_key(&server, &key, Method::GET, "/templates", None).await,
        403
    );
    assert_eq!(
        as_key(&server, &key, Method::GET, "/webhooks", None).await,
        200
    );

    let (status, _) = server.delete(&format!("/api-keys/{id}")).await;
    assert_eq!(status, 204);
    let (status, body) = server.call_as(&key, Method::GET, "/webhooks", None).await;
    assert_eq!(
        (status, body),
        (401, json!({"errors": [{"message": "Unauthorized"}]}))
    );
    assert_eq!(server.get(&format!("/api-keys/{id}")).await.0, 404);
}

#[tokio::test]
async fn a_key_cannot_hand_out_or_touch_more_than_it_holds() {
    let server = Server::start("keys-escalation", LIMITED).await;
    let mint = |grants: Value| json!({"label": "minted", "grants": grants});
    let (status, error) = server
        .call_as(
            "limited-key",
            Method::POST,
            "/api-keys",
            Some(&mint(json!(["*"]))),
        )
        .await;
    assert_eq!(status, 403, "{error}");
    let (status, error) = server
        .call_as(
            "limited-key",
            Method::POST,
            "/api-keys",
            Some(&mint(json!(["templates/view"]))),
        )
        .await;
    assert_eq!(status, 403, "{error}");
    let (status, created) = server
        .call_as(
            "limited-key",
            Method::POST,
            "/api-keys",
            Some(&mint(json!(["transmissions/modify"]))),
        )
        .await;
    assert_eq!(status, 200, "a grant it holds: {created}");

    let (status, admin) = server.post("/api-keys", &mint(json!(["*"]))).await;
    assert_eq!(status, 200, "{admin}");
    let admin_id = admin["results"]["id"].as_str().unwrap_or_default();
    let path = format!("/api-keys/{admin_id}");
    assert_eq!(
        as_key(&server, "limited-key", Method::DELETE, &path, None).await,
        403
    );
    let narrow = json!({"grants": ["transmissions/modify"]});
    assert_eq!(
        as_key(&server, "limited-key", Method::PUT, &path, Some(&narrow)).await,
        403
    );
    let (_, still) = server.get(&path).await;
    assert_eq!(
        still["results"]["grants"],
        json!(["*"]),
        "refused calls change nothing"
    );
}

#[tokio::test]
async fn bad_bodies_and_configured_keys_are_refused_and_change_nothing() {
    let server = Server::start("keys-refused", "").await;
    let unknown = json!({"label": "x", "grants": ["templates/view", "templates/edit"]});
    let (status, error) = server.post("/api-keys", &unknown).await;
    assert_eq!(status, 422, "{error}");
    assert!(
        error["errors"][0]["description"]
            .as_str()
            .is_some_and(|d| d.contains("templates/edit")),
        "{error}"
    );
    let (status, _) = server.post("/api-keys", &json!({"grants": ["*"]})).await;
    assert_eq!(status, 422, "a label is required");
    let (status, _) = server
        .post("/api-keys", &json!({"label": "x", "grants": []}))
        .await;
    assert_eq!(status, 422, "a grant is required");
    let bad_ip = json!({"label": "x", "grants": ["*"], "valid_ips": ["not-an-ip"]});
    assert_eq!(server.post("/api-keys", &bad_ip).await.0, 422);

    let (_, list) = server.get("/api-keys").await;
    let listed = list["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 1, "only the configured key: {list}");
    let configured = listed[0]["id"].as_str().unwrap_or_default();
    let (status, error) = server.delete(&format!("/api-keys/{configured}")).await;
    assert_eq!(status, 403, "{error}");
    assert!(
        error["errors"][0]["description"]
            .as_str()
            .is_some_and(|d| d.contains("configuration file")),
        "{error}"
    );
    assert_eq!(
        server.get("/templates").await.0,
        200,
        "the configured key still works"
    );
}

#[tokio::test]
async fn a_key_limited_to_other_addresses_is_refused_from_loopback() {
    let server = Server::start("keys-ips", "").await;
    let elsewhere = json!({"label": "far", "grants": ["*"], "valid_ips": ["192.0.2.0/24"]});
    let (_, far) = server.post("/api-keys", &elsewhere).await;
    let far_key = far["results"]["key"].as_str().unwrap_or_default();
    assert_eq!(
        as_key(&server, far_key, Method::GET, "/templates", None).await,
        401
    );
    let here = json!({"label": "near", "grants": ["*"], "valid_ips": ["127.0.0.0/8", "::1"]});
    let (_, near) = server.post("/api-keys", &here).await;
    let near_key = near["results"]["key"].as_str().unwrap_or_default();
    assert_eq!(
        as_key(&server, near_key, Method::GET, "/templates", None).await,
        200
    );
}

#[tokio::test]
async fn valid_ips_are_stored_trimmed_once_and_an_ipv4_mapped_entry_works_as_ipv4() {
    let server = Server::start("keys-ips-stored", "").await;
    let given = [" ::ffff:127.0.0.1", "127.0.0.1/32 ", "127.0.0.1", "::1"];
    let body = json!({"label": "mapped", "grants": ["*"], "valid_ips": given});
    let (status, created) = server.post("/api-keys", &body).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["results"]["valid_ips"], json!(["127.0.0.1", "::1"]));
    let key = created["results"]["key"].as_str().unwrap_or_default();
    assert_eq!(
        as_key(&server, key, Method::GET, "/templates", None).await,
        200,
        "a key granted ::ffff:127.0.0.1 is usable from 127.0.0.1"
    );

    let bad = json!({"label": "x", "grants": ["*"], "valid_ips": ["::1", "1.2.3.4/-1"]});
    let (status, error) = server.post("/api-keys", &bad).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(
        error["errors"][0]["description"],
        "valid_ips[1]: \"1.2.3.4/-1\": prefix length must be 0–32 for IPv4"
    );
}
