//! What one emulated call found, three ways: a summary for a person, one JSON object for a
//! script, JUnit XML (one testcase per check) for a CI system.

use std::{fmt, time::Duration};

use serde_json::{json, Value};

use super::{
    answer::Attempt,
    arrival::Arrival,
    course::ActionRun,
    dial::Method,
    events::{Delivery, LegKind},
    findings::{Check, Finding},
    session::Expect,
    stats::ms,
    turns::{BargeIn, Turn},
};
use crate::protocol::{audio::AudioFormat, call_id::CallId};

/// How many turns and barge-ins the text summary and JUnit list one by one; the JSON has
/// them all.
const LISTED: usize = 100;

/// The most round trips a report keeps for its histogram: a long call's are a sample.
pub const MAX_KEPT: usize = 100_000;

/// When things happened on a call's first socket, from its opening, for the HTML page's
/// timeline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeline {
    /// When the socket opened, from the call's start.
    pub socket_opened: Option<Duration>,
    /// Runs of the application's speech the caller heard: (start, end).
    pub heard: Vec<(Duration, Duration)>,
    /// When each `clear` came.
    pub clears: Vec<Duration>,
    /// When each `notify` came.
    pub notifies: Vec<Duration>,
}

/// A scenario's expectation, and the time it bounds as it was measured.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MeasuredExpectation {
    /// The expectation as written, with its line.
    pub text: String,
    /// Its bound, if it has one.
    pub within: Option<Duration>,
    /// From the step it is measured from to what it expects; `None` if that never came.
    pub measured: Option<Duration>,
    /// Whether it was met.
    pub met: bool,
}

impl MeasuredExpectation {
    /// The measurement beside its bound, in a few words.
    fn summary(&self) -> String {
        let measured = match self.measured {
            Some(d) => format!("{:.0} ms", ms(d)),
            None => "never".to_owned(),
        };
        match self.within {
            Some(within) => format!("{measured} (bound {:.0} ms)", ms(within)),
            None => format!("{measured} (no bound)"),
        }
    }
}

/// What a call saw, and the verdict on each of Vonage's rules.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CallReport {
    /// The call's uuid.
    pub id: CallId,
    /// What was expected of the application's audio.
    pub expect: Expect,
    /// How the caller's frames were spread over time (with the seed to replay bursts).
    pub arrival: Arrival,
    /// The audio format Vonage streamed (what `websocket:connected` said), once known.
    pub format: Option<AudioFormat>,
    /// Where the socket was opened (the NCCO's uri unless overridden).
    pub socket_uri: String,
    /// What the NCCO's talk actions said.
    pub talks: Vec<String>,
    /// How long the answer webhook took, when it answered.
    pub answer_time: Option<Duration>,
    /// How the answer webhook was requested.
    pub answer_method: Method,
    /// Every request to the answer and fallback answer URLs, in order.
    pub answer_attempts: Vec<Attempt>,
    /// Every event posted, and how its webhook took it.
    pub events: Vec<Delivery>,
    /// The NCCO's actions as they ran, timed from the call's start.
    pub ncco_actions: Vec<ActionRun>,
    /// How long the handshake took, when it was made.
    pub handshake_time: Option<Duration>,
    /// The caller's audio frames sent.
    pub sent: u64,
    /// Frames echoed back byte-identical and in order (`--expect echo`).
    pub echoed: u64,
    /// Frames sent that never came back (`--expect echo`).
    pub lost: u64,
    /// Frames that came back different (`--expect echo`).
    pub corrupted: u64,
    /// Frames the emulator itself sent late (5 ms or more after they were scheduled).
    pub late: u64,
    /// Ticks the emulator played 5 ms or more after they were due: it fell behind its
    /// clock. Not the application's doing; no verdict rests on it.
    pub emulator_late_ticks: u64,
    /// The worst of those ticks' lateness.
    pub emulator_max_late: Duration,
    /// Gaps in playback at or right after late ticks, which are not counted as underruns.
    pub excused_underruns: u64,
    /// Text messages the caller's side sent, and those echoed back (`--expect echo`).
    pub texts: (u64, u64),
    /// Audio frames the application sent.
    pub received_frames: u64,
    /// Frames played to the caller.
    pub played_frames: u64,
    /// Frames that did not fit the playback buffer.
    pub dropped_frames: u64,
    /// Gaps mid-prompt: a frame arrived after its turn to play.
    pub underruns: u64,
    /// Frames thrown away by `clear`.
    pub cleared_frames: u64,
    /// Frames still in the buffer when the socket ended.
    pub unplayed_frames: u64,
    /// `clear` commands answered.
    pub cleared: u64,
    /// `websocket:notify` events sent.
    pub notified: u64,
    /// Round-trip median, p99 and maximum of echoed frames.
    pub rtt: (Duration, Duration, Duration),
    /// The close code the application sent, if it sent one.
    pub server_close: Option<u16>,
    /// Whether the application closed the socket before the caller hung up.
    pub closed_by_application: bool,
    /// From the socket's opening to the first of the application's speech the caller
    /// heard.
    pub first_audio: Option<Duration>,
    /// The caller's turns, each with how soon the application answered it.
    pub turns: Vec<Turn>,
    /// The turns that interrupted the application, and how it took being interrupted.
    pub barge_ins: Vec<BargeIn>,
    /// The scenario's expectations, each with the time it bounds as measured.
    pub expectations: Vec<MeasuredExpectation>,
    /// What the caller heard and the application did, in time, on the first socket.
    pub timeline: Timeline,
    /// Round trips of echoed frames in microseconds, sorted (at most `MAX_KEPT`).
    pub round_trips: Vec<u32>,
    /// Every rule judged, in order; those after a failed setup step were not reached.
    pub checks: Vec<Check>,
    /// A scenario's expectations that were never judged, because setup failed.
    pub unreached: Vec<Check>,
    /// What breaks Vonage's rules: the call fails, or sounds wrong.
    pub faults: Vec<Finding>,
    /// What works but is probably not meant.
    pub warnings: Vec<Finding>,
}

impl CallReport {
    /// A report of a call that has not streamed yet.
    pub(crate) fn new(id: CallId, expect: Expect) -> CallReport {
        CallReport {
            id,
            expect,
            arrival: Arrival::Steady,
            format: None,
            socket_uri: String::new(),
            talks: Vec::new(),
            answer_time: None,
            answer_method: Method::Get,
            answer_attempts: Vec::new(),
            events: Vec::new(),
            ncco_actions: Vec::new(),
            handshake_time: None,
            sent: 0,
            echoed: 0,
            lost: 0,
            corrupted: 0,
            late: 0,
            emulator_late_ticks: 0,
            emulator_max_late: Duration::ZERO,
            excused_underruns: 0,
            texts: (0, 0),
            received_frames: 0,
            played_frames: 0,
            dropped_frames: 0,
            underruns: 0,
            cleared_frames: 0,
            unplayed_frames: 0,
            cleared: 0,
            notified: 0,
            rtt: (Duration::ZERO, Duration::ZERO, Duration::ZERO),
            server_close: None,
            closed_by_application: false,
            first_audio: None,
            turns: Vec::new(),
            barge_ins: Vec::new(),
            expectations: Vec::new(),
            timeline: Timeline::default(),
            round_trips: Vec::new(),
            checks: Vec::new(),
            unreached: Vec::new(),
            faults: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Files findings as faults or warnings.
    pub(crate) fn add(&mut self, findings: impl IntoIterator<Item = Finding>) {
        for finding in findings {
            if finding.is_fault() {
                self.faults.push(finding);
            } else {
                self.warnings.push(finding);
            }
        }
    }

    /// Whether no rule was broken.
    pub fn passed(&self) -> bool {
        self.faults.is_empty()
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> String {
        let sentences = |list: &[Finding]| list.iter().map(ToString::to_string).collect::<Vec<_>>();
        let mut value: Value = json!({
            "passed": self.passed(),
            "uuid": self.id.as_str(),
            "expect": match self.expect { Expect::Echo => "echo", Expect::Protocol => "protocol" },
            "arrival": self.arrival.name(),
            "seed": self.arrival.seed(),
            "content_type": self.format.map(AudioFormat::content_type),
            "socket_uri": self.socket_uri,
            "talks": self.talks,
            "answer_ms": self.answer_time.map(ms),
            "handshake_ms": self.handshake_time.map(ms),
            "faults": sentences(&self.faults),
            "warnings": sentences(&self.warnings),
            "sent_frames": self.sent,
            "echoed_frames": self.echoed,
            "lost_frames": self.lost,
            "corrupted_frames": self.corrupted,
            "late_frames": self.late,
            "emulator_late_ticks": self.emulator_late_ticks,
            "emulator_max_late_ms": ms(self.emulator_max_late),
            "excused_underruns": self.excused_underruns,
            "received_frames": self.received_frames,
            "played_frames": self.played_frames,
            "dropped_frames": self.dropped_frames,
            "cleared_frames": self.cleared_frames,
            "unplayed_frames": self.unplayed_frames,
            "underruns": self.underruns,
            "cleared": self.cleared,
            "notified": self.notified,
            "rtt_ms": {"p50": ms(self.rtt.0), "p99": ms(self.rtt.1), "max": ms(self.rtt.2)},
            "application_close": self.server_close,
            "closed_by_application": self.closed_by_application,
            "answer_attempts": self.answer_attempts.iter().map(attempt_json).collect::<Vec<_>>(),
            "events": self.events.iter().map(delivery_json).collect::<Vec<_>>(),
            "ncco_actions": self.ncco_actions.iter().map(|a| json!({
                "action": a.action, "start_ms": ms(a.start), "end_ms": ms(a.end), "note": a.note,
            })).collect::<Vec<_>>(),
        });
        self.add_timing_json(&mut value);
        value.to_string()
    }

    /// The application's times, into the JSON report.
    fn add_timing_json(&self, value: &mut Value) {
        value["first_audio_ms"] = json!(self.first_audio.map(ms));
        value["turns"] = self.turns.iter().map(turn_json).collect();
        value["barge_ins"] = self.barge_ins.iter().map(barge_in_json).collect();
        value["expectations"] = self
            .expectations
            .iter()
            .map(|e| {
                json!({
                    "expectation": e.text, "within_ms": e.within.map(ms),
                    "measured_ms": e.measured.map(ms), "met": e.met,
                })
            })
            .collect();
    }

    /// The report as JUnit XML: a testsuite for the call, a testcase for each rule, failed
    /// with its faults, skipped when setup never reached it; warnings go to system-out.
    pub fn to_junit(&self) -> String {
        let all = all_checks(self);
        let failures = all
            .iter()
            .filter(|c| self.faults.iter().any(|f| &f.check == *c))
            .count();
        let skipped = all.iter().filter(|c| !self.checks.contains(c)).count();
        let timings = self.timing_testcases();
        let mut xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"vonage-echo call {}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" errors=\"0\">\n",
            escape(self.id.as_str()),
            all.len() + timings.len()
        );
        for check in &all {
            xml.push_str(&format!(
                "<testcase classname=\"vonage\" name=\"{}\">",
                escape(&check.to_string())
            ));
            let faults: Vec<String> = self
                .faults
                .iter()
                .filter(|f| &f.check == check)
                .map(|f| f.text.clone())
                .collect();
            if !self.checks.contains(check) {
                xml.push_str("<skipped message=\"call setup failed before this rule\"/>");
            } else if let Some(first) = faults.first() {
                xml.push_str(&format!(
                    "<failure message=\"{}\">{}</failure>",
                    escape(first),
                    escape(&faults.join("\n"))
                ));
            }
            let mut warnings: Vec<String> = self
                .warnings
                .iter()
                .filter(|f| &f.check == check)
                .map(|f| f.text.clone())
                .collect();
            if let Some(e) = self
                .expectations
                .iter()
                .find(|e| matches!(check, Check::Expectation(text) if *text == e.text))
            {
                warnings.push(format!("measured: {}", e.summary()));
            }
            if !warnings.is_empty() {
                xml.push_str(&format!(
                    "<system-out>{}</system-out>",
                    escape(&warnings.join("\n"))
                ));
            }
            xml.push_str("</testcase>\n");
        }
        for testcase in timings {
            xml.push_str(&testcase);
        }
        xml.push_str("</testsuite>\n</testsuites>\n");
        xml
    }

    /// A passing testcase for each turn's reply and each barge-in's clear, its time the
    /// measured one (which CI systems show and chart); what never came is said in
    /// system-out. Bounds are the scenario's expectations, which fail.
    fn timing_testcases(&self) -> Vec<String> {
        let case = |name: String, time: Option<Duration>, note: String| {
            let time = time.map_or(String::new(), |d| {
                format!(" time=\"{:.3}\"", d.as_secs_f64())
            });
            format!(
                "<testcase classname=\"timing\" name=\"{}\"{time}><system-out>{}</system-out></testcase>\n",
                escape(&name),
                escape(&note)
            )
        };
        let turns = self.turns.iter().take(LISTED).enumerate().map(|(i, t)| {
            case(
                format!("turn {}: {}: reply", i + 1, t.what),
                t.reply,
                turn_summary(t),
            )
        });
        let barge_ins = self
            .barge_ins
            .iter()
            .take(LISTED)
            .enumerate()
            .map(|(i, b)| {
                case(
                    format!("barge-in {}: {}: clear", i + 1, b.what),
                    b.clear,
                    barge_in_summary(b),
                )
            });
        turns.chain(barge_ins).collect()
    }
}

/// One turn, for the JSON report.
fn turn_json(t: &Turn) -> Value {
    json!({"what": t.what, "ended_ms": ms(t.ended), "reply_ms": t.reply.map(ms)})
}

/// One barge-in, for the JSON report.
fn barge_in_json(b: &BargeIn) -> Value {
    json!({
        "turn": b.turn, "what": b.what, "at_ms": ms(b.at), "clear_ms": b.clear.map(ms),
        "stopped_ms": b.stopped.map(ms), "talked_over_ms": ms(b.talked_over),
    })
}

/// A turn in a few words.
fn turn_summary(t: &Turn) -> String {
    let reply = match t.reply {
        Some(d) => format!("reply after {:.1} ms", ms(d)),
        None => "no reply before the next turn or the call's end".to_owned(),
    };
    format!(
        "{}, ended at {:.2} s: {reply}",
        t.what,
        t.ended.as_secs_f64()
    )
}

/// A barge-in in a few words.
fn barge_in_summary(b: &BargeIn) -> String {
    let after = |what: &str, d: Option<Duration>| match d {
        Some(d) => format!("{what} after {:.1} ms", ms(d)),
        None => format!("no {what}"),
    };
    format!(
        "{} at {:.2} s: {}, {}, talked over the caller {:.1} ms",
        b.what,
        b.at.as_secs_f64(),
        after("clear", b.clear),
        after("stopped", b.stopped).replace("no stopped", "audio never stopped"),
        ms(b.talked_over)
    )
}

/// One request to the answer webhook, for the JSON report.
fn attempt_json(a: &Attempt) -> Value {
    let mut v = json!({"url": a.url, "fallback": a.fallback, "ms": ms(a.took)});
    if let Some(status) = a.status {
        v["status"] = status.into();
    }
    if let Some(error) = &a.error {
        v["error"] = error.clone().into();
    }
    v
}

/// One event's delivery, for the JSON report.
fn delivery_json(d: &Delivery) -> Value {
    let mut v = json!({
        "status": d.status, "leg": d.leg.name(), "url": d.target.url, "method": d.target.method.name(),
    });
    if let Some(code) = d.http_status {
        v["http_status"] = code.into();
    }
    if let Some(error) = &d.error {
        v["error"] = error.clone().into();
    }
    v
}

/// Every rule that applies to the call, reached or not.
fn all_checks(report: &CallReport) -> Vec<Check> {
    let mut all = vec![
        Check::Events,
        Check::AnswerWebhook,
        Check::Ncco,
        Check::CallerId,
        Check::NccoActions,
        Check::Handshake,
        Check::SocketEvents,
        Check::FrameSize,
        Check::Playback,
        Check::Commands,
        Check::Socket,
    ];
    if report.expect == Expect::Echo {
        all.push(Check::Echo);
    }
    for check in report.checks.iter().chain(&report.unreached) {
        if !all.contains(check) {
            all.push(check.clone());
        }
    }
    all
}

/// Text made safe for an XML attribute or element.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 has no way to write most control characters.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

impl fmt::Display for CallReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.format {
            Some(format) => writeln!(f, "call {} ({format})", self.id)?,
            None => writeln!(f, "call {}", self.id)?,
        }
        if !self.socket_uri.is_empty() {
            writeln!(f, "  socket: {}", self.socket_uri)?;
        }
        self.fmt_course(f)?;
        writeln!(f, "  arrival: {}", self.arrival)?;
        self.fmt_caller(f)?;
        writeln!(
            f,
            "  played to the caller: {} of {} frames received ({} dropped, {} cleared away, {} unplayed at the end); \
             {} underruns, {} clears, {} notifies answered",
            self.played_frames,
            self.received_frames,
            self.dropped_frames,
            self.cleared_frames,
            self.unplayed_frames,
            self.underruns,
            self.cleared,
            self.notified
        )?;
        self.fmt_emulator_lateness(f)?;
        self.fmt_timing(f)?;
        if let Some(code) = self.server_close {
            let who = if self.closed_by_application {
                "the application closed the socket first"
            } else {
                "the application answered the caller's close"
            };
            writeln!(f, "  closed: {who}, with {code}")?;
        }
        for warning in &self.warnings {
            writeln!(f, "  warning: {warning}")?;
        }
        for fault in &self.faults {
            writeln!(f, "  FAULT: {fault}")?;
        }
        if self.passed() {
            write!(f, "  PASSED")
        } else {
            write!(f, "  FAILED: {} fault(s)", self.faults.len())
        }
    }
}

impl CallReport {
    /// The call's course in a few lines: the answer webhook's attempts, the NCCO's actions
    /// as they ran, and the events with how each was taken.
    fn fmt_course(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let attempts: Vec<String> = self
            .answer_attempts
            .iter()
            .map(|a| a.summary(self.answer_method))
            .collect();
        if !attempts.is_empty() {
            writeln!(f, "  answer: {}", attempts.join("; "))?;
        }
        for run in &self.ncco_actions {
            write!(
                f,
                "  {:>6.0}-{:.0} ms {}",
                ms(run.start),
                ms(run.end),
                run.action
            )?;
            if !run.note.is_empty() {
                write!(f, ": {}", run.note)?;
            }
            writeln!(f)?;
        }
        if let Some(handshake) = self.handshake_time {
            writeln!(f, "  handshake: {:.1} ms", ms(handshake))?;
        }
        for (leg, name) in [(LegKind::Call, "call"), (LegKind::Socket, "socket leg")] {
            let events: Vec<String> = self
                .events
                .iter()
                .filter(|d| d.leg == leg)
                .map(|d| match (d.http_status, &d.error) {
                    (Some(code), _) => format!("{} {code}", d.status),
                    (None, _) => format!("{} failed", d.status),
                })
                .collect();
            if !events.is_empty() {
                writeln!(f, "  {name} events: {}", events.join(", "))?;
            }
        }
        Ok(())
    }

    /// What the caller sent, and under `--expect echo` what came back.
    fn fmt_caller(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.expect == Expect::Echo {
            writeln!(
                f,
                "  frames: {} sent, {} echoed, {} lost, {} corrupted, {} sent late",
                self.sent, self.echoed, self.lost, self.corrupted, self.late
            )?;
            writeln!(f, "  texts: {} sent, {} echoed", self.texts.0, self.texts.1)?;
            writeln!(
                f,
                "  round trip: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                ms(self.rtt.0),
                ms(self.rtt.1),
                ms(self.rtt.2)
            )?;
        } else {
            writeln!(f, "  frames: {} sent, {} sent late", self.sent, self.late)?;
            writeln!(f, "  texts: {} sent", self.texts.0)?;
        }
        Ok(())
    }

    /// The application's times: to its first audio, to each reply, at each barge-in, and
    /// each expectation's measurement beside its bound.
    fn fmt_timing(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(first) = self.first_audio {
            writeln!(
                f,
                "  first audio: {:.1} ms after the socket opened",
                ms(first)
            )?;
        }
        if !self.turns.is_empty() {
            let mut replies: Vec<Duration> = self.turns.iter().filter_map(|t| t.reply).collect();
            replies.sort_unstable();
            write!(
                f,
                "  turns: {}, {} answered",
                self.turns.len(),
                replies.len()
            )?;
            if let (Some(median), Some(max)) = (
                replies.get(replies.len().saturating_sub(1) / 2),
                replies.last(),
            ) {
                write!(
                    f,
                    "; reply p50 {:.1} ms, max {:.1} ms",
                    ms(*median),
                    ms(*max)
                )?;
            }
            writeln!(f)?;
            for (i, turn) in self.turns.iter().take(LISTED).enumerate() {
                writeln!(f, "    {}. {}", i + 1, turn_summary(turn))?;
            }
        }
        if !self.barge_ins.is_empty() {
            writeln!(f, "  barge-ins: {}", self.barge_ins.len())?;
            for barge_in in self.barge_ins.iter().take(LISTED) {
                writeln!(
                    f,
                    "    turn {}: {}",
                    barge_in.turn + 1,
                    barge_in_summary(barge_in)
                )?;
            }
        }
        for e in &self.expectations {
            let verdict = if e.met { "met" } else { "NOT MET" };
            writeln!(f, "  {}: {} {verdict}", e.text, e.summary())?;
        }
        Ok(())
    }

    /// A note, when the emulator fell behind its own clock: what it did late, and what it
    /// did not count against the application because of it.
    fn fmt_emulator_lateness(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.emulator_late_ticks == 0 && self.late == 0 {
            return Ok(());
        }
        writeln!(
            f,
            "  note: the emulator fell behind its clock (a busy machine): {} tick(s) played 5 ms or more late \
             (worst {:.1} ms), {} frame(s) sent late; {} gap(s) at or right after late ticks not counted as underruns",
            self.emulator_late_ticks,
            ms(self.emulator_max_late),
            self.late,
            self.excused_underruns
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed_report() -> CallReport {
        let mut report = CallReport::new(CallId::random(), Expect::Protocol);
        report.checks = vec![Check::Events, Check::AnswerWebhook, Check::Ncco];
        report.add([
            Finding::fault(Check::Ncco, "headers are <600> bytes & more"),
            Finding::warning(Check::Ncco, "a \"ws://\" uri"),
        ]);
        report
    }

    #[test]
    fn json_holds_the_verdict_and_the_counts() {
        let json: Value = serde_json::from_str(&failed_report().to_json()).unwrap();
        assert_eq!(json["passed"], false);
        assert_eq!(json["faults"][0], "NCCO: headers are <600> bytes & more");
        assert_eq!(json["warnings"].as_array().unwrap().len(), 1);
        for count in [
            "played_frames",
            "dropped_frames",
            "underruns",
            "cleared",
            "notified",
        ] {
            assert_eq!(json[count], 0, "{count}");
        }
    }

    #[test]
    fn junit_has_a_testcase_per_check_with_failures_and_skips() {
        let xml = failed_report().to_junit();
        assert_eq!(xml.matches("<testcase ").count(), 11, "{xml}");
        assert!(xml.contains("failures=\"1\""), "{xml}");
        assert!(xml.contains("skipped=\"8\""), "{xml}");
        assert!(
            xml.contains("headers are &lt;600&gt; bytes &amp; more"),
            "{xml}"
        );
        assert!(
            xml.contains("<system-out>a &quot;ws://&quot; uri</system-out>"),
            "{xml}"
        );
    }

    #[test]
    fn the_report_names_the_arrival_and_its_seed() {
        let mut report = CallReport::new(CallId::random(), Expect::Protocol);
        report.arrival = Arrival::Bursty { seed: 42 };
        let json: Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(
            (&json["arrival"], &json["seed"]),
            (&json!("bursty"), &json!(42))
        );
        assert!(report
            .to_string()
            .contains("seed 42 (replay with --seed 42)"));
        report.arrival = Arrival::Steady;
        let json: Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(
            (&json["arrival"], &json["seed"]),
            (&json!("steady"), &Value::Null)
        );
    }

    #[test]
    fn the_emulator_s_lateness_is_a_note_that_fails_nothing() {
        let mut report = CallReport::new(CallId::random(), Expect::Protocol);
        report.emulator_late_ticks = 11;
        report.emulator_max_late = Duration::from_millis(230);
        report.excused_underruns = 2;
        assert!(report.passed());
        assert!(report.warnings.is_empty());
        let text = report.to_string();
        assert!(
            text.contains("11 tick(s) played 5 ms or more late (worst 230.0 ms)")
                && text.contains("2 gap(s) at or right after late ticks not counted as underruns"),
            "{text}"
        );
        let json: Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["emulator_late_ticks"], 11);
        assert_eq!(json["emulator_max_late_ms"], 230.0);
        assert_eq!(json["excused_underruns"], 2);
    }

    #[test]
    fn a_report_without_faults_passes_despite_warnings() {
        let mut report = CallReport::new(CallId::random(), Expect::Protocol);
        report.add([Finding::warning(Check::Playback, "3 gaps")]);
        assert!(report.passed());
        assert!(report
            .to_string()
            .contains("warning: playback buffer: 3 gaps"));
    }
}
