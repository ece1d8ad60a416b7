//! The message-events search behind `GET /api/v1/events/message`: events of a time window that
//! pass every filter, a page at a time, oldest first, with a cursor that is the id of the last
//! event of the page.
//!
//! A search naming messages, recipients or campaigns reads only their events through the
//! `events_by` index; any other search reads every event of the window. `total_count` counts
//! every match in the window, so a broad search over a busy window reads the whole window on
//! each page; keeping counts per time bucket would lift that.

use std::collections::BTreeSet;

use sluice_core::id::first_id_at;
use sluice_core::{Event, EventKind, StoreError};

use crate::log::{keywords, EventLog, IndexField};

/// How far past `to` the ids of events stamped before `to` may reach: an event's id is taken
/// when it is logged, a moment after the event's own timestamp.
const LOGGING_SLACK_MS: u64 = 60_000;

/// The filters of a search; within one filter any value may match, across filters all must.
/// Empty means "no filter".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filters {
    /// Event types.
    pub events: Vec<EventKind>,
    /// Recipient addresses, matched whole and case-insensitively.
    pub recipients: Vec<String>,
    /// Campaign ids, by keyword.
    pub campaigns: Vec<String>,
    /// Message ids.
    pub messages: Vec<String>,
    /// Transmission ids.
    pub transmissions: Vec<String>,
    /// Recipient domains, by keyword (dots separate keywords too).
    pub recipient_domains: Vec<String>,
    /// Subjects, by keyword.
    pub subjects: Vec<String>,
    /// Bounce classes.
    pub bounce_classes: Vec<String>,
    /// IP pools, by keyword.
    pub ip_pools: Vec<String>,
    /// Our sending addresses.
    pub sending_ips: Vec<String>,
    /// Template ids, by keyword.
    pub templates: Vec<String>,
    /// Envelope or header sender addresses, matched whole and case-insensitively.
    pub from_addresses: Vec<String>,
    /// Event ids.
    pub event_ids: Vec<u64>,
    /// The From header's domain, by keyword (dots separate keywords too).
    pub sending_domains: Vec<String>,
    /// Failure reasons, by keyword.
    pub reasons: Vec<String>,
    /// Subaccount ids.
    pub subaccounts: Vec<String>,
    /// Mailbox providers, by keyword.
    pub mailbox_providers: Vec<String>,
    /// Mailbox provider regions, by keyword. Sluice records no region, so any value given
    /// matches no event.
    pub mailbox_provider_regions: Vec<String>,
    /// A/B test ids, by keyword. Sluice runs no A/B tests, so any value given matches no event.
    pub ab_tests: Vec<String>,
}

/// One search request.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchQuery {
    /// Start of the window, Unix milliseconds, inclusive.
    pub from_ms: u64,
    /// End of the window, Unix milliseconds, exclusive.
    pub to_ms: u64,
    /// Return events after this id (the previous page's cursor); `None` for the first page.
    pub after: Option<u64>,
    /// Most events on the page.
    pub per_page: usize,
    /// What events must match.
    pub filters: Filters,
}

/// One page of results.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchPage {
    /// The matching events of this page, oldest first.
    pub events: Vec<Event>,
    /// Matches in the whole window.
    pub total_count: u64,
    /// The cursor of the next page, when there is one.
    pub next: Option<u64>,
}

/// Runs `query` over `log`.
pub fn search(log: &EventLog, query: &SearchQuery) -> Result<SearchPage, StoreError> {
    let lo = first_id_at(query.from_ms);
    let hi = first_id_at(query.to_ms.saturating_add(LOGGING_SLACK_MS));
    let mut page = SearchPage {
        events: Vec::new(),
        total_count: 0,
        next: None,
    };
    let mut visit = |event: Event| {
        if !in_window(&event, query) || !matches(&event, &query.filters) {
            return;
        }
        page.total_count += 1;
        if query.after.is_some_and(|after| event.event_id <= after) {
            return;
        }
        if page.events.len() < query.per_page {
            page.events.push(event);
        } else if page.next.is_none() {
            page.next = page.events.last().map(|e| e.event_id);
        }
    };
    match indexed_ids(log, &query.filters, lo, hi)? {
        Some(ids) => {
            for id in ids {
                if let Some(event) = log.get(id)? {
                    visit(event);
                }
            }
        }
        None => {
            for event in log.range(lo, hi) {
                visit(event?);
            }
        }
    }
    Ok(page)
}

fn in_window(event: &Event, query: &SearchQuery) -> bool {
    (query.from_ms..query.to_ms).contains(&event.timestamp_ms)
}

/// The ids the index gives for the most selective indexed filter, or `None` when no indexed
/// filter is set and the whole window must be read.
fn indexed_ids(
    log: &EventLog,
    filters: &Filters,
    lo: u64,
    hi: u64,
) -> Result<Option<BTreeSet<u64>>, StoreError> {
    if !filters.event_ids.is_empty() {
        return Ok(Some(filters.event_ids.iter().copied().collect()));
    }
    let (field, values) = if !filters.messages.is_empty() {
        (IndexField::Message, &filters.messages)
    } else if !filters.recipients.is_empty() {
        (IndexField::Recipient, &filters.recipients)
    } else if !filters.campaigns.is_empty() {
        (IndexField::Campaign, &filters.campaigns)
    } else {
        return Ok(None);
    };
    let mut ids = BTreeSet::new();
    for value in values {
        ids.extend(log.ids_by(field, &value.to_lowercase(), lo, hi)?);
    }
    Ok(Some(ids))
}

/// Whether `event` passes every filter.
pub fn matches(event: &Event, f: &Filters) -> bool {
    let m = &event.message;
    let a = &event.attempt;
    let message_id = m.message_id.map(|id| id.to_string()).unwrap_or_default();
    let bounce_class = a.bounce_class.map(|c| c.to_string()).unwrap_or_default();
    let sending_ip = a.sending_ip.as_deref().unwrap_or_default();
    let reason = a.reason.as_deref().unwrap_or_default();
    let provider = a.mailbox_provider.as_deref().unwrap_or_default();
    let subaccount = m.subaccount_id.to_string();
    (f.events.is_empty() || f.events.contains(&event.kind))
        && exact(&f.recipients, &[&m.rcpt_to])
        && keyword(&f.campaigns, &m.campaign_id, false)
        && exact(&f.messages, &[&message_id])
        && exact(&f.transmissions, &[&m.transmission_id])
        && keyword(&f.recipient_domains, &m.recipient_domain, true)
        && keyword(&f.subjects, &m.subject, false)
        && exact(&f.bounce_classes, &[&bounce_class])
        && keyword(&f.ip_pools, &m.ip_pool, false)
        && exact(&f.sending_ips, &[sending_ip])
        && keyword(&f.templates, &m.template_id, false)
        && exact(&f.from_addresses, &[&m.msg_from, &m.friendly_from])
        && (f.event_ids.is_empty() || f.event_ids.contains(&event.event_id))
        && keyword(&f.sending_domains, m.sending_domain(), true)
        && keyword(&f.reasons, reason, false)
        && exact(&f.subaccounts, &[&subaccount])
        && keyword(&f.mailbox_providers, provider, false)
        && keyword(&f.mailbox_provider_regions, "", false)
        && keyword(&f.ab_tests, "", false)
}

/// No wanted values, or one of them equals one of the fields, ignoring case.
fn exact(wanted: &[String], fields: &[&str]) -> bool {
    wanted.is_empty()
        || wanted.iter().any(|w| {
            fields
                .iter()
                .any(|f| !f.is_empty() && f.eq_ignore_ascii_case(w))
        })
}

/// No wanted values, or one of them is the field or one of its keywords, ignoring case.
fn keyword(wanted: &[String], field: &str, domain: bool) -> bool {
    if wanted.is_empty() {
        return true;
    }
    let words = keywords(field, domain);
    wanted.iter().any(|w| words.contains(&w.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::event::{AttemptFacts, MessageFacts};
    use sluice_core::{MessageId, Store};

    fn event(kind: EventKind, rcpt: &str, campaign: &str, subject: &str) -> Event {
        Event {
            event_id: 0,
            kind,
            timestamp_ms: sluice_core::clock::now_ms(),
            message: MessageFacts {
                message_id: Some(MessageId(9)),
                rcpt_to: rcpt.into(),
                recipient_domain: rcpt.rsplit('@').next().unwrap_or("").into(),
                campaign_id: campaign.into(),
                subject: subject.into(),
                ..MessageFacts::default()
            },
            attempt: AttemptFacts::default(),
        }
    }

    fn query(filters: Filters, per_page: usize) -> SearchQuery {
        let now = sluice_core::clock::now_ms();
        SearchQuery {
            from_ms: now - 60_000,
            to_ms: now + 60_000,
            after: None,
            per_page,
            filters,
        }
    }

    #[test]
    fn filters_match_whole_values_or_keywords() {
        let e = event(
            EventKind::Bounce,
            "Ann@Mail.Example.com",
            "Spring-Sale",
            "Big news",
        );
        let f = |filters: Filters| matches(&e, &filters);
        assert!(f(Filters::default()));
        assert!(f(Filters {
            recipients: vec!["ann@mail.example.com".into()],
            ..Filters::default()
        }));
        assert!(!f(Filters {
            recipients: vec!["ann".into()],
            ..Filters::default()
        }));
        assert!(f(Filters {
            campaigns: vec!["sale".into()],
            ..Filters::default()
        }));
        assert!(!f(Filters {
            campaigns: vec!["sal".into()],
            ..Filters::default()
        }));
        assert!(f(Filters {
            recipient_domains: vec!["example".into()],
            ..Filters::default()
        }));
        assert!(f(Filters {
            subjects: vec!["news".into(), "x".into()],
            ..Filters::default()
        }));
        assert!(!f(Filters {
            events: vec![EventKind::Delivery],
            ..Filters::default()
        }));
        assert!(!f(Filters {
            campaigns: vec!["sale".into()],
            subjects: vec!["other".into()],
            ..Filters::default()
        }));
    }

    #[test]
    fn attempt_filters_match_reason_provider_and_sending_domain() {
        let mut e = event(EventKind::Bounce, "ann@x.test", "c", "s");
        e.event_id = 77;
        e.message.friendly_from = "news@mail.sender.test".into();
        e.message.subaccount_id = 4;
        e.attempt.reason = Some("550 5.1.1 user-unknown".into());
        e.attempt.mailbox_provider = Some("google".into());
        let f = |filters: Filters| matches(&e, &filters);
        let yes = [
            Filters {
                event_ids: vec![3, 77],
                ..Filters::default()
            },
            Filters {
                sending_domains: vec!["sender".into()],
                ..Filters::default()
            },
            Filters {
                reasons: vec!["unknown".into()],
                ..Filters::default()
            },
            Filters {
                subaccounts: vec!["4".into()],
                ..Filters::default()
            },
            Filters {
                mailbox_providers: vec!["Google".into()],
                ..Filters::default()
            },
        ];
        let no = [
            Filters {
                event_ids: vec![78],
                ..Filters::default()
            },
            Filters {
                sending_domains: vec!["x.test".into()],
                ..Filters::default()
            },
            Filters {
                reasons: vec!["unkn".into()],
                ..Filters::default()
            },
            Filters {
                subaccounts: vec!["0".into()],
                ..Filters::default()
            },
            Filters {
                mailbox_providers: vec!["yahoo".into()],
                ..Filters::default()
            },
            Filters {
                mailbox_provider_regions: vec!["global".into()],
                ..Filters::default()
            },
            Filters {
                ab_tests: vec!["t".into()],
                ..Filters::default()
            },
        ];
        for filters in yes {
            assert!(f(filters.clone()), "{filters:?}");
        }
        for filters in no {
            assert!(!f(filters.clone()), "{filters:?}");
        }
    }

    #[tokio::test]
    async fn pages_return_exactly_the_matches_in_order() -> Result<(), StoreError> {
        let dir = std::env::temp_dir().join(format!("sluice-search-{}", std::process::id()));
        let store = Store::open(&dir, 8 << 20)?;
        let log = EventLog::open(&store)?;
        for i in 0..25 {
            let rcpt = if i % 2 == 0 {
                "even@x.test"
            } else {
                "odd@x.test"
            };
            log.append([event(EventKind::Delivery, rcpt, "c", "s")])?;
        }
        for filters in [
            Filters {
                recipients: vec!["even@x.test".into()],
                ..Filters::default()
            },
            Filters {
                subjects: vec!["s".into()],
                ..Filters::default()
            },
        ] {
            let mut q = query(filters.clone(), 5);
            let mut seen = Vec::new();
            loop {
                let page = search(&log, &q)?;
                seen.extend(page.events.iter().map(|e| e.event_id));
                let want = if filters.recipients.is_empty() {
                    25
                } else {
                    13
                };
                assert_eq!(page.total_count, want);
                match page.next {
                    Some(next) => q.after = Some(next),
                    None => break,
                }
            }
            let expected: Vec<u64> = log
                .range(0, u64::MAX)
                .filter_map(Result::ok)
                .filter(|e| matches(e, &filters))
                .map(|e| e.event_id)
                .collect();
            assert_eq!(seen, expected);
        }
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }
}
