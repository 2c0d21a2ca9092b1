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
    events::HungUp,
    findings::{Check, Finding},
    ncco::{Connect, Step},
    Dial,
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
}

impl Course {
    /// A course of `steps`, timed from `origin`.
    pub(crate) fn new(origin: Instant, steps: Vec<Step>) -> Course {
        Course {
            origin,
            steps: steps.into(),
            ran: Vec::new(),
            findings: Vec::new(),
        }
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
                Step::Talk { loops: 0, text } => {
                    let note = format!(
                        "{:?}, loop 0: spoken until the caller hangs up",
                        crate::text::cut(&text, 60)
                    );
                    self.record("talk", start, note);
                    return Next::End(HungUp::User);
                }
                Step::Talk { text, loops } => {
                    let time = dial.talk_time(&text, loops);
                    thread::sleep(time);
                    let note = format!(
                        "{:?}, {} characters x {loops}: an estimated {} ms at {} characters a second",
                        crate::text::cut(&text, 60),
                        text.chars().count(),
                        time.as_millis(),
                        dial.talk_rate
                    );
                    self.record("talk", start, note);
                }
                Step::Wait(time) => {
                    thread::sleep(time);
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
