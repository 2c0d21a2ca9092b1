//! Progress on standard error while `call` and `load` run: one line a second, so a long
//! run shows it is alive and how it goes, without waiting for its report. The binary turns
//! it on when standard error is a terminal; a pipe or a CI log gets nothing extra.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use super::{stats::ms, stats::percentile};

/// How often a line is printed.
pub(crate) const EVERY: Duration = Duration::from_secs(1);

/// A call shorter than this prints no progress: its report comes soon enough.
pub(crate) const CALL_QUIET: Duration = Duration::from_secs(3);

/// When the next line is due.
#[derive(Debug)]
pub(crate) struct Ticker {
    next: Instant,
}

impl Ticker {
    /// A ticker whose first line is due `after` from now.
    pub(crate) fn new(after: Duration) -> Ticker {
        Ticker {
            next: Instant::now() + after,
        }
    }

    /// Whether a line is due at `now`; if so, the next is a second on (not caught up:
    /// a line late is one line, not several).
    pub(crate) fn due(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        self.next = now + EVERY;
        true
    }
}

/// Prints one progress line.
pub(crate) fn print(line: &str) {
    eprintln!("{line}");
}

/// What a load's progress line reads, updated as calls are set up and end.
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub(crate) done: AtomicU64,
    pub(crate) frames_late: AtomicU64,
    /// Round trips (us) of the calls that ended since the last line.
    pub(crate) recent_rtts: Mutex<Vec<u32>>,
    stop: AtomicBool,
}

/// The most round trips kept between two lines: a second of a large load's calls ending
/// should not grow memory; the p99 of a sample this size is near enough for a glance.
const RECENT_CAP: usize = 100_000;

impl Live {
    /// A call has ended: its late frames and its round trips, for the next line.
    pub(crate) fn call_done(&self, late: u64, rtts: impl Iterator<Item = u32>) {
        self.done.fetch_add(1, Ordering::Relaxed);
        self.frames_late.fetch_add(late, Ordering::Relaxed);
        let mut recent = self.recent_rtts.lock().unwrap_or_else(|p| p.into_inner());
        let room = RECENT_CAP.saturating_sub(recent.len());
        recent.extend(rtts.take(room));
    }
}

/// The figures of a load's line that the load itself counts.
pub(crate) struct LoadCounts {
    pub(crate) connected: u64,
    pub(crate) failed: u64,
    /// Handshake latencies so far (us), sorted.
    pub(crate) handshakes: Vec<u32>,
}

/// A load, one second of it: calls up then, and frames late by then (counted when their
/// calls end).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LoadSecond {
    /// Seconds from the load's start.
    pub second: u64,
    /// Calls streaming.
    pub calls_up: u64,
    /// Frames sent late, of the calls ended by then.
    pub frames_late: u64,
}

/// The most seconds of a load kept for its timeline (a day).
const MAX_SECONDS: usize = 86_400;

/// Starts the thread that takes a load's figures each second until [`stop`] is called,
/// and prints them when `shown`; it returns the seconds it took.
pub(crate) fn start_load(
    started: Instant,
    live: &Arc<Live>,
    shown: bool,
    counts: impl Fn() -> LoadCounts + Send + 'static,
) -> std::io::Result<thread::JoinHandle<Vec<LoadSecond>>> {
    let live = Arc::clone(live);
    thread::Builder::new()
        .name("progress".into())
        .spawn(move || {
            let mut ticker = Ticker::new(EVERY);
            let mut seconds = Vec::new();
            while !live.stop.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(50));
                if !ticker.due(Instant::now()) {
                    continue;
                }
                let counts = counts();
                if seconds.len() < MAX_SECONDS {
                    seconds.push(LoadSecond {
                        second: started.elapsed().as_secs(),
                        calls_up: counts
                            .connected
                            .saturating_sub(live.done.load(Ordering::Relaxed)),
                        frames_late: live.frames_late.load(Ordering::Relaxed),
                    });
                }
                let line = load_line(started, &live, &counts);
                if shown {
                    print(&line);
                }
            }
            seconds
        })
}

/// Ends the progress thread's loop.
pub(crate) fn stop(live: &Live) {
    live.stop.store(true, Ordering::Relaxed);
}

/// One line of a load's progress.
fn load_line(started: Instant, live: &Live, counts: &LoadCounts) -> String {
    let done = live.done.load(Ordering::Relaxed);
    let mut recent =
        std::mem::take(&mut *live.recent_rtts.lock().unwrap_or_else(|p| p.into_inner()));
    recent.sort_unstable();
    let rtt = if recent.is_empty() {
        "-".to_owned()
    } else {
        format!("{:.1} ms", ms(percentile(&recent, 99.0)))
    };
    let handshake = if counts.handshakes.is_empty() {
        "-".to_owned()
    } else {
        format!("{:.1} ms", ms(percentile(&counts.handshakes, 99.0)))
    };
    format!(
        "load {:>4.0} s: {} up, {done} done, {} failed, {} frames late; p99 handshake {handshake}, round trip of calls just ended {rtt}",
        started.elapsed().as_secs_f64(),
        counts.connected.saturating_sub(done),
        counts.failed,
        live.frames_late.load(Ordering::Relaxed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticker_is_due_once_a_second_and_never_catches_up() {
        let mut ticker = Ticker::new(Duration::ZERO);
        let now = Instant::now();
        assert!(ticker.due(now));
        assert!(!ticker.due(now + Duration::from_millis(500)));
        assert!(ticker.due(now + Duration::from_secs(5)));
        assert!(!ticker.due(now + Duration::from_millis(5500)));
    }

    #[test]
    fn a_load_line_counts_calls_up_and_takes_the_round_trips_it_read() {
        let live = Live::default();
        live.call_done(2, [1000, 2000, 30_000].into_iter());
        let counts = LoadCounts {
            connected: 5,
            failed: 1,
            handshakes: vec![500, 900],
        };
        let line = load_line(Instant::now(), &live, &counts);
        assert!(
            line.contains("4 up, 1 done, 1 failed, 2 frames late"),
            "{line}"
        );
        assert!(
            line.contains("round trip of calls just ended 30.0 ms"),
            "{line}"
        );
        assert!(live.recent_rtts.lock().unwrap().is_empty());
    }
}
