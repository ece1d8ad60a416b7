//! Wall-clock helpers. Sluice stores times as Unix milliseconds: they sort as bytes when written
//! big-endian, which is what the schedule index relies on.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Set by [`follow_tokio_time`]: the wall time and the instant it was taken at.
static TOKIO_ANCHOR: OnceLock<(u64, Instant)> = OnceLock::new();

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    match TOKIO_ANCHOR.get() {
        Some((wall, at)) => {
            let since = tokio::time::Instant::now()
                .into_std()
                .saturating_duration_since(*at);
            wall + since.as_millis() as u64
        }
        None => system_ms(),
    }
}

/// Makes [`now_ms`] follow tokio's clock from here on, for the whole process: in a runtime
/// whose time is paused, schedules, backoff and expiry then run on virtual time, so a test can
/// cover days of retries in milliseconds. In a runtime with real time it changes nothing.
/// Meant for tests; the server never calls it.
pub fn follow_tokio_time() {
    TOKIO_ANCHOR.get_or_init(|| (system_ms(), Instant::now()));
}

fn system_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Formats Unix milliseconds as ISO-8601 with milliseconds and a `Z`, the form SparkPost uses
/// for `injection_time`: `2016-04-18T14:25:07.000Z`.
pub fn iso8601_ms(ms: u64) -> String {
    let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return String::new();
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Parses an RFC 3339 timestamp (`2026-12-03T18:00:00+01:00` or `…Z`) into Unix milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Option<u64> {
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_matches_sparkpost_shape() {
        assert_eq!(iso8601_ms(1_460_989_507_000), "2016-04-18T14:25:07.000Z");
    }

    #[test]
    fn rfc3339_round_trips_through_iso8601() {
        let ms = parse_rfc3339_ms("2016-04-18T16:25:07.250+02:00");
        assert_eq!(
            ms.map(iso8601_ms).as_deref(),
            Some("2016-04-18T14:25:07.250Z")
        );
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }
}
