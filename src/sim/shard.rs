//! One slice of a load, so that a load too large for one machine runs on several: shard K
//! of N dials calls K, K+N, K+2N, ... of the whole load, each at the time the whole load's
//! ramp gives it, with its own call number's phase and arrival. The N shards together are
//! the unsharded load, call for call, and their reports merge into its report. Shards are
//! numbered from 0, as a Kubernetes Indexed Job numbers its pods (`JOB_COMPLETION_INDEX`)
//! and Bazel its test shards, so an orchestrator's index is the shard as it is, with no
//! shell to add one.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The `index`-th of `count` slices of a load, from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// The whole load, unsharded: 0/1.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`, or why there is none.
    pub fn new(index: u32, count: u32) -> Result<Shard, String> {
        if index >= count {
            return Err(format!(
                "shard {index}/{count}: shards are numbered 0 to N-1, N at least 1"
            ));
        }
        Ok(Shard { index, count })
    }

    /// Which shard this is, from 0.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// How many shards the load is cut into.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The number, in the whole load, of this shard's `nth` call (from 0); may pass the
    /// load's end.
    pub fn call(&self, nth: usize) -> usize {
        nth * self.count as usize + self.index as usize
    }

    /// How many of a load of `calls` calls are this shard's.
    pub fn calls_of(&self, calls: usize) -> usize {
        calls
            .saturating_sub(self.index as usize)
            .div_ceil(self.count as usize)
    }

    /// The number, in the whole load, of this shard's last call, when it has any.
    pub fn last_call_of(&self, calls: usize) -> Option<usize> {
        self.calls_of(calls).checked_sub(1).map(|n| self.call(n))
    }
}

impl Default for Shard {
    fn default() -> Shard {
        Shard::WHOLE
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `K/N`, e.g. `2/3`, the last of three.
    fn from_str(s: &str) -> Result<Shard, String> {
        let number = |n: &str| n.trim().parse::<u32>().ok();
        match s.split_once('/').map(|(k, n)| (number(k), number(n))) {
            Some((Some(index), Some(count))) => Shard::new(index, count),
            _ => Err(format!("{s:?} is not K/N, e.g. 2/3")),
        }
    }
}

/// As `"K/N"`, the way `--shard` takes it.
impl Serialize for Shard {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Shard {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Shard, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every call number of shard `shard` of a load of `calls`.
    fn calls(shard: Shard, calls: usize) -> Vec<usize> {
        (0..shard.calls_of(calls)).map(|n| shard.call(n)).collect()
    }

    #[test]
    fn the_shards_of_a_load_are_disjoint_and_together_the_whole_load() {
        for count in 1..=5 {
            for total in [0, 1, 4, 5, 6, 17] {
                let mut all: Vec<usize> = (0..count)
                    .flat_map(|k| calls(Shard::new(k, count).unwrap(), total))
                    .collect();
                all.sort_unstable();
                assert_eq!(all, (0..total).collect::<Vec<_>>(), "{total} in {count}");
            }
        }
    }

    #[test]
    fn a_shard_s_last_call_is_the_last_of_its_slice() {
        let second = Shard::new(1, 3).unwrap();
        assert_eq!(calls(second, 7), [1, 4]);
        assert_eq!(second.last_call_of(7), Some(4));
        assert_eq!(second.last_call_of(1), None);
    }

    #[test]
    fn a_shard_reads_and_prints_as_k_of_n() {
        let shard: Shard = "2/3".parse().unwrap();
        assert_eq!((shard.index(), shard.count()), (2, 3));
        assert_eq!(shard.to_string(), "2/3");
        assert_eq!(serde_json::to_value(shard).unwrap(), "2/3");
        assert_eq!(serde_json::from_str::<Shard>("\"2/3\"").unwrap(), shard);
    }

    #[test]
    fn a_shard_outside_1_to_n_or_not_k_of_n_is_refused() {
        for bad in ["3/3", "4/3", "0/0", "2", "a/b", "-1/2", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
