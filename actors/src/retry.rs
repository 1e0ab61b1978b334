//! The delay policies of every retry in vidbuilder, in one place: render restarts, object
//! storage retries (and the worker reconnects of cluster mode).
//!
//! Delays are computed with the `backoff` crate, the one the design names. It is unmaintained
//! (RUSTSEC-2025-0012, informational; the advisory suggests `backon`): it is used here only as
//! pure computation behind these functions, so swapping it is a change to this file alone.

use std::time::Duration;

use backoff::backoff::Backoff;
use backoff::ExponentialBackoff;

/// The delay before retry number `n` (0-based) of an exponential policy without jitter:
/// `base · 2ⁿ`, capped at one day.
pub fn exponential(base: Duration, n: u32) -> Duration {
    let cap = Duration::from_secs(86_400);
    if base.is_zero() {
        return Duration::ZERO;
    }
    let mut policy = ExponentialBackoff {
        current_interval: base,
        initial_interval: base,
        randomization_factor: 0.0,
        multiplier: 2.0,
        max_interval: cap,
        max_elapsed_time: None,
        ..ExponentialBackoff::default()
    };
    let mut delay = base;
    for _ in 0..=n.min(64) {
        delay = policy.next_backoff().unwrap_or(cap);
        if delay >= cap {
            return cap;
        }
    }
    delay
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_the_base() {
        let base = Duration::from_millis(500);
        let got: Vec<_> = (0..5).map(|n| exponential(base, n)).collect();
        let want: Vec<_> = [500, 1000, 2000, 4000, 8000]
            .into_iter()
            .map(Duration::from_millis)
            .collect();
        assert_eq!(got, want);
        assert_eq!(
            exponential(Duration::from_secs(2), 0),
            Duration::from_secs(2)
        );
        assert_eq!(
            exponential(Duration::from_secs(2), 2),
            Duration::from_secs(8)
        );
    }

    #[test]
    fn delays_are_capped_and_zero_stays_zero() {
        assert_eq!(
            exponential(Duration::from_secs(1), 40),
            Duration::from_secs(86_400)
        );
        assert_eq!(
            exponential(Duration::from_secs(1), u32::MAX),
            Duration::from_secs(86_400)
        );
        assert_eq!(exponential(Duration::ZERO, 3), Duration::ZERO);
    }
}
