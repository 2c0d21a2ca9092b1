//! One call, played as Vonage plays it, for any application: the caller streams and
//! presses keys, Vonage's playback buffer plays the application's audio back, and every
//! one of Vonage's rules the application breaks is reported.
//!
//! A test rig plays a scenario against its application and asserts on the report:
//!
//! ```no_run
//! use vonage_echo::sim::{call::{self, CallOptions}, script::Scenario, Expect};
//!
//! let scenario = Scenario::load("tests/scenarios/barge-in.scenario".as_ref())?;
//! let report = call::run(
//!     &CallOptions::new("http://127.0.0.1:8000/webhooks/answer")
//!         .expect(Expect::Protocol)
//!         .script(Some(scenario)),
//! )?;
//! assert!(report.passed(), "{report}");
//! assert_eq!(report.cleared, 1);
//! # Ok::<(), vonage_echo::Error>(())
//! ```

use std::{path::PathBuf, time::Duration};

use serde_json::{json, Map, Value};

use super::{
    arrival::Arrival,
    caller::{Caller, Voice},
    dial,
    findings::{Check, Finding},
    percentile,
    playback::DEFAULT_BUFFER_FRAMES,
    post_event,
    script::{Expected, Scenario},
    session::{Expect, Observed, Played, Session, Tally},
    tape::Tape,
    Dial, Failed,
};
use crate::{
    error::{Error, Result},
    protocol::{audio::FRAME_DURATION, call_id::CallId, messages::is_dtmf_digit},
};

pub use super::caller::{read_wav, wav_spec};
pub use super::report::CallReport;

/// How long a call streams, unless [`CallOptions::duration`] says otherwise.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(5);

/// What one emulated call does.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CallOptions {
    /// Where the call is placed.
    pub dial: Dial,
    /// How long the caller streams (with [`CallOptions::wav`], the file's length).
    pub duration: Duration,
    /// What the caller streams: a tone or silence.
    pub voice: Voice,
    /// A mono 16-bit WAV file at the call's rate to stream instead.
    pub wav: Option<PathBuf>,
    /// Keys pressed during the call, spread evenly over it (`0`-`9`, `*`, `#`).
    pub dtmf: String,
    /// A scenario to play instead of duration, voice, WAV and keys.
    pub script: Option<Scenario>,
    /// What is expected of the application's audio.
    pub expect: Expect,
    /// How the caller's frames are spread over time: steady, or in bursts as Vonage sends
    /// them.
    pub arrival: Arrival,
    /// The playback buffer's size in frames.
    pub buffer_frames: usize,
    /// Where to write the call as a two-channel WAV file.
    pub record: Option<PathBuf>,
}

impl CallOptions {
    /// A 5-second call to `answer_url` with a tone, expecting an echo.
    pub fn new(answer_url: impl Into<String>) -> CallOptions {
        CallOptions {
            dial: Dial::new(answer_url),
            duration: DEFAULT_DURATION,
            voice: Voice::Tone,
            wav: None,
            dtmf: String::new(),
            script: None,
            expect: Expect::Echo,
            arrival: Arrival::Steady,
            buffer_frames: DEFAULT_BUFFER_FRAMES,
            record: None,
        }
    }

    /// Sets [`CallOptions::dial`].
    pub fn dial(mut self, dial: Dial) -> Self {
        self.dial = dial;
        self
    }

    /// Sets [`CallOptions::duration`].
    pub fn duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }

    /// Sets [`CallOptions::voice`].
    pub fn voice(mut self, voice: Voice) -> Self {
        self.voice = voice;
        self
    }

    /// Sets [`CallOptions::wav`].
    pub fn wav(mut self, path: Option<PathBuf>) -> Self {
        self.wav = path;
        self
    }

    /// Sets [`CallOptions::dtmf`].
    pub fn dtmf(mut self, digits: impl Into<String>) -> Self {
        self.dtmf = digits.into();
        self
    }

    /// Sets [`CallOptions::script`].
    pub fn script(mut self, scenario: Option<Scenario>) -> Self {
        self.script = scenario;
        self
    }

    /// Sets [`CallOptions::expect`].
    pub fn expect(mut self, expect: Expect) -> Self {
        self.expect = expect;
        self
    }

    /// Sets [`CallOptions::arrival`].
    pub fn arrival(mut self, arrival: Arrival) -> Self {
        self.arrival = arrival;
        self
    }

    /// Sets [`CallOptions::buffer_frames`].
    pub fn buffer_frames(mut self, frames: usize) -> Self {
        self.buffer_frames = frames;
        self
    }

    /// Sets [`CallOptions::record`].
    pub fn record(mut self, path: Option<PathBuf>) -> Self {
        self.record = path;
        self
    }
}

/// The rules of call setup, in the order a call meets them.
const SETUP: [Check; 4] = [
    Check::Events,
    Check::AnswerWebhook,
    Check::Ncco,
    Check::Handshake,
];

/// Plays one call and judges the application. Whatever the application does, the call
/// ends in a report (see [`CallReport::passed`]); an `Err` is a problem on this side: a
/// bad option, an unreadable WAV file or scenario, a recording that cannot be created.
pub fn run(options: &CallOptions) -> Result<CallReport> {
    check_options(options)?;
    let agent = options.dial.agent()?;
    let event_url = options.dial.event_target()?;
    let id = CallId::random();
    let mut report = CallReport::new(id.clone(), options.expect);
    report.arrival = options.arrival;
    let mut post = |base: &Value, status: &'static str| match &event_url {
        Some(url) => post_event(&agent, &options.dial, url, base, status, Map::new()),
        None => Ok(()),
    };
    let dialed = match dial(&options.dial, id.clone(), &agent, &mut post) {
        Ok(dialed) => dialed,
        Err(failed) => {
            report.unreached = expectation_checks(options);
            return Ok(setup_failed(report, failed));
        }
    };
    describe_setup(&mut report, &dialed);
    let (caller, tape) = match prepare(options, dialed.format) {
        Ok(prepared) => prepared,
        Err(e) => {
            // The call cannot go on (a WAV at another rate, a recording that cannot be
            // made): the caller hangs up at once rather than drop the socket.
            let mut ws = dialed.ws;
            let _ = ws.close(None);
            let _ = ws.flush();
            return Err(e);
        }
    };
    let base = json!({"uuid": id.as_str(), "conversation_uuid": dialed.conversation,
                      "from": options.dial.from, "to": options.dial.to, "direction": "inbound"});
    let answered_at = dialed.answered_at;
    // The socket is a leg of its own: its events carry its uuid, its uri and the headers.
    let leg = json!({"uuid": CallId::random().as_str(), "conversation_uuid": dialed.conversation,
                     "from": options.dial.from, "to": dialed.socket_uri, "direction": "outbound",
                     "headers": dialed.headers});
    let steps = caller.steps.clone();
    let played = Session::new(
        dialed,
        caller,
        options.arrival,
        options.expect,
        options.buffer_frames,
        tape,
    )
    .map_err(|e| Error::io("setting up the call's socket", e))?
    .run();
    report.checks = streamed_checks(options.expect);
    if let Some(scenario) = &options.script {
        judge_expectations(&mut report, scenario, &steps, &played.observed);
    }
    fill(&mut report, played);
    if let Some(url) = &event_url {
        let ended = |base: &Value, status: &str, extra: Map<String, Value>| {
            post_event(&agent, &options.dial, url, base, status, extra)
                .err()
                .map(|e| Finding::fault(Check::Events, e.to_string()))
        };
        if report.closed_by_application {
            report.add(ended(&leg, "disconnected", Map::new()));
        }
        let seconds = answered_at.elapsed().as_secs().to_string();
        report.add(ended(
            &base,
            "completed",
            Map::from_iter([("duration".into(), seconds.into())]),
        ));
    }
    Ok(report)
}

/// What the caller will do, and where the call is recorded.
fn prepare(
    options: &CallOptions,
    format: crate::protocol::audio::AudioFormat,
) -> Result<(Caller, Option<Tape>)> {
    let caller = caller_of(options, format)?;
    let tape = match &options.record {
        Some(path) => Some(Tape::create(path, format)?),
        None => None,
    };
    Ok((caller, tape))
}

/// The checks of the scenario's expectations, if there is a scenario.
fn expectation_checks(options: &CallOptions) -> Vec<Check> {
    options
        .script
        .iter()
        .flat_map(|s| &s.expectations)
        .map(|e| Check::Expectation(e.text.clone()))
        .collect()
}

/// The report of a call that never reached its socket: the rules up to the one it broke.
fn setup_failed(mut report: CallReport, Failed { check, error }: Failed) -> CallReport {
    let reached = SETUP.iter().position(|c| *c == check).map_or(0, |i| i + 1);
    report.checks = SETUP[..reached].to_vec();
    report.add([Finding::fault(check, error.to_string())]);
    report
}

/// What call setup found, into the report.
fn describe_setup(report: &mut CallReport, dialed: &super::Dialed) {
    report.format = Some(dialed.format);
    report.socket_uri = dialed.socket_uri.clone();
    report.talks = dialed.talks.clone();
    report.answer_time = Some(dialed.setup.answer);
    report.handshake_time = Some(dialed.setup.handshake);
    report.add(dialed.findings.clone());
}

/// What the caller does: the scenario, or the options' voice, WAV and keys.
fn caller_of(options: &CallOptions, format: crate::protocol::audio::AudioFormat) -> Result<Caller> {
    match &options.script {
        Some(scenario) => Caller::scripted(format, scenario),
        None => Caller::plain(
            format,
            options.voice,
            options.wav.as_deref(),
            options.duration,
            &options.dtmf,
        ),
    }
}

/// Every rule a call that streamed was judged by, before its scenario's expectations.
fn streamed_checks(expect: Expect) -> Vec<Check> {
    let mut checks = SETUP.to_vec();
    checks.extend([
        Check::FrameSize,
        Check::Playback,
        Check::Commands,
        Check::Socket,
    ]);
    if expect == Expect::Echo {
        checks.push(Check::Echo);
    }
    checks
}

fn check_options(options: &CallOptions) -> Result<()> {
    if let Some(bad) = options.dtmf.chars().find(|c| !is_dtmf_digit(*c)) {
        return Err(Error::config(
            "--dtmf",
            format!("{bad:?} is not a key (0-9, *, #)"),
        ));
    }
    if options.buffer_frames == 0 {
        return Err(Error::config(
            "--buffer-frames",
            "must hold at least one frame",
        ));
    }
    Ok(())
}

/// Copies what the socket saw into the report.
fn fill(report: &mut CallReport, played: Played) {
    let t = played.tally;
    report.sent = t.sent;
    report.echoed = t.echoed;
    report.lost = t.lost;
    report.corrupted = t.corrupted;
    report.late = t.late;
    report.emulator_late_ticks = t.late_ticks;
    report.emulator_max_late = t.max_tick_late;
    report.excused_underruns = t.excused;
    report.texts = (t.texts_sent, t.texts_echoed);
    report.received_frames = t.received;
    report.played_frames = t.played;
    report.dropped_frames = t.dropped;
    report.underruns = t.underruns;
    report.cleared = t.cleared;
    report.cleared_frames = t.thrown;
    report.unplayed_frames = t.unplayed;
    report.notified = t.notified;
    report.server_close = t.app_close;
    report.closed_by_application = t.app_ended_first;
    report.add(early_close(&t, report.expect));
    let mut rtts = t.rtts;
    rtts.sort_unstable();
    report.rtt = (
        percentile(&rtts, 50.0),
        percentile(&rtts, 99.0),
        percentile(&rtts, 100.0),
    );
    report.add(played.findings);
}

/// What the application's closing the socket first says: under `--expect echo` the echo
/// was cut short, a fault; otherwise a close before the caller said anything is a warning,
/// since the caller was never heard (an application may end its socket after a turn).
fn early_close(t: &Tally, expect: Expect) -> Option<Finding> {
    if !t.app_ended_first {
        return None;
    }
    let code = t.app_close.unwrap_or(1005);
    let at = t.app_closed_at.unwrap_or(0);
    if expect == Expect::Echo {
        return Some(Finding::fault(
            Check::Socket,
            format!("the application closed the socket with {code} at {at} ms, before the caller hung up"),
        ));
    }
    t.closed_before_caller_spoke.then(|| {
        Finding::warning(
            Check::Socket,
            format!(
                "the application closed the socket with {code} at {at} ms, before the caller had said anything \
                 (no key pressed, no speech ended): Vonage ends the socket leg there and goes on with the NCCO's \
                 next action, or hangs up"
            ),
        )
    })
}

/// Judges each expectation of the scenario against what happened.
fn judge_expectations(
    report: &mut CallReport,
    scenario: &Scenario,
    steps: &[(u64, u64)],
    observed: &Observed,
) {
    let tick_ms = FRAME_DURATION.as_millis() as u64;
    for expectation in &scenario.expectations {
        let check = Check::Expectation(expectation.text.clone());
        report.checks.push(check.clone());
        let (start, end) = expectation
            .after_step
            .and_then(|i| steps.get(i))
            .copied()
            .unwrap_or((0, 0));
        let (anchor, happened, what) = match expectation.expected {
            Expected::Speech => {
                let anchor = end * tick_ms;
                // Speech that began before the turn ended is talking over the caller.
                let heard = observed
                    .speech
                    .iter()
                    .map(|(s, _)| s * tick_ms)
                    .find(|s| *s >= anchor);
                (anchor, heard, "the caller heard the application speak")
            }
            Expected::Clear => {
                let anchor = start * tick_ms;
                let first = observed.clears.iter().copied().find(|t| *t >= anchor);
                (anchor, first, "a clear arrived")
            }
            Expected::Notify => {
                let anchor = start * tick_ms;
                let first = observed.notifies.iter().copied().find(|t| *t >= anchor);
                (anchor, first, "a notify arrived")
            }
        };
        let fault = match (happened, expectation.within) {
            (None, _) => Some(format!(
                "never: nothing from {anchor} ms on, to the call's end"
            )),
            (Some(at), Some(within)) if at - anchor > within.as_millis() as u64 => Some(format!(
                "{what} {} ms after the step, later than {} ms",
                at - anchor,
                within.as_millis()
            )),
            _ => None,
        };
        if let Some(text) = fault {
            report.add([Finding::fault(check, text)]);
        }
    }
}
