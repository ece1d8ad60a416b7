//! Throttles: the pace of one ready queue, that is of one (egress IP, site).
//!
//! Message and connection rates are GCRA limiters from `governor`, with the rule's burst. When
//! the site pushes back (a 421, "too many connections"), the allowed rate, burst and connection
//! count are halved; each further push halves them again. After `back_pressure_period` without
//! a push they climb back one step (a doubling) per period until the rule's values are reached.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use sluice_core::config::{Rate, ShapingRule};

/// The most halvings in force at once: 1/64 of the configured pace is slow enough.
const MAX_LEVEL: u32 = 6;

/// The limits of one ready queue. Shared by its connections.
pub struct Throttle {
    state: Mutex<State>,
}

struct State {
    rule: Arc<ShapingRule>,
    /// Halvings in force.
    level: u32,
    /// When `level` last changed.
    changed: Instant,
    messages: Option<Arc<DefaultDirectRateLimiter>>,
    connections: Option<Arc<DefaultDirectRateLimiter>>,
}

impl Throttle {
    /// A throttle applying `rule`, with no back pressure in force.
    pub fn new(rule: ShapingRule) -> Throttle {
        let mut state = State {
            rule: Arc::new(rule),
            level: 0,
            changed: Instant::now(),
            messages: None,
            connections: None,
        };
        state.rebuild();
        Throttle {
            state: Mutex::new(state),
        }
    }

    /// Applies a reloaded rule; back pressure in force stays in force.
    pub fn set_rule(&self, rule: ShapingRule) {
        let mut state = self.lock();
        if *state.rule != rule {
            state.rule = Arc::new(rule);
            state.rebuild();
        }
    }

    /// The rule as configured (timeouts, TLS, per-connection limit).
    pub fn rule(&self) -> Arc<ShapingRule> {
        self.lock().rule.clone()
    }

    /// Connections allowed at once now, back pressure included.
    pub fn max_connections(&self) -> usize {
        let state = self.lock();
        (state.rule.max_connections >> state.level).max(1)
    }

    /// Halvings in force now; 0 when the site runs at its configured pace.
    pub fn level(&self) -> u32 {
        self.lock().level
    }

    /// Waits until one more message may be sent.
    pub async fn message_permit(&self) {
        let limiter = self.lock().messages.clone();
        if let Some(limiter) = limiter {
            limiter.until_ready().await;
        }
    }

    /// Waits until one more connection may be opened.
    pub async fn connection_permit(&self) {
        let limiter = self.lock().connections.clone();
        if let Some(limiter) = limiter {
            limiter.until_ready().await;
        }
    }

    /// The site asked us to slow down: halve the pace for a period. Connections opened
    /// together tend to be refused together, so pushes within a quarter period of a halving
    /// only restart its clock rather than halving again.
    pub fn back_off(&self) {
        let mut state = self.lock();
        let now = Instant::now();
        let quarter = state.rule.back_pressure_period / 4;
        let recent = state.level > 0 && now.duration_since(state.changed) < quarter;
        state.changed = now;
        if !recent {
            state.level = (state.level + 1).min(MAX_LEVEL);
            state.rebuild();
            tracing::warn!(level = state.level, "site pushed back; pace halved");
        }
    }

    /// The state with any recovery that is due applied.
    fn lock(&self) -> MutexGuard<'_, State> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.recover(Instant::now());
        state
    }
}

impl State {
    fn recover(&mut self, now: Instant) {
        let period = self.rule.back_pressure_period.max(Duration::from_millis(1));
        let mut stepped = false;
        while self.level > 0 && now.duration_since(self.changed) >= period {
            self.level -= 1;
            self.changed += period;
            stepped = true;
        }
        if stepped {
            self.rebuild();
            tracing::info!(level = self.level, "pace climbing back after back pressure");
        }
    }

    fn rebuild(&mut self) {
        let burst = (self.rule.burst >> self.level).max(1);
        self.messages = limiter(self.rule.max_message_rate, self.level, burst);
        self.connections = limiter(self.rule.max_connection_rate, self.level, burst);
    }
}

/// A GCRA limiter for `rate` slowed by 2^`level`, or none for an unlimited rate.
fn limiter(rate: Option<Rate>, level: u32, burst: u32) -> Option<Arc<DefaultDirectRateLimiter>> {
    let rate = rate?;
    let period = rate.per.checked_mul(1 << level)? / rate.count;
    let quota = Quota::with_period(period)?.allow_burst(NonZeroU32::new(burst)?);
    Some(Arc::new(RateLimiter::direct(quota)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> ShapingRule {
        toml::from_str(text).expect("valid rule")
    }

    #[tokio::test]
    async fn a_rate_with_burst_lets_the_burst_through_then_paces() {
        let throttle = Throttle::new(rule("max_message_rate = \"20/s\"\nburst = 5\n"));
        let start = Instant::now();
        for _ in 0..5 {
            throttle.message_permit().await;
        }
        assert!(start.elapsed() < Duration::from_millis(40));
        for _ in 0..4 {
            throttle.message_permit().await;
        }
        // Four more at 50 ms each.
        assert!(
            start.elapsed() >= Duration::from_millis(150),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn back_pressure_halves_then_climbs_back_step_by_step() {
        let throttle = Throttle::new(rule("max_connections = 8\nback_pressure_period = \"2s\"\n"));
        throttle.back_off();
        throttle.back_off();
        assert_eq!(
            throttle.max_connections(),
            4,
            "a second push at once does not halve again"
        );
        std::thread::sleep(Duration::from_millis(600));
        throttle.back_off();
        assert_eq!(throttle.max_connections(), 2);

        let mut state = throttle.state.lock().expect("lock");
        let later = state.changed + Duration::from_secs(2);
        state.recover(later);
        assert_eq!(state.level, 1);
        state.recover(later + Duration::from_secs(2));
        assert_eq!(state.level, 0);
    }

    #[test]
    fn reloading_keeps_back_pressure_in_force() {
        let throttle = Throttle::new(rule("max_connections = 8\n"));
        throttle.back_off();
        throttle.set_rule(rule("max_connections = 4\n"));
        assert_eq!(throttle.max_connections(), 2);
        assert_eq!(throttle.level(), 1);
    }
}
