//! Integration tests for the SMTP sink, driven over real TCP with a raw client.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use sluice_testkit::{Reply, Script, SmtpSink};
use support::{code, SmtpClient, STEP};

const LOOPBACK: SocketAddr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

async fn sink(script: Script) -> SmtpSink {
    SmtpSink::start(LOOPBACK, script)
        .await
        .expect("start the sink")
}

#[tokio::test]
async fn pipelined_transaction_is_recorded_unstuffed() {
    let sink = sink(Script::new()).await;
    let (mut client, greeting) = SmtpClient::connect(sink.addr()).await;
    assert_eq!(code(&greeting), 220);
    let ehlo = client.command("EHLO client.test").await;
    for capability in ["PIPELINING", "8BITMIME", "SIZE", "ENHANCEDSTATUSCODES"] {
        assert!(
            ehlo.contains(capability),
            "{capability} missing from {ehlo}"
        );
    }
    assert!(!ehlo.contains("STARTTLS"));
    client
        .write(b"MAIL FROM:<a@a.test> SIZE=100\r\nRCPT TO:<b@b.test>\r\nrcpt to:<c@c.test>\r\nDATA\r\n")
        .await;
    for expected in [250, 250, 250, 354] {
        assert_eq!(code(&client.reply().await), expected);
    }
    client
        .write(b"Subject: hi\r\n there\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n")
        .await;
    assert_eq!(code(&client.reply().await), 250);
    assert_eq!(code(&client.reply().await), 221);

    assert_recorded_unstuffed(&sink).await;
}

async fn assert_recorded_unstuffed(sink: &SmtpSink) {
    let messages = sink.wait_for_messages(1, STEP).await;
    let message = &messages[0];
    assert_eq!(message.mail_from, "a@a.test");
    assert_eq!(message.mail_parameters, ["SIZE=100"]);
    assert_eq!(message.rcpt_to, ["b@b.test", "c@c.test"]);
    assert_eq!(
        message.data,
        &b"Subject: hi\r\n there\r\n\r\n.dot\r\nbody\r\n"[..]
    );
    assert_eq!(message.header("SUBJECT").as_deref(), Some("hi there"));
    assert_eq!(message.body_text(), ".dot\r\nbody\r\n");
    assert_eq!((message.ehlo.as_str(), message.tls), ("client.test", false));
    let session = &sink.sessions()[0];
    assert_eq!(
        session.commands.first().map(String::as_str),
        Some("EHLO client.test")
    );
    assert_eq!(session.commands.last().map(String::as_str), Some("QUIT"));
}

#[tokio::test]
async fn mail_parameters_are_recorded_and_8bitmime_can_be_withheld() {
    let sink = sink(Script::new().eight_bit_mime(false)).await;
    let (mut client, _) = SmtpClient::connect(sink.addr()).await;
    let ehlo = client.command("EHLO client.test").await;
    assert!(!ehlo.contains("8BITMIME"), "{ehlo}");
    assert!(ehlo.contains("PIPELINING"), "{ehlo}");
    for (line, expected) in [
        ("MAIL FROM:<a@a.test> BODY=8BITMIME SIZE=7", 250),
        ("RCPT TO:<b@b.test>", 250),
        ("DATA", 354),
        ("caf\u{e9}\r\n.", 250),
    ] {
        assert_eq!(code(&client.command(line).await), expected, "{line}");
    }
    let message = &sink.wait_for_messages(1, STEP).await[0];
    assert_eq!(message.mail_parameters, ["BODY=8BITMIME", "SIZE=7"]);
    assert_eq!(message.data, "caf\u{e9}\r\n".as_bytes());
}

#[tokio::test]
async fn scripted_rcpt_reply_advances_across_connections() {
    let later = vec![Reply::new(451, "4.3.0 try later"), Reply::ok()];
    let sink = sink(Script::new().rcpt("later@b.test", later)).await;
    for expected in [451, 250, 250] {
        let (mut client, _) = SmtpClient::connect(sink.addr()).await;
        client.command("EHLO client.test").await;
        client.command("MAIL FROM:<a@a.test>").await;
        let reply = client.command("RCPT TO:<Later@B.test>").await;
        assert_eq!(code(&reply), expected, "{reply}");
        assert_eq!(code(&client.command("RCPT TO:<other@b.test>").await), 250);
    }
}

#[tokio::test]
async fn rejected_recipients_are_not_delivered() {
    let script = Script::new().rcpt("bounce*", vec![Reply::new(550, "5.1.1 no such user")]);
    let sink = sink(script).await;
    let (mut client, _) = SmtpClient::connect(sink.addr()).await;
    client.command("HELO client.test").await;
    client.command("MAIL FROM:<>").await;
    assert_eq!(code(&client.command("RCPT TO:<bounce1@x.test>").await), 550);
    assert_eq!(code(&client.command("DATA").await), 554);
    assert_eq!(code(&client.command("RCPT TO:<ok@x.test>").await), 250);
    assert_eq!(code(&client.command("DATA").await), 354);
    assert_eq!(code(&client.command("hello\r\n.").await), 250);
    let message = &sink.wait_for_messages(1, STEP).await[0];
    assert_eq!(
        (message.mail_from.as_str(), &message.rcpt_to[..]),
        ("", &["ok@x.test".into()][..])
    );
}

#[tokio::test]
async fn greeting_421_then_close_and_per_ip_override() {
    let other_ip: IpAddr = [127, 0, 0, 2].into();
    let script = Script::new()
        .on_connect(Reply::new(421, "4.3.2 shutting down"))
        .on_connect_from(other_ip, Reply::new(220, "welcome, 127.0.0.2"));
    let sink = sink(script).await;
    let (mut client, greeting) = SmtpClient::connect(sink.addr()).await;
    assert_eq!(greeting, "421 4.3.2 shutting down");
    assert!(client.closed_by_server().await);
    let (mut client, greeting) = SmtpClient::connect_from(other_ip, sink.addr()).await;
    assert_eq!(code(&greeting), 220);
    assert_eq!(code(&client.command("EHLO client.test").await), 250);
    assert_eq!(sink.sessions()[1].client.ip(), other_ip);
}

#[tokio::test]
async fn connections_over_the_limit_get_421() {
    let sink = sink(Script::new().max_connections(1)).await;
    let (mut first, greeting) = SmtpClient::connect(sink.addr()).await;
    assert_eq!(code(&greeting), 220);
    let (mut second, greeting) = SmtpClient::connect(sink.addr()).await;
    assert!(greeting.starts_with("421 4.7.0"), "{greeting}");
    assert!(second.closed_by_server().await);
    assert_eq!(sink.max_concurrent(), 2);
    assert_eq!(code(&first.command("QUIT").await), 221);
    assert!(first.closed_by_server().await);
    let (_third, greeting) = SmtpClient::connect(sink.addr()).await;
    assert_eq!(code(&greeting), 220);
}

#[tokio::test]
async fn starttls_upgrades_and_marks_messages() {
    let sink = sink(Script::new().tls(true)).await;
    let (mut client, _) = SmtpClient::connect(sink.addr()).await;
    assert!(client
        .command("EHLO client.test")
        .await
        .contains("STARTTLS"));
    assert_eq!(code(&client.command("MAIL FROM:<a@a.test>").await), 250);
    assert_eq!(code(&client.command("STARTTLS").await), 220);
    let mut client = client.into_tls().await;
    assert_eq!(
        code(&client.command("MAIL FROM:<a@a.test>").await),
        503,
        "EHLO again first"
    );
    let ehlo = client.command("EHLO tls.client.test").await;
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert_eq!(code(&client.command("STARTTLS").await), 503);
    client.command("MAIL FROM:<a@a.test>").await;
    client.command("RCPT TO:<b@b.test>").await;
    client.command("DATA").await;
    assert_eq!(
        code(&client.command("Subject: secret\r\n\r\nx\r\n.").await),
        250
    );
    let message = &sink.wait_for_messages(1, STEP).await[0];
    assert!(message.tls);
    assert_eq!(message.ehlo, "tls.client.test");
    assert!(sink.sessions()[0].tls);
    assert!(!sink.certificate_der().is_empty());
}

#[tokio::test]
async fn wait_for_messages_returns_what_it_has_at_the_timeout() {
    let sink = sink(Script::new()).await;
    let started = std::time::Instant::now();
    assert!(sink
        .wait_for_messages(1, Duration::from_millis(100))
        .await
        .is_empty());
    assert!(started.elapsed() >= Duration::from_millis(100));
}
