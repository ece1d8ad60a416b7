//! Delivery end to end: the real `sluice` binary resolving MX records from a DNS server run by
//! the test, delivering to sinks on several loopback addresses, and pacing each site by its
//! shaping rules.
//!
//! Timing assertions carry wide margins: they tell a limit that holds from one that does not,
//! never a fast machine from a slow one.

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use base64::Engine;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice_testkit::smtp::{Received, Reply, Script, SmtpSink};
use sluice_testkit::webhook::{Behaviour, WebhookReceiver};
use support::dns::{DnsServer, Zone};
use support::{message_events, Server};

const WAIT: Duration = Duration::from_secs(20);

fn loopback(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// Sinks on 127.0.0.2 and 127.0.0.3 sharing one port, since `mx_port` is one port for all.
async fn sink_pair(first: Script, second: Script) -> (SmtpSink, SmtpSink) {
    for _ in 0..20 {
        let a = SmtpSink::start(SocketAddr::new(loopback(2).into(), 0), first.clone())
            .await
            .expect("sink on 127.0.0.2");
        let b = SocketAddr::new(loopback(3).into(), a.addr().port());
        if let Ok(b) = SmtpSink::start(b, second.clone()).await {
            return (a, b);
        }
    }
    panic!("no port free on both 127.0.0.2 and 127.0.0.3");
}

fn base_config(dns: &DnsServer, mx_port: u16, extra: &str) -> String {
    format!(
        "[dns]\nnameservers = [\"{}\"]\n\
         [queue]\nretry_schedule = [\"1s\"]\nretry_jitter = 0.0\n\
         [webhooks]\nbatch_interval = \"200ms\"\nretry_schedule = [\"1s\"]\n\
         {extra}\n[delivery]\nmx_port = {mx_port}\n",
        dns.addr()
    )
}

async fn receiver() -> WebhookReceiver {
    WebhookReceiver::start("127.0.0.1:0".parse().expect("addr"), Behaviour::new())
        .await
        .expect("starting the receiver")
}

async fn register_webhook(server: &Server, receiver: &WebhookReceiver) {
    let (status, body) = server
        .post("/webhooks", &json!({"name": "t", "target": receiver.url(), "events": ["delivery", "delay", "bounce"]}))
        .await;
    assert_eq!(status, 200, "creating the webhook: {body}");
}

async fn send(server: &Server, recipients: &[String], pool: Option<&str>) {
    let recipients: Vec<Value> = recipients.iter().map(|r| json!({"address": r})).collect();
    let mut request = json!({
        "recipients": recipients,
        "content": {"from": "shop@sender.test", "subject": "s", "text": "hello"}
    });
    if let Some(pool) = pool {
        request["options"] = json!({"ip_pool": pool});
    }
    let (status, body) = server.post("/transmissions", &request).await;
    assert_eq!(status, 200, "{body}");
}

fn addresses(prefix: &str, domain: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}@{domain}")).collect()
}

#[tokio::test]
async fn mx_hosts_are_tried_in_preference_order_with_failover() {
    let (first, second) = sink_pair(Script::new(), Script::new()).await;
    let zone = Zone::new()
        // The most preferred host is listed last to show the order comes from preference.
        .mx("pref.test", 20, "mx2.pref.test")
        .mx("pref.test", 10, "mx1.pref.test")
        .a("mx1.pref.test", loopback(2))
        .a("mx2.pref.test", loopback(3))
        // Nothing listens on 127.0.0.9: the connection is refused and the next host serves.
        .mx("failover.test", 10, "down.failover.test")
        .mx("failover.test", 20, "up.failover.test")
        .a("down.failover.test", loopback(9))
        .a("up.failover.test", loopback(3));
    let dns = DnsServer::start(zone).await;
    let server = Server::start("mx-order", &base_config(&dns, first.addr().port(), "")).await;

    send(&server, &addresses("p", "pref.test", 3), None).await;
    send(&server, &addresses("f", "failover.test", 3), None).await;
    let preferred = first.wait_for_messages(3, WAIT).await;
    let failed_over = second.wait_for_messages(3, WAIT).await;
    assert_eq!(preferred.len(), 3, "log:\n{}", server.log());
    assert!(preferred
        .iter()
        .all(|m| m.rcpt_to[0].ends_with("@pref.test")));
    assert_eq!(failed_over.len(), 3, "log:\n{}", server.log());
    assert!(failed_over
        .iter()
        .all(|m| m.rcpt_to[0].ends_with("@failover.test")));
}

#[tokio::test]
async fn null_mx_bounces_at_once_and_a_domain_without_mx_uses_its_address() {
    let (sink, _unused) = sink_pair(Script::new(), Script::new()).await;
    let zone = Zone::new()
        .null_mx("nomail.test")
        .a("implicit.test", loopback(2));
    let dns = DnsServer::start(zone).await;
    let receiver = receiver().await;
    let server = Server::start("null-mx", &base_config(&dns, sink.addr().port(), "")).await;
    register_webhook(&server, &receiver).await;

    send(
        &server,
        &["a@nomail.test".to_string(), "b@implicit.test".to_string()],
        None,
    )
    .await;
    let events = receiver
        .wait_for_events(
            |e| {
                !message_events(e, "bounce").is_empty() && !message_events(e, "delivery").is_empty()
            },
            WAIT,
        )
        .await;
    let bounces = message_events(&events, "bounce");
    assert_eq!(bounces.len(), 1, "log:\n{}", server.log());
    assert_eq!(bounces[0]["rcpt_to"], "a@nomail.test");
    assert_eq!(bounces[0]["bounce_class"], "10");
    assert!(
        message_events(&events, "delay").is_empty(),
        "a null MX is not retried"
    );
    let delivered = sink.messages();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].rcpt_to, ["b@implicit.test"]);
}

/// The most messages that arrived within any window of `window` length.
fn busiest(arrivals: &[Instant], window: Duration) -> usize {
    let mut times = arrivals.to_vec();
    times.sort();
    let mut most = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end].duration_since(times[start]) > window {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most
}

fn arrivals(messages: &[Received]) -> Vec<Instant> {
    messages.iter().map(|m| m.at).collect()
}

#[tokio::test]
async fn a_provider_site_is_held_to_its_rate_burst_and_connections() {
    let (sink, _unused) = sink_pair(Script::new(), Script::new()).await;
    let zone = Zone::new()
        .mx("one.test", 10, "mx1.sinkco.test")
        .mx("two.test", 10, "mx2.sinkco.test")
        .a("mx1.sinkco.test", loopback(2))
        .a("mx2.sinkco.test", loopback(2));
    let dns = DnsServer::start(zone).await;
    let dir = support::temp_dir("providers");
    let providers = dir.join("providers.toml");
    std::fs::write(&providers, "[sinkco]\nmx_suffixes = [\"sinkco.test\"]\n").expect("write");
    let shaping =
        "[shaping.provider.sinkco]\nmax_message_rate = \"50/s\"\nburst = 10\nmax_connections = 3\n";
    // `[delivery]` comes last in the base config, so the provider file joins it.
    let config = base_config(&dns, sink.addr().port(), shaping)
        + &format!("providers_file = \"{}\"\n", providers.display());
    let server = Server::start("rate", &config).await;

    // Two domains of one provider share one site, so one limit covers both.
    let mut recipients = addresses("a", "one.test", 150);
    recipients.extend(addresses("b", "two.test", 150));
    send(&server, &recipients, None).await;
    let messages = sink.wait_for_messages(300, WAIT).await;
    assert_eq!(messages.len(), 300, "log:\n{}", server.log());

    let times = arrivals(&messages);
    for seconds in [1u64, 2, 4] {
        let window = Duration::from_secs(seconds);
        let allowed = ((50 * seconds + 10) as f64 * 1.2) as usize;
        let most = busiest(&times, window);
        assert!(
            most <= allowed,
            "{most} messages within {seconds}s; at most {allowed} allowed"
        );
    }
    assert!(
        sink.max_concurrent() <= 3,
        "{} connections at once",
        sink.max_concurrent()
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn messages_leave_from_their_pool_address_with_its_hostname() {
    let (sink, _unused) = sink_pair(Script::new(), Script::new()).await;
    let zone = Zone::new()
        .mx("egress.test", 10, "mx.egress.test")
        .a("mx.egress.test", loopback(2));
    let dns = DnsServer::start(zone).await;
    let extra = "[[sending_ips]]\naddress = \"127.0.0.4\"\nhostname = \"mta4.sluice.test\"\npool = \"bulk\"\n\
                 [[sending_ips]]\naddress = \"127.0.0.5\"\nhostname = \"mta5.sluice.test\"\npool = \"bulk\"\n";
    let server = Server::start("egress", &base_config(&dns, sink.addr().port(), extra)).await;

    send(&server, &addresses("e", "egress.test", 6), Some("bulk")).await;
    let messages = sink.wait_for_messages(6, WAIT).await;
    assert_eq!(messages.len(), 6, "log:\n{}", server.log());
    let mut seen = std::collections::BTreeSet::new();
    for message in &messages {
        let ip = message.client.ip();
        let expected = match ip {
            IpAddr::V4(v4) if v4 == loopback(4) => "mta4.sluice.test",
            IpAddr::V4(v4) if v4 == loopback(5) => "mta5.sluice.test",
            other => panic!("message came from {other}, outside the pool"),
        };
        assert_eq!(message.ehlo, expected);
        seen.insert(ip);
    }
    assert_eq!(seen.len(), 2, "both addresses of the pool carry mail");
}

#[tokio::test]
async fn a_421_slows_the_site_and_it_recovers() {
    let busy = Script::new().on_connect(Reply::new(421, "4.7.0 too busy, slow down"));
    let (sink, _unused) = sink_pair(busy, Script::new()).await;
    let zone = Zone::new()
        .mx("busy.test", 10, "mx.busy.test")
        .a("mx.busy.test", loopback(2));
    let dns = DnsServer::start(zone).await;
    let extra = "[shaping.default]\nmax_message_rate = \"20/s\"\nmax_connections = 4\n\
                 back_pressure_period = \"2s\"\n";
    let server = Server::start(
        "back-pressure",
        &base_config(&dns, sink.addr().port(), extra),
    )
    .await;

    send(&server, &["probe@busy.test".to_string()], None).await;
    let deadline = Instant::now() + WAIT;
    while sink.sessions().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sink.set_script(Script::new());
    send(&server, &addresses("m", "busy.test", 60), None).await;
    let messages = sink.wait_for_messages(61, WAIT).await;
    assert_eq!(messages.len(), 61, "log:\n{}", server.log());

    // Halved to 10/s for the first ~2 s; back at 20/s afterwards.
    let mut times = arrivals(&messages);
    times.sort();
    let first = times[0];
    let early = times
        .iter()
        .filter(|t| t.duration_since(first) <= Duration::from_millis(1500))
        .count();
    assert!(
        early <= 22,
        "{early} messages in the first 1.5 s; halved pace allows about 16"
    );
    let last_second = busiest(&times[times.len() - 25..], Duration::from_secs(1));
    assert!(
        last_second >= 15,
        "only {last_second} per second at the end; recovered pace is 20"
    );
}

#[tokio::test]
async fn shaping_reloads_on_sighup_and_on_the_admin_endpoint() {
    let (sink, _unused) = sink_pair(Script::new(), Script::new()).await;
    let zone = Zone::new()
        .mx("reload.test", 10, "mx.reload.test")
        .a("mx.reload.test", loopback(2));
    let dns = DnsServer::start(zone).await;
    let extra = "[shaping.default]\nmax_message_rate = \"2/s\"\n\
                 [[api_keys]]\nkey = \"viewer\"\ngrants = [\"webhooks/view\"]\n";
    let server = Server::start("reload", &base_config(&dns, sink.addr().port(), extra)).await;
    let config = std::fs::read_to_string(server.config_path()).expect("reading the config");

    // At 2/s, 40 messages would take 20 s; a reload to 1000/s lets the rest through at once.
    send(&server, &addresses("r", "reload.test", 40), None).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let early = sink.messages().len();
    assert!(early <= 6, "{early} messages in 1.5 s at 2/s");
    std::fs::write(
        server.config_path(),
        config.replace("\"2/s\"", "\"1000/s\""),
    )
    .expect("write");
    let pid = server.pid().expect("server running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status();
    assert!(status.is_ok_and(|s| s.success()), "sending SIGHUP");
    let all = sink.wait_for_messages(40, Duration::from_secs(8)).await;
    assert_eq!(all.len(), 40, "log:\n{}", server.log());

    // The admin endpoint: a bad file is refused and changes nothing; a good one applies.
    std::fs::write(
        server.config_path(),
        format!("{config}\n[shaping.default.x]\n"),
    )
    .expect("write");
    let (status, body) = server.post("/admin/reload", &json!({})).await;
    assert_eq!(status, 422, "{body}");
    std::fs::write(server.config_path(), &config).expect("write");
    let (status, body) = server.post("/admin/reload", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    sink.drain_messages();
    send(&server, &addresses("s", "reload.test", 20), None).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let slowed = sink.messages().len();
    assert!(
        slowed <= 6,
        "{slowed} messages in 1.5 s after reloading back to 2/s"
    );

    let forbidden = reqwest::Client::new()
        .post(format!("{}/admin/reload", server.api))
        .header("Authorization", "viewer")
        .send()
        .await
        .expect("calling the API");
    assert_eq!(forbidden.status().as_u16(), 403);
}

#[tokio::test]
async fn required_tls_never_falls_back_to_clear_text() {
    // The first sink offers STARTTLS with a certificate nobody trusts; the second offers none.
    let (untrusted, plain) = sink_pair(Script::new(), Script::new().tls(false)).await;
    let zone = Zone::new()
        .mx("untrusted.test", 10, "sink.test")
        .a("sink.test", loopback(2))
        .mx("plain.test", 10, "mx.plain.test")
        .a("mx.plain.test", loopback(3));
    let dns = DnsServer::start(zone).await;
    let receiver = receiver().await;
    let extra = "[shaping.default]\ntls = \"required\"\n";
    let server = Server::start(
        "tls-required",
        &base_config(&dns, plain.addr().port(), extra),
    )
    .await;
    register_webhook(&server, &receiver).await;

    send(
        &server,
        &["a@untrusted.test".to_string(), "b@plain.test".to_string()],
        None,
    )
    .await;
    let events = receiver
        .wait_for_events(|e| message_events(e, "delay").len() >= 2, WAIT)
        .await;
    let delays = message_events(&events, "delay");
    assert!(delays.len() >= 2, "log:\n{}", server.log());
    for delay in &delays {
        let reason = delay["raw_reason"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(reason.contains("tls"), "{reason}");
    }
    assert!(untrusted.messages().is_empty() && plain.messages().is_empty());
    assert!(message_events(&events, "delivery").is_empty());
}

#[tokio::test]
async fn required_tls_delivers_to_a_server_whose_certificate_verifies() {
    // The sink's certificate names sink.test; the configured CA file trusts exactly it.
    let sink = SmtpSink::start(
        SocketAddr::new(loopback(2).into(), 0),
        Script::new().tls(true),
    )
    .await
    .expect("sink");
    let zone = Zone::new()
        .mx("secure.test", 10, "sink.test")
        .a("sink.test", loopback(2));
    let dns = DnsServer::start(zone).await;
    let receiver = receiver().await;
    let dir = support::temp_dir("tls-ca");
    let ca = dir.join("ca.pem");
    let pem = base64::engine::general_purpose::STANDARD.encode(sink.certificate_der().as_ref());
    let lines: Vec<&str> = pem
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    );
    std::fs::write(&ca, pem).expect("writing the CA file");
    let config = format!(
        "[dns]\nnameservers = [\"{}\"]\n\
         [webhooks]\nbatch_interval = \"200ms\"\n\
         [shaping.default]\ntls = \"required\"\n\
         [delivery]\nmx_port = {}\ntls_ca_file = \"{}\"\n",
        dns.addr(),
        sink.addr().port(),
        ca.display()
    );
    let server = Server::start("tls-verified", &config).await;
    register_webhook(&server, &receiver).await;

    send(&server, &["a@secure.test".to_string()], None).await;
    let events = receiver
        .wait_for_events(|e| !message_events(e, "delivery").is_empty(), WAIT)
        .await;
    let delivery = &message_events(&events, "delivery");
    assert_eq!(delivery.len(), 1, "log:\n{}", server.log());
    assert_eq!(delivery[0]["outbound_tls"], "1");
    let received = sink.messages();
    assert_eq!(received.len(), 1);
    assert!(received[0].tls, "the message travelled encrypted");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_host_with_only_an_ipv6_address_is_reached_over_ipv6() {
    let sink = SmtpSink::start(
        SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 0),
        Script::new(),
    )
    .await
    .expect("a sink on ::1");
    let zone = Zone::new()
        .mx("six.test", 10, "mx.six.test")
        .aaaa("mx.six.test", Ipv6Addr::LOCALHOST);
    let dns = DnsServer::start(zone).await;
    let receiver = receiver().await;
    // A pool whose only sending IP is IPv4 cannot reach that host: its mail waits, saying why.
    let extra = "[[sending_ips]]\naddress = \"127.0.0.4\"\nhostname = \"mta4.sluice.test\"\npool = \"v4\"\n";
    let server = Server::start("ipv6", &base_config(&dns, sink.addr().port(), extra)).await;
    register_webhook(&server, &receiver).await;

    send(&server, &["a@six.test".to_string()], None).await;
    send(&server, &["b@six.test".to_string()], Some("v4")).await;
    let events = receiver
        .wait_for_events(
            |e| !message_events(e, "delivery").is_empty() && !message_events(e, "delay").is_empty(),
            WAIT,
        )
        .await;
    let delivery = message_events(&events, "delivery");
    assert_eq!(delivery.len(), 1, "log:\n{}", server.log());
    assert_eq!(delivery[0]["ip_address"], "::1");
    assert_eq!(delivery[0]["rcpt_to"], "a@six.test");
    let received = sink.messages();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].client.ip(), IpAddr::from(Ipv6Addr::LOCALHOST));
    let delay = &message_events(&events, "delay")[0];
    assert_eq!(delay["rcpt_to"], "b@six.test");
    assert_eq!(
        delay["raw_reason"],
        "421 4.4.1 [internal] no MX host address has the family of the sending IP 127.0.0.4"
    );
}

#[tokio::test]
async fn a_slow_site_does_not_hold_back_a_fast_one() {
    let (sink, _unused) = sink_pair(Script::new(), Script::new()).await;
    let zone = Zone::new()
        .mx("slow.test", 10, "mx.slow.test")
        .a("mx.slow.test", loopback(2))
        .mx("fast.test", 10, "mx.fast.test")
        .a("mx.fast.test", loopback(2));
    let dns = DnsServer::start(zone).await;
    let dir = support::temp_dir("slow-providers");
    let providers = dir.join("providers.toml");
    std::fs::write(&providers, "[slowco]\nmx_suffixes = [\"slow.test\"]\n").expect("write");
    let shaping = "[shaping.provider.slowco]\nmax_message_rate = \"1/s\"\nmax_connections = 1\n";
    let config = base_config(&dns, sink.addr().port(), shaping)
        + &format!("providers_file = \"{}\"\n", providers.display());
    let server = Server::start("slow-fast", &config).await;

    let mut recipients = addresses("s", "slow.test", 30);
    recipients.extend(addresses("f", "fast.test", 200));
    send(&server, &recipients, None).await;
    let deadline = Instant::now() + WAIT;
    let fast = |m: &Received| m.rcpt_to[0].ends_with("@fast.test");
    while sink.messages().iter().filter(|m| fast(m)).count() < 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let messages = sink.messages();
    let slow = messages.iter().filter(|m| !fast(m)).count();
    assert_eq!(messages.len() - slow, 200, "log:\n{}", server.log());
    assert!(
        slow < 30,
        "the slow site ({slow} delivered) kept its pace meanwhile"
    );
    let _ = std::fs::remove_dir_all(dir);
}
