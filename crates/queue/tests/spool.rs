//! The spool's life cycle against a real sled database: acceptance, scheduling, deferral and
//! expiry, crash recovery of in-flight messages, and operator control. Times are asserted on
//! the schedule the spool writes, not by sleeping, so nothing here depends on machine speed.

use std::time::Duration;

use sluice_core::clock::now_ms;
use sluice_core::config::QueueConfig;
use sluice_core::event::{AttemptFacts, MessageFacts};
use sluice_core::{EventKind, MessageId, Store};
use sluice_events::EventLog;
use sluice_queue::{NewMessage, QueuedMessage, Scope, Spool, Standing};

struct Fixture {
    store: Store,
    log: EventLog,
    spool: Spool,
    dir: std::path::PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config() -> QueueConfig {
    QueueConfig {
        retry_schedule: vec![Duration::from_secs(60), Duration::from_secs(600)],
        retry_jitter: 0.0,
        max_age: Duration::from_secs(3600),
        max_age_transactional: None,
    }
}

async fn fixture(name: &str) -> Fixture {
    let dir = std::env::temp_dir().join(format!("sluice-spool-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir, 8 << 20).expect("store");
    let log = EventLog::open(&store).expect("log");
    let spool = Spool::open(&store, log.clone(), config()).expect("spool");
    Fixture {
        store,
        log,
        spool,
        dir,
    }
}

fn message(id: u64, domain: &str, due_ms: u64) -> NewMessage {
    let now = now_ms();
    let message = QueuedMessage {
        id: MessageId(id),
        mail_from: "from@sender.test".into(),
        rcpt_to: format!("r{id}@{domain}"),
        domain: domain.into(),
        pool: "default".into(),
        facts: MessageFacts {
            campaign_id: format!("c{}", id % 2),
            injection_time_ms: now,
            ..MessageFacts::default()
        },
        attempts: 0,
        due_ms,
        expires_ms: now + 3_600_000,
        last_reply: None,
        site: None,
        cancelled: None,
    };
    NewMessage {
        message,
        body: b"Subject: x\r\n\r\nbody\r\n".to_vec(),
    }
}

/// A message of a transmission whose `start_time` is `start_ms`.
fn scheduled(id: u64, domain: &str, start_ms: u64) -> NewMessage {
    let mut new = message(id, domain, start_ms);
    new.message.facts.scheduled_time_ms = Some(start_ms);
    new
}

fn ids(messages: &[QueuedMessage]) -> Vec<MessageId> {
    let mut ids: Vec<MessageId> = messages.iter().map(|m| m.id).collect();
    ids.sort();
    ids
}

fn state(spool: &Spool, id: u64) -> &'static str {
    spool
        .status(MessageId(id))
        .expect("status")
        .expect("queued")
        .state
}

fn kinds(log: &EventLog) -> Vec<EventKind> {
    log.read_after(0, 1000)
        .expect("read log")
        .iter()
        .map(|e| e.kind)
        .collect()
}

fn temporary_failure() -> AttemptFacts {
    AttemptFacts {
        raw_reason: Some("451 4.3.0 later".into()),
        bounce_class: Some(20),
        ..AttemptFacts::default()
    }
}

#[tokio::test]
async fn accepted_messages_are_due_at_once_and_scheduled_ones_wait() {
    let f = fixture("due").await;
    let now = now_ms();
    f.spool
        .accept(vec![
            message(1, "a.test", now),
            message(2, "a.test", now + 60_000),
        ])
        .await
        .expect("accept");
    assert_eq!(kinds(&f.log), [EventKind::Injection, EventKind::Injection]);

    let due = f.spool.take_due(now_ms(), 10).expect("take");
    assert_eq!(due.iter().map(|m| m.id).collect::<Vec<_>>(), [MessageId(1)]);
    assert_eq!(f.spool.next_due().expect("next"), Some(now + 60_000));
    assert!(
        f.spool.take_due(now_ms(), 10).expect("take").is_empty(),
        "a message is handed over once"
    );
}

#[tokio::test]
async fn deferral_follows_the_retry_schedule_and_expiry_bounces() {
    let f = fixture("defer").await;
    f.spool
        .accept(vec![message(1, "a.test", now_ms())])
        .await
        .expect("accept");
    let first = f.spool.take_due(now_ms(), 10).expect("take").remove(0);
    let before = now_ms();
    f.spool
        .deferred(&first, temporary_failure())
        .await
        .expect("defer");
    let record = f
        .spool
        .message(MessageId(1))
        .expect("read")
        .expect("still queued");
    assert_eq!(record.attempts, 1);
    assert!(
        record.due_ms >= before + 60_000 && record.due_ms <= now_ms() + 60_000,
        "first wait is 60 s"
    );
    assert_eq!(record.last_reply.as_deref(), Some("451 4.3.0 later"));

    // The next wait (600 s) would end past the message's age: it bounces now.
    let mut second = record;
    second.expires_ms = now_ms() + 300_000;
    f.spool
        .deferred(&second, temporary_failure())
        .await
        .expect("defer");
    assert!(f.spool.message(MessageId(1)).expect("read").is_none());
    assert_eq!(
        kinds(&f.log),
        [EventKind::Injection, EventKind::Delay, EventKind::Bounce]
    );
    let bounce = f
        .log
        .read_after(0, 10)
        .expect("read")
        .pop()
        .expect("bounce");
    assert_eq!(
        bounce.attempt.raw_reason.as_deref(),
        Some("451 4.3.0 later"),
        "expiry names the last failure"
    );
}

#[tokio::test]
async fn messages_in_flight_at_a_crash_are_due_again_after_reopening() {
    let f = fixture("recover").await;
    f.spool
        .accept(vec![
            message(1, "a.test", now_ms()),
            message(2, "a.test", now_ms()),
        ])
        .await
        .expect("accept");
    assert_eq!(f.spool.take_due(now_ms(), 10).expect("take").len(), 2);
    f.store.flush_now().expect("flush");

    let reopened = Spool::open(&f.store, f.log.clone(), config()).expect("reopen");
    let again = reopened.take_due(now_ms() + 1, 10).expect("take");
    assert_eq!(again.len(), 2, "both in-flight messages are due again");
}

#[tokio::test]
async fn suspended_domains_wait_with_delay_events_and_resume_at_once() {
    let f = fixture("suspend").await;
    let scope = Scope::Domain("a.test".into());
    assert!(f.spool.suspend(&scope).expect("suspend"));
    f.spool
        .accept(vec![
            message(1, "a.test", now_ms()),
            message(2, "b.test", now_ms()),
        ])
        .await
        .expect("accept");

    let due = f.spool.take_due(now_ms(), 10).expect("take");
    assert_eq!(
        due.iter().map(|m| m.domain.as_str()).collect::<Vec<_>>(),
        ["b.test"]
    );
    let held = f
        .spool
        .status(MessageId(1))
        .expect("status")
        .expect("queued");
    assert_eq!(held.state, "suspended");
    assert_eq!(kinds(&f.log).last(), Some(&EventKind::Delay));

    f.spool.resume(&scope).expect("resume");
    let due = f.spool.take_due(now_ms(), 10).expect("take");
    assert_eq!(due.iter().map(|m| m.id).collect::<Vec<_>>(), [MessageId(1)]);
}

#[tokio::test]
async fn the_summary_shows_only_the_suspended_scope_itself_as_suspended() {
    let f = fixture("summary-suspended").await;
    let mut routed = message(1, "a.test", now_ms() + 600_000);
    routed.message.site = Some("google".into());
    f.spool.accept(vec![routed]).await.expect("accept");
    let suspended = |summary: &sluice_queue::QueueSummary| {
        [
            summary.domains["a.test"].suspended,
            summary.sites["google"].suspended,
            summary.pools["default"].suspended,
        ]
    };

    f.spool
        .suspend(&Scope::Site("google".into()))
        .expect("suspend");
    let summary = f.spool.summary().expect("summary");
    assert_eq!(suspended(&summary), [false, true, false], "{summary:?}");
    assert_eq!(summary.suspended, ["site:google"]);

    f.spool
        .suspend(&Scope::Pool("DEFAULT".into()))
        .expect("suspend");
    let summary = f.spool.summary().expect("summary");
    assert_eq!(suspended(&summary), [false, true, true], "{summary:?}");
}

#[tokio::test]
async fn cancelling_a_campaign_bounces_its_messages_with_class_25() {
    let f = fixture("cancel").await;
    let later = now_ms() + 600_000;
    f.spool
        .accept((1..=4).map(|i| message(i, "a.test", later)).collect())
        .await
        .expect("accept");
    let reason = "554 5.7.1 [internal] Campaign cancelled";
    let cancelled = f
        .spool
        .cancel(&Scope::Campaign("c1".into()), reason)
        .await
        .expect("cancel");
    assert_eq!(cancelled, 2);
    assert_eq!(f.spool.len(), 2);
    let bounces: Vec<_> = f
        .log
        .read_after(0, 100)
        .expect("read")
        .into_iter()
        .filter(|e| e.kind == EventKind::Bounce)
        .collect();
    assert_eq!(bounces.len(), 2);
    assert!(bounces
        .iter()
        .all(|b| b.attempt.bounce_class == Some(25)
            && b.attempt.raw_reason.as_deref() == Some(reason)));

    let summary = f.spool.summary().expect("summary");
    assert_eq!(summary.total, 2);
    assert_eq!(summary.domains["a.test"].count, 2);
    assert_eq!(summary.domains["a.test"].next_attempt_ms, Some(later));
}

#[tokio::test]
async fn a_message_cancelled_in_flight_ends_with_one_bounce_and_racing_cancels_report_once() {
    let f = fixture("cancel-in-flight").await;
    let later = now_ms() + 600_000;
    f.spool
        .accept(vec![
            message(1, "a.test", now_ms()),
            message(3, "a.test", later),
        ])
        .await
        .expect("accept");
    let in_flight = f.spool.take_due(now_ms(), 10).expect("take").remove(0);

    let reason = "554 5.7.1 [internal] Campaign cancelled";
    let scope = Scope::Campaign("c1".into());
    assert_eq!(f.spool.cancel(&scope, reason).await.expect("cancel"), 2);
    assert_eq!(
        f.spool.cancel(&scope, reason).await.expect("cancel again"),
        1,
        "only the marked one is left"
    );
    assert_eq!(
        f.spool.standing(MessageId(1)).expect("standing"),
        Standing::Cancelled(reason.into())
    );
    assert_eq!(
        f.spool.standing(MessageId(3)).expect("standing"),
        Standing::Gone
    );

    // The attempt on the wire fails temporarily: the cancellation, not a retry, ends it.
    f.spool
        .deferred(&in_flight, temporary_failure())
        .await
        .expect("defer");
    let bounces: Vec<_> = f
        .log
        .read_after(0, 100)
        .expect("read")
        .into_iter()
        .filter(|e| e.kind == EventKind::Bounce)
        .collect();
    assert_eq!(
        bounces.len(),
        2,
        "one bounce per message, whatever the races"
    );
    assert!(bounces
        .iter()
        .all(|b| b.attempt.raw_reason.as_deref() == Some(reason)));
    assert!(f.spool.is_empty());
}

#[tokio::test]
async fn retry_now_brings_deferred_messages_forward_but_no_scheduled_send_before_its_start() {
    let f = fixture("retry-scheduled").await;
    let start = now_ms() + 600_000;
    f.spool
        .accept(vec![
            message(1, "a.test", now_ms()),
            scheduled(2, "a.test", start),
        ])
        .await
        .expect("accept");
    let first = f.spool.take_due(now_ms(), 10).expect("take").remove(0);
    f.spool
        .deferred(&first, temporary_failure())
        .await
        .expect("defer");
    assert_eq!(state(&f.spool, 1), "backoff");
    assert_eq!(state(&f.spool, 2), "scheduled");

    for scope in [Scope::Domain("a.test".into()), Scope::Campaign("c0".into())] {
        f.spool.retry_now(&scope).expect("retry");
    }
    let moved = f.spool.retry_now(&Scope::Domain("a.test".into()));
    assert_eq!(moved.expect("retry"), 0, "nothing is left to bring forward");
    assert_eq!(
        ids(&f.spool.take_due(now_ms(), 10).expect("take")),
        [MessageId(1)]
    );
    let kept = f
        .spool
        .message(MessageId(2))
        .expect("read")
        .expect("queued");
    assert_eq!(
        kept.due_ms, start,
        "the scheduled send keeps its start time"
    );
    assert_eq!(state(&f.spool, 2), "scheduled");
    assert_eq!(f.spool.next_due().expect("next"), Some(start));
}

#[tokio::test]
async fn a_scheduled_send_whose_start_passed_is_retried_like_any_other() {
    let f = fixture("retry-started").await;
    f.spool
        .accept(vec![scheduled(1, "a.test", now_ms())])
        .await
        .expect("accept");
    let first = f.spool.take_due(now_ms(), 10).expect("take").remove(0);
    f.spool
        .deferred(&first, temporary_failure())
        .await
        .expect("defer");

    let moved = f.spool.retry_now(&Scope::Domain("a.test".into()));
    assert_eq!(moved.expect("retry"), 1);
    assert_eq!(
        ids(&f.spool.take_due(now_ms(), 10).expect("take")),
        [MessageId(1)]
    );
}

#[tokio::test]
async fn resuming_releases_held_messages_but_keeps_a_future_start_time() {
    let f = fixture("resume-scheduled").await;
    let scope = Scope::Domain("a.test".into());
    let far = now_ms() + 600_000;
    let soon = now_ms() + 200;
    f.spool
        .accept(vec![
            message(1, "a.test", now_ms()),
            scheduled(2, "a.test", far),
            scheduled(3, "a.test", soon),
        ])
        .await
        .expect("accept");
    f.spool.suspend(&scope).expect("suspend");

    // Message 3's start time arrives while its domain is suspended: held, and shown so.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(f.spool.take_due(now_ms(), 10).expect("take").is_empty());
    assert_eq!(state(&f.spool, 1), "suspended");
    assert_eq!(state(&f.spool, 3), "suspended");
    assert_eq!(
        f.spool.standing(MessageId(3)).expect("standing"),
        Standing::Live
    );
    let delays = kinds(&f.log)
        .into_iter()
        .filter(|k| *k == EventKind::Delay)
        .count();
    assert_eq!(delays, 2, "each held message reports a delay");

    f.spool.resume(&scope).expect("resume");
    assert_eq!(
        ids(&f.spool.take_due(now_ms(), 10).expect("take")),
        [MessageId(1), MessageId(3)]
    );
    let kept = f
        .spool
        .message(MessageId(2))
        .expect("read")
        .expect("queued");
    assert_eq!(kept.due_ms, far, "resuming keeps the start time");
    assert_eq!(state(&f.spool, 2), "scheduled");
}

#[tokio::test]
async fn a_message_held_by_a_suspension_never_waits_less_than_its_start_time() {
    let f = fixture("hold-scheduled").await;
    let start = now_ms() + 600_000;
    f.spool
        .accept(vec![scheduled(1, "a.test", start)])
        .await
        .expect("accept");
    let held = f
        .spool
        .message(MessageId(1))
        .expect("read")
        .expect("queued");
    f.spool.hold_suspended(held).expect("hold");
    let record = f
        .spool
        .message(MessageId(1))
        .expect("read")
        .expect("queued");
    assert_eq!(
        record.due_ms, start,
        "one retry step (60 s) ends before the start time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_while_the_scheduler_takes_messages_hands_each_over_once() {
    let f = fixture("retry-race").await;
    let later = now_ms() + 60_000;
    let count = 2_000;
    let batch = (1..=count)
        .map(|id| message(id, "race.test", later))
        .collect();
    f.spool.accept(batch).await.expect("accept");

    let retrying = {
        let spool = f.spool.clone();
        std::thread::spawn(move || {
            let scope = Scope::Domain("race.test".into());
            for _ in 0..20 {
                spool.retry_now(&scope).expect("retry");
            }
        })
    };
    let mut taken = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while (taken.len() as u64) < count && std::time::Instant::now() < deadline {
        taken.extend(ids(&f.spool.take_due(later, 7).expect("take")));
    }
    retrying.join().expect("the retrying thread");
    // Whatever a retry left behind is taken too; a second hand-over would show here.
    taken.extend(ids(&f.spool.take_due(later, usize::MAX).expect("take")));
    let mut unique = taken.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len() as u64, count, "every message is handed over");
    assert_eq!(taken.len(), unique.len(), "and none twice");
}
