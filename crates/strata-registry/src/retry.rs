//! When a request is tried again: a connection that failed or broke, and
//! the answers that say "later" (429, 500, 502, 503, 504), are retried with
//! a bounded exponential backoff, waiting what the registry's `Retry-After`
//! asks when it asks (up to a bound: a registry asking for longer is
//! answered by failing now, with its message). The client retries requests
//! whose bodies can be sent again; a blob's stream is restarted or resumed
//! by the transfer above it, with the same policy.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};

/// How many tries, and how long between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all (1: no retry).
    pub attempts: u32,
    /// The first wait; each next one doubles, up to `max_delay`.
    pub base: Duration,
    pub max_delay: Duration,
    /// The longest `Retry-After` waited for; a longer one fails at once.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No retry at all.
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The wait before the next try after try `attempt` (1-based) failed,
    /// or None when no try is left or the registry asks for longer than
    /// `max_retry_after`. `retry_after`: what the registry asked.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if attempt >= self.attempts {
            return None;
        }
        if let Some(asked) = retry_after {
            return (asked <= self.max_retry_after).then_some(asked);
        }
        let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
        Some(self.base.saturating_mul(factor).min(self.max_delay))
    }

    /// The longest the retries of one request may wait in all (each wait
    /// at its longest): the bound on a registry that keeps failing.
    pub fn longest_wait(&self) -> Duration {
        (1..self.attempts)
            .map(|_| self.max_delay.max(self.max_retry_after))
            .sum()
    }
}

/// Whether an answer with this status is worth trying again.
pub fn retryable_status(s: StatusCode) -> bool {
    matches!(
        s,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// A response's `Retry-After`: seconds, or an HTTP date (a date past is 0).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    parse_retry_after(v, SystemTime::now())
}

/// `Retry-After`'s value at `now`.
pub fn parse_retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_bound_and_stops_after_the_last_try() {
        let p = RetryPolicy {
            attempts: 6,
            base: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            max_retry_after: Duration::from_secs(10),
        };
        let waits: Vec<_> = (1..=6).map(|a| p.delay(a, None)).collect();
        assert_eq!(
            waits,
            vec![
                Some(Duration::from_millis(100)),
                Some(Duration::from_millis(200)),
                Some(Duration::from_millis(400)),
                Some(Duration::from_millis(500)),
                Some(Duration::from_millis(500)),
                None,
            ]
        );
        assert_eq!(RetryPolicy::none().delay(1, None), None);
        // A huge attempt number does not overflow.
        let p = RetryPolicy {
            attempts: u32::MAX,
            ..p
        };
        assert_eq!(p.delay(200, None), Some(Duration::from_millis(500)));
    }

    #[test]
    fn retry_after_is_honoured_up_to_its_bound() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, Some(Duration::from_secs(3))), Some(Duration::from_secs(3)));
        assert_eq!(p.delay(4, Some(Duration::ZERO)), Some(Duration::ZERO));
        // Longer than the client waits: fail now, with the registry's message.
        assert_eq!(p.delay(1, Some(Duration::from_secs(3600))), None);
        // The last try is the last, whatever the registry asks.
        assert_eq!(p.delay(p.attempts, Some(Duration::from_secs(1))), None);
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn the_answers_that_say_later_are_retried() {
        for s in [429, 500, 502, 503, 504] {
            assert!(retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400, 401, 403, 404, 405, 416, 501] {
            assert!(!retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }
}
