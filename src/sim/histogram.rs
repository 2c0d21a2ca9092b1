//! A latency histogram that keeps every value to within 1 % and merges exactly.
//!
//! Percentiles of two runs cannot be combined; their histograms can. Values (microseconds)
//! fall into log-linear buckets, as HDR histograms lay them out: below 128 µs a bucket
//! per microsecond, above it 128 buckets to each power of two, so a bucket is at most
//! 1/128 of its lowest value wide and its midpoint is within 0.4 % of any value in it.
//! A run of an hour's round trips fits in about 3,500 counters, whatever the number of
//! values; two histograms merge by adding counters, so shards of one load, merged, give the
//! percentiles the unsharded load would have, to the same precision.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The most a percentile read off a histogram differs from the true value, relative to it.
pub const RELATIVE_PRECISION: f64 = 0.01;

/// Sub-buckets to each power of two (and single-microsecond buckets below it).
const SUB_BUCKETS: u64 = 128;
const SUB_BITS: u32 = SUB_BUCKETS.trailing_zeros();

/// Counts of values, in microseconds, by bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram::default()
    }

    /// Counts one value.
    pub fn record(&mut self, micros: u64) {
        self.record_n(micros, 1);
    }

    /// Counts `n` values of `micros`.
    fn record_n(&mut self, micros: u64, n: u64) {
        if n == 0 {
            return;
        }
        let i = index_of(micros);
        if self.counts.len() <= i {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += n;
        self.min = if self.count == 0 {
            micros
        } else {
            self.min.min(micros)
        };
        self.max = self.max.max(micros);
        self.count += n;
        self.sum += u128::from(micros) * u128::from(n);
    }

    /// How many values were counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest value counted (exact), 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The smallest value counted (exact), 0 when empty.
    pub fn min(&self) -> u64 {
        self.min
    }

    /// The mean of the values counted (exact), 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        self.sum as f64 / self.count as f64
    }

    /// Adds `other`'s counts to this one's.
    pub fn merge(&mut self, other: &Histogram) {
        if other.count == 0 {
            return;
        }
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.min = if self.count == 0 {
            other.min
        } else {
            self.min.min(other.min)
        };
        self.max = self.max.max(other.max);
        self.count += other.count;
        self.sum += other.sum;
    }

    /// The value at percentile `p` (0 to 100), in microseconds: the smallest value that at
    /// least `p` % of the values are at or below, to within [`RELATIVE_PRECISION`]. 0 when
    /// empty; the exact maximum at 100.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((p.clamp(0.0, 100.0) / 100.0) * self.count as f64).ceil() as u64;
        let rank = rank.max(1);
        if rank >= self.count {
            return self.max;
        }
        let mut seen = 0;
        for (i, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return midpoint(i).clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// The non-empty buckets: each one's lowest value and its count.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (low_of(i), *n))
    }
}

/// The bucket a value falls in.
fn index_of(v: u64) -> usize {
    if v < SUB_BUCKETS {
        return v as usize;
    }
    let shift = (63 - v.leading_zeros()) - SUB_BITS;
    let sub = v >> shift;
    ((u64::from(shift) + 1) * SUB_BUCKETS + (sub - SUB_BUCKETS)) as usize
}

/// The lowest value of bucket `i`.
fn low_of(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB_BUCKETS {
        return i;
    }
    let shift = i / SUB_BUCKETS - 1;
    let sub = i % SUB_BUCKETS + SUB_BUCKETS;
    sub << shift
}

/// The middle of bucket `i`, which stands for every value in it.
fn midpoint(i: usize) -> u64 {
    let low = low_of(i);
    let width = low_of(i + 1) - low;
    low + width / 2
}

/// The histogram as JSON: its precision, its exact count, min, max and sum, and its
/// non-empty buckets as `[lowest value, count]` pairs, in microseconds.
#[derive(Serialize, Deserialize)]
struct Wire {
    unit: String,
    relative_precision: f64,
    count: u64,
    min: u64,
    max: u64,
    sum: u128,
    buckets: Vec<(u64, u64)>,
}

impl Serialize for Histogram {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Wire {
            unit: "us".into(),
            relative_precision: RELATIVE_PRECISION,
            count: self.count,
            min: self.min,
            max: self.max,
            sum: self.sum,
            buckets: self.buckets().collect(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Histogram {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Histogram, D::Error> {
        use serde::de::Error;
        let wire = Wire::deserialize(d)?;
        if wire.unit != "us" {
            return Err(D::Error::custom(format!(
                "a histogram in {:?}, not microseconds",
                wire.unit
            )));
        }
        let mut h = Histogram::new();
        for (low, n) in wire.buckets {
            h.record_n(low, n);
        }
        if h.count != wire.count {
            return Err(D::Error::custom(format!(
                "a histogram whose buckets hold {} values says it holds {}",
                h.count, wire.count
            )));
        }
        // The exact figures travel beside the buckets.
        (h.min, h.max, h.sum) = (wire.min, wire.max, wire.sum);
        Ok(h)
    }
}

/// A load's latencies, each a histogram of microseconds: the report's percentiles are
/// read off them, and the reports of a load's shards merge into the load's percentiles through
/// them (which percentiles of their own cannot).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct LoadHistograms {
    /// The most a percentile read off these histograms differs from the true value,
    /// relative to it.
    pub relative_precision: f64,
    /// The answer webhook's, of the calls that got one.
    pub answer_webhook: Histogram,
    /// The socket handshake's.
    pub handshake: Histogram,
    /// Every echoed frame's round trip.
    pub round_trip: Histogram,
    /// The round trips of the frames sent while every call was up (empty when no window
    /// had every call up).
    pub steady_round_trip: Histogram,
    /// Every answered turn's reply, when the calls were judged.
    pub reply: Histogram,
    /// Every barge-in's time to the application's clear, when the calls were judged.
    pub barge_in_clear: Histogram,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value's bucket holds it, and its midpoint is within the stated precision.
    #[test]
    fn every_value_is_kept_within_the_stated_precision() {
        let mut v = 0u64;
        while v < 1 << 40 {
            let i = index_of(v);
            assert!(low_of(i) <= v && v < low_of(i + 1), "{v} in bucket {i}");
            let mid = midpoint(i) as f64;
            assert!(
                (mid - v as f64).abs() <= RELATIVE_PRECISION * v.max(1) as f64,
                "{v}: {mid}"
            );
            v = v + 1 + v / 97;
        }
    }

    #[test]
    fn percentiles_are_within_one_percent_of_the_sorted_values() {
        let mut h = Histogram::new();
        let mut values: Vec<u64> = (0..10_000u64).map(|i| (i * 7919) % 250_000 + 50).collect();
        for v in &values {
            h.record(*v);
        }
        values.sort_unstable();
        for p in [50.0, 90.0, 99.0, 99.9] {
            let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
            let truth = values[rank - 1] as f64;
            let got = h.percentile(p) as f64;
            assert!(
                (got - truth).abs() <= RELATIVE_PRECISION * truth,
                "p{p}: {got} against {truth}"
            );
        }
        assert_eq!(h.percentile(100.0), *values.last().unwrap());
        assert_eq!(h.count(), 10_000);
    }

    #[test]
    fn two_halves_merged_are_the_whole() {
        let (mut a, mut b, mut whole) = (Histogram::new(), Histogram::new(), Histogram::new());
        for v in 0..5000u64 {
            let v = v * v % 100_003;
            whole.record(v);
            if v % 2 == 0 {
                a.record(v)
            } else {
                b.record(v)
            }
        }
        a.merge(&b);
        assert_eq!(a, whole);
    }

    #[test]
    fn json_carries_the_histogram_whole() {
        let mut h = Histogram::new();
        for v in [3, 300, 30_000, 3_000_000, 3_000_000] {
            h.record(v);
        }
        let text = serde_json::to_string(&h).unwrap();
        assert!(text.contains("\"relative_precision\":0.01"), "{text}");
        let back: Histogram = serde_json::from_str(&text).unwrap();
        assert_eq!(back, h);
    }

    #[test]
    fn json_whose_buckets_do_not_add_up_is_refused() {
        let text = r#"{"unit":"us","relative_precision":0.01,"count":3,"min":1,"max":1,"sum":1,"buckets":[[1,1]]}"#;
        let err = serde_json::from_str::<Histogram>(text).unwrap_err();
        assert!(
            err.to_string().contains("hold 1 values says it holds 3"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_histogram_reads_zero() {
        let h = Histogram::new();
        assert_eq!(
            (h.count(), h.percentile(99.0), h.max(), h.mean()),
            (0, 0, 0, 0.0)
        );
    }
}
