//! `GET /api/v1/events/message`: searching the event log by time window and filters, a page
//! at a time, in the flat form with ISO-8601 timestamps.

use axum::extract::{Query, State};
use axum::Json;
use serde_json::{json, Value};
use sluice_core::clock::{now_ms, parse_rfc3339_ms};
use sluice_core::{Event, EventKind};
use sluice_events::search::{search, Filters, SearchQuery};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// The default window reaches this far back.
const DEFAULT_WINDOW_MS: u64 = 24 * 3600 * 1000;
/// The default window ends this long before now, as SparkPost's does.
const DEFAULT_END_LAG_MS: u64 = 60 * 1000;
/// `per_page` when none is given, and the most allowed.
const DEFAULT_PER_PAGE: usize = 1000;
const MAX_PER_PAGE: usize = 10_000;

/// `GET /events/message`.
pub async fn message_events(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    caller.require("message_events/view")?;
    let query = parse_query(&params, now_ms())?;
    let page = search(&state.log, &query)?;
    let results: Vec<Value> = page.events.iter().map(Event::to_search_json).collect();
    let links = match page.next {
        Some(cursor) => json!({ "next": next_link(&params, cursor) }),
        None => json!({}),
    };
    Ok(Json(
        json!({"results": results, "total_count": page.total_count, "links": links}),
    ))
}

/// Reads the query string; every bad value is a 422 naming the parameter.
fn parse_query(params: &[(String, String)], now: u64) -> Result<SearchQuery, ApiError> {
    let get = |name: &str| {
        params
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let from_ms = match get("from") {
        Some(text) => parse_time("from", text)?,
        None => now.saturating_sub(DEFAULT_WINDOW_MS),
    };
    let to_ms = match get("to") {
        Some(text) => parse_time("to", text)?,
        None => now.saturating_sub(DEFAULT_END_LAG_MS),
    };
    if from_ms >= to_ms {
        return Err(ApiError::invalid("from: must be before to"));
    }
    let per_page = match get("per_page") {
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PER_PAGE).contains(n))
            .ok_or_else(|| ApiError::invalid("per_page: must be a number from 1 to 10000"))?,
        None => DEFAULT_PER_PAGE,
    };
    let after = match get("cursor") {
        None | Some("initial") => None,
        Some(text) => Some(
            text.parse::<u64>()
                .map_err(|_| ApiError::invalid(format!("cursor: {text:?} is not a cursor")))?,
        ),
    };
    let delimiter = get("delimiter").filter(|d| !d.is_empty()).unwrap_or(",");
    let filters = parse_filters(&get, delimiter)?;
    Ok(SearchQuery {
        from_ms,
        to_ms,
        after,
        per_page,
        filters,
    })
}

fn parse_filters<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    delimiter: &str,
) -> Result<Filters, ApiError> {
    let list = |name: &str| -> Vec<String> {
        get(name)
            .map(|text| {
                text.split(delimiter)
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let events = list("events")
        .iter()
        .map(|name| {
            EventKind::parse(name)
                .ok_or_else(|| ApiError::invalid(format!("events: unknown event type {name:?}")))
        })
        .collect::<Result<_, _>>()?;
    let event_ids = list("event_ids")
        .iter()
        .map(|id| {
            id.parse::<u64>()
                .map_err(|_| ApiError::invalid(format!("event_ids: {id:?} is not an event id")))
        })
        .collect::<Result<_, _>>()?;
    let ab_tests = list("ab_tests");
    if ab_tests.is_empty() && !list("ab_test_versions").is_empty() {
        return Err(ApiError::invalid("ab_test_versions: requires ab_tests"));
    }
    Ok(Filters {
        events,
        event_ids,
        sending_domains: list("sending_domains"),
        reasons: list("reasons"),
        subaccounts: list("subaccounts"),
        mailbox_providers: list("mailbox_providers"),
        mailbox_provider_regions: list("mailbox_provider_regions"),
        ab_tests,
        recipients: list("recipients"),
        campaigns: list("campaigns"),
        messages: list("messages"),
        transmissions: list("transmissions"),
        recipient_domains: list("recipient_domains"),
        subjects: list("subjects"),
        bounce_classes: list("bounce_classes"),
        ip_pools: list("ip_pools"),
        sending_ips: list("sending_ips"),
        templates: list("templates"),
        from_addresses: list("from_addresses"),
    })
}

/// `YYYY-MM-DDTHH:MM:ssZ`, any RFC 3339 time, or the same without seconds or zone (UTC).
fn parse_time(name: &str, text: &str) -> Result<u64, ApiError> {
    [text.to_string(), format!("{text}Z"), format!("{text}:00Z")]
        .iter()
        .find_map(|candidate| parse_rfc3339_ms(candidate))
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "{name}: {text:?} is not a time like 2026-01-31T08:00:00Z"
            ))
        })
}

/// The path of the next page: every original parameter but `cursor`, then the new cursor.
fn next_link(params: &[(String, String)], cursor: u64) -> String {
    let mut query: Vec<String> = params
        .iter()
        .filter(|(name, _)| name != "cursor")
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect();
    query.push(format!("cursor={cursor}"));
    format!("/api/v1/events/message?{}", query.join("&"))
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_the_last_day_up_to_a_minute_ago_and_a_thousand_per_page() {
        let q = parse_query(&[], 100_000_000).expect("empty query is valid");
        assert_eq!(
            (q.from_ms, q.to_ms, q.per_page, q.after),
            (
                100_000_000 - DEFAULT_WINDOW_MS,
                100_000_000 - 60_000,
                1000,
                None
            )
        );
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            params(&[("per_page", "0")]),
            params(&[("per_page", "10001")]),
            params(&[("per_page", "many")]),
            params(&[("cursor", "abc")]),
            params(&[("from", "yesterday")]),
            params(&[
                ("from", "2026-01-02T00:00:00Z"),
                ("to", "2026-01-01T00:00:00Z"),
            ]),
            params(&[("events", "delivery,nonsense")]),
            params(&[("event_ids", "12,x")]),
            params(&[("ab_test_versions", "2")]),
        ] {
            assert!(parse_query(&bad, 1_800_000_000_000).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn filters_split_on_the_delimiter_and_times_take_short_forms() {
        let q = parse_query(
            &params(&[
                ("recipients", "a@x.test;b@x.test"),
                ("delimiter", ";"),
                ("events", "delivery"),
                ("from", "2026-01-01T00:00"),
            ]),
            1_800_000_000_000,
        )
        .expect("valid query");
        assert_eq!(q.filters.recipients, ["a@x.test", "b@x.test"]);
        assert_eq!(q.filters.events, [EventKind::Delivery]);
        assert_eq!(q.from_ms, 1_767_225_600_000);
    }

    #[test]
    fn the_next_link_keeps_every_filter_and_replaces_the_cursor() {
        let link = next_link(
            &params(&[
                ("events", "delivery,bounce"),
                ("cursor", "5"),
                ("per_page", "2"),
            ]),
            9,
        );
        assert_eq!(
            link,
            "/api/v1/events/message?events=delivery%2Cbounce&per_page=2&cursor=9"
        );
    }
}
