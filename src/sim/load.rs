//! Many calls at once: dialed at a steady ramp by as many threads as the calls being set
//! up at once need, streamed by `mio` poll loops (one a core by default, each on a thread
//! of its own, the calls dealt among them in turn), and summed into one report (with the
//! server's CPU and memory when its pid is known).
//!
//! # One poll loop a core
//!
//! `--threads N` sets the number of poll loops; by default there is one for each core the
//! process may run on (under `taskset -c 1`, one). Unpinned on a machine that also runs the
//! server, `--threads 1` leaves the server its core. Scaling the generator like for like
//! needs a core the server does not use: on two cores, two loops on both (`taskset -c 0,1`)
//! take core 0 from the server, whose call threads run under `SCHED_IDLE`, and that
//! measures a generator crowding its server.
//!
//! Two loops against one, on a 2-vCPU machine shared with other work (so the generator was
//! behind even at 1,000 calls), 2,000 calls of 30 s, the server on core 0, three runs each
//! alternating, generator CPU from `/usr/bin/time -f '%U %S'` over its frames sent:
//!
//! ```sh
//! taskset -c 1 /usr/bin/time -f '%U %S' ./target/release/vonage-echo load \
//!     --answer-url http://127.0.0.1:3400/webhooks/answer --calls 2000 --duration 30 --threads 2 --pid $! --json
//! ```
//!
//! | 2,000 calls | 1 loop, core 1 | 2 loops, core 1 | 2 loops, cores 0-1 |
//! |---|---|---|---|
//! | generator CPU per frame sent | 12.24, 12.51, 12.33 µs | 10.93, 12.32, 11.48 µs | 14.53, 16.31, 15.68 µs |
//! | frames sent 5 ms late or more | 96.0, 91.1, 95.9 % | 94.2, 91.6, 96.8 % | 45.4, 47.8, 57.1 % |
//! | calls failed / frames lost | 70, 0, 216 / 3,246, 0, 20,972 | 0, 0, 0 / 0 | 733, 999, 335 / 38-169 k |
//!
//! On the same core two loops cost 0.93 times one loop's CPU a frame (medians 11.48 against
//! 12.33 µs) and send as many frames late (94.2 against 95.9 %). On both cores the late
//! share halves but a frame costs 1.27 times as much, and the server, left part of its
//! core, drops calls. At 1,000 calls, one loop on core 1 against two on both cores gave
//! medians of 18.03 and 17.39 µs a frame, no call failed, and the busy machine's noise was
//! larger than any difference.
//!
//! At 1,000 calls, short of the generator's limit, six runs each alternating (the server on
//! core 0, the generator on core 1, 30 s calls, `--threads 1` against `--threads 2`):
//!
//! | 1,000 calls, core 1 | 1 loop | 2 loops |
//! |---|---|---|
//! | generator CPU per frame sent, median (range) | 22.54 µs (22.49-22.60) | 22.60 µs (22.49-22.92) |
//! | frames sent 5 ms late or more, median (range) | 5.6 % (0.3-22.9) | 5.5 % (1.2-25.9) |
//! | generator peak RSS, median | 67.5 MiB | 71.5 MiB |
//! | calls failed / frames lost | 0 / 0 | 0 / 0 |
//!
//! Two loops cost 1.00 times one loop's CPU a frame and send as many frames late; the
//! spread of the late share is the shared machine's, run to run, for either.

use std::{
    collections::{BTreeMap, HashMap},
    fmt, io,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc, Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

pub use super::histogram::LoadHistograms;
pub use super::stats::Percentiles;

use super::findings::Check;
use super::{
    arrival::{Arrival, Schedule},
    call::CallOptions,
    course::{Course, Next},
    dial::Dial,
    engine::{self, Plan},
    events::{self, Event, EventTarget, HungUp, Leg, Status},
    exporter::{Exporter, Source},
    histogram::{Histogram, RELATIVE_PRECISION},
    judged::{self, JudgedLoad},
    live::Counters,
    progress,
    setup::answer_call,
    setup::open_leg,
    setup::Failed,
    setup::SetupTimes,
    shard::Shard,
    start::StartAt,
    stats::ms,
    thresholds::{Threshold, Verdict},
};
use crate::{
    error::{Error, Result},
    protocol::call_id::CallId,
};

/// Calls started per second, unless [`LoadOptions::ramp`] says otherwise.
pub const DEFAULT_RAMP: f64 = 200.0;

/// The share of frames sent late from which the report says the generator fell behind.
const GENERATOR_BEHIND: f64 = 0.1;

/// Threads that post call events for each poll loop: about ten a call, posted beside the
/// call as Vonage does, so the posters grow with the calls a load can stream.
const POSTERS: usize = 4;

/// What a load run does.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoadOptions {
    /// Where calls are placed.
    pub dial: Dial,
    /// How many calls, all held at once once ramped up: the whole load's, of which
    /// [`LoadOptions::shard`] dials its slice.
    pub calls: usize,
    /// How long each call streams.
    pub duration: Duration,
    /// Calls started per second.
    pub ramp: f64,
    /// The server's process id, to report its CPU time and peak memory.
    pub pid: Option<u32>,
    /// How each call's frames are spread over time; bursty calls each burst in their own
    /// way, drawn from the seed and the call's number, so a run is replayed from its seed.
    pub arrival: Arrival,
    /// Whether a line of progress goes to standard error each second.
    pub progress: bool,
    /// Judge each call as `call` judges one, doing what these options say (expect,
    /// script, WAV, keys, buffer); `None` streams an echo's tone and checks its echo.
    pub judge: Option<CallOptions>,
    /// What the load must achieve; when any is given, they decide whether it passed.
    pub thresholds: Vec<Threshold>,
    /// How many poll loops stream the calls, each on a thread of its own: one loop keeps
    /// about 2,000 calls on time on a fast core, so a larger load needs more.
    pub threads: usize,
    /// The slice of the load this run dials: all of it unless sharded.
    pub shard: Shard,
    /// When the load starts (its first call's time on the ramp), when not at once.
    pub start_at: Option<StartAt>,
    /// Where to serve the live counters to Prometheus (`GET /metrics`) while the load runs.
    pub metrics_addr: Option<SocketAddr>,
}

/// The poll loops a load runs unless told otherwise: one for each core the process may run
/// on (`available_parallelism` honours `taskset`), so a generator pinned to one core runs
/// one loop, as before.
pub fn default_threads() -> usize {
    thread::available_parallelism().map_or(1, usize::from)
}

impl LoadOptions {
    /// `calls` calls of `duration` to `answer_url`, ramped at 200 a second.
    pub fn new(answer_url: impl Into<String>, calls: usize, duration: Duration) -> LoadOptions {
        LoadOptions {
            dial: Dial::new(answer_url),
            calls,
            duration,
            ramp: DEFAULT_RAMP,
            pid: None,
            arrival: Arrival::Steady,
            progress: false,
            judge: None,
            thresholds: Vec::new(),
            threads: default_threads(),
            shard: Shard::WHOLE,
            start_at: None,
            metrics_addr: None,
        }
    }

    setters! {
        /// Sets [`LoadOptions::dial`].
        dial: Dial,
        /// Sets [`LoadOptions::ramp`].
        ramp: f64,
        /// Sets [`LoadOptions::pid`].
        pid: Option<u32>,
        /// Sets [`LoadOptions::arrival`].
        arrival: Arrival,
        /// Sets [`LoadOptions::judge`].
        judge: Option<CallOptions>,
        /// Sets [`LoadOptions::thresholds`].
        thresholds: Vec<Threshold>,
        /// Sets [`LoadOptions::progress`].
        progress: bool,
        /// Sets [`LoadOptions::threads`].
        threads: usize,
        /// Sets [`LoadOptions::shard`].
        shard: Shard,
        /// Sets [`LoadOptions::start_at`].
        start_at: Option<StartAt>,
        /// Sets [`LoadOptions::metrics_addr`].
        metrics_addr: Option<SocketAddr>,
    }
}

/// The load a report is of, as its options gave it: reports merge only when it is the same.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadPlan {
    /// The whole load's calls, of every shard.
    pub calls: u64,
    /// Calls started per second, over the whole load.
    pub ramp: f64,
    /// How long each call streams, in seconds.
    pub duration_seconds: f64,
}

impl LoadPlan {
    /// The load `options` make.
    fn of(options: &LoadOptions) -> LoadPlan {
        LoadPlan {
            calls: options.calls as u64,
            ramp: options.ramp,
            duration_seconds: options.duration.as_secs_f64(),
        }
    }
}

/// The server's use of the machine during the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerUsage {
    /// User and system CPU seconds spent during the run.
    pub cpu_seconds: f64,
    /// The largest resident set seen, sampled every 100 ms, in MiB.
    pub peak_rss_mib: f64,
    /// Most threads seen.
    pub peak_threads: u64,
    /// CPU microseconds per echoed frame, over the whole run: call setup and hang-up
    /// included.
    pub cpu_us_per_frame: f64,
    /// CPU microseconds per echoed frame while every call was up and none was being set
    /// up or ended: what the echo alone costs (absent when that window is under a second).
    pub steady_cpu_us_per_frame: Option<f64>,
}

/// What a load run saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LoadReport {
    /// How the calls' frames were spread over time: `arrival` and `seed` in JSON.
    #[serde(flatten)]
    pub arrival: Arrival,
    /// The slice of the load this report is of, `"K/N"` from 0 (`"0/1"` for a whole load).
    pub shard: Shard,
    /// The shards a merged report was merged from (empty for one run's report).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<Shard>,
    /// The load this is a report of.
    pub load: LoadPlan,
    /// Calls dialed.
    pub attempted: u64,
    /// Calls whose socket opened.
    pub connected: u64,
    /// Calls that failed, by reason.
    pub failed: BTreeMap<String, u64>,
    /// Calls whose NCCO came only after the answer webhook was asked again (or its
    /// fallback was): they connected, but the application was unreachable, slow or busy.
    pub answer_retried: u64,
    /// Events the event webhooks did not take (refused, not 2xx, slower than 10 s), by
    /// reason: warnings, as on Vonage, where they never end a call.
    pub event_failures: BTreeMap<String, u64>,
    /// Seconds from the start until the last dial ended (its socket open, or failed): about
    /// `(calls - 1) / ramp` when the generator keeps to its ramp.
    pub ramp_seconds: f64,
    /// When the last call was due to be dialed, in seconds from the start.
    pub planned_ramp_seconds: f64,
    /// The answer webhook's latency, from request to whole answer, of the calls that got
    /// one (Vonage gives it 5 s by default).
    pub answer_webhook: Percentiles,
    /// The socket handshake's latency, from TCP connect to the 101, of the calls that got
    /// that far.
    pub handshake: Percentiles,
    /// Audio frames sent.
    pub frames_sent: u64,
    /// Frames echoed byte-identical and in order.
    pub frames_echoed: u64,
    /// Frames that never came back.
    pub frames_lost: u64,
    /// Frames that came back different.
    pub frames_corrupted: u64,
    /// Frames the generator sent 5 ms or more after their schedule.
    pub frames_late: u64,
    /// The generator's worst pacing miss, in ms.
    pub max_late_ms: f64,
    /// Round trips of every frame.
    pub round_trip: Percentiles,
    /// Round trips of the frames sent while every call was up and none was being set up
    /// or ended (absent when the ramp outlasts a call).
    pub steady_round_trip: Option<Percentiles>,
    /// The server's CPU and memory, with [`LoadOptions::pid`].
    pub server: Option<ServerUsage>,
    /// The load's own threads that ended abnormally (a dialer, an event poster, the
    /// finisher): the run then fails, whatever its calls did.
    pub helpers_died: Vec<String>,
    /// Wall time of the whole run, in seconds.
    pub elapsed_seconds: f64,
    /// Every latency measured, whole: the percentiles above are read off these, and a
    /// plot or another run's histograms can be made or merged from them.
    pub histograms: LoadHistograms,
    /// Each second of the run: calls up, frames late. (Not read back by `merge`: seconds
    /// of shards started apart do not line up.)
    #[serde(skip_deserializing)]
    pub over_time: Vec<progress::LoadSecond>,
    /// How the calls were judged, when they were judged as `call` judges one
    /// ([`LoadOptions::judge`]). (Not read back by `merge`, which merges echo loads.)
    #[serde(skip_deserializing)]
    pub judged: Option<JudgedLoad>,
    /// Each threshold, and whether it was met. (Not read back by `merge`.)
    #[serde(skip_deserializing)]
    pub thresholds: Vec<Verdict>,
}

impl LoadReport {
    /// Calls that failed, for any reason.
    pub fn failed_calls(&self) -> u64 {
        self.failed.values().sum()
    }

    /// The share of frames the generator sent late, when it is large enough to say that
    /// the generator fell behind its own schedule (a tenth of them or more). A generator
    /// that is behind also reads its echoes late, so its round trips then include its own
    /// delay: on a core it cannot keep up on, they overstate the server's.
    pub fn generator_behind(&self) -> Option<f64> {
        let late = self.frames_late as f64 / self.frames_sent.max(1) as f64;
        (late >= GENERATOR_BEHIND).then_some(late)
    }

    /// Whether every call connected and every frame came back intact, and every judged
    /// call passed; with thresholds, whether every threshold was met instead.
    pub fn passed(&self) -> bool {
        if !self.thresholds.is_empty() {
            return self.helpers_died.is_empty() && self.thresholds.iter().all(|t| t.met);
        }
        self.failed_calls() == 0
            && self.frames_lost == 0
            && self.frames_corrupted == 0
            && self.helpers_died.is_empty()
            && self.judged.as_ref().is_none_or(|j| j.passed == j.calls)
    }

    /// Calls that passed: streamed and judged without a fault, or (unjudged) connected and
    /// streamed without failing.
    pub fn calls_passed(&self) -> u64 {
        match &self.judged {
            Some(judged) => judged.passed,
            None => self.attempted.saturating_sub(self.failed_calls()),
        }
    }

    /// The share of calls dialed that passed, in percent.
    pub fn pass_rate(&self) -> f64 {
        if self.attempted == 0 {
            return 100.0;
        }
        self.calls_passed() as f64 * 100.0 / self.attempted as f64
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.shard != Shard::WHOLE {
            writeln!(f, "shard {} of the load", self.shard)?;
        }
        if !self.merged_from.is_empty() {
            let shards: Vec<String> = self.merged_from.iter().map(Shard::to_string).collect();
            write!(f, "merged from shards {}", shards.join(", "))?;
            let of = self.merged_from[0].count() as usize;
            if self.merged_from.len() < of {
                write!(
                    f,
                    " ({} of {of} missing: the counts are not the whole load's)",
                    of - self.merged_from.len()
                )?;
            }
            writeln!(f)?;
        }
        writeln!(f, "arrival: {}", self.arrival)?;
        writeln!(
            f,
            "calls: {} attempted, {} connected, {} failed",
            self.attempted,
            self.connected,
            self.failed_calls()
        )?;
        for (reason, n) in &self.failed {
            writeln!(f, "  {n} x {reason}")?;
        }
        if self.answer_retried > 0 {
            writeln!(
                f,
                "answer webhook: {} calls got their NCCO only when asked again",
                self.answer_retried
            )?;
        }
        for (reason, n) in &self.event_failures {
            writeln!(f, "events not taken: {n} x {reason}")?;
        }
        for died in &self.helpers_died {
            writeln!(f, "the load itself failed: {died}")?;
        }
        writeln!(
            f,
            "ramp: the last dial ended after {:.1} s (due at {:.1} s)",
            self.ramp_seconds, self.planned_ramp_seconds
        )?;
        writeln!(f, "answer webhook ms:            {}", self.answer_webhook)?;
        writeln!(f, "socket handshake ms:          {}", self.handshake)?;
        writeln!(
            f,
            "frames: {} sent, {} echoed, {} lost, {} corrupted, {} sent late (max {:.1} ms)",
            self.frames_sent,
            self.frames_echoed,
            self.frames_lost,
            self.frames_corrupted,
            self.frames_late,
            self.max_late_ms
        )?;
        // Judged calls are not echoed: they have no round trips to show.
        if self.judged.is_none() {
            writeln!(f, "round trip ms, all frames:    {}", self.round_trip)?;
        }
        if let Some(steady) = self
            .steady_round_trip
            .as_ref()
            .filter(|_| self.judged.is_none())
        {
            writeln!(f, "round trip ms, all calls up:  {steady}")?;
        }
        if let Some(late) = self.generator_behind() {
            writeln!(
                f,
                "the generator fell behind: {:.0} % of frames left 5 ms or more late, so its \
                 round trips include its own delay in reading echoes",
                late * 100.0
            )?;
        }
        if let Some(s) = &self.server {
            writeln!(
                f,
                "server: {:.2} CPU s ({:.2} us per echoed frame), peak RSS {:.1} MiB, peak threads {}",
                s.cpu_seconds, s.cpu_us_per_frame, s.peak_rss_mib, s.peak_threads
            )?;
            if let Some(steady) = s.steady_cpu_us_per_frame {
                writeln!(f, "server, all calls up: {steady:.2} us per echoed frame")?;
            }
        }
        self.fmt_judged(f)?;
        write!(f, "elapsed: {:.1} s", self.elapsed_seconds)
    }
}

impl LoadReport {
    /// How the calls were judged (per rule broken, the calls and an example; the
    /// application's times) and each threshold's verdict.
    fn fmt_judged(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(j) = &self.judged {
            writeln!(
                f,
                "judged as call judges: {} of {} calls passed ({:.2} % of calls dialed)",
                j.passed,
                j.calls,
                self.pass_rate()
            )?;
            for (rule, breaches) in &j.rules {
                writeln!(
                    f,
                    "  {rule}: {} calls, e.g. {}",
                    breaches.calls, breaches.example
                )?;
            }
            writeln!(
                f,
                "turns: {}, {} answered; barge-ins: {}",
                j.turns, j.answered, j.barge_ins
            )?;
            writeln!(f, "reply ms:                     {}", j.reply)?;
            writeln!(f, "barge-in to clear ms:         {}", j.barge_in_clear)?;
        }
        for verdict in &self.thresholds {
            let word = if verdict.met { "met" } else { "NOT MET" };
            writeln!(
                f,
                "threshold {}: {} {word}",
                verdict.threshold, verdict.measured
            )?;
        }
        Ok(())
    }
}

/// Runs the load and reports. An `Err` means the run itself could not start.
pub fn run(options: &LoadOptions) -> Result<LoadReport> {
    let calls = calls_to_dial(options)?;
    if let Some(call) = &options.judge {
        super::call::check_options(call)?;
    }
    let agent = options.dial.agent()?;
    let calls_live = Arc::new(Counters::default());
    // A judged load's sessions run on one loop: the judging is `call`'s, single-threaded.
    let threads = if options.judge.is_some() {
        1
    } else {
        options.threads
    };
    let loops_live: Vec<Arc<Counters>> = (0..threads).map(|_| Arc::default()).collect();
    let exporter = start_exporter(options, calls, &calls_live, &loops_live)?;
    if let Some(at) = &options.start_at {
        at.wait().map_err(|e| Error::config("--start-at", e))?;
    }
    let started = Instant::now();
    let sampler = options
        .pid
        .map(|pid| Sampler::start(pid, started))
        .transpose()
        .map_err(|e| Error::io("starting the server's sampler", e))?;
    let tally = Arc::new(DialTally::new(started, calls_live));
    let (plans_tx, plans_rx): (Vec<_>, Vec<_>) = (0..threads)
        .map(|_| mpsc::sync_channel::<Plan>(1024))
        .unzip();
    let (events_tx, posters) = start_posters(options, &agent, &tally)?;
    let dialers = start_dialers(options, &agent, started, &tally, &plans_tx, &events_tx)?;
    drop(plans_tx);
    let (done_tx, finisher) = start_finisher(events_tx, &tally)?;
    let live = Arc::new(progress::Live::default());
    let seconds = start_progress(started, &live, options.progress, &tally)?;

    let streamed = match &options.judge {
        None => stream(started, plans_rx, loops_live, &done_tx, &live),
        Some(call) => {
            // A judged load runs its sessions on one loop (see LoadOptions::judge).
            let plans = plans_rx.into_iter().next().expect("one loop at least");
            judged::run(plans, call, |o| {
                live.call_done(o.late, o.rtts.iter().map(|(_, rtt)| *rtt));
                let _ = done_tx.send(o);
            })
        }
    };
    drop(done_tx);
    progress::stop(&live);
    let seconds = seconds.join().unwrap_or_default();
    let dialers_died = dialers.join();
    let (outcomes, finisher_died) = match finisher.join() {
        Ok(outcomes) => (outcomes, false),
        Err(_) => (Vec::new(), true),
    };
    *lock(&tally.posting_ends) = Some(Instant::now() + options.dial.event_timeout);
    let posters_died = posters
        .into_iter()
        .map(|p| p.join())
        .filter(Result::is_err)
        .count();
    streamed.map_err(|e| Error::io("streaming", e))?;

    let mut report = LoadReport {
        arrival: options.arrival,
        shard: options.shard,
        load: LoadPlan::of(options),
        attempted: calls as u64,
        connected: outcomes.len() as u64,
        failed: std::mem::take(&mut *lock(&tally.failed)),
        answer_retried: tally.answer_retried.load(Ordering::Relaxed) as u64,
        event_failures: std::mem::take(&mut *lock(&tally.event_failures)),
        ..LoadReport::default()
    };
    count_unaccounted(&mut report, dialers_died);
    for (died, what) in [
        (dialers_died, "dialer"),
        (posters_died, "event poster"),
        (usize::from(finisher_died), "finisher"),
    ] {
        if died > 0 {
            report
                .helpers_died
                .push(format!("{died} {what} thread(s) ended abnormally"));
        }
    }
    let judgements = judged::sum(&outcomes);
    let rtts = add_outcomes(&mut report, outcomes);
    let steady = add_timings(&mut report, options, started, &tally, &rtts);
    report.server = sampler.map(|s| {
        let (mut usage, trace) = s.stop();
        if report.frames_echoed > 0 {
            usage.cpu_us_per_frame = usage.cpu_seconds * 1e6 / report.frames_echoed as f64;
        }
        usage.steady_cpu_us_per_frame = steady_cpu_us_per_frame(&trace, &rtts, steady);
        usage
    });
    report.over_time = seconds;
    if let Some((judged, replies, clears)) = judgements {
        report.judged = Some(judged);
        report.histograms.reply = replies;
        report.histograms.barge_in_clear = clears;
    }
    report.thresholds = options
        .thresholds
        .iter()
        .map(|t| t.judge(&report.histograms, report.pass_rate()))
        .collect();
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    if let Some(exporter) = exporter {
        exporter.stop();
    }
    Ok(report)
}

/// Starts the thread that takes the load's figures each second (and prints them when
/// `shown`), reading the dialers' tally.
fn start_progress(
    started: Instant,
    live: &Arc<progress::Live>,
    shown: bool,
    tally: &Arc<DialTally>,
) -> Result<thread::JoinHandle<Vec<progress::LoadSecond>>> {
    let tally = Arc::clone(tally);
    progress::start_load(started, live, shown, move || {
        let mut handshakes: Vec<u32> = lock(&tally.setups)
            .iter()
            .map(|s| u32::try_from(s.handshake.as_micros()).unwrap_or(u32::MAX))
            .collect();
        handshakes.sort_unstable();
        progress::LoadCounts {
            connected: handshakes.len() as u64,
            failed: lock(&tally.failed).values().sum(),
            handshakes,
        }
    })
    .map_err(|e| Error::io("starting the progress line", e))
}

/// How many calls this run dials (its shard's), once the options are known to make a load.
fn calls_to_dial(options: &LoadOptions) -> Result<usize> {
    if options.calls == 0 || options.ramp.is_nan() || options.ramp <= 0.0 {
        return Err(Error::config(
            "--calls/--ramp",
            "need at least one call and a positive ramp",
        ));
    }
    if options.threads == 0 {
        return Err(Error::config("--threads", "need at least one poll loop"));
    }
    match options.shard.calls_of(options.calls) {
        0 => Err(Error::config(
            "--shard",
            format!(
                "shard {} of {} calls has none",
                options.shard, options.calls
            ),
        )),
        calls => Ok(calls),
    }
}

/// Serves the live counters (the dialers' and every poll loop's) on
/// [`LoadOptions::metrics_addr`], when there is one.
fn start_exporter(
    options: &LoadOptions,
    calls: usize,
    calls_live: &Arc<Counters>,
    loops_live: &[Arc<Counters>],
) -> Result<Option<Exporter>> {
    let Some(addr) = options.metrics_addr else {
        return Ok(None);
    };
    let mut counters = vec![Arc::clone(calls_live)];
    counters.extend(loops_live.iter().cloned());
    let source = Source {
        shard: options.shard,
        planned: calls as u64,
        counters,
    };
    Exporter::start(addr, source)
        .map(Some)
        .map_err(|e| Error::io(format!("serving --metrics-addr {addr}"), e))
}

/// Runs a poll loop for each receiver of plans, each on a thread of its own, until every
/// call has ended; each call's outcome goes to `done`. The first loop that failed says why.
fn stream(
    started: Instant,
    plans: Vec<mpsc::Receiver<Plan>>,
    live: Vec<Arc<Counters>>,
    done: &mpsc::Sender<engine::Outcome>,
    progress: &Arc<progress::Live>,
) -> io::Result<()> {
    let loops = plans
        .into_iter()
        .zip(live)
        .enumerate()
        .map(|(n, (plans, live))| {
            let (done, progress) = (done.clone(), Arc::clone(progress));
            // Poll loops keep the process's priority: they pace the frames.
            thread::Builder::new()
                .name(format!("engine-{n}"))
                .spawn(move || {
                    engine::run(started, plans, live, |o| {
                        progress.call_done(o.late, o.rtts.iter().map(|(_, rtt)| *rtt));
                        let _ = done.send(o);
                    })
                })
        })
        .collect::<io::Result<Vec<_>>>()?;
    let mut first_error = Ok(());
    for handle in loops {
        let ended = handle
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("a poll loop panicked")));
        if first_error.is_ok() {
            first_error = ended;
        }
    }
    first_error
}

/// A call event for the posters, and where it goes.
type QueuedEvent = (EventTarget, Event);

/// What the dialers report as they go, summed into the report at the end.
struct DialTally {
    /// Calls that failed, by reason.
    failed: Mutex<BTreeMap<String, u64>>,
    /// When the last dial ended.
    ramp_end: Mutex<Instant>,
    /// Call setup's timings, of each call that connected.
    setups: Mutex<Vec<SetupTimes>>,
    /// Calls that needed more than one request for their NCCO.
    answer_retried: AtomicUsize,
    /// Events not taken, by reason.
    event_failures: Mutex<BTreeMap<String, u64>>,
    /// Each streaming call's two legs, by its uuid, for the events of its end.
    legs: Mutex<HashMap<CallId, (Leg, Leg)>>,
    /// When the posters stop posting what is still queued: an event timeout after the
    /// run's last event was queued.
    posting_ends: Mutex<Option<Instant>>,
    /// The calls as they go, for the live counters.
    live: Arc<Counters>,
}

impl DialTally {
    fn new(started: Instant, live: Arc<Counters>) -> DialTally {
        DialTally {
            failed: Mutex::default(),
            ramp_end: Mutex::new(started),
            setups: Mutex::default(),
            answer_retried: AtomicUsize::new(0),
            event_failures: Mutex::default(),
            legs: Mutex::default(),
            posting_ends: Mutex::default(),
            live,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts the threads that post call events, as Vonage posts them beside the call: dialing
/// waits on the answer webhook and the handshake only. An event not taken is counted.
fn start_posters(
    options: &LoadOptions,
    agent: &ureq::Agent,
    tally: &Arc<DialTally>,
) -> Result<(mpsc::Sender<QueuedEvent>, Vec<thread::JoinHandle<()>>)> {
    let (events_tx, events_rx) = mpsc::channel::<QueuedEvent>();
    let events_rx = Arc::new(Mutex::new(events_rx));
    let count = POSTERS * options.threads.max(1);
    let mut posters = Vec::with_capacity(count);
    for p in 0..count {
        let (dial, agent) = (options.dial.clone(), agent.clone());
        let (events_rx, tally) = (Arc::clone(&events_rx), Arc::clone(tally));
        let spawned = spawn_helper(format!("events-{p}"), move || loop {
            // The lock is held only to take the next event, not to post it.
            let next = events_rx.lock().map(|rx| rx.recv());
            let Ok(Ok((target, event))) = next else {
                return;
            };
            // Once the run is over, a slow webhook has an event timeout to catch up, not
            // one for each event still queued.
            let ended = *lock(&tally.posting_ends);
            let failure = if ended.is_some_and(|end| Instant::now() >= end) {
                Some(format!(
                    "{} {} was not posted: the run ended, and the event webhook had not taken the events before it",
                    target.method.name(),
                    target.url
                ))
            } else {
                events::post(&agent, &dial, &target, &event).0.failure()
            };
            if let Some(failure) = failure {
                *lock(&tally.event_failures)
                    .entry(event_reason(&failure))
                    .or_default() += 1;
            }
        })
        .map_err(|e| Error::io("starting an event poster", e))?;
        posters.push(spawned);
    }
    Ok((events_tx, posters))
}

/// Hands a leg's event to the posters, when the leg's events are posted at all.
fn queue(events: &mpsc::Sender<QueuedEvent>) -> impl FnMut(&Leg, Event) + '_ {
    move |leg, event| {
        if let Some(target) = &leg.target {
            let _ = events.send((target.clone(), event));
        }
    }
}

/// Starts the dialers, beginning with one; the pool grows as calls come due (see [`Pool`]).
/// Each dialer takes the next call, dials it at its time on the ramp, and hands it to a
/// poll loop, call `i` to loop `i mod loops`, so the loops share the calls evenly whatever
/// order the dials end in.
fn start_dialers(
    options: &LoadOptions,
    agent: &ureq::Agent,
    started: Instant,
    tally: &Arc<DialTally>,
    plans: &[mpsc::SyncSender<Plan>],
    events: &mpsc::Sender<QueuedEvent>,
) -> Result<Dialers> {
    let handles = Arc::new(Mutex::new(Vec::new()));
    // Only the dialers hold the pool: when the last ends, its senders of plans drop, and
    // the poll loops learn that no call is coming.
    let pool = Arc::new(Pool {
        opts: options.clone(),
        agent: agent.clone(),
        started,
        tally: Arc::clone(tally),
        plans: plans.to_vec(),
        events: events.clone(),
        call_events: options.dial.event_target()?,
        next_call: AtomicUsize::new(0),
        idle: AtomicUsize::new(0),
        count: AtomicUsize::new(1),
        refused: AtomicBool::new(false),
        handles: Arc::clone(&handles),
    });
    let first = spawn_dialer(&pool, 0).map_err(|e| Error::io("starting a dialer", e))?;
    lock(&handles).push(first);
    Ok(Dialers(handles))
}

/// The most dialers a load runs at once. Dialing blocks (the answer webhook, a `talk`'s
/// speaking time, the handshake), so the ramp holds while `ramp × setup` calls are being
/// set up at once: 4,096 holds 400 calls a second whose setup takes 10 s (a greeting of a
/// few seconds and an answer webhook asked again), or 1,000 a second with 4 s greetings.
/// A dialer costs the pages of its stack it touched (of [`DIALER_STACK`] reserved) and its
/// share of the allocator's: about 25 KiB resident (1,000 calls dialed in a few ms each
/// peaked at 61 MiB on 1,000 dialers, 37 MiB on a few), so some 100 MiB at the cap, and
/// 4,096 threads are well under the usual limits on a user's threads (a tighter limit, as
/// in a container, refuses a dialer, which is logged and waited out as the cap is). Past
/// the cap a call that comes due waits for a dialer to come free, and the report's ramp
/// (the last dial's end, against when it was due) shows the wait.
const MAX_DIALERS: usize = 4096;

/// A dialer's stack: it runs HTTP and a handshake, nothing deep, and a thousand of them
/// should not each reserve the default 2 MiB.
const DIALER_STACK: usize = 256 * 1024;

/// The load's dialers: the handle of each one started, to join at the end.
struct Dialers(Arc<Mutex<Vec<thread::JoinHandle<()>>>>);

impl Dialers {
    /// Waits for every dialer, those started meanwhile too; how many ended abnormally.
    fn join(self) -> usize {
        let mut died = 0;
        // A dialer is listed by the one that started it, which ends only after: the list is
        // empty only once no dialer runs.
        loop {
            let next = lock(&self.0).pop();
            let Some(dialer) = next else {
                return died;
            };
            died += usize::from(dialer.join().is_err());
        }
    }
}

/// The dialers' pool, elastic: as many dialers as the calls being set up at once need,
/// where a fixed pool is either too small for a fast ramp of slow setups (the ramp falls
/// behind) or, sized for those, most of a small load's memory.
///
/// A dialer is idle from when it takes a call (the next of the shard's, in order) until
/// that call is due; then it dials. A dialer whose call comes due when no other is idle
/// starts one more, which takes the next call and waits for its time: so a call due always
/// has a dialer waiting for it, and the pool settles at about `ramp × setup` dialers, plus
/// one waiting. A dialer that ends a dial takes the next call untaken; dialers end when no
/// call is left, not after idling a while: a load's ramp is short, and its idle dialers
/// are few. The pool is held at [`MAX_DIALERS`]; a dialer the system refuses (its limit on
/// threads) is said once in the log, and the calls wait for those running, as at the cap:
/// none is lost, because a call is taken only by a dialer that runs.
struct Pool {
    opts: LoadOptions,
    agent: ureq::Agent,
    started: Instant,
    tally: Arc<DialTally>,
    plans: Vec<mpsc::SyncSender<Plan>>,
    events: mpsc::Sender<QueuedEvent>,
    call_events: Option<EventTarget>,
    /// The next of the shard's calls to take, counted within the shard.
    next_call: AtomicUsize,
    /// Dialers waiting for the call they took to come due, or about to take one.
    idle: AtomicUsize,
    /// Dialers started, at most [`MAX_DIALERS`].
    count: AtomicUsize,
    /// Whether the system has refused a dialer (said once).
    refused: AtomicBool,
    handles: Arc<Mutex<Vec<thread::JoinHandle<()>>>>,
}

/// Starts dialer `n` of `pool`.
fn spawn_dialer(pool: &Arc<Pool>, n: usize) -> io::Result<thread::JoinHandle<()>> {
    let pool = Arc::clone(pool);
    // Dialers keep the process's priority: they time call setup, as Vonage's side sees it,
    // and a thread in the core's idle time would add its own wait to every figure.
    thread::Builder::new()
        .name(format!("dialer-{n}"))
        .stack_size(DIALER_STACK)
        .spawn(move || pool.dial_calls())
}

impl Pool {
    /// A dialer: takes the next call, waits for its time on the ramp, dials it and hands it
    /// to its poll loop, until no call is left (or no loop takes calls).
    fn dial_calls(self: &Arc<Self>) {
        loop {
            self.idle.fetch_add(1, Ordering::SeqCst);
            let i = self.next();
            if i >= self.opts.calls {
                self.idle.fetch_sub(1, Ordering::SeqCst);
                return;
            }
            let at = self.started + Duration::from_secs_f64(i as f64 / self.opts.ramp);
            thread::sleep(at.saturating_duration_since(Instant::now()));
            // No other dialer idle: none waits for the next call.
            if self.idle.fetch_sub(1, Ordering::SeqCst) == 1 {
                self.grow();
            }
            let opts = &self.opts;
            let call = Leg::call(&opts.dial, CallId::random(), self.call_events.clone());
            let Some(plan) = dial_one(i, call, opts, &self.agent, &self.tally, &self.events) else {
                continue;
            };
            if self.plans[i % self.plans.len()].send(plan).is_err() {
                return;
            }
        }
    }

    /// Takes the next call: its number in the whole load, which may pass the load's end.
    fn next(&self) -> usize {
        self.opts
            .shard
            .call(self.next_call.fetch_add(1, Ordering::SeqCst))
    }

    /// Starts one more dialer, unless every call is taken or the pool is at its cap.
    fn grow(self: &Arc<Self>) {
        let untaken = self.next_call.load(Ordering::SeqCst);
        if self.opts.shard.call(untaken) >= self.opts.calls {
            return;
        }
        let below_cap = |n: usize| (n < MAX_DIALERS).then_some(n + 1);
        let Ok(n) = self
            .count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, below_cap)
        else {
            return;
        };
        match spawn_dialer(self, n) {
            Ok(dialer) => lock(&self.handles).push(dialer),
            Err(e) => {
                self.count.fetch_sub(1, Ordering::SeqCst);
                if !self.refused.swap(true, Ordering::SeqCst) {
                    log::warn!(
                        "load: the system refused dialer {n} ({e}): calls wait for a dialer \
                         to come free, and the ramp falls behind"
                    );
                }
            }
        }
    }
}

/// Dials call `i` as Vonage sets a call up (events, the answer webhook asked again when it
/// must, the NCCO's actions up to its `connect`, the socket leg): its plan for the poll
/// loop, or `None` with its failure counted.
fn dial_one(
    i: usize,
    mut call: Leg,
    opts: &LoadOptions,
    agent: &ureq::Agent,
    tally: &DialTally,
    events: &mpsc::Sender<QueuedEvent>,
) -> Option<Plan> {
    let mut post = queue(events);
    Counters::bump(&tally.live.calls_dialed);
    let dialed = setup(&mut call, opts, agent, tally, &mut post);
    {
        let mut end = lock(&tally.ramp_end);
        *end = (*end).max(Instant::now());
    }
    match dialed {
        Ok((dialed, socket, answer)) => {
            Counters::bump(&tally.live.calls_connected);
            lock(&tally.setups).push(SetupTimes {
                answer,
                handshake: dialed.handshake,
            });
            lock(&tally.legs).insert(dialed.id.clone(), (call, socket));
            let frames = (opts.duration.as_millis() / 20).max(1) as u64;
            Some(Plan {
                dialed,
                frames,
                schedule: Schedule::new(opts.arrival, i as u64, frames),
                phase: engine::phase(i),
            })
        }
        Err(e) => {
            Counters::bump(&tally.live.calls_failed);
            let reason = format!("dial: {}", reason_of(&e.error));
            *lock(&tally.failed).entry(reason).or_default() += 1;
            None
        }
    }
}

/// Sets one call up to its open socket: the socket, its leg, and how long the answer took.
fn setup(
    call: &mut Leg,
    opts: &LoadOptions,
    agent: &ureq::Agent,
    tally: &DialTally,
    post: &mut dyn FnMut(&Leg, Event),
) -> std::result::Result<(super::setup::Dialed, Leg, Duration), Failed> {
    let dial = &opts.dial;
    let answered = answer_call(dial, agent, call, post).map_err(|(failed, _)| failed)?;
    if answered.attempts.len() > 1 {
        tally.answer_retried.fetch_add(1, Ordering::Relaxed);
    }
    let answer = answered.attempts.last().map_or(Duration::ZERO, |a| a.took);
    let end = |call: &Leg, post: &mut dyn FnMut(&Leg, Event), failed: Failed| {
        post(call, call.event(Status::Completed(HungUp::Platform)));
        failed
    };
    // A load judges call setup as Vonage does: a fault in it fails the call.
    if let Some(fault) = answered.reading.findings.iter().find(|f| f.is_fault()) {
        let error = Error::Ncco(fault.text.clone());
        return Err(end(
            call,
            post,
            Failed {
                check: fault.check.clone(),
                error,
            },
        ));
    }
    let mut course = Course::new(Instant::now(), answered.reading.steps, dial.patience);
    let connect = match course.run_to_connect(dial) {
        Next::Connect(connect) => connect,
        Next::End(_) => {
            let error = Error::Ncco("the NCCO connected no socket".into());
            return Err(end(
                call,
                post,
                Failed {
                    check: Check::Handshake,
                    error,
                },
            ));
        }
    };
    let mut socket = dial.socket_leg(&connect, call);
    let id = call.uuid.clone();
    match open_leg(dial, &id, &connect, &mut socket, post) {
        Ok(dialed) => Ok((dialed, socket, answer)),
        Err(failed) => Err(end(call, post, failed)),
    }
}

/// Starts the thread that collects each call's outcome and posts the events of its end
/// (the socket leg's `disconnected` when the server closed first, its `completed`, then
/// the call's), off the poll loop, so HTTP never delays a frame.
fn start_finisher(
    events: mpsc::Sender<QueuedEvent>,
    tally: &Arc<DialTally>,
) -> Result<(
    mpsc::Sender<engine::Outcome>,
    thread::JoinHandle<Vec<engine::Outcome>>,
)> {
    let (done_tx, done_rx) = mpsc::channel::<engine::Outcome>();
    let tally = Arc::clone(tally);
    let finisher = spawn_helper("finisher".into(), move || {
        let mut outcomes = Vec::new();
        for o in done_rx {
            Counters::bump(&tally.live.calls_ended);
            if o.error.is_some() {
                Counters::bump(&tally.live.calls_failed);
            }
            let legs = o.id.as_ref().and_then(|id| lock(&tally.legs).remove(id));
            if let Some((call, socket)) = legs {
                let mut post = queue(&events);
                // The server closed first: the application ended the socket leg.
                let by_server = o.error.is_some() && o.server_close.is_some();
                if by_server {
                    post(&socket, socket.event(Status::Disconnected));
                }
                let by = if by_server {
                    HungUp::User
                } else {
                    HungUp::Platform
                };
                post(&socket, socket.event(Status::Completed(by)));
                post(&call, call.event(Status::Completed(HungUp::User)));
            }
            outcomes.push(o);
        }
        outcomes
    })
    .map_err(|e| Error::io("starting the finisher", e))?;
    Ok((done_tx, finisher))
}

/// Every call dialed is connected or failed: a call whose dialer died is a failure.
fn count_unaccounted(report: &mut LoadReport, dialers_died: usize) {
    let unaccounted = report
        .attempted
        .saturating_sub(report.connected + report.failed_calls());
    if unaccounted > 0 || dialers_died > 0 {
        let reason = format!(
            "lost: {dialers_died} dialer(s) or the finisher ended abnormally; the calls they held"
        );
        *report.failed.entry(reason).or_default() += unaccounted;
    }
}

/// Adds each call's frames and failure to the report; returns every frame's round trip,
/// with when it left.
fn add_outcomes(report: &mut LoadReport, outcomes: Vec<engine::Outcome>) -> Vec<(u32, u32)> {
    let mut rtts = Vec::new();
    let mut max_late = Duration::ZERO;
    for o in outcomes {
        report.frames_sent += o.sent;
        report.frames_echoed += o.echoed;
        report.frames_lost += o.lost;
        report.frames_corrupted += o.corrupted;
        report.frames_late += o.late;
        max_late = max_late.max(o.max_late);
        rtts.extend_from_slice(&o.rtts);
        if let Some(e) = o.error {
            *report
                .failed
                .entry(format!("stream: {}", reason_of_text(&e)))
                .or_default() += 1;
        }
    }
    report.max_late_ms = ms(max_late);
    rtts
}

/// Adds the ramp as run, call setup's latencies and the round trips' percentiles; returns
/// the window, in ms from the start, in which every call was up.
fn add_timings(
    report: &mut LoadReport,
    options: &LoadOptions,
    started: Instant,
    tally: &DialTally,
    rtts: &[(u32, u32)],
) -> (u128, u128) {
    let ramp_end = lock(&tally.ramp_end).saturating_duration_since(started);
    report.ramp_seconds = ramp_end.as_secs_f64();
    let last_call = options.shard.last_call_of(options.calls).unwrap_or(0);
    report.planned_ramp_seconds = last_call as f64 / options.ramp;
    // Every call is up from the last dial until the first call, started at the epoch at the
    // earliest, ends.
    let ramp_end = ramp_end.as_millis();
    let first_end = options.duration.as_millis();
    let mut steady: Vec<u32> = rtts
        .iter()
        .filter(|&&(left, _)| u128::from(left) > ramp_end && u128::from(left) < first_end)
        .map(|&(_, rtt)| rtt)
        .collect();
    let mut all: Vec<u32> = rtts.iter().map(|&(_, rtt)| rtt).collect();
    all.sort_unstable();
    steady.sort_unstable();
    let setups = std::mem::take(&mut *lock(&tally.setups));
    report.answer_webhook = latency_of(setups.iter().map(|s| s.answer));
    report.handshake = latency_of(setups.iter().map(|s| s.handshake));
    report.round_trip = Percentiles::of(&all);
    report.steady_round_trip = (!steady.is_empty()).then(|| Percentiles::of(&steady));
    let micros = |d: &Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    report.histograms = LoadHistograms {
        relative_precision: RELATIVE_PRECISION,
        answer_webhook: histogram(setups.iter().map(|s| micros(&s.answer))),
        handshake: histogram(setups.iter().map(|s| micros(&s.handshake))),
        round_trip: histogram(all.iter().map(|&rtt| u64::from(rtt))),
        steady_round_trip: histogram(steady.iter().map(|&rtt| u64::from(rtt))),
        ..LoadHistograms::default()
    };
    (ramp_end, first_end)
}

/// The server's CPU per frame echoed within `window` (ms from the start): the CPU time
/// between the first sample in it and the last, over the frames that left between them.
fn steady_cpu_us_per_frame(
    trace: &[(u128, f64)],
    rtts: &[(u32, u32)],
    (from, to): (u128, u128),
) -> Option<f64> {
    let (start_ms, start_cpu) = *trace.iter().find(|(at, _)| *at >= from)?;
    let (end_ms, end_cpu) = *trace.iter().rev().find(|(at, _)| *at <= to)?;
    if end_ms < start_ms + 1000 {
        return None;
    }
    let frames = rtts
        .iter()
        .filter(|&&(left, _)| (start_ms..end_ms).contains(&u128::from(left)))
        .count();
    (frames > 0).then(|| (end_cpu - start_cpu).max(0.0) * 1e6 / frames as f64)
}

/// A histogram of latencies in microseconds.
fn histogram(micros: impl Iterator<Item = u64>) -> Histogram {
    let mut h = Histogram::new();
    for m in micros {
        h.record(m);
    }
    h
}

/// Percentiles of a set of durations.
fn latency_of(durations: impl Iterator<Item = Duration>) -> Percentiles {
    let mut micros: Vec<u32> = durations
        .map(|d| u32::try_from(d.as_micros()).unwrap_or(u32::MAX))
        .collect();
    micros.sort_unstable();
    Percentiles::of(&micros)
}

/// A failure's reason without the parts that differ per call (uuids, ports), so failures
/// group.
fn reason_of(e: &Error) -> String {
    reason_of_text(&e.to_string())
}

/// An event webhook's failure without the parts that differ per call (uuids, a URL's
/// query), so failures group; the URL itself stays, which the warning must name.
fn event_reason(text: &str) -> String {
    let words: Vec<&str> = text
        .split_whitespace()
        .map(|w| match w.split_once('?') {
            Some((url, _)) if url.contains("://") => url,
            _ => w,
        })
        .collect();
    let words: Vec<String> = words
        .iter()
        .map(|w| {
            if w.chars().filter(char::is_ascii_digit).count() > 6 && !w.contains("://") {
                "…".to_owned()
            } else {
                (*w).to_owned()
            }
        })
        .collect();
    crate::text::cut(&words.join(" "), 200).to_owned()
}

fn reason_of_text(text: &str) -> String {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| {
            if w.chars().filter(char::is_ascii_digit).count() > 6 || w.contains("://") {
                "…".to_owned()
            } else {
                w.to_owned()
            }
        })
        .collect();
    crate::text::cut(&words.join(" "), 120).to_owned()
}

/// Starts one of the load's helper threads (event posters, the finisher, the sampler) at
/// the lowest priority: they share the generator's core with the thread that
/// paces every call's frames, and a dial or an event that waits a little costs nothing,
/// while a frame that waits is a frame sent late.
fn spawn_helper<T: Send + 'static>(
    name: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<thread::JoinHandle<T>> {
    thread::Builder::new().name(name).spawn(move || {
        if let Err(e) = lower_priority() {
            log::debug!("a load helper keeps its priority: {e}");
        }
        f()
    })
}

/// Puts the calling thread under `SCHED_IDLE`: on the generator's core it runs in the time
/// the pacing thread leaves, and the pacing thread takes the core from it the moment it
/// wakes. Lowering one's own priority needs no privilege. (The server lowers its call
/// threads the same way, in code of its own: the emulator depends on nothing of the
/// server's.)
fn lower_priority() -> std::result::Result<(), thread_priority::Error> {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadPriority, ThreadSchedulePolicy,
    };
    set_thread_priority_and_policy(
        thread_native_id(),
        // SCHED_IDLE has a single priority, 0, which is the crate's minimum for it.
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    )
}

/// The server's CPU seconds as sampled: (ms from the run's start, CPU seconds).
type CpuTrace = Vec<(u128, f64)>;

/// Samples a process's CPU time, resident memory and threads from /proc.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<(ServerUsage, CpuTrace)>,
}

impl Sampler {
    fn start(pid: u32, started: Instant) -> io::Result<Sampler> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = spawn_helper("sampler".into(), move || {
            let mut usage = ServerUsage::default();
            // Ten samples a second: a run of an hour holds 36,000.
            let mut trace = CpuTrace::new();
            loop {
                if let Some((rss, threads)) = rss_and_threads(pid) {
                    usage.peak_rss_mib = usage.peak_rss_mib.max(rss);
                    usage.peak_threads = usage.peak_threads.max(threads);
                }
                trace.push((started.elapsed().as_millis(), cpu_seconds(pid)));
                if flag.load(Ordering::Acquire) {
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
            // The trace's first sample is the start; its last, taken once stopped, the end.
            if let (Some(first), Some(last)) = (trace.first(), trace.last()) {
                usage.cpu_seconds = (last.1 - first.1).max(0.0);
            }
            (usage, trace)
        })?;
        Ok(Sampler { stop, thread })
    }

    fn stop(self) -> (ServerUsage, CpuTrace) {
        self.stop.store(true, Ordering::Release);
        self.thread.join().unwrap_or_default()
    }
}

/// User plus system CPU seconds of a process (fields 14 and 15 of /proc/PID/stat, in the
/// kernel's USER_HZ of 100 ticks a second).
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name may hold spaces; fields are counted after its closing parenthesis.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// Resident MiB and thread count from /proc/PID/status.
fn rss_and_threads(pid: u32) -> Option<(f64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((
        field("VmRSS:")? as f64 / 1024.0,
        field("Threads:").unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_cpu_counts_the_cpu_and_the_frames_between_the_window_s_samples() {
        let trace = [(0, 0.0), (1000, 1.0), (2000, 2.5), (3000, 3.0)];
        // Frames left before, at the start of, within, and at the end of [1000, 2000).
        let rtts = [(900, 1), (1000, 1), (1500, 1), (1999, 1), (2000, 1)];
        let got = steady_cpu_us_per_frame(&trace, &rtts, (500, 2600)).unwrap();
        assert!((got - 1.5e6 / 3.0).abs() < 1e-6, "{got}");
    }

    #[test]
    fn steady_cpu_is_absent_when_every_call_was_up_for_under_a_second() {
        let trace = [(0, 0.0), (1000, 1.0), (2000, 2.5)];
        let rtts = [(1500, 1)];
        assert_eq!(steady_cpu_us_per_frame(&trace, &rtts, (900, 1900)), None);
    }

    #[test]
    fn event_failures_group_by_url_without_its_query() {
        assert_eq!(
            event_reason(
                "POST http://127.0.0.1:9/leg?call=1 of the socket leg answered 404 to \"started\""
            ),
            "POST http://127.0.0.1:9/leg of the socket leg answered 404 to \"started\""
        );
    }

    #[test]
    fn reasons_group_without_per_call_details() {
        assert_eq!(
            reason_of_text("socket handshake at ws://127.0.0.1:5/socket?uuid=abc refused with 503"),
            "socket handshake at … refused with 503"
        );
    }

    #[test]
    fn a_long_non_ascii_reason_is_cut_between_characters() {
        for pad in 0..4 {
            let text = format!("{}{}", "x".repeat(pad), "é…ü".repeat(60));
            let reason = reason_of_text(&text);
            assert!(reason.len() <= 120);
            assert!(text.starts_with(&reason));
        }
    }

    #[test]
    fn a_helper_that_died_fails_the_run_and_says_so() {
        let report = LoadReport {
            helpers_died: vec!["1 event poster thread(s) ended abnormally".into()],
            ..LoadReport::default()
        };
        assert!(!report.passed());
        assert!(report
            .to_string()
            .contains("the load itself failed: 1 event poster thread(s) ended abnormally"));
    }

    #[test]
    fn a_generator_that_sent_a_tenth_of_its_frames_late_says_it_fell_behind() {
        let report = LoadReport {
            frames_sent: 1000,
            frames_late: 100,
            ..LoadReport::default()
        };
        assert_eq!(report.generator_behind(), Some(0.1));
        assert!(report
            .to_string()
            .contains("the generator fell behind: 10 % of frames left 5 ms or more late"));
    }

    #[test]
    fn a_generator_that_kept_to_its_schedule_says_nothing_of_it() {
        let report = LoadReport {
            frames_sent: 1000,
            frames_late: 99,
            ..LoadReport::default()
        };
        assert_eq!(report.generator_behind(), None);
        assert!(!report.to_string().contains("fell behind"));
    }

    #[test]
    fn own_process_usage_is_readable() {
        let (rss, threads) = rss_and_threads(std::process::id()).unwrap();
        assert!(rss > 0.0 && threads >= 1);
    }
}
