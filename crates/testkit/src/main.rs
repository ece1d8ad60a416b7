//! `sluice-testkit`: runs the test peers by hand and prints what they receive.
//!
//! Meant for trying Sluice out (the README quickstart) rather than for automated tests, which
//! use the library directly. Progress messages go to stderr; stdout carries only the report
//! lines, so it can be piped into `grep` or a file.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::Value;
use sluice_testkit::{Behaviour, Received, RecordedRequest, Script, SmtpSink, WebhookReceiver};

/// How long one wait for new traffic lasts before the loop checks for Ctrl-C again; any
/// value works since traffic wakes the wait early.
const POLL: Duration = Duration::from_secs(3600);

#[derive(Debug, Parser)]
#[command(
    name = "sluice-testkit",
    version,
    about = "Test peers for the Sluice MTA"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Accept every message over SMTP and print one line per message.
    SmtpSink {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:2525")]
        listen: SocketAddr,
        /// Offer STARTTLS with a freshly generated self-signed certificate.
        #[arg(long)]
        tls: bool,
        /// Print each message in full after its summary line.
        #[arg(long)]
        print_body: bool,
    },
    /// Accept every webhook batch over HTTP and print one line per event.
    WebhookReceiver {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
        /// Print each event as pretty JSON instead of a summary line.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        Command::SmtpSink {
            listen,
            tls,
            print_body,
        } => run_smtp_sink(listen, tls, print_body).await,
        Command::WebhookReceiver { listen, json } => run_webhook_receiver(listen, json).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // A closed stdout (e.g. piped into `head`) is a normal way to stop.
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sluice-testkit: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run_smtp_sink(listen: SocketAddr, tls: bool, print_body: bool) -> io::Result<()> {
    let sink = SmtpSink::start(listen, Script::new().tls(tls)).await?;
    let starttls = if tls { "offered" } else { "off" };
    eprintln!(
        "SMTP sink listening on {} (STARTTLS {starttls}); Ctrl-C stops",
        sink.addr()
    );
    let mut out = io::stdout();
    loop {
        tokio::select! {
            signal = tokio::signal::ctrl_c() => return signal,
            _ = sink.wait_for_messages(1, POLL) => {}
        }
        for message in sink.drain_messages() {
            writeln!(out, "{}", message_summary(&message))?;
            if print_body {
                write_message(&mut out, &message)?;
            }
        }
    }
}

async fn run_webhook_receiver(listen: SocketAddr, json: bool) -> io::Result<()> {
    let receiver = WebhookReceiver::start(listen, Behaviour::new()).await?;
    eprintln!(
        "Webhook receiver listening on {}; Ctrl-C stops",
        receiver.url()
    );
    let mut out = io::stdout();
    loop {
        tokio::select! {
            signal = tokio::signal::ctrl_c() => return signal,
            _ = receiver.wait_for_requests(1, POLL) => {}
        }
        for request in receiver.drain_requests() {
            write_request(&mut out, &request, json)?;
        }
    }
}

/// `from=<a@b.test> to=<c@d.test>,<e@f.test> size=1234 subject="Hello"`.
fn message_summary(message: &Received) -> String {
    let to: Vec<String> = message
        .rcpt_to
        .iter()
        .map(|rcpt| format!("<{rcpt}>"))
        .collect();
    let subject = message.header("subject").unwrap_or_default();
    format!(
        "from=<{}> to={} size={} subject={subject:?}",
        message.mail_from,
        to.join(","),
        message.data.len()
    )
}

/// The message as received, then a blank line to separate it from the next summary.
fn write_message(out: &mut impl Write, message: &Received) -> io::Result<()> {
    out.write_all(&message.data)?;
    if !message.data.ends_with(b"\n") {
        writeln!(out)?;
    }
    writeln!(out)
}

/// A batch header line, then one line (or pretty JSON block) per event.
fn write_request(out: &mut impl Write, request: &RecordedRequest, json: bool) -> io::Result<()> {
    let batch_id = request.header("x-messagesystems-batch-id").unwrap_or("-");
    let events = request.events();
    writeln!(
        out,
        "batch={batch_id} {} {} status={} events={}",
        request.method,
        request.path,
        request.status,
        events.len()
    )?;
    for event in &events {
        if json {
            let pretty = serde_json::to_string_pretty(event).map_err(io::Error::other)?;
            writeln!(out, "{pretty}")?;
        } else {
            writeln!(out, "  {}", event_summary(event))?;
        }
    }
    Ok(())
}

/// `type=delivery message_id=...` for an event shaped `{"msys":{"<class>":{...}}}`, falling
/// back to top-level fields for other shapes and `-` for anything missing.
fn event_summary(event: &Value) -> String {
    let class = event
        .get("msys")
        .and_then(Value::as_object)
        .and_then(|msys| msys.values().next());
    let body = class.unwrap_or(event);
    let field = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_owned()
    };
    format!("type={} message_id={}", field("type"), field("message_id"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_summary_reads_the_msys_envelope() {
        let event = json!({"msys": {"message_event": {"type": "delivery", "message_id": "m1"}}});
        assert_eq!(event_summary(&event), "type=delivery message_id=m1");
        assert_eq!(
            event_summary(&json!({"type": "bounce"})),
            "type=bounce message_id=-"
        );
        assert_eq!(event_summary(&json!(42)), "type=- message_id=-");
    }

    #[test]
    fn message_summary_quotes_the_subject() {
        let message = Received {
            mail_from: "a@b.test".into(),
            mail_parameters: Vec::new(),
            rcpt_to: vec!["c@d.test".into(), "e@f.test".into()],
            data: bytes::Bytes::from_static(b"Subject: say \"hi\"\r\n\r\nbody\r\n"),
            client: SocketAddr::from(([127, 0, 0, 1], 1)),
            ehlo: "client.test".into(),
            tls: false,
            at: std::time::Instant::now(),
            queue_id: "Q1".into(),
        };
        let expected = r#"from=<a@b.test> to=<c@d.test>,<e@f.test> size=27 subject="say \"hi\"""#;
        assert_eq!(message_summary(&message), expected);
    }
}
