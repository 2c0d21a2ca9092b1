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

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use super::{
    answer::attempt_findings,
    arrival::Arrival,
    caller::{Caller, Voice},
    course::{Course, Next},
    dial::Dial,
    events::{self, Delivery, HungUp, Leg, LegKind, Poster, Status},
    findings::{Check, Finding},
    ncco::{self, Connect},
    playback::DEFAULT_BUFFER_FRAMES,
    script::{Expected, Scenario},
    session::{Expect, Observed, Played, Session, Tally},
    setup::answer_call,
    setup::open_leg,
    setup::Failed,
    stats::percentile,
    tape::Tape,
};
use crate::{
    error::{Error, Result},
    protocol::{audio::FRAME_DURATION, call_id::CallId, messages::is_dtmf_digit},
};

pub use super::caller::{read_wav, wav_spec};
pub use super::report::{CallReport, MeasuredExpectation, Timeline};

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
    /// Whether a line of progress goes to standard error each second of a call longer
    /// than a few seconds.
    pub progress: bool,
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
            progress: false,
        }
    }

    setters! {
        /// Sets [`CallOptions::dial`].
        dial: Dial,
        /// Sets [`CallOptions::duration`].
        duration: Duration,
        /// Sets [`CallOptions::voice`].
        voice: Voice,
        /// Sets [`CallOptions::wav`].
        wav: Option<PathBuf>,
        /// Sets [`CallOptions::script`].
        script: Option<Scenario>,
        /// Sets [`CallOptions::expect`].
        expect: Expect,
        /// Sets [`CallOptions::arrival`].
        arrival: Arrival,
        /// Sets [`CallOptions::buffer_frames`].
        buffer_frames: usize,
        /// Sets [`CallOptions::record`].
        record: Option<PathBuf>,
        /// Sets [`CallOptions::progress`].
        progress: bool,
    }

    /// Sets [`CallOptions::dtmf`].
    pub fn dtmf(mut self, digits: impl Into<String>) -> Self {
        self.dtmf = digits.into();
        self
    }
}

/// The rules of call setup, in the order a call meets them.
const SETUP: [Check; 7] = [
    Check::Events,
    Check::AnswerWebhook,
    Check::Ncco,
    Check::CallerId,
    Check::NccoActions,
    Check::Handshake,
    Check::SocketEvents,
];

/// Plays one call and judges the application. Whatever the application does, the call
/// ends in a report (see [`CallReport::passed`]); an `Err` is a problem on this side: a
/// bad option, an unreadable WAV file or scenario, a recording that cannot be created.
pub fn run(options: &CallOptions) -> Result<CallReport> {
    check_options(options)?;
    let dial = &options.dial;
    let agent = dial.agent()?;
    let id = CallId::random();
    let mut report = CallReport::new(id.clone(), options.expect);
    report.arrival = options.arrival;
    report.answer_method = dial.method;
    let poster = Poster::start(agent.clone(), dial.clone());
    let mut call = Leg::call(dial, id, dial.event_target()?);
    let origin = Instant::now();
    let answered = match answer_call(dial, &agent, &mut call, &mut |leg, e| poster.send(leg, e)) {
        Ok(answered) => answered,
        Err((failed, attempts)) => {
            report.answer_time = attempts.last().map(|a| a.took);
            report.answer_attempts = attempts;
            report.unreached = expectation_checks(options);
            let mut report = setup_failed(report, failed);
            add_deliveries(&mut report, poster.finish());
            return Ok(report);
        }
    };
    report.answer_time = answered.attempts.last().map(|a| a.took);
    report.add(attempt_findings(&answered.attempts, dial.method));
    report.answer_attempts = answered.attempts;
    report.talks = answered.reading.talks();
    report.add(answered.reading.findings);
    report.checks = SETUP.to_vec();
    let mut course = Course::new(origin, answered.reading.steps, dial.patience);
    let mut legs = Legs {
        options,
        agent: &agent,
        poster: &poster,
        call: &mut call,
        said: 0,
        streamed: false,
        tape: None,
        sync: Vec::new(),
        rtts: Vec::new(),
        legs_opened: 0,
    };
    let played = legs.play(&mut course, &mut report);
    if legs.legs_opened == 0 {
        no_socket(&mut report);
    }
    let Legs { sync, .. } = legs;
    // The call ends whatever ended it, an error on this side included.
    poster.send(
        &call,
        call.event(Status::Completed(*played.as_ref().unwrap_or(&HungUp::User))),
    );
    if let Err(e) = played {
        let _ = poster.finish();
        return Err(e);
    }
    report.add(course.findings);
    report.ncco_actions = course.ran;
    let mut deliveries = poster.finish();
    deliveries.extend(sync);
    deliveries.sort_by_key(|d| d.at);
    add_deliveries(&mut report, deliveries);
    Ok(report)
}

/// Files how each event was delivered, with a warning for each that failed.
fn add_deliveries(report: &mut CallReport, deliveries: Vec<Delivery>) {
    for delivery in &deliveries {
        if let Some(failure) = delivery.failure() {
            let check = match delivery.leg {
                LegKind::Call => Check::Events,
                LegKind::Socket => Check::SocketEvents,
            };
            report.add([Finding::warning(check, failure)]);
        }
    }
    report.events = deliveries;
}

/// The most socket legs one call opens: an NCCO that reconnects each time its socket
/// closes would otherwise keep the emulated caller on the line for ever.
const MAX_SOCKET_LEGS: usize = 32;

/// How a socket leg ended.
enum LegEnd {
    /// The caller hung up: the call is over.
    CallerHungUp,
    /// The application closed the socket, or dropped it.
    Application,
    /// Vonage ended it: its `limit` passed, or the application broke a rule that ends it.
    Platform,
    /// It never opened.
    Failed,
}

/// A call's socket legs, played one after another as the NCCO reaches them; the caller's
/// audio goes on where the last leg left it.
struct Legs<'a> {
    options: &'a CallOptions,
    agent: &'a ureq::Agent,
    poster: &'a Poster,
    call: &'a mut Leg,
    /// Frames the caller has said on the legs so far.
    said: u64,
    /// Whether a socket leg has streamed yet.
    streamed: bool,
    /// The recording, until the first leg takes it.
    tape: Option<Tape>,
    /// Deliveries of synchronous events, posted inline.
    sync: Vec<Delivery>,
    /// Round trips of every leg's echoed frames, in microseconds.
    rtts: Vec<u32>,
    /// How many `connect` actions the NCCO has reached.
    legs_opened: usize,
}

impl Legs<'_> {
    /// Runs the course to its end; says who ended the call.
    fn play(&mut self, course: &mut Course, report: &mut CallReport) -> Result<HungUp> {
        loop {
            let connect = match course.run_to_connect(&self.options.dial) {
                Next::End(by) => return Ok(by),
                Next::Connect(connect) => connect,
            };
            self.legs_opened += 1;
            if self.legs_opened > MAX_SOCKET_LEGS {
                report.add([Finding::fault(
                    Check::NccoActions,
                    format!(
                        "the NCCO reached a connect {} times in one call: the caller hangs up there \
                         (an answer to disconnected that connects again, and again, keeps a caller forever)",
                        self.legs_opened
                    ),
                )]);
                return Ok(HungUp::User);
            }
            let start = course.now();
            let (end, note, leg) = self.socket_leg(&connect, report)?;
            if let (None, Some(handshake)) = (report.timeline.socket_opened, report.handshake_time)
            {
                report.timeline.socket_opened = Some(start + handshake);
            }
            course.record("connect", start, note);
            course.listen_again();
            if let Some(leg) = leg {
                self.end_leg(&leg, &end, connect.synchronous, course, report);
            }
            if matches!(end, LegEnd::CallerHungUp) {
                return Ok(HungUp::User);
            }
        }
    }

    /// The events of a socket leg's end: `disconnected` when the application ended it
    /// (posted and waited for inline when the connect asked for synchronous events), then
    /// `completed`.
    fn end_leg(
        &mut self,
        leg: &Leg,
        end: &LegEnd,
        synchronous: bool,
        course: &mut Course,
        report: &mut CallReport,
    ) {
        if matches!(end, LegEnd::Application) {
            if synchronous {
                self.disconnected_sync(leg, course, report);
            } else {
                self.poster.send(leg, leg.event(Status::Disconnected));
            }
        }
        let by = match end {
            LegEnd::Application => HungUp::User,
            _ => HungUp::Platform,
        };
        self.poster.send(leg, leg.event(Status::Completed(by)));
    }

    /// One socket leg, from its handshake to its end: how it ended, in a few words.
    fn socket_leg(
        &mut self,
        connect: &Connect,
        report: &mut CallReport,
    ) -> Result<(LegEnd, String, Option<Leg>)> {
        let dial = &self.options.dial;
        let mut leg = dial.socket_leg(connect, self.call);
        let poster = self.poster;
        let id = self.call.uuid.clone();
        let dialed = match open_leg(dial, &id, connect, &mut leg, &mut |l, e| poster.send(l, e)) {
            Ok(dialed) => dialed,
            Err(Failed { check, error }) => {
                let note = format!("the socket did not open: {error}");
                report.add([Finding::fault(check, error.to_string())]);
                return Ok((LegEnd::Failed, note, None));
            }
        };
        let first = !self.streamed;
        let caller = match self.caller_for(&dialed, report) {
            Ok(caller) => caller,
            Err(e) => {
                // The call cannot go on (a WAV at another rate, a recording that cannot be
                // made): the caller hangs up at once rather than drop the socket.
                let mut ws = dialed.ws;
                let _ = ws.close(None);
                let _ = ws.flush();
                return Err(e);
            }
        };
        self.streamed = true;
        let steps = caller.steps.clone();
        let opened = Instant::now();
        let played = Session::new(
            dialed,
            caller,
            self.options.arrival,
            self.options.expect,
            self.options.buffer_frames,
            self.tape.take(),
        )
        .map_err(|e| Error::io("setting up the call's socket", e))?
        .with_progress(self.options.progress)
        .run();
        self.said += played.tally.sent;
        if first {
            report.checks = streamed_checks(self.options.expect);
            if let Some(scenario) = &self.options.script {
                judge_expectations(report, scenario, &steps, &played.observed);
            }
            report.timeline = timeline(&played.observed);
        }
        let (end, why) = ending(&played, opened.elapsed());
        fill(report, played, &mut self.rtts);
        Ok((end, why, Some(leg)))
    }

    /// What the caller says on this leg, in the leg's format: the rest of what it has to
    /// say, from where the last leg left it. The first leg describes the socket in the
    /// report and starts the recording, which holds that leg.
    fn caller_for(
        &mut self,
        dialed: &super::setup::Dialed,
        report: &mut CallReport,
    ) -> Result<Caller> {
        if !self.streamed {
            describe_socket(report, dialed);
            self.tape = match &self.options.record {
                Some(path) => Some(Tape::create(path, dialed.format)?),
                None => None,
            };
        }
        Ok(caller_of(self.options, dialed.format)?.rest(self.said))
    }

    /// With `eventType: "synchronous"`, the answer to `disconnected` may be an NCCO, which
    /// replaces what is left of the call's; it is posted, and waited for, inline.
    fn disconnected_sync(&mut self, leg: &Leg, course: &mut Course, report: &mut CallReport) {
        let dial = &self.options.dial;
        let Some(target) = &leg.target else {
            return;
        };
        let (delivery, body) =
            events::post(self.agent, dial, target, &leg.event(Status::Disconnected));
        let ok = delivery.ok();
        self.sync.push(delivery);
        let Some(body) = body.filter(|b| ok && b.trim_ascii_start().starts_with(b"[")) else {
            return;
        };
        match ncco::read(&body) {
            Ok(reading) => {
                report.talks.extend(reading.talks());
                report.add(reading.findings);
                course.replace(reading.steps);
                course.record(
                    "disconnected",
                    course.now(),
                    "its answer's NCCO replaced the rest of the call's",
                );
            }
            Err(reason) => {
                self.poster.send(self.call, self.call.ncco_error(&reason));
                report.add([Finding::fault(
                    Check::NccoActions,
                    format!("the NCCO answering disconnected: {reason}; Vonage ends the call"),
                )]);
                course.replace(Vec::new());
            }
        }
    }
}

/// A call whose NCCO never connected a socket: nothing of the socket could be judged,
/// which fails an echo and is worth a word otherwise.
fn no_socket(report: &mut CallReport) {
    let text = "the NCCO ran out without a connect to a websocket: no audio was streamed";
    report.add([match report.expect {
        Expect::Echo => Finding::fault(Check::Handshake, text),
        Expect::Protocol => Finding::warning(Check::Handshake, text),
    }]);
}

/// How a socket leg ended, from what its session saw, and that in a few words.
fn ending(played: &Played, lasted: Duration) -> (LegEnd, String) {
    let t = &played.tally;
    let secs = lasted.as_secs_f64();
    if t.limit_reached {
        (
            LegEnd::Platform,
            format!("Vonage ended it at its limit, after {secs:.1} s"),
        )
    } else if t.caller_hung_up {
        (
            LegEnd::CallerHungUp,
            format!("the caller hung up after {secs:.1} s"),
        )
    } else if t.vonage_dropped {
        (
            LegEnd::Platform,
            format!("Vonage dropped it after {secs:.1} s (a frame of the wrong size)"),
        )
    } else {
        let how = t
            .app_close
            .map_or("dropped the connection".to_owned(), |c| {
                format!("closed it with {c}")
            });
        (
            LegEnd::Application,
            format!("the application {how} after {secs:.1} s"),
        )
    }
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

/// What the first socket's opening says, into the report.
fn describe_socket(report: &mut CallReport, dialed: &super::setup::Dialed) {
    report.format = Some(dialed.format);
    report.socket_uri = dialed.socket_uri.clone();
    report.handshake_time = Some(dialed.handshake);
}

/// What the caller does: the scenario, or the options' voice, WAV and keys.
pub(crate) fn caller_of(
    options: &CallOptions,
    format: crate::protocol::audio::AudioFormat,
) -> Result<Caller> {
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

pub(crate) fn check_options(options: &CallOptions) -> Result<()> {
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

/// Adds what a socket leg saw to the report; its round trips join `rtts`, whose
/// percentiles the report gives.
fn fill(report: &mut CallReport, played: Played, rtts: &mut Vec<u32>) {
    let t = played.tally;
    report.sent += t.sent;
    report.echoed += t.echoed;
    report.lost += t.lost;
    report.corrupted += t.corrupted;
    report.late += t.late;
    report.emulator_late_ticks += t.late_ticks;
    report.emulator_max_late = report.emulator_max_late.max(t.max_tick_late);
    report.excused_underruns += t.excused;
    report.texts.0 += t.texts_sent;
    report.texts.1 += t.texts_echoed;
    report.received_frames += t.received;
    report.played_frames += t.played;
    report.dropped_frames += t.dropped;
    report.underruns += t.underruns;
    report.cleared += t.cleared;
    report.cleared_frames += t.thrown;
    report.unplayed_frames += t.unplayed;
    report.notified += t.notified;
    report.server_close = t.app_close.or(report.server_close);
    report.closed_by_application |= t.app_ended_first;
    report.add(early_close(&t, report.expect));
    add_timing(report, played.timing);
    rtts.extend(t.rtts);
    rtts.sort_unstable();
    report.round_trips = sample(rtts);
    report.rtt = (
        percentile(rtts, 50.0),
        percentile(rtts, 99.0),
        percentile(rtts, 100.0),
    );
    report.add(played.findings);
}

/// Judges a load's call by the rules a call is judged by, once its socket has ended: what
/// its session found, its early close, the scenario's expectations; `caller` is what it
/// said.
pub(crate) fn judge_streamed(
    id: CallId,
    expect: Expect,
    scenario: Option<&Scenario>,
    caller: &Caller,
    played: Played,
) -> CallReport {
    let mut report = CallReport::new(id, expect);
    report.checks = streamed_checks(expect);
    if let Some(scenario) = scenario {
        judge_expectations(&mut report, scenario, &caller.steps, &played.observed);
    }
    fill(&mut report, played, &mut Vec::new());
    report
}

/// Adds a socket leg's turns and barge-ins to the report, barge-ins renumbered to the
/// report's turns; the first audio is the first leg's that had any.
fn add_timing(report: &mut CallReport, timing: super::turns::Timing) {
    let before = report.turns.len();
    report.turns.extend(timing.turns);
    report
        .barge_ins
        .extend(timing.barge_ins.into_iter().map(|mut b| {
            b.turn += before;
            b
        }));
    report.first_audio = report.first_audio.or(timing.first_audio);
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

/// What the first socket's session observed, as the report's timeline (its opening is
/// placed by the course, which knows when its connect began).
fn timeline(observed: &Observed) -> Timeline {
    let tick = |k: u64| FRAME_DURATION * k as u32;
    let at = |list: &[u64]| list.iter().map(|m| Duration::from_millis(*m)).collect();
    Timeline {
        socket_opened: None,
        heard: observed
            .speech
            .iter()
            .map(|(s, e)| (tick(*s), tick(*e)))
            .collect(),
        clears: at(&observed.clears),
        notifies: at(&observed.notifies),
    }
}

/// At most [`super::report::MAX_KEPT`] of sorted `values`, evenly spread, still sorted.
fn sample(values: &[u32]) -> Vec<u32> {
    let step = values.len().div_ceil(super::report::MAX_KEPT).max(1);
    values.iter().step_by(step).copied().collect()
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
        let measured = happened.map(|at| Duration::from_millis(at - anchor));
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
        report.expectations.push(MeasuredExpectation {
            text: expectation.text.clone(),
            within: expectation.within,
            measured,
            met: fault.is_none(),
        });
        if let Some(text) = fault {
            report.add([Finding::fault(check, text)]);
        }
    }
}
