//! End-to-end: snippets managed over the API, and `render_snippet` in transmissions and
//! previews, delivered to an SMTP sink on loopback.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use sluice_testkit::smtp::{Script, SmtpSink};
use sluice_testkit::webhook::{Behaviour, WebhookReceiver};
use support::{fast_config, hop, Server};

const WAIT: Duration = Duration::from_secs(30);

fn footer() -> Value {
    json!({
        "id": "footer",
        "name": "Footer",
        "content": {"html": "<footer>Bye {{name}}</footer>", "text": "-- bye {{name}}"}
    })
}

#[tokio::test]
async fn snippets_are_created_read_updated_listed_and_deleted() {
    let server = Server::start("snippets-crud", "").await;
    let (status, created) = server.post("/snippets", &footer()).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["results"]["id"], "footer");
    let (status, again) = server.post("/snippets", &footer()).await;
    assert_eq!(status, 409, "a second create with the same id: {again}");
    assert_eq!(again["errors"][0]["code"], "1602", "{again}");

    let (status, got) = server.get("/snippets/footer").await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["results"]["name"], "Footer");
    assert_eq!(got["results"]["shared_with_subaccounts"], false);
    assert_eq!(got["results"]["content"]["text"], "-- bye {{name}}");

    let change = json!({"content": {"html": "", "amp_html": "<b>amp</b>"}});
    let (status, body) = server.put("/snippets/footer", &change).await;
    assert_eq!(status, 200, "{body}");
    let (_, got) = server.get("/snippets/footer").await;
    let content = &got["results"]["content"];
    assert!(
        content.get("html").is_none(),
        "an empty string removes a field: {got}"
    );
    assert_eq!(content["text"], "-- bye {{name}}", "fields not given stay");
    assert_eq!(content["amp_html"], "<b>amp</b>");

    let (status, list) = server.get("/snippets").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["results"][0]["id"], "footer");
    assert!(list["results"][0].get("content").is_none());
    let (_, shared) = server.get("/snippets?shared_with_subaccounts=true").await;
    assert_eq!(shared["results"], json!([]));

    assert_eq!(server.delete("/snippets/footer").await.0, 204);
    let (status, missing) = server.get("/snippets/footer").await;
    assert_eq!(status, 404, "{missing}");
    assert_eq!(server.delete("/snippets/footer").await.0, 404);
}

#[tokio::test]
async fn bad_snippets_are_refused_with_part_and_line_and_change_nothing() {
    let extra = "[[api_keys]]\nkey = \"viewer\"\ngrants = [\"templates/view\"]\n";
    let server = Server::start("snippets-refused", extra).await;
    let broken = json!({"id": "b", "content": {"text": "ok\n{{ if x }}"}});
    let (status, error) = server.post("/snippets", &broken).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["errors"][0]["code"], "3000");
    assert_eq!(error["errors"][0]["part"], "text");
    assert_eq!(error["errors"][0]["line"], 2);
    let nested = json!({"id": "n", "content": {"html": "{{ render_snippet('x') }}"}});
    assert_eq!(server.post("/snippets", &nested).await.0, 422);
    let empty = json!({"id": "e", "content": {}});
    assert_eq!(server.post("/snippets", &empty).await.0, 422);
    assert_eq!(
        server
            .post("/snippets", &json!({"id": "a/b", "content": {"text": "x"}}))
            .await
            .0,
        422
    );

    assert_eq!(server.post("/snippets", &footer()).await.0, 200);
    let broken_update = json!({"content": {"html": "{{"}});
    assert_eq!(server.put("/snippets/footer", &broken_update).await.0, 422);
    let (status, _) = server
        .call_as("viewer", reqwest::Method::DELETE, "/snippets/footer", None)
        .await;
    assert_eq!(status, 403);
    let (_, got) = server.get("/snippets/footer").await;
    assert_eq!(
        got["results"]["content"]["html"],
        "<footer>Bye {{name}}</footer>"
    );
    let (_, list) = server.get("/snippets").await;
    assert_eq!(list["results"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn previews_render_snippets_with_the_preview_data() {
    let server = Server::start("snippets-preview", "").await;
    assert_eq!(server.post("/snippets", &footer()).await.0, 200);
    let body = json!({
        "substitution_data": {"name": "<Ann>"},
        "content": {"from": "a@sender.test", "subject": "s",
            "html": "<p>x</p>{{ render_snippet('footer') }}", "text": "x\n{{ render_snippet('footer') }}"}
    });
    let (status, preview) = server.post("/utils/content-previewer", &body).await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(
        preview["results"]["html"],
        "<p>x</p><footer>Bye &lt;Ann&gt;</footer>"
    );
    assert_eq!(preview["results"]["text"], "x\n-- bye <Ann>");
}

#[tokio::test]
async fn transmissions_render_each_part_with_its_snippet_variant_and_a_missing_one_fails_generation(
) {
    let sink = SmtpSink::start("127.0.0.1:0".parse().expect("addr"), Script::new())
        .await
        .expect("starting the sink");
    let receiver = WebhookReceiver::start("127.0.0.1:0".parse().expect("addr"), Behaviour::new())
        .await
        .expect("starting the receiver");
    let server = Server::start("snippets-send", &fast_config(&hop(sink.addr()))).await;
    let hook = json!({"name": "t", "target": receiver.url(), "events": ["delivery", "generation_failure"]});
    assert_eq!(server.post("/webhooks", &hook).await.0, 200);
    assert_eq!(server.post("/snippets", &footer()).await.0, 200);

    let send = json!({
        "recipients": [{"address": "ann@example.test", "substitution_data": {"name": "Ann"}}],
        "content": {"from": "shop@sender.test", "subject": "Hello",
            "html": "<p>Hi</p>{{ render_snippet(\"footer\") }}", "text": "Hi\n{{ render_snippet(\"footer\") }}"}
    });
    let (status, body) = server.post("/transmissions", &send).await;
    assert_eq!(status, 200, "{body}");
    let messages = sink.wait_for_messages(1, WAIT).await;
    assert_eq!(messages.len(), 1, "log:\n{}", server.log());
    let body = messages[0].body_text();
    assert!(body.contains("<footer>Bye Ann</footer>"), "{body}");
    assert!(body.contains("-- bye Ann"), "{body}");

    let send = json!({
        "recipients": [
            {"address": "bob@example.test", "substitution_data": {"name": "Bob", "which": "footer"}},
            {"address": "cy@example.test", "substitution_data": {"name": "Cy", "which": "nope"}}
        ],
        "content": {"from": "shop@sender.test", "subject": "Hello", "html": "{{ render_snippet(which) }}"}
    });
    let (status, body) = server.post("/transmissions", &send).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"]["total_accepted_recipients"], 1);
    assert_eq!(body["results"]["total_rejected_recipients"], 1);
    let reason = body["results"]["rcpt_to_errors"][0]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains("cy@example.test") && reason.contains("nope"),
        "{body}"
    );

    let failures = |events: &[Value]| -> Vec<Value> {
        let gen = events
            .iter()
            .filter_map(|e| e.get("msys")?.get("gen_event"));
        gen.filter(|e| e["type"] == "generation_failure")
            .cloned()
            .collect()
    };
    let events = receiver
        .wait_for_events(|e| !failures(e).is_empty(), WAIT)
        .await;
    let failure = &failures(&events)[0];
    assert_eq!(failure["rcpt_to"], "cy@example.test", "{failure}");
    assert_eq!(sink.wait_for_messages(2, WAIT).await.len(), 2);
}
