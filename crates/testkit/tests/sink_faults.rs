//! Integration tests for the sink's fault injection and its robustness against bad clients.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use sluice_testkit::smtp::END_OF_DATA;
use sluice_testkit::{Reply, Script, SmtpSink};
use support::{code, SmtpClient, STEP};

const LOOPBACK: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

async fn sink(script: Script) -> SmtpSink {
    SmtpSink::start(LOOPBACK, script)
        .await
        .expect("start the sink")
}

/// Connects and opens a transaction for `rcpt`, leaving the client right after DATA's reply.
async fn open_data(sink: &SmtpSink, rcpt: &str) -> (SmtpClient<tokio::net::TcpStream>, String) {
    let (mut client, _) = SmtpClient::connect(sink.addr()).await;
    client.command("EHLO client.test").await;
    client.command("MAIL FROM:<a@a.test>").await;
    client.command(&format!("RCPT TO:<{rcpt}>")).await;
    let reply = client.command("DATA").await;
    (client, reply)
}

#[tokio::test]
async fn data_reply_sequence_rejects_then_accepts() {
    let replies = vec![Reply::new(452, "4.3.1 out of storage"), Reply::ok()];
    let sink = sink(Script::new().data_reply("*@b.test", replies)).await;
    for expected in [452, 250] {
        let (mut client, _) = open_data(&sink, "x@b.test").await;
        assert_eq!(code(&client.command("body\r\n.").await), expected);
    }
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn drop_mid_data_closes_without_reply() {
    let sink = sink(Script::new().drop_mid_data("drop*")).await;
    let (mut client, reply) = open_data(&sink, "drop-me@b.test").await;
    assert_eq!(code(&reply), 354);
    client.write(b"Subject: lost\r\n").await;
    assert!(client.closed_by_server().await);
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn garbage_and_hangup_replies() {
    let script = Script::new()
        .garbage_after("MAIL")
        .data_reply("hangup@b.test", vec![Reply::hangup()]);
    let sink = sink(script).await;
    let (mut client, _) = SmtpClient::connect(sink.addr()).await;
    client.command("EHLO client.test").await;
    let reply = client.command("MAIL FROM:<a@a.test>").await;
    assert_eq!(code(&reply), 0, "{reply}");
    assert_eq!(
        code(&client.command("RCPT TO:<b@b.test>").await),
        503,
        "MAIL had no effect"
    );

    sink.set_script(Script::new().command_reply(END_OF_DATA, vec![Reply::hangup()]));
    let (mut client, _) = open_data(&sink, "hangup@b.test").await;
    client.write(b"x\r\n.\r\n").await;
    assert!(client.closed_by_server().await);
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn delay_slows_every_reply() {
    let sink = sink(Script::new().delay(Duration::from_millis(50))).await;
    let started = Instant::now();
    let (mut client, _) = SmtpClient::connect(sink.addr()).await;
    client.command("EHLO client.test").await;
    client.command("NOOP").await;
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn protocol_errors_get_standard_codes() {
    let sink = sink(Script::new().max_message_size(1000)).await;
    let (mut client, _) = SmtpClient::connect(sink.addr()).await;
    assert_eq!(code(&client.command("MAIL FROM:<a@a.test>").await), 503);
    assert_eq!(code(&client.command("XYZZY").await), 500);
    assert_eq!(code(&client.command("MAIL FROM:a@a.test").await), 501);
    assert_eq!(code(&client.command("\u{0}\u{7f}é").await), 500);
    client.command("EHLO client.test").await;
    assert_eq!(
        code(&client.command("MAIL FROM:<a@a.test> SIZE=5000").await),
        552
    );
    assert_eq!(code(&client.command("MAIL FROM:<a@a.test>").await), 250);
    assert_eq!(code(&client.command("MAIL FROM:<a@a.test>").await), 503);
    assert_eq!(code(&client.command("RSET").await), 250);
    assert_eq!(code(&client.command("RCPT TO:<b@b.test>").await), 503);
    client.command("MAIL FROM:<a@a.test>").await;
    client.command("RCPT TO:<b@b.test>").await;
    client.command("DATA").await;
    let oversized = format!("{}\r\n.", "x".repeat(2000));
    assert_eq!(code(&client.command(&oversized).await), 552);
    assert_eq!(
        code(&client.command("NOOP").await),
        250,
        "the session survives"
    );
}

#[tokio::test]
async fn overlong_and_binary_lines_do_not_kill_the_sink() {
    let sink = sink(Script::new()).await;
    let (mut client, _) = SmtpClient::connect(sink.addr()).await;
    client.write(b"\xff\xfe\x00garbage\r\n").await;
    assert_eq!(code(&client.reply().await), 500);
    let long = vec![b'A'; 1200];
    client.write(&[&long[..], b"\r\n"].concat()).await;
    assert_eq!(
        code(&client.reply().await),
        500,
        "a 1200-byte line is read whole"
    );
    client.write(&vec![b'x'; 200 * 1024]).await;
    assert_eq!(code(&client.reply().await), 500);
    assert!(client.closed_by_server().await);
    let (mut client, greeting) = SmtpClient::connect(sink.addr()).await;
    assert_eq!(code(&greeting), 220);
    assert_eq!(code(&client.command("NOOP").await), 250);
}

#[tokio::test]
async fn large_message_is_received_intact() {
    let sink = sink(Script::new()).await;
    let line = format!(".{}\r\n", "y".repeat(998));
    let body = line.repeat(10 * 1024);
    let (mut client, _) = open_data(&sink, "big@b.test").await;
    client
        .write(format!("Subject: big\r\n\r\n{body}.\r\n").as_bytes())
        .await;
    assert_eq!(code(&client.reply().await), 250);
    let message = &sink.wait_for_messages(1, STEP).await[0];
    assert_eq!(
        message.data.len(),
        "Subject: big\r\n\r\n".len() + body.len() - 10 * 1024
    );
    assert!(message.body_text().starts_with(&"y".repeat(998)));
}

#[tokio::test]
async fn dropping_the_sink_closes_open_connections() {
    let sink = sink(Script::new()).await;
    let addr = sink.addr();
    let (mut client, _) = SmtpClient::connect(addr).await;
    sink.shutdown();
    assert!(client.closed_by_server().await);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
