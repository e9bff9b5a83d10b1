//! When to try again: the route's schedule, jittered so that a recovering upstream is not hit by
//! every queued event in the same second, and never sooner than the upstream's `Retry-After`.

use std::time::{Duration, SystemTime};

use crate::config::RetryPolicy;

/// Upper bound on an upstream's `Retry-After`, so a bogus value cannot park an event for years.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Fraction of the delay added or removed at random.
const JITTER: f64 = 0.2;

/// What happens after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    /// Try again after this delay.
    RetryIn(Duration),
    /// Out of attempts: dead-letter it.
    Dead,
}

/// Decides after attempt number `attempts_made` (1-based) failed; `unit` in [0, 1) drives jitter.
pub fn next(
    policy: &RetryPolicy,
    attempts_made: u32,
    retry_after: Option<Duration>,
    unit: f64,
) -> Next {
    if attempts_made >= policy.max_attempts || policy.schedule.is_empty() {
        return Next::Dead;
    }
    let idx = (attempts_made.saturating_sub(1) as usize).min(policy.schedule.len() - 1);
    let base = policy.schedule[idx].as_secs_f64();
    let factor = 1.0 - JITTER + 2.0 * JITTER * unit.clamp(0.0, 1.0);
    let jittered = Duration::from_secs_f64(base * factor);
    let floor = retry_after
        .map(|d| d.min(MAX_RETRY_AFTER))
        .unwrap_or_default();
    Next::RetryIn(jittered.max(floor))
}

/// When a retry `delay` from now falls. The config caps delays far below what `SystemTime`
/// holds; should one still overflow, the retry is due at once rather than a panic.
pub fn at(delay: Duration) -> SystemTime {
    let now = SystemTime::now();
    now.checked_add(delay).unwrap_or(now)
}

/// Parses `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(v: &http::HeaderValue) -> Option<Duration> {
    let s = v.to_str().ok()?.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(s).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_retry_time_past_the_clock_range_is_due_now_not_a_panic() {
        let before = SystemTime::now();
        assert!(at(Duration::MAX) <= SystemTime::now());
        assert!(at(Duration::from_secs(60)) > before + Duration::from_secs(59));
    }

    fn policy() -> RetryPolicy {
        let schedule = [30, 300, 1800, 7200].map(Duration::from_secs).to_vec();
        RetryPolicy {
            schedule,
            max_attempts: 5,
            no_retry_on: vec![],
        }
    }

    #[test]
    fn follows_the_schedule_then_dies() {
        let p = policy();
        assert_eq!(
            next(&p, 1, None, 0.5),
            Next::RetryIn(Duration::from_secs(30))
        );
        assert_eq!(
            next(&p, 4, None, 0.5),
            Next::RetryIn(Duration::from_secs(7200))
        );
        assert_eq!(next(&p, 5, None, 0.5), Next::Dead);
    }

    #[test]
    fn retry_after_is_a_floor() {
        let d = next(&policy(), 1, Some(Duration::from_secs(600)), 0.0);
        assert_eq!(d, Next::RetryIn(Duration::from_secs(600)));
    }

    #[test]
    fn retry_after_seconds_parse() {
        let v = http::HeaderValue::from_static("120");
        assert_eq!(parse_retry_after(&v), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after(&http::HeaderValue::from_static("soon")),
            None
        );
    }

    proptest! {
        #[test]
        fn delay_stays_within_jitter_bounds(attempt in 1u32..5, unit in 0.0f64..1.0, ra in proptest::option::of(0u64..100_000)) {
            let p = policy();
            let base = p.schedule[(attempt as usize - 1).min(3)];
            let Next::RetryIn(d) = next(&p, attempt, ra.map(Duration::from_secs), unit) else {
                panic!("died before max_attempts");
            };
            let floor = ra.map(Duration::from_secs).unwrap_or_default().min(MAX_RETRY_AFTER);
            prop_assert!(d >= base.mul_f64(1.0 - JITTER).min(floor.max(base.mul_f64(1.0 - JITTER))));
            prop_assert!(d <= base.mul_f64(1.0 + JITTER).max(floor));
            prop_assert!(d >= floor);
        }

        #[test]
        fn retry_after_parsing_never_panics(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            if let Ok(v) = http::HeaderValue::from_bytes(&raw) {
                let _ = parse_retry_after(&v);
            }
        }

        #[test]
        fn never_retries_past_max_attempts(attempt in 5u32..1000, unit in 0.0f64..1.0) {
            prop_assert_eq!(next(&policy(), attempt, None, unit), Next::Dead);
        }
    }
}
