//! Compatibility with SparkPost's own client libraries, unchanged but for the host: the calls a
//! SparkPost customer's code makes reach Sluice over HTTPS and the messages arrive as intended,
//! each signed with a DKIM signature that an independent verifier accepts.
//! The test command installs the clients (see `scripts/test`).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders};
use serde_json::Value;
use sluice_testkit::smtp::{Received, Script, SmtpSink};
use support::{hop, temp_dir, Server, KEY};

/// Writes a self-signed certificate for 127.0.0.1 and localhost; returns (cert, key) paths.
fn certificate(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let issued = rcgen::generate_simple_self_signed(names).expect("a self-signed certificate");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, issued.cert.pem()).expect("writing the certificate");
    std::fs::write(&key, issued.signing_key.serialize_pem()).expect("writing the key");
    (cert, key)
}

fn only(messages: &[Received], rcpt: &str) -> Received {
    let mine: Vec<_> = messages
        .iter()
        .filter(|m| m.rcpt_to == [rcpt.to_string()])
        .collect();
    assert_eq!(mine.len(), 1, "{rcpt} gets exactly one message");
    mine[0].clone()
}

/// A received message as a MIME tree, for checks on attachments and inline images.
fn parsed(message: &Received) -> Message<'_> {
    MessageParser::default()
        .parse(&message.data[..])
        .expect("a MIME message")
}

/// The part whose Content-ID is `cid`.
fn with_cid<'a>(message: &'a Message<'a>, cid: &str) -> &'a MessagePart<'a> {
    message
        .parts
        .iter()
        .find(|p| p.content_id() == Some(cid))
        .unwrap_or_else(|| panic!("no part with Content-ID <{cid}>"))
}

#[tokio::test]
async fn python_sparkpost_sends_through_sluice() {
    let sink = SmtpSink::start("127.0.0.1:0".parse().expect("addr"), Script::new())
        .await
        .expect("sink");
    let dir = temp_dir("python-sparkpost");
    let (cert, key) = certificate(&dir);
    let config = format!("[routes]\n\"example.test\" = \"{}\"\n", hop(sink.addr()));
    let server = Server::start_https("python-sparkpost", &cert, &key, &config).await;
    let record = signing_domain(&server).await;
    let host = server
        .api
        .trim_start_matches("https://")
        .trim_end_matches("/api/v1")
        .to_string();

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/compat/python_sparkpost.py"
    );
    let output = Command::new("python3")
        .arg(script)
        .env("SLUICE_HOST", &host)
        .env("SLUICE_KEY", KEY)
        .env("REQUESTS_CA_BUNDLE", &cert)
        .output()
        .expect("running python3 (pip install sparkpost==1.3.10)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python-sparkpost failed: {stderr}\nlog:\n{}",
        server.log()
    );
    let results: Value = serde_json::from_slice(&output.stdout).expect("the script prints JSON");

    assert_eq!(
        results["personalised"]["total_accepted_recipients"], 2,
        "{results}"
    );
    assert_eq!(
        results["copies"]["total_accepted_recipients"], 3,
        "{results}"
    );
    assert_eq!(results["empty"]["status"], 422, "{results}");
    // transmissions.get and .list read what was accepted.
    assert_eq!(results["get"]["state"], "Success", "{results}");
    assert_eq!(results["get"]["num_generated"], 2, "{results}");
    assert_eq!(results["get"]["campaign_id"], "compat", "{results}");
    assert_eq!(
        results["list"].as_array().map(Vec::len),
        Some(1),
        "{results}"
    );
    assert_eq!(results["unauthorized"]["status"], 401, "{results}");
    for sent in ["attachment", "inline_image", "rfc822"] {
        assert_eq!(results[sent]["total_accepted_recipients"], 1, "{results}");
    }

    python_templates(&results);

    let messages = sink.wait_for_messages(9, Duration::from_secs(30)).await;
    assert_eq!(messages.len(), 9, "log:\n{}", server.log());
    all_signed(&messages, &record, &dir);
    python_files_arrive(&messages);
    let tia = only(&messages, "tia@example.test");
    assert_eq!(tia.header("Subject").as_deref(), Some("Welcome Tia"));
    assert!(
        tia.body_text().contains("Hello Tia, published"),
        "the published version is sent: {}",
        tia.body_text()
    );
    let ann = only(&messages, "ann@example.test");
    assert_eq!(ann.header("Subject").as_deref(), Some("Hello Ann"));
    assert_eq!(
        ann.header("To").as_deref(),
        Some("\"Ann Lee\" <ann@example.test>")
    );
    assert!(
        ann.body_text().contains("Dear Ann, this is the shop."),
        "{}",
        ann.body_text()
    );
    let bob = only(&messages, "bob@example.test");
    assert_eq!(bob.header("Subject").as_deref(), Some("Hello friend"));
    assert_eq!(
        bob.header("From").as_deref(),
        Some("\"Shop\" <shop@sender.test>")
    );

    // cc and bcc copies: their own envelopes, the primary recipient in To, CC only as written.
    for copy in ["to@example.test", "cc@example.test", "bcc@example.test"] {
        let message = only(&messages, copy);
        let to = message.header("To").unwrap_or_default();
        assert_eq!(to.trim_matches(['<', '>']), "to@example.test", "{copy}");
        assert_eq!(
            message.header("CC").as_deref(),
            Some("cc@example.test"),
            "{copy}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// What python-sparkpost sent as an attachment, an inline image and a raw message.
fn python_files_arrive(messages: &[Received]) {
    let files = only(messages, "files@example.test");
    let files = parsed(&files);
    let attachment = files.attachment(0).expect("an attachment");
    assert_eq!(attachment.attachment_name(), Some("facture-été.bin"));
    let expected: Vec<u8> = (0..=255u8).cycle().take(1024).collect();
    assert_eq!(attachment.contents(), expected.as_slice());

    let image = only(messages, "image@example.test");
    let image = parsed(&image);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(0..64u8);
    assert_eq!(with_cid(&image, "logo.png").contents(), png.as_slice());
    let html = image.body_html(0).unwrap_or_default();
    assert!(html.contains("cid:logo.png"), "{html}");

    // The raw message was sent with bare LFs and a substitution in its subject and body.
    let raw = only(messages, "raw@example.test");
    assert_eq!(raw.header("Subject").as_deref(), Some("Raw for Rae"));
    assert_eq!(raw.header("To").as_deref(), Some("raw@example.test"));
    assert!(
        raw.body_text().contains("Hello Rae, this came raw.\r\n"),
        "{}",
        raw.body_text()
    );
    let bare_lf = raw.data.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r');
    assert!(!bare_lf, "a bare LF reached the wire");
}

#[tokio::test]
async fn node_sparkpost_sends_through_sluice() {
    let sink = SmtpSink::start("127.0.0.1:0".parse().expect("addr"), Script::new())
        .await
        .expect("sink");
    let dir = temp_dir("node-sparkpost");
    let (cert, key) = certificate(&dir);
    let config = format!("[routes]\n\"example.test\" = \"{}\"\n", hop(sink.addr()));
    let server = Server::start_https("node-sparkpost", &cert, &key, &config).await;
    let record = signing_domain(&server).await;
    let origin = server.api.trim_end_matches("/api/v1").to_string();

    let compat = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/compat");
    let output = Command::new("node")
        .arg(format!("{compat}/node_sparkpost.js"))
        .current_dir(compat)
        .env("SLUICE_ORIGIN", &origin)
        .env("SLUICE_KEY", KEY)
        .env("NODE_EXTRA_CA_CERTS", &cert)
        .output()
        .expect("running node (npm install in tests/compat)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node-sparkpost failed: {stderr}\nlog:\n{}",
        server.log()
    );
    let results: Value = serde_json::from_slice(&output.stdout).expect("the script prints JSON");

    // node-sparkpost returns the whole body, and passes num_rcpt_errors in the query string.
    assert_eq!(
        results["send"]["results"]["total_accepted_recipients"], 2,
        "{results}"
    );
    assert_eq!(results["partial"]["errors"][0]["code"], "2000", "{results}");
    assert_eq!(
        results["partial"]["results"]["total_rejected_recipients"], 1,
        "{results}"
    );
    assert_eq!(
        results["partial"]["results"]["rcpt_to_errors"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(results["empty"]["statusCode"], 422, "{results}");
    for sent in ["attachment", "inlineImage", "rfc822"] {
        assert_eq!(
            results[sent]["results"]["total_accepted_recipients"], 1,
            "{results}"
        );
    }

    node_templates(&results);

    let messages = sink.wait_for_messages(7, Duration::from_secs(30)).await;
    assert_eq!(messages.len(), 7, "log:\n{}", server.log());
    all_signed(&messages, &record, &dir);
    node_files_arrive(&messages);
    let ivo = only(&messages, "ivo@example.test");
    assert_eq!(ivo.header("Subject").as_deref(), Some("Hey Ivo"));
    assert!(ivo.body_text().contains("Live Ivo"), "{}", ivo.body_text());
    let nia = only(&messages, "nia@example.test");
    assert_eq!(nia.header("Subject").as_deref(), Some("Hi Nia"));
    assert!(
        nia.body_text().contains("Dear Nia, from the shop."),
        "{}",
        nia.body_text()
    );
    assert_eq!(
        only(&messages, "omar@example.test")
            .header("Subject")
            .as_deref(),
        Some("Hi Omar")
    );
    only(&messages, "pat@example.test");
    let _ = std::fs::remove_dir_all(dir);
}

/// What node-sparkpost sent as an attachment, an inline image and a raw message.
fn node_files_arrive(messages: &[Received]) {
    let files = only(messages, "nfiles@example.test");
    let files = parsed(&files);
    let attachment = files.attachment(0).expect("an attachment");
    assert_eq!(attachment.attachment_name(), Some("report.csv"));
    assert_eq!(attachment.contents(), b"a,b\r\n1,2\r\n");
    let csv_type = attachment.content_type().expect("a Content-Type");
    assert_eq!(csv_type.attribute("charset"), Some("utf-8"));

    let image = only(messages, "nimage@example.test");
    let image = parsed(&image);
    let mut gif = b"GIF89a".to_vec();
    gif.extend(0..32u8);
    assert_eq!(with_cid(&image, "banner.gif").contents(), gif.as_slice());

    let raw = only(messages, "nraw@example.test");
    assert_eq!(raw.header("Subject").as_deref(), Some("Raw Nora"));
    assert_eq!(
        raw.header("To").as_deref(),
        Some("\"Nora\" <nraw@example.test>")
    );
    let raw = parsed(&raw);
    assert_eq!(raw.body_html(0).as_deref(), Some("<p>Hi Nora</p>\r\n"));
}

#[tokio::test]
async fn dkim_signatures_verify_with_dkimpy() {
    let sink = SmtpSink::start("127.0.0.1:0".parse().expect("addr"), Script::new())
        .await
        .expect("sink");
    let config = format!("[routes]\n\"example.test\" = \"{}\"\n", hop(sink.addr()));
    let server = Server::start("dkim", &config).await;
    let dir = temp_dir("dkim");
    for (domain, algorithm) in [("rsa.sender.test", "rsa"), ("ed.sender.test", "ed25519")] {
        let (status, created) = server
            .post(
                "/sending-domains",
                &serde_json::json!({"domain": domain, "dkim_algorithm": algorithm}),
            )
            .await;
        assert_eq!(status, 200, "{created}");
        let record = created["results"]["dkim"]["txt_record"]
            .as_str()
            .expect("txt record")
            .to_string();
        let from = format!("news@{domain}");
        let raw = format!("From: {from}\nTo: someone@example.test\nSubject: Raw for {{{{address.email}}}}\n\nHello {{{{address.email}}}}\n.\nbye\n");
        let template = serde_json::json!({"id": algorithm, "name": algorithm, "published": true, "content": {"email_rfc822": raw}});
        let (status, created) = server.post("/templates", &template).await;
        assert_eq!(status, 200, "{created}");
        // Every content form is signed: inline parts, attachments, and a raw message with a
        // substitution in a header and in its body, given inline or as a stored template.
        let forms = [
            (
                "inline",
                serde_json::json!({"from": from, "subject": "Signed ünïcode", "html": "<p>Hi . there</p>\n.\nline", "text": "Hi"}),
            ),
            (
                "attachment",
                serde_json::json!({"from": from, "subject": "Signed file", "text": "see the file", "attachments": [{"name": "naïve.txt", "type": "text/plain", "data": "aGVsbG8gd29ybGQK"}]}),
            ),
            ("rfc822", serde_json::json!({"email_rfc822": raw})),
            (
                "rfc822-template",
                serde_json::json!({"template_id": algorithm}),
            ),
        ];
        for (form, content) in forms {
            let rcpt = format!("{algorithm}-{form}@example.test");
            let (status, body) = server
                .post(
                    "/transmissions",
                    &serde_json::json!({"recipients": [{"address": rcpt}], "content": content}),
                )
                .await;
            assert_eq!(status, 200, "{form}: {body}");
            sink.wait_for_messages(1, Duration::from_secs(30)).await;
            let message = only(&sink.drain_messages(), &rcpt);
            assert!(
                message.header("DKIM-Signature").is_some(),
                "{algorithm} {form}: signed"
            );
            let verdict = dkimpy_verdict(
                &dir.join(format!("{algorithm}-{form}.eml")),
                &message.data,
                &record,
            );
            assert_eq!(verdict, "pass", "{algorithm} {form}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Makes `sender.test`, the clients' From domain, a sending domain with a generated RSA key, so
/// that everything they send is signed; returns the DKIM TXT record to verify against.
async fn signing_domain(server: &Server) -> String {
    let body = serde_json::json!({"domain": "sender.test"});
    let (status, created) = server.post("/sending-domains", &body).await;
    assert_eq!(status, 200, "{created}");
    created["results"]["dkim"]["txt_record"]
        .as_str()
        .expect("a TXT record")
        .to_string()
}

/// Every message carries a DKIM signature that dkimpy verifies against `record`.
fn all_signed(messages: &[Received], record: &str, dir: &Path) {
    for (i, message) in messages.iter().enumerate() {
        let rcpt = message.rcpt_to.join(",");
        let verdict = dkimpy_verdict(&dir.join(format!("signed-{i}.eml")), &message.data, record);
        assert_eq!(verdict, "pass", "the message to {rcpt} is signed");
    }
}

/// Writes `message` to `file` and asks dkimpy whether its signature verifies against `record`.
fn dkimpy_verdict(file: &Path, message: &[u8], record: &str) -> String {
    std::fs::write(file, message).expect("writing the message");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/compat/dkim_verify.py"
    );
    let output = Command::new("python3")
        .arg(script)
        .arg(file)
        .arg(record)
        .output()
        .expect("python3 (pip install dkimpy pynacl)");
    let verdict = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if verdict != "pass" {
        eprintln!("dkimpy: {}", String::from_utf8_lossy(&output.stderr));
    }
    verdict
}

/// What python-sparkpost's template calls returned: draft, update, publish, preview, list,
/// delete.
fn python_templates(results: &Value) {
    let draft = &results["template_draft"];
    assert_eq!(draft["content"]["text"], "Draft for {{first}}", "{draft}");
    assert_eq!(draft["published"], false, "{draft}");
    let published = &results["template_published"];
    assert_eq!(published["published"], true, "{published}");
    assert_eq!(
        published["content"]["text"], "Hello {{first}}, published",
        "{published}"
    );
    let preview = &results["template_preview"];
    assert_eq!(preview["subject"], "Welcome Pia", "{preview}");
    assert_eq!(preview["html"], "<p>Hello Pia</p>", "{preview}");
    assert_eq!(
        results["template_list"],
        serde_json::json!(["py-welcome"]),
        "{results}"
    );
    assert_eq!(
        results["template_send"]["total_accepted_recipients"], 1,
        "{results}"
    );
    assert_eq!(results["template_after_delete"]["status"], 404, "{results}");
}

/// What node-sparkpost's template calls returned (whole bodies, as that client gives them).
fn node_templates(results: &Value) {
    let draft = &results["templateDraft"]["results"];
    assert_eq!(draft["content"]["text"], "Draft {{first}}", "{draft}");
    let published = &results["templatePublished"]["results"];
    assert_eq!(published["published"], true, "{published}");
    assert_eq!(
        published["content"]["html"], "<b>Live {{first}}</b>",
        "{published}"
    );
    let preview = &results["templatePreview"]["results"];
    assert_eq!(preview["subject"], "Hey Ines", "{preview}");
    assert_eq!(preview["html"], "<b>Live Ines</b>", "{preview}");
    let listed = results["templateList"]["results"]
        .as_array()
        .map(|list| list.iter().any(|t| t["id"] == "node-welcome"));
    assert_eq!(listed, Some(true), "{results}");
    assert_eq!(
        results["templateSend"]["results"]["total_accepted_recipients"], 1,
        "{results}"
    );
    assert_eq!(
        results["templateAfterDelete"]["statusCode"], 404,
        "{results}"
    );
}
