//! What one emulated call found, three ways: a summary for a person, one JSON object for a
//! script, JUnit XML (one testcase per check) for a CI system.

use std::{fmt, time::Duration};

use serde_json::{json, Value};

use super::{
    answer::Attempt,
    arrival::Arrival,
    course::ActionRun,
    events::{Delivery, LegKind},
    findings::{Check, Finding},
    ms,
    session::Expect,
    Method,
};
use crate::protocol::{audio::AudioFormat, call_id::CallId};

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
        let value: Value = json!({
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
        value.to_string()
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
        let mut xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"vonage-echo call {}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" errors=\"0\">\n",
            escape(self.id.as_str()),
            all.len()
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
            let warnings: Vec<String> = self
                .warnings
                .iter()
                .filter(|f| &f.check == check)
                .map(|f| f.text.clone())
                .collect();
            if !warnings.is_empty() {
                xml.push_str(&format!(
                    "<system-out>{}</system-out>",
                    escape(&warnings.join("\n"))
                ));
            }
            xml.push_str("</testcase>\n");
        }
        xml.push_str("</testsuite>\n</testsuites>\n");
        xml
    }
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
