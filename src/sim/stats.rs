//! The few figures every report computes: durations in milliseconds, percentiles.

use std::{fmt, time::Duration};

use serde::{Deserialize, Serialize};

use super::histogram::Histogram;

/// A duration in milliseconds, as the reports print them.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Sorted round trips in microseconds, read at a percentile.
pub(crate) fn percentile(sorted: &[u32], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    Duration::from_micros(u64::from(sorted[rank.min(sorted.len() - 1)]))
}

/// Percentiles of a latency (a frame's round trip, a step of call setup), in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Longest.
    pub max_ms: f64,
}

impl Percentiles {
    /// Percentiles of latencies in microseconds, sorted.
    pub(crate) fn of(sorted: &[u32]) -> Percentiles {
        Percentiles {
            p50_ms: ms(percentile(sorted, 50.0)),
            p90_ms: ms(percentile(sorted, 90.0)),
            p99_ms: ms(percentile(sorted, 99.0)),
            p999_ms: ms(percentile(sorted, 99.9)),
            max_ms: ms(percentile(sorted, 100.0)),
        }
    }

    /// Percentiles read off a histogram of microseconds (as exact as its precision).
    pub fn of_histogram(h: &Histogram) -> Percentiles {
        let ms = |micros: u64| micros as f64 / 1000.0;
        Percentiles {
            p50_ms: ms(h.percentile(50.0)),
            p90_ms: ms(h.percentile(90.0)),
            p99_ms: ms(h.percentile(99.0)),
            p999_ms: ms(h.percentile(99.9)),
            max_ms: ms(h.max()),
        }
    }
}

impl fmt::Display for Percentiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:.2}, p90 {:.2}, p99 {:.2}, p99.9 {:.2}, max {:.2}",
            self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.max_ms
        )
    }
}
