//! The SMTP client against the testkit sink over loopback TCP: what `MAIL FROM` declares for
//! 7-bit and 8-bit bodies, with and without STARTTLS, and that an address which would inject a
//! command is refused before anything reaches the wire; and that a refusal the server hangs up
//! after is reported as the refusal.

use std::net::SocketAddr;
use std::time::Duration;

use sluice_delivery::smtp::{
    opportunistic_config, Connection, ConnectionSettings, Phase, SmtpError, TlsOutcome,
};
use sluice_testkit::{Reply, Script, SmtpSink};

const SEVEN_BIT: &[u8] = b"Subject: plain\r\n\r\nhello\r\n";
const EIGHT_BIT: &[u8] =
    "Subject: caf\u{e9}\r\nContent-Transfer-Encoding: 8bit\r\n\r\ncaf\u{e9}\r\n".as_bytes();

async fn sink(script: Script) -> SmtpSink {
    let loopback: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    SmtpSink::start(loopback, script)
        .await
        .expect("starting the sink")
}

fn settings(tls: bool) -> ConnectionSettings {
    ConnectionSettings {
        bind: None,
        ehlo_name: "client.test".into(),
        tls: tls.then(|| opportunistic_config().expect("a TLS client configuration")),
        require_tls: tls,
        connect_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(5),
        data_timeout: Duration::from_secs(5),
    }
}

/// Sends a 7-bit and an 8-bit message on one connection and returns each one's `MAIL FROM`
/// parameters as the sink recorded them.
async fn parameters_sent(script: Script, tls: bool) -> Vec<Vec<String>> {
    let sink = sink(script).await;
    let mut conn = Connection::open(sink.addr(), "sink.test", settings(tls))
        .await
        .expect("connecting to the sink");
    assert_eq!(conn.tls() == TlsOutcome::Established, tls);
    for (rcpt, body) in [("seven@b.test", SEVEN_BIT), ("eight@b.test", EIGHT_BIT)] {
        let reply = conn.send("a@a.test", rcpt, body).await.expect("sending");
        assert_eq!(reply.code, 250, "{reply}");
    }
    conn.quit().await;
    let received = sink.wait_for_messages(2, Duration::from_secs(5)).await;
    assert_eq!(
        received[1].data, EIGHT_BIT,
        "the 8-bit body arrives unchanged"
    );
    received.into_iter().map(|m| m.mail_parameters).collect()
}

#[tokio::test]
async fn an_8bit_body_is_declared_8bitmime_and_a_7bit_one_is_not() {
    let sent = parameters_sent(Script::new(), false).await;
    assert_eq!(sent, expected(&["BODY=8BITMIME"]));
}

/// What each message of [`parameters_sent`] declares: its SIZE, then `eight_bit` for the second.
fn expected(eight_bit: &[&str]) -> [Vec<String>; 2] {
    let size = |body: &[u8]| format!("SIZE={}", body.len());
    let mut second = vec![size(EIGHT_BIT)];
    second.extend(eight_bit.iter().map(|p| p.to_string()));
    [vec![size(SEVEN_BIT)], second]
}

#[tokio::test]
async fn eight_bit_mime_is_learnt_again_from_the_ehlo_after_starttls() {
    let sent = parameters_sent(Script::new().tls(true), true).await;
    assert_eq!(sent, expected(&["BODY=8BITMIME"]));
}

#[tokio::test]
async fn without_8bitmime_an_8bit_body_is_sent_undeclared() {
    let sent = parameters_sent(Script::new().eight_bit_mime(false), false).await;
    assert_eq!(sent, expected(&[]));
}

#[tokio::test]
async fn an_address_that_would_inject_a_command_is_never_sent() {
    let sink = sink(Script::new()).await;
    let mut conn = Connection::open(sink.addr(), "sink.test", settings(false))
        .await
        .expect("connecting to the sink");
    let cases = [
        ("a@a.test\r\nRSET", "b@b.test", Phase::MailFrom),
        ("a@a.test", "b@b.test>\r\nRCPT TO:<c@c.test", Phase::RcptTo),
        ("a@a.test", "b@b.test\u{0}", Phase::RcptTo),
    ];
    for (mail_from, rcpt_to, phase) in cases {
        let error = conn
            .send(mail_from, rcpt_to, SEVEN_BIT)
            .await
            .expect_err("an unsafe address is refused");
        assert!(
            matches!(error, SmtpError::UnsafeAddress { phase: p, .. } if p == phase),
            "{error}"
        );
        assert!(!error.is_transient(), "{error}");
        assert!(error.connection_usable(), "{error}");
    }

    // The connection carries the next message as if nothing happened.
    conn.send("a@a.test", "ok@b.test", SEVEN_BIT)
        .await
        .expect("sending after a refusal");
    conn.quit().await;
    let received = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].rcpt_to, ["ok@b.test"]);
    let commands = &sink.sessions()[0].commands;
    let verbs: Vec<&str> = commands
        .iter()
        .map(|c| c.split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(
        verbs,
        ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"],
        "only the good message reached the wire: {commands:?}"
    );
}

#[tokio::test]
async fn a_refusal_followed_by_a_hangup_is_the_outcome_and_closes_the_connection() {
    let refusals = [
        (
            Script::new().rcpt(
                "gone@b.test",
                vec![Reply::new(550, "5.1.1 user unknown").then_hangup()],
            ),
            Phase::RcptTo,
            550,
        ),
        (
            Script::new().command_reply(
                "MAIL",
                vec![Reply::new(421, "4.7.0 too many connections").then_hangup()],
            ),
            Phase::MailFrom,
            421,
        ),
    ];
    for (script, phase, code) in refusals {
        let sink = sink(script).await;
        let mut conn = Connection::open(sink.addr(), "sink.test", settings(false))
            .await
            .expect("connecting to the sink");
        let error = conn
            .send("a@a.test", "gone@b.test", SEVEN_BIT)
            .await
            .expect_err("refused");
        assert!(
            matches!(&error, SmtpError::Rejected { phase: p, reply } if *p == phase && reply.code == code),
            "the server's own reply is the outcome: {error}"
        );
        assert!(!conn.is_open(), "the server hung up");
        let next = conn.send("a@a.test", "next@b.test", SEVEN_BIT).await;
        assert!(next.is_err_and(|e| !e.connection_usable()));
    }
}

#[tokio::test]
async fn a_message_over_the_advertised_size_is_refused_without_being_sent() {
    let sink = sink(Script::new().max_message_size(40)).await;
    let mut conn = Connection::open(sink.addr(), "sink.test", settings(false))
        .await
        .expect("connecting to the sink");
    let big = [SEVEN_BIT, b"padding to pass the limit\r\n"].concat();
    let error = conn
        .send("a@a.test", "big@b.test", &big)
        .await
        .expect_err("over the limit");
    assert!(
        matches!(&error, SmtpError::Rejected { reply, .. } if reply.code == 552),
        "{error}"
    );
    assert!(error.to_string().contains("[internal]"), "{error}");
    assert!(
        !error.is_transient() && error.connection_usable(),
        "{error}"
    );
    conn.send("a@a.test", "small@b.test", b"Subject: s\r\n\r\nhi\r\n")
        .await
        .expect("a small message still goes");
    conn.quit().await;
    let received = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    assert_eq!(received.len(), 1);
    let mails = sink.sessions()[0]
        .commands
        .iter()
        .filter(|c| c.starts_with("MAIL"))
        .count();
    assert_eq!(mails, 1, "the big message never reached MAIL FROM");
}
