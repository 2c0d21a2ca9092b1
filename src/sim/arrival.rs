//! When the caller's frames reach the application. Vonage does not send one frame every
//! 20 ms on the dot: the arrival times its own recorder sample saved from a real call
//! show bursts of 6 to 8 frames within a millisecond of each other, every 125 to 150 ms,
//! at the same average rate. An application that assumes an exact clock (a jitter buffer
//! of one frame, a timer that expects a frame per tick) works against a steady stream and
//! breaks on Vonage; `Bursty` plays it the way Vonage does, from a seed, so that a run
//! that found a fault can be played again frame for frame.

use std::fmt;

use serde::{ser::SerializeMap, Deserialize, Deserializer, Serialize, Serializer};

/// The fewest frames in a burst.
const BURST_MIN: u64 = 6;

/// The most frames in a burst.
const BURST_MAX: u64 = 8;

/// How the caller's frames are spread over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Arrival {
    /// One frame every 20 ms, each on its own tick.
    #[default]
    Steady,
    /// Bursts of 6 to 8 frames sent at once, each when its last frame is due, so no frame
    /// leaves before its tick and the average rate stays one frame per 20 ms. The bursts'
    /// sizes come from `seed`: the same seed plays the same bursts.
    Bursty {
        /// Where the bursts' sizes come from.
        seed: u64,
    },
}

impl Arrival {
    /// Bursty arrival from `seed`, or from a random seed when there is none (the report
    /// states it, so the run can be replayed).
    pub fn bursty(seed: Option<u64>) -> Arrival {
        Arrival::Bursty {
            seed: seed.unwrap_or_else(random_seed),
        }
    }

    /// The arrival's name, as `--arrival` takes it.
    pub fn name(&self) -> &'static str {
        match self {
            Arrival::Steady => "steady",
            Arrival::Bursty { .. } => "bursty",
        }
    }

    /// The seed of bursty arrival.
    pub fn seed(&self) -> Option<u64> {
        match self {
            Arrival::Steady => None,
            Arrival::Bursty { seed } => Some(*seed),
        }
    }
}

impl fmt::Display for Arrival {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arrival::Steady => f.write_str("steady, a frame every 20 ms"),
            Arrival::Bursty { seed } => write!(
                f,
                "bursty, {BURST_MIN} to {BURST_MAX} frames at once, seed {seed} (replay with --seed {seed})"
            ),
        }
    }
}

/// Two fields of a report, `arrival` (its name) and `seed` (null when steady), so that a
/// report can hold an `Arrival` flattened.
impl Serialize for Arrival {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("arrival", self.name())?;
        map.serialize_entry("seed", &self.seed())?;
        map.end()
    }
}

/// From the two fields it serializes to, so that a report read back (to merge it) keeps
/// its arrival.
impl<'de> Deserialize<'de> for Arrival {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Fields {
            arrival: String,
            seed: Option<u64>,
        }
        let fields = Fields::deserialize(deserializer)?;
        match (fields.arrival.as_str(), fields.seed) {
            ("steady", _) => Ok(Arrival::Steady),
            ("bursty", Some(seed)) => Ok(Arrival::Bursty { seed }),
            (other, seed) => Err(serde::de::Error::custom(format!(
                "arrival {other:?} with seed {seed:?} is neither steady nor bursty with a seed"
            ))),
        }
    }
}

/// A seed nobody chose. The seed is for replaying, not for secrecy: if the operating
/// system's generator fails, the clock will do.
fn random_seed() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.map_or(0, |d| d.as_nanos() as u64)
    })
}

/// When each of a call's frames is sent, asked frame by frame in order: frame `k` is due
/// at tick `k` (k x 20 ms), and is sent at [`Schedule::send_tick`].
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    /// The call's frames: the last burst ends with the last frame.
    frames: u64,
    bursts: Option<Bursts>,
}

/// Bursty arrival's state: the frame after the current burst, and where the next
/// burst's size comes from.
#[derive(Debug, Clone)]
struct Bursts {
    end: u64,
    sizes: SplitMix64,
}

impl Schedule {
    /// The schedule of a call of `frames` frames. `stream` tells calls of one run apart
    /// (a load's call number): each call bursts in its own way, and the run is still played
    /// again from its seed alone.
    pub(crate) fn new(arrival: Arrival, stream: u64, frames: u64) -> Schedule {
        let bursts = match arrival {
            Arrival::Steady => None,
            Arrival::Bursty { seed } => Some(Bursts {
                end: 0,
                sizes: SplitMix64::new(seed ^ mix(stream.wrapping_add(GOLDEN_GAMMA))),
            }),
        };
        Schedule { frames, bursts }
    }

    /// The tick at which frame `k` is sent: its own when steady; when bursty, that of the
    /// last frame of its burst (the call's last frame, for a burst the call cuts short).
    /// Asked with `k` that never decreases; asking again for a frame gives the same tick.
    #[inline]
    pub(crate) fn send_tick(&mut self, k: u64) -> u64 {
        match &mut self.bursts {
            None => k,
            Some(_) if k >= self.frames => k,
            Some(bursts) => {
                while k >= bursts.end {
                    let spread = BURST_MAX - BURST_MIN + 1;
                    bursts.end += BURST_MIN + bursts.sizes.next() % spread;
                }
                bursts.end.min(self.frames) - 1
            }
        }
    }
}

/// The increment of SplitMix64, the golden ratio in 64 bits.
const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64 (Steele, Lea and Flood): a few lines, no crate, and plenty for drawing
/// burst sizes.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        mix(self.0)
    }
}

/// SplitMix64's finalizer: every bit of the input moves every bit of the output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each frame's send tick, for a call of `frames` frames.
    fn send_ticks(arrival: Arrival, stream: u64, frames: u64) -> Vec<u64> {
        let mut schedule = Schedule::new(arrival, stream, frames);
        (0..frames).map(|k| schedule.send_tick(k)).collect()
    }

    /// The bursts, as (send tick, frames in it), in order.
    fn bursts(ticks: &[u64]) -> Vec<(u64, u64)> {
        let mut bursts: Vec<(u64, u64)> = Vec::new();
        for &tick in ticks {
            match bursts.last_mut() {
                Some((at, n)) if *at == tick => *n += 1,
                _ => bursts.push((tick, 1)),
            }
        }
        bursts
    }

    const BURSTY: Arrival = Arrival::Bursty { seed: 19 };

    #[test]
    fn steady_sends_each_frame_on_its_own_tick() {
        assert_eq!(send_ticks(Arrival::Steady, 0, 5), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn bursty_sends_no_frame_before_its_tick_and_every_frame_by_the_call_s_end() {
        for frames in [1, 5, 7, 100, 1_000] {
            let ticks = send_ticks(BURSTY, 0, frames);
            assert_eq!(ticks.len() as u64, frames, "as many frames as steady");
            assert!(ticks.iter().enumerate().all(|(k, t)| *t >= k as u64));
            assert_eq!(ticks.last(), Some(&(frames - 1)), "the call ends on time");
            assert!(
                ticks.windows(2).all(|w| w[0] <= w[1]),
                "frames stay in order"
            );
        }
    }

    #[test]
    fn bursts_hold_6_to_8_frames_and_come_120_to_160_ms_apart() {
        let ticks = send_ticks(BURSTY, 0, 1_000);
        let bursts = bursts(&ticks);
        // The call's end may cut its last burst short.
        let whole = &bursts[..bursts.len() - 1];
        assert!(whole.iter().all(|(_, n)| (6..=8).contains(n)), "{whole:?}");
        for pair in whole.windows(2) {
            let gap_ms = (pair[1].0 - pair[0].0) * 20;
            assert!((120..=160).contains(&gap_ms), "{pair:?}");
        }
        let sizes: std::collections::BTreeSet<u64> = whole.iter().map(|(_, n)| *n).collect();
        assert_eq!(sizes.len(), 3, "every size is drawn: {sizes:?}");
    }

    #[test]
    fn bursty_keeps_the_average_rate_a_burst_behind_at_most() {
        let ticks = send_ticks(BURSTY, 3, 1_000);
        // By any tick, all the frames due more than a burst earlier have been sent.
        for (k, tick) in ticks.iter().enumerate() {
            assert!(
                *tick < k as u64 + BURST_MAX,
                "frame {k} sent at tick {tick}"
            );
        }
    }

    #[test]
    fn the_same_seed_and_stream_play_the_same_schedule() {
        assert_eq!(send_ticks(BURSTY, 4, 500), send_ticks(BURSTY, 4, 500));
    }

    #[test]
    fn other_seeds_and_other_streams_play_other_schedules() {
        let other_seed = Arrival::Bursty { seed: 20 };
        assert_ne!(send_ticks(BURSTY, 0, 500), send_ticks(other_seed, 0, 500));
        assert_ne!(send_ticks(BURSTY, 0, 500), send_ticks(BURSTY, 1, 500));
    }

    #[test]
    fn asking_again_for_a_frame_or_skipping_ahead_keeps_the_schedule() {
        let all = send_ticks(BURSTY, 0, 200);
        let mut schedule = Schedule::new(BURSTY, 0, 200);
        for k in (0..200).step_by(3) {
            assert_eq!(schedule.send_tick(k), all[k as usize]);
            assert_eq!(schedule.send_tick(k), all[k as usize]);
        }
    }

    #[test]
    fn a_report_shows_the_arrival_s_name_and_its_seed() {
        assert_eq!(
            serde_json::to_value(BURSTY).unwrap(),
            serde_json::json!({"arrival": "bursty", "seed": 19})
        );
        assert_eq!(
            serde_json::to_value(Arrival::Steady).unwrap(),
            serde_json::json!({"arrival": "steady", "seed": null})
        );
    }

    #[test]
    fn an_arrival_reads_back_as_it_was_written() {
        for arrival in [BURSTY, Arrival::Steady] {
            let json = serde_json::to_string(&arrival).unwrap();
            assert_eq!(serde_json::from_str::<Arrival>(&json).unwrap(), arrival);
        }
        assert!(serde_json::from_str::<Arrival>(r#"{"arrival":"bursty","seed":null}"#).is_err());
    }

    #[test]
    fn without_a_seed_bursty_arrival_draws_one() {
        let drawn: std::collections::BTreeSet<Option<u64>> =
            (0..4).map(|_| Arrival::bursty(None).seed()).collect();
        assert!(drawn.len() > 1, "{drawn:?}");
        assert_eq!(Arrival::bursty(Some(5)).seed(), Some(5));
    }
}
