//! Identifiers for messages, transmissions and events.
//!
//! SparkPost's ids are decimal strings of 64-bit integers, and clients treat them as opaque
//! strings. Ours are time-ordered: the high bits are the creation time in milliseconds and the
//! low bits a counter, so ids sort by creation and stay unique across restarts as long as the
//! clock does not step back by more than the time a restart takes.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::clock::now_ms;

/// Bits of the id given to the per-millisecond counter.
const COUNTER_BITS: u32 = 22;

/// Hands out unique, increasing 64-bit ids.
#[derive(Debug, Default)]
pub struct IdGenerator {
    last: AtomicU64,
}

impl IdGenerator {
    /// A generator whose first id is based on the current time.
    pub fn new() -> IdGenerator {
        IdGenerator::default()
    }

    /// The next id: never equal to or below any id this generator returned before.
    pub fn next(&self) -> u64 {
        let floor = now_ms() << COUNTER_BITS;
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = floor.max(last + 1);
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// The next id as a message id.
    pub fn message_id(&self) -> MessageId {
        MessageId(self.next())
    }
}

/// The smallest id an [`IdGenerator`] could hand out at Unix millisecond `ms`: every id made at
/// or after `ms` is at least this, every id made before it is below it.
pub fn first_id_at(ms: u64) -> u64 {
    if ms > u64::MAX >> COUNTER_BITS {
        return u64::MAX;
    }
    ms << COUNTER_BITS
}

/// The Unix millisecond an id was made at.
pub fn id_time_ms(id: u64) -> u64 {
    id >> COUNTER_BITS
}

/// The id of one message: one recipient of one transmission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct MessageId(pub u64);

impl MessageId {
    /// The id as big-endian bytes, the form used in sled keys.
    pub fn to_be_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// Reads an id from the first eight bytes of a key.
    pub fn from_be_slice(bytes: &[u8]) -> Option<MessageId> {
        let head: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
        Some(MessageId(u64::from_be_bytes(head)))
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for MessageId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(MessageId)
    }
}

impl From<MessageId> for String {
    fn from(id: MessageId) -> String {
        id.to_string()
    }
}

impl TryFrom<String> for MessageId {
    type Error = std::num::ParseIntError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_and_never_repeat() {
        let ids = IdGenerator::new();
        let mut prev = ids.next();
        for _ in 0..100_000 {
            let next = ids.next();
            assert!(next > prev);
            prev = next;
        }
    }

    #[test]
    fn ids_made_at_a_time_are_not_below_its_first_id() {
        let ids = IdGenerator::new();
        let before = now_ms();
        let id = ids.next();
        assert!(id >= first_id_at(before));
        assert!(id_time_ms(id) >= before);
        assert_eq!(id_time_ms(first_id_at(before)), before);
    }

    #[test]
    fn message_id_round_trips_as_string_and_bytes() {
        let id = MessageId(11_668_787_484_950_529);
        assert_eq!(id.to_string().parse::<MessageId>().ok(), Some(id));
        assert_eq!(MessageId::from_be_slice(&id.to_be_bytes()), Some(id));
        assert_eq!(
            serde_json::to_string(&id).ok().as_deref(),
            Some("\"11668787484950529\"")
        );
    }
}
