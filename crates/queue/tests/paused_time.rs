//! The scheduler and the spool on tokio's paused clock: three days of retries, the expiry
//! bounce and a `start_time` send, run in virtual time with the default retry schedule.
//!
//! The spool's clock follows tokio's here ([`follow_tokio_time`]), and a stand-in for delivery
//! fails every attempt temporarily, noting when each one came.

use std::collections::BTreeMap;
use std::time::Duration;

use sluice_core::clock::{follow_tokio_time, now_ms};
use sluice_core::config::QueueConfig;
use sluice_core::event::{AttemptFacts, MessageFacts};
use sluice_core::{EventKind, MessageId, Store};
use sluice_events::EventLog;
use sluice_queue::{run_scheduler, NewMessage, QueuedMessage, Spool};
use tokio::sync::mpsc;

const HOUR_MS: u64 = 3_600_000;

fn message(id: u64, accepted_ms: u64, due_ms: u64, max_age: Duration) -> NewMessage {
    let message = QueuedMessage {
        id: MessageId(id),
        mail_from: "from@sender.test".into(),
        rcpt_to: format!("r{id}@later.test"),
        domain: "later.test".into(),
        pool: "default".into(),
        facts: MessageFacts {
            message_id: Some(MessageId(id)),
            injection_time_ms: accepted_ms,
            ..MessageFacts::default()
        },
        attempts: 0,
        due_ms,
        expires_ms: due_ms + max_age.as_millis() as u64,
        last_reply: None,
        site: None,
        cancelled: None,
    };
    NewMessage {
        message,
        body: b"Subject: x\r\n\r\nbody\r\n".to_vec(),
    }
}

fn failure(attempt: u32) -> AttemptFacts {
    AttemptFacts {
        raw_reason: Some(format!("451 4.3.0 try again later (attempt {attempt})")),
        bounce_class: Some(20),
        ..AttemptFacts::default()
    }
}

#[tokio::test(start_paused = true)]
async fn retries_follow_the_default_schedule_until_expiry_and_start_time_waits() {
    follow_tokio_time();
    let dir = std::env::temp_dir().join(format!("sluice-paused-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir, 8 << 20).expect("store");
    let log = EventLog::open(&store).expect("log");
    let config = QueueConfig::default();
    let (schedule, jitter, max_age) = (
        config.retry_schedule.clone(),
        config.retry_jitter,
        config.max_age,
    );
    let spool = Spool::open(&store, log.clone(), config).expect("spool");

    // Both are accepted before the scheduler runs, so no timer is pending while the spool waits
    // for its flush (paused time would jump to it).
    let start = now_ms();
    spool
        .accept(vec![
            message(1, start, start, max_age),
            message(2, start, start + 2 * HOUR_MS, max_age),
        ])
        .await
        .expect("accept");
    let (ready, mut due) = mpsc::channel(16);
    tokio::spawn(run_scheduler(spool.clone(), ready));

    let mut attempts: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    while spool.message(MessageId(1)).expect("read").is_some() {
        let handed = tokio::time::timeout(Duration::from_secs(100 * 3600), due.recv())
            .await
            .expect("the scheduler hands the message over again")
            .expect("scheduler running");
        let times = attempts.entry(handed.id.0).or_default();
        times.push(now_ms());
        let n = times.len() as u32;
        spool.deferred(&handed, failure(n)).await.expect("defer");
    }

    let first = &attempts[&1];
    assert!(
        first[0] - start < 1000,
        "the first attempt goes out at once"
    );
    for (i, pair) in first.windows(2).enumerate() {
        let waited = pair[1] - pair[0];
        let base = schedule[i.min(schedule.len() - 1)].as_millis() as f64;
        assert!(
            (waited as f64) >= base * (1.0 - jitter) - 1.0
                && (waited as f64) <= base * (1.0 + jitter) + 1000.0,
            "wait {} after attempt {} was {waited} ms, schedule says {base} ms ± {jitter}",
            i + 2,
            i + 1
        );
    }
    let cap = schedule.last().expect("a schedule").as_millis() as u64;
    let last = *first.last().expect("attempts");
    assert!(
        last - start <= max_age.as_millis() as u64 && last - start + cap * 11 / 10 >= 72 * HOUR_MS,
        "attempts continue until the message is within one wait of its age"
    );
    assert!(first.len() > 20, "{} attempts over three days", first.len());

    let events = log.read_after(0, 10_000).expect("read the log");
    // The scheduled message, retried on its own jittered schedule, may expire first.
    let bounce = events
        .iter()
        .find(|e| e.kind == EventKind::Bounce && e.message.message_id == Some(MessageId(1)))
        .expect("the expired message bounces");
    let reason = bounce.attempt.raw_reason.as_deref().unwrap_or_default();
    assert_eq!(
        reason,
        format!("451 4.3.0 try again later (attempt {})", first.len()),
        "the bounce names the last temporary failure"
    );

    let scheduled = &attempts[&2];
    assert!(
        scheduled[0] >= start + 2 * HOUR_MS && scheduled[0] < start + 2 * HOUR_MS + 1000,
        "a start_time send is handed over at its time, not before"
    );
    drop(spool);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
