//! The NCCO's actions run in order, as Vonage runs them: a `talk` takes its speaking time
//! before the next action starts, a `wait` its time, an action the emulator does not play
//! is reached and passed over, and a `connect` opens a socket leg (which the caller of
//! [`Course::run_to_connect`] plays). Each action's start and end go into the course, for
//! the report.

use std::{
    collections::VecDeque,
    thread,
    time::{Duration, Instant},
};

use super::{
    dial::Dial,
    events::HungUp,
    findings::{Check, Finding},
    ncco::{Connect, Step},
};

/// One action as it ran.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRun {
    /// Its name (`talk`, `connect`, `record`...).
    pub action: String,
    /// When it started, from the call's start.
    pub start: Duration,
    /// When it ended.
    pub end: Duration,
    /// What happened, in a few words (a talk's estimate, how a socket leg ended).
    pub note: String,
}

/// What comes after the actions run so far.
pub(crate) enum Next {
    /// A socket leg to open.
    Connect(Box<Connect>),
    /// The call is over: the NCCO ran out (Vonage hangs up), or a talk that loops forever
    /// played until the caller hung up.
    End(HungUp),
}

/// The actions still to run, and those that ran.
pub(crate) struct Course {
    /// When the call started: every time in the course is from here.
    pub(crate) origin: Instant,
    pub(crate) steps: VecDeque<Step>,
    pub(crate) ran: Vec<ActionRun>,
    pub(crate) findings: Vec<Finding>,
    /// How long the caller listens between socket legs before it hangs up, so a talk that
    /// loops for ever, or a long wait, ends with the caller.
    patience: Duration,
    /// Since when the caller has been listening.
    listening_since: Instant,
}

/// How long Vonage takes to speak `text` `loops` times at `rate` characters a second:
/// `None` for a talk that loops for ever (`loop: 0`); no time at all at rate 0.
pub(crate) fn talk_time(text: &str, loops: u32, rate: f64) -> Option<Duration> {
    if loops == 0 {
        return None;
    }
    if rate <= 0.0 || !rate.is_finite() {
        return Some(Duration::ZERO);
    }
    let chars = text.chars().count() as f64 * f64::from(loops);
    Some(Duration::try_from_secs_f64(chars / rate).unwrap_or(Duration::MAX))
}

impl Course {
    /// A course of `steps`, timed from `origin`, for a caller who listens `patience` long
    /// between socket legs before it hangs up.
    pub(crate) fn new(origin: Instant, steps: Vec<Step>, patience: Duration) -> Course {
        Course {
            origin,
            steps: steps.into(),
            ran: Vec::new(),
            findings: Vec::new(),
            patience,
            listening_since: origin,
        }
    }

    /// The caller has just left a socket leg: it listens afresh from now.
    pub(crate) fn listen_again(&mut self) {
        self.listening_since = Instant::now();
    }

    /// Waits `time`, or until the caller's patience runs out: whether it ran out.
    fn wait(&self, time: Duration) -> bool {
        let gives_up = self.listening_since + self.patience;
        let (until, gave_up) = match Instant::now().checked_add(time) {
            Some(end) if end <= gives_up => (end, false),
            _ => (gives_up, true),
        };
        thread::sleep(until.saturating_duration_since(Instant::now()));
        gave_up
    }

    /// The caller hangs up during the action that began at `start`.
    fn hang_up(&mut self, action: &str, start: Duration, what: &str) -> Next {
        let note = format!(
            "{what}; the caller hung up after listening {:.1} s",
            self.patience.as_secs_f64()
        );
        self.record(action, start, note);
        Next::End(HungUp::User)
    }

    /// Now, from the call's start.
    pub(crate) fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Notes an action that ran from `start` until now.
    pub(crate) fn record(&mut self, action: &str, start: Duration, note: impl Into<String>) {
        self.ran.push(ActionRun {
            action: action.to_owned(),
            start,
            end: self.now(),
            note: note.into(),
        });
    }

    /// Replaces what is left of the NCCO (a synchronous event's answer).
    pub(crate) fn replace(&mut self, steps: Vec<Step>) {
        self.steps = steps.into();
    }

    /// Runs actions until the next `connect`, or until the call is over.
    pub(crate) fn run_to_connect(&mut self, dial: &Dial) -> Next {
        while let Some(step) = self.steps.pop_front() {
            let start = self.now();
            match step {
                Step::Connect(connect) => return Next::Connect(connect),
                Step::Talk { text, loops } => {
                    let time = talk_time(&text, loops, dial.talk_rate);
                    let said = format!(
                        "{:?}, {} characters x {}: an estimated {} at {} characters a second",
                        crate::text::cut(&text, 60),
                        text.chars().count(),
                        if loops == 0 {
                            "for ever".to_owned()
                        } else {
                            loops.to_string()
                        },
                        time.map_or("endless time".to_owned(), |t| format!(
                            "{} ms",
                            t.as_millis()
                        )),
                        dial.talk_rate
                    );
                    if self.wait(time.unwrap_or(Duration::MAX)) {
                        return self.hang_up("talk", start, &said);
                    }
                    self.record("talk", start, said);
                }
                Step::Wait(time) => {
                    if self.wait(time) {
                        return self.hang_up("wait", start, "waiting");
                    }
                    self.record("wait", start, "");
                }
                Step::Unplayed(what) => {
                    self.findings.push(Finding::warning(
                        Check::NccoActions,
                        format!(
                            "{what} was reached at {} ms; the emulator does not play it and went on",
                            start.as_millis()
                        ),
                    ));
                    self.record(&what, start, "reached, not played");
                }
            }
        }
        Next::End(HungUp::Platform)
    }
}
