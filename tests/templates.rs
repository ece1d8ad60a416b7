//! End-to-end: stored templates managed over the API the way python-sparkpost calls it, and
//! transmissions that name a template delivered to an SMTP sink on loopback.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use sluice_testkit::smtp::{Script, SmtpSink};
use sluice_testkit::webhook::{Behaviour, WebhookReceiver};
use support::{fast_config, hop, message_events, Server};

const WAIT: Duration = Duration::from_secs(30);

/// A create body as python-sparkpost builds it: every field it was not given is `null`.
fn python_body(name: &str, subject: &str, text: &str, published: Value) -> Value {
    json!({
        "id": null,
        "name": name,
        "description": null,
        "published": published,
        "options": {"open_tracking": null, "click_tracking": null, "transactional": null},
        "content": {"html": null, "text": text, "subject": subject, "from": "Shop <shop@sender.test>", "reply_to": null, "headers": null}
    })
}

#[tokio::test]
async fn templates_are_created_read_updated_published_previewed_listed_and_deleted() {
    let server = Server::start("templates-crud", "").await;

    let body = python_body(
        "Spring Sale",
        "Sale for {{name}}",
        "Hi {{name}}",
        Value::Null,
    );
    let (status, created) = server.post("/templates", &body).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["results"]["id"], "spring-sale");
    let mut same_id = body.clone();
    same_id["id"] = "spring-sale".into();
    let (status, again) = server.post("/templates", &same_id).await;
    assert_eq!(status, 409, "a second create with the same id: {again}");
    assert_eq!(again["errors"][0]["code"], "1602", "{again}");

    let (status, draft) = server.get("/templates/spring-sale?draft=true").await;
    assert_eq!(status, 200, "{draft}");
    let results = &draft["results"];
    assert_eq!(results["published"], false);
    assert_eq!(results["has_draft"], true);
    assert_eq!(results["has_published"], false);
    assert_eq!(
        results["content"]["from"],
        json!({"email": "shop@sender.test", "name": "Shop"})
    );
    let (status, _) = server.get("/templates/spring-sale?draft=false").await;
    assert_eq!(status, 404, "no published version yet");

    let publish = json!({"published": true, "content": {"html": null, "text": null, "subject": null, "from": null, "reply_to": null, "headers": null}});
    let (status, body) = server.put("/templates/spring-sale", &publish).await;
    assert_eq!(status, 200, "{body}");
    let (_, latest) = server.get("/templates/spring-sale").await;
    assert_eq!(latest["results"]["published"], true);
    assert_eq!(latest["results"]["has_draft"], false);
    assert_eq!(latest["results"]["content"]["text"], "Hi {{name}}");

    let edit = json!({"content": {"subject": "Last day for {{name}}", "html": "<p>{{name}}</p>"}});
    let (status, body) = server.put("/templates/spring-sale", &edit).await;
    assert_eq!(status, 200, "{body}");
    let (_, published) = server.get("/templates/spring-sale?draft=false").await;
    assert_eq!(
        published["results"]["content"]["subject"],
        "Sale for {{name}}"
    );

    let fix = json!({"content": {"subject": "Sale for {{name}}!"}});
    let (status, body) = server
        .put("/templates/spring-sale?update_published=true", &fix)
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, published) = server.get("/templates/spring-sale?draft=false").await;
    assert_eq!(
        published["results"]["content"]["subject"],
        "Sale for {{name}}!"
    );
    let (_, draft) = server.get("/templates/spring-sale?draft=true").await;
    assert_eq!(
        draft["results"]["content"]["subject"],
        "Last day for {{name}}"
    );

    let data = json!({"substitution_data": {"name": "<Ann>"}});
    let (status, preview) = server
        .post("/templates/spring-sale/preview?draft=true", &data)
        .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["results"]["subject"], "Last day for <Ann>");
    assert_eq!(preview["results"]["html"], "<p>&lt;Ann&gt;</p>");
    assert_eq!(preview["results"]["text"], "Hi <Ann>");
    assert_eq!(preview["results"]["from"]["email"], "shop@sender.test");

    let (status, list) = server.get("/templates").await;
    assert_eq!(status, 200, "{list}");
    let list = list["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], "spring-sale");
    assert_eq!(list[0]["has_draft"], true);
    assert_eq!(list[0]["has_published"], true);

    let (status, body) = server.delete("/templates/spring-sale").await;
    assert_eq!((status, body), (200, json!({})));
    let (status, missing) = server.get("/templates/spring-sale").await;
    assert_eq!(status, 404);
    assert_eq!(missing["errors"][0]["code"], "1600");
}

#[tokio::test]
async fn a_syntax_error_is_refused_with_part_and_line_and_stores_nothing() {
    let server = Server::start("templates-syntax", "").await;
    let inline = python_body("Broken", "Hello", "line one\n{{if a}}\nno end", Value::Null);
    let raw = "From: a@sender.test\r\nSubject: fine\r\n\r\nline one\r\n{{if a}}\r\nno end\r\n";
    let raw = json!({"name": "Broken", "content": {"email_rfc822": raw}});
    for body in [inline, raw] {
        let (status, error) = server.post("/templates", &body).await;
        assert_eq!(status, 422, "{error}");
        let error = &error["errors"][0];
        assert_eq!(error["code"], "3000");
        assert_eq!(error["part"], "text");
        assert!(error["line"].as_u64().is_some(), "{error}");
    }
    let (_, list) = server.get("/templates").await;
    assert_eq!(list["results"], json!([]));

    for (content, part) in [
        (json!({"subject": "{{x"}), "Header:Subject"),
        (
            json!({"subject": "s", "headers": {"X-Tag": "{{)}}"}}),
            "Header:X-Tag",
        ),
        (
            json!({"subject": "s", "reply_to": "{{if}}"}),
            "Header:Reply-To",
        ),
    ] {
        let mut content = content;
        content["from"] = "a@sender.test".into();
        content["text"] = "t".into();
        let body = json!({"substitution_data": {"x": 1}, "content": content});
        let (status, error) = server.post("/utils/content-previewer", &body).await;
        assert_eq!(status, 422, "{error}");
        assert_eq!(error["errors"][0]["part"], part, "{error}");
    }
}

#[tokio::test]
async fn the_content_previewer_renders_inline_content() {
    let server = Server::start("templates-previewer", "").await;
    let body = json!({
        "substitution_data": {"items": ["a", "b"]},
        "content": {"from": {"email": "a@sender.test", "name": "A"}, "subject": "{{#items}} items", "text": "{{each items}}{{loop_var}}{{end}}"}
    });
    let (status, preview) = server.post("/utils/content-previewer", &body).await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["results"]["subject"], "2 items");
    assert_eq!(preview["results"]["text"], "ab");
    assert_eq!(preview["results"]["from"]["name"], "A");
}

#[tokio::test]
async fn a_transmission_by_template_id_delivers_the_personalised_published_version() {
    let sink = SmtpSink::start("127.0.0.1:0".parse().expect("addr"), Script::new())
        .await
        .expect("starting the sink");
    let receiver = WebhookReceiver::start("127.0.0.1:0".parse().expect("addr"), Behaviour::new())
        .await
        .expect("starting the receiver");
    let server = Server::start("templates-send", &fast_config(&hop(sink.addr()))).await;
    let hook = json!({"name": "t", "target": receiver.url(), "events": ["delivery"]});
    let (status, body) = server.post("/webhooks", &hook).await;
    assert_eq!(status, 200, "{body}");

    let mut body = python_body("Welcome", "Welcome {{name}}", "Dear {{name}}", json!(true));
    body["options"]["transactional"] = json!(true);
    let (status, created) = server.post("/templates", &body).await;
    assert_eq!(status, 200, "{created}");
    let edit = json!({"content": {"subject": "draft subject"}});
    assert_eq!(server.put("/templates/welcome", &edit).await.0, 200);

    let send = json!({
        "recipients": [{"address": "ann@example.test", "substitution_data": {"name": "Ann"}}],
        "content": {"template_id": "welcome", "use_draft_template": null}
    });
    let (status, body) = server.post("/transmissions", &send).await;
    assert_eq!(status, 200, "{body}");

    let messages = sink.wait_for_messages(1, WAIT).await;
    assert_eq!(messages.len(), 1, "log:\n{}", server.log());
    assert_eq!(
        messages[0].header("Subject").as_deref(),
        Some("Welcome Ann")
    );
    assert!(
        messages[0].body_text().contains("Dear Ann"),
        "{}",
        messages[0].body_text()
    );

    let events = receiver
        .wait_for_events(|e| !message_events(e, "delivery").is_empty(), WAIT)
        .await;
    let delivery = &message_events(&events, "delivery")[0];
    assert_eq!(delivery["template_id"], "welcome");
    assert_eq!(delivery["template_version"], "0");
    assert_eq!(delivery["transactional"], "1", "{delivery}");
    let (_, got) = server.get("/templates/welcome?draft=false").await;
    assert!(got["results"]["last_use"].is_string(), "{got}");
}

#[tokio::test]
async fn a_transmission_naming_a_missing_template_or_version_is_refused() {
    let server = Server::start("templates-missing", "").await;
    let send = |id: &str, draft: bool| {
        json!({
            "recipients": [{"address": "ann@example.test"}],
            "content": {"template_id": id, "use_draft_template": draft}
        })
    };
    let (status, error) = server.post("/transmissions", &send("nope", false)).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["errors"][0]["code"], "1603");
    assert!(error["errors"][0]["description"]
        .as_str()
        .is_some_and(|d| d.contains("nope")));

    let body = python_body("Only Draft", "s", "t", Value::Null);
    assert_eq!(server.post("/templates", &body).await.0, 200);
    let (status, error) = server
        .post("/transmissions", &send("only-draft", false))
        .await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["errors"][0]["code"], "1603");

    // With the draft it goes, and the transmission says it used the draft.
    let (status, sent) = server
        .post("/transmissions", &send("only-draft", true))
        .await;
    assert_eq!(status, 200, "{sent}");
    let id = sent["results"]["id"].as_str().expect("an id");
    let (_, got) = server.get(&format!("/transmissions/{id}")).await;
    let content = &got["results"]["transmission"]["content"];
    assert_eq!(
        content,
        &json!({"template_id": "only-draft", "use_draft_template": true})
    );

    // A recipient refused before rendering was never part of the transmission.
    let mut with_bad = send("only-draft", true);
    with_bad["recipients"] = json!([{"address": "ann@example.test"}, {"address": "bad"}]);
    let (_, sent) = server.post("/transmissions", &with_bad).await;
    assert_eq!(sent["results"]["total_rejected_recipients"], 1, "{sent}");
    let id = sent["results"]["id"].as_str().expect("an id");
    let (_, got) = server.get(&format!("/transmissions/{id}")).await;
    let counts = &got["results"]["transmission"];
    assert_eq!(
        (
            &counts["num_rcpts"],
            &counts["num_generated"],
            &counts["num_failed_gen"]
        ),
        (&json!(1), &json!(1), &json!(0)),
        "{got}"
    );
}

#[tokio::test]
async fn refused_writes_change_nothing() {
    let extra = "[[api_keys]]\nkey = \"viewer\"\ngrants = [\"templates/view\"]\n";
    let server = Server::start("templates-refused", extra).await;
    let body = python_body("Kept", "Subject {{a}}", "Text", Value::Null);
    assert_eq!(server.post("/templates", &body).await.0, 200);

    let broken = json!({"content": {"html": "<p>\n{{each}}</p>"}});
    let (status, error) = server.put("/templates/kept", &broken).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["errors"][0]["part"], "html");
    assert_eq!(error["errors"][0]["line"], 2);
    let (status, error) = server
        .put(
            "/templates/kept?update_published=true",
            &json!({"name": "x"}),
        )
        .await;
    assert_eq!(status, 422, "no published version to overwrite: {error}");
    let (status, error) = server.put("/templates/absent", &json!({})).await;
    assert_eq!(status, 404, "{error}");
    assert_eq!(error["errors"][0]["code"], "1600");

    let client = reqwest::Client::new();
    let url = format!("{}/templates/kept", server.api);
    let response = client
        .delete(&url)
        .header("Authorization", "viewer")
        .send()
        .await
        .expect("calling the API");
    assert_eq!(response.status().as_u16(), 403);
    let response = client
        .get(&url)
        .header("Authorization", "viewer")
        .send()
        .await
        .expect("calling the API");
    assert_eq!(response.status().as_u16(), 200);

    let (status, kept) = server.get("/templates/kept").await;
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept["results"]["name"], "Kept");
    assert!(kept["results"]["content"].get("html").is_none(), "{kept}");
}

/// A raw template: substitutions in the headers and the first text part, and an attachment
/// whose text looks like a substitution but must travel untouched.
const RAW_TEMPLATE: &str = "From: Shop <shop@sender.test>\r\n\
    To: {{address.email}}\r\n\
    Subject: Hello {{name}}\r\n\
    MIME-Version: 1.0\r\n\
    Content-Type: multipart/mixed; boundary=\"part\"\r\n\
    \r\n\
    --part\r\n\
    Content-Type: text/plain\r\n\
    \r\n\
    Dear {{name}}, from {{shop}}.\r\n\
    --part\r\n\
    Content-Type: text/plain; name=\"terms.txt\"\r\n\
    Content-Disposition: attachment; filename=\"terms.txt\"\r\n\
    \r\n\
    Kept as {{name}} wrote it.\r\n\
    --part--\r\n";

/// The attachment part of [`RAW_TEMPLATE`], through the closing boundary.
fn raw_attachment() -> &'static str {
    let start = RAW_TEMPLATE
        .find("--part\r\nContent-Type: text/plain; name=")
        .expect("the attachment part");
    &RAW_TEMPLATE[start..]
}

#[tokio::test]
async fn a_raw_template_is_stored_previewed_and_sent_personalised() {
    let sink = SmtpSink::start("127.0.0.1:0".parse().expect("addr"), Script::new())
        .await
        .expect("starting the sink");
    let server = Server::start("templates-raw", &fast_config(&hop(sink.addr()))).await;

    let create = json!({"id": "raw-welcome", "name": "Raw welcome", "content": {"email_rfc822": RAW_TEMPLATE}});
    let (status, created) = server.post("/templates", &create).await;
    assert_eq!(status, 200, "{created}");
    let (status, got) = server.get("/templates/raw-welcome").await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        got["results"]["content"],
        json!({"email_rfc822": RAW_TEMPLATE})
    );
    let publish = json!({"published": true});
    let (status, body) = server.put("/templates/raw-welcome", &publish).await;
    assert_eq!(status, 200, "{body}");

    let data = json!({"substitution_data": {"name": "Ann", "shop": "Shop Ltd"}});
    let (status, preview) = server
        .post("/templates/raw-welcome/preview?draft=false", &data)
        .await;
    assert_eq!(status, 200, "{preview}");
    let rendered = preview["results"]["email_rfc822"]
        .as_str()
        .unwrap_or_default();
    assert!(rendered.contains("Subject: Hello Ann\r\n"), "{preview}");
    assert!(rendered.contains("Dear Ann, from Shop Ltd."), "{preview}");
    assert!(rendered.ends_with(raw_attachment()), "{preview}");

    let send = json!({
        "substitution_data": {"name": "nobody", "shop": "Shop Ltd"},
        "recipients": [
            {"address": "ann@example.test", "substitution_data": {"name": "Ann"}},
            {"address": "bob@example.test", "substitution_data": {"name": "Bob"}}
        ],
        "content": {"template_id": "raw-welcome"}
    });
    let (status, body) = server.post("/transmissions", &send).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"]["total_accepted_recipients"], 2);

    let messages = sink.wait_for_messages(2, WAIT).await;
    assert_eq!(messages.len(), 2, "log:\n{}", server.log());
    for name in ["Ann", "Bob"] {
        let rcpt = format!("{}@example.test", name.to_lowercase());
        let message = messages
            .iter()
            .find(|m| m.rcpt_to == [rcpt.clone()])
            .unwrap_or_else(|| panic!("no message to {rcpt}"));
        let subject = format!("Hello {name}");
        assert_eq!(message.header("Subject").as_deref(), Some(subject.as_str()));
        assert_eq!(message.header("To").as_deref(), Some(rcpt.as_str()));
        let body = message.body_text();
        assert!(
            body.contains(&format!("Dear {name}, from Shop Ltd.")),
            "{body}"
        );
        assert!(body.ends_with(raw_attachment()), "{body}");
    }
}

#[tokio::test]
async fn a_raw_template_beside_other_content_is_refused_and_the_previewer_renders_one() {
    let server = Server::start("templates-raw-refused", "").await;
    let mixed = json!({"name": "Mixed", "content": {"email_rfc822": RAW_TEMPLATE, "subject": "s"}});
    let (status, error) = server.post("/templates", &mixed).await;
    assert_eq!(status, 422, "{error}");
    assert!(error["errors"][0]["description"]
        .as_str()
        .is_some_and(|d| d.contains("content.subject")));
    let (_, list) = server.get("/templates").await;
    assert_eq!(list["results"], json!([]));

    let body =
        json!({"substitution_data": {"name": "Zoë"}, "content": {"email_rfc822": RAW_TEMPLATE}});
    let (status, preview) = server.post("/utils/content-previewer", &body).await;
    assert_eq!(status, 200, "{preview}");
    let rendered = preview["results"]["email_rfc822"]
        .as_str()
        .unwrap_or_default();
    assert!(
        rendered.contains("Subject: =?"),
        "an encoded subject: {preview}"
    );
}

/// A preview has no recipient, so names such as `address` come from the preview's data, as in
/// SparkPost's examples.
#[tokio::test]
async fn a_preview_reads_recipient_names_from_its_data() {
    let server = Server::start("templates-preview-address", "").await;
    let body = json!({
        "substitution_data": {"address": {"street": "Howard Street", "state": "MD"}, "email_id": "a@b.test"},
        "content": {"from": "a@sender.test", "subject": "s",
            "text": "{{address.street}} {{if address.state == 'MD'}}in MD{{end}} {{email_id}}"}
    });
    let (status, preview) = server.post("/utils/content-previewer", &body).await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["results"]["text"], "Howard Street in MD a@b.test");
}

/// Names need not be unique: an id derived from one is numbered when taken, while an id given
/// is refused when taken.
#[tokio::test]
async fn ids_derived_from_names_are_made_unique() {
    let server = Server::start("templates-derived-ids", "").await;
    let content = json!({"from": "a@sender.test", "subject": "s", "text": "t"});
    let mut ids = Vec::new();
    for name in ["Summer Sale", "Summer Sale", "Summer-Sale", "夏のセール"] {
        let (status, created) = server
            .post("/templates", &json!({"name": name, "content": content}))
            .await;
        assert_eq!(status, 200, "{created}");
        ids.push(
            created["results"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert_eq!(
        ids,
        ["summer-sale", "summer-sale-2", "summer-sale-3", "template"]
    );
    let (_, shared) = server.get("/templates?shared_with_subaccounts=true").await;
    assert_eq!(
        shared["results"],
        json!([]),
        "no subaccounts, so nothing is shared"
    );
    let given = json!({"id": "summer-sale", "name": "Again", "content": content});
    assert_eq!(server.post("/templates", &given).await.0, 409);
}

/// Without `draft`, a read is of the version written last: the published one when it was
/// overwritten after the draft was.
#[tokio::test]
async fn reads_without_draft_give_the_version_written_last() {
    let server = Server::start("templates-most-recent", "").await;
    let content = |s: &str| json!({"from": "a@sender.test", "subject": s, "text": s});
    let body = json!({"id": "t", "name": "t", "published": true, "content": content("p1")});
    assert_eq!(server.post("/templates", &body).await.0, 200);
    assert_eq!(
        server
            .put("/templates/t", &json!({"content": content("d1")}))
            .await
            .0,
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let overwrite = json!({"content": content("p2")});
    assert_eq!(
        server
            .put("/templates/t?update_published=true", &overwrite)
            .await
            .0,
        200
    );

    let (_, got) = server.get("/templates/t").await;
    assert_eq!(got["results"]["content"]["subject"], "p2", "{got}");
    assert_eq!(got["results"]["published"], true, "{got}");
    assert!(
        got["results"].get("last_use").is_none(),
        "never used: {got}"
    );
    let (_, draft) = server.get("/templates/t?draft=true").await;
    assert_eq!(draft["results"]["content"]["subject"], "d1", "{draft}");
    // A preview needs no data: no body at all is an empty one.
    let preview = reqwest::Client::new()
        .post(format!("{}/templates/t/preview", server.api))
        .header("Authorization", support::KEY)
        .send()
        .await
        .expect("a preview");
    assert_eq!(preview.status().as_u16(), 200);
    for (query, published) in [("", true), ("?draft=false", true), ("?draft=true", false)] {
        let (_, list) = server.get(&format!("/templates{query}")).await;
        let entry = &list["results"][0];
        assert_eq!(entry["published"], published, "{query}: {entry}");
        let version = if published { &got } else { &draft };
        assert_eq!(
            entry["last_update_time"], version["results"]["last_update_time"],
            "{query}: {entry}"
        );
    }
}
