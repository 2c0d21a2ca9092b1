//! What a load must achieve: bounds on a latency's percentile (`--max-reply-p90 800ms`)
//! and a least share of calls that pass (`--min-pass-rate 99.5`). With any given, they
//! alone (and the load's own health) decide its exit status, each a JUnit testcase; a
//! release gate reads as the thresholds it sets, not as "every call perfect".

use std::{fmt, time::Duration};

use super::histogram::{Histogram, LoadHistograms};

/// A latency a load measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// From a caller's turn's end to the application's reply heard.
    Reply,
    /// From a barge-in to the application's `clear`.
    BargeInClear,
    /// The answer webhook's.
    Answer,
    /// The socket handshake's.
    Handshake,
    /// An echoed frame's round trip.
    RoundTrip,
}

impl Metric {
    /// Its name in flags and reports.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Reply => "reply",
            Metric::BargeInClear => "barge-in clear",
            Metric::Answer => "answer webhook",
            Metric::Handshake => "handshake",
            Metric::RoundTrip => "round trip",
        }
    }

    fn histogram(self, h: &LoadHistograms) -> &Histogram {
        match self {
            Metric::Reply => &h.reply,
            Metric::BargeInClear => &h.barge_in_clear,
            Metric::Answer => &h.answer_webhook,
            Metric::Handshake => &h.handshake,
            Metric::RoundTrip => &h.round_trip,
        }
    }
}

/// One thing a load must achieve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// The latency's percentile is at most the bound.
    Max {
        /// Which latency.
        metric: Metric,
        /// Which percentile (0 to 100).
        percentile: f64,
        /// The most it may be.
        bound: Duration,
    },
    /// At least this percent of the calls dialed pass.
    MinPassRate(f64),
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Threshold::Max {
                metric,
                percentile,
                bound,
            } => write!(
                f,
                "{} p{percentile} at most {} ms",
                metric.name(),
                bound.as_millis()
            ),
            Threshold::MinPassRate(rate) => write!(f, "at least {rate} % of calls pass"),
        }
    }
}

/// A threshold, and whether the load met it.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct Verdict {
    /// The threshold, in words.
    pub threshold: String,
    /// What was measured, in words (`612.0 ms`, `99.8 %`, `none measured`).
    pub measured: String,
    /// Whether it was met.
    pub met: bool,
}

impl Threshold {
    /// Judges a load, by its latencies and the share of its calls that passed (in %), by
    /// this threshold. A latency nothing measured fails it: a load of a voice bot that
    /// never answered has no reply time to be within bounds.
    pub fn judge(&self, histograms: &LoadHistograms, pass_rate: f64) -> Verdict {
        let (measured, met) = match *self {
            Threshold::Max {
                metric,
                percentile,
                bound,
            } => {
                let h = metric.histogram(histograms);
                if h.count() == 0 {
                    ("none measured".to_owned(), false)
                } else {
                    let value = Duration::from_micros(h.percentile(percentile));
                    (
                        format!("{:.1} ms", value.as_secs_f64() * 1000.0),
                        value <= bound,
                    )
                }
            }
            Threshold::MinPassRate(rate) => (format!("{pass_rate:.2} %"), pass_rate >= rate),
        };
        Verdict {
            threshold: self.to_string(),
            measured,
            met,
        }
    }
}

/// A bound as a flag gives it: `800ms`, `1.5s`, or a number of ms.
pub fn parse_bound(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration (say 800ms or 1.5s)");
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        (text, 0.001)
    };
    let value: f64 = number.trim().parse().map_err(|_| bad())?;
    Duration::try_from_secs_f64(value * scale).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_read_in_ms_or_seconds() {
        assert_eq!(parse_bound("800ms"), Ok(Duration::from_millis(800)));
        assert_eq!(parse_bound("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_bound("250"), Ok(Duration::from_millis(250)));
        assert!(parse_bound("soon").is_err());
    }

    #[test]
    fn a_latency_nothing_measured_fails_its_threshold() {
        let threshold = Threshold::Max {
            metric: Metric::Reply,
            percentile: 90.0,
            bound: Duration::from_millis(800),
        };
        let verdict = threshold.judge(&LoadHistograms::default(), 100.0);
        assert!(!verdict.met);
        assert_eq!(verdict.measured, "none measured");
    }

    #[test]
    fn a_percentile_within_its_bound_meets_it() {
        let mut histograms = LoadHistograms::default();
        for ms in [100, 200, 300, 900] {
            histograms.reply.record(ms * 1000);
        }
        let at = |percentile| Threshold::Max {
            metric: Metric::Reply,
            percentile,
            bound: Duration::from_millis(800),
        };
        assert!(at(50.0).judge(&histograms, 100.0).met);
        assert!(!at(99.0).judge(&histograms, 100.0).met);
    }
}
