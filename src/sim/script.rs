//! Scenarios: what the caller does, step by step, and what the application is expected to
//! do in reply. A scenario is a text file, one step or expectation a line:
//!
//! ```text
//! # A caller asks a question, then interrupts the answer with a key.
//! say question.wav            # a mono 16-bit WAV at the call's rate, beside the script
//! expect speech within 1500ms # the application starts speaking within 1.5 s of the turn's end
//! silence 1s                  # the caller listens (silent frames)
//! press 1                     # keys, 300 ms each
//! expect clear within 500ms   # the application clears its audio within 0.5 s of the key
//! tone 2s                     # a 440 Hz tone
//! expect notify               # the application sends a notify, at any time after the tone starts
//! hangup
//! ```
//!
//! An expectation is measured from the step just before it: `speech` from that step's end
//! (the caller's turn is over: speech that began before it does not count), `clear` and
//! `notify` from its start (the caller barges in). One before every step is measured from
//! the call's start.
//! Without `within`, any time before the call ends will do. Durations are `1500ms`, `1.5s`
//! or `2s`. The call hangs up at `hangup`, or after the last step. A comment is a line
//! that starts with `#`, or the rest of a line after ` # ` (`#` alone is a key).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crate::error::{Error, Result};

/// One thing the caller does.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Streams a WAV file.
    Say(PathBuf),
    /// Streams a 440 Hz tone this long.
    Tone(Duration),
    /// Streams silence this long.
    Silence(Duration),
    /// Presses these keys, 300 ms each.
    Press(String),
    /// Hangs up.
    Hangup,
}

/// What the application is expected to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// Audio the caller hears (louder than silence), after the step before ends.
    Speech,
    /// A `clear` command, after the step before starts.
    Clear,
    /// A `notify` command, after the step before starts.
    Notify,
}

/// An expectation, and where in the scenario it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    /// What is expected.
    pub expected: Expected,
    /// How soon; `None` is any time before the call ends.
    pub within: Option<Duration>,
    /// The index in [`Scenario::steps`] of the step it is measured from; `None` (an
    /// expectation before every step) measures from the call's start.
    pub after_step: Option<usize>,
    /// The line as written, with its number, to name it in the report.
    pub text: String,
}

/// A parsed scenario.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scenario {
    /// The caller's steps, in order.
    pub steps: Vec<Step>,
    /// The expectations, each tied to a step.
    pub expectations: Vec<Expectation>,
}

impl Scenario {
    /// Reads a scenario file; `say` paths are taken relative to its directory.
    pub fn load(path: &Path) -> Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading --script {}", path.display()), e))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Scenario::parse(&text, dir).map_err(|reason| Error::Config {
            setting: "--script",
            reason: format!("{}: {reason}", path.display()),
        })
    }

    /// Parses a scenario's text; the error names the line and what is wrong with it.
    pub fn parse(text: &str, dir: &Path) -> std::result::Result<Scenario, String> {
        let mut scenario = Scenario::default();
        for (n, raw) in text.lines().enumerate() {
            // `#` is also a key, so a comment is a whole line, or follows " # ".
            let line = raw.split(" # ").next().unwrap_or("").trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |why: String| format!("line {}: {why}", n + 1);
            let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let rest = rest.trim();
            let step = match word {
                "say" if !rest.is_empty() => Step::Say(dir.join(rest)),
                "tone" => Step::Tone(duration(rest).map_err(at)?),
                "silence" => Step::Silence(duration(rest).map_err(at)?),
                "press" if !rest.is_empty() => {
                    if let Some(bad) = rest.chars().find(|c| !crate::protocol::messages::is_dtmf_digit(*c)) {
                        return Err(at(format!("{bad:?} is not a key (0-9, *, #)")));
                    }
                    Step::Press(rest.to_owned())
                }
                "hangup" if rest.is_empty() => Step::Hangup,
                "expect" => {
                    let after_step = scenario.steps.len().checked_sub(1);
                    let (expected, within) = expectation(rest).map_err(at)?;
                    scenario.expectations.push(Expectation {
                        expected,
                        within,
                        after_step,
                        text: format!("line {}: {line}", n + 1),
                    });
                    continue;
                }
                _ => return Err(at(format!("cannot read {line:?}: steps are say FILE, tone D, silence D, press KEYS, hangup; expectations are expect speech|clear|notify [within D]"))),
            };
            if scenario.steps.last() == Some(&Step::Hangup) {
                return Err(at("a step after hangup".into()));
            }
            scenario.steps.push(step);
        }
        if scenario.steps.is_empty() {
            return Err("no steps".into());
        }
        Ok(scenario)
    }
}

fn expectation(rest: &str) -> std::result::Result<(Expected, Option<Duration>), String> {
    let words: Vec<&str> = rest.split_whitespace().collect();
    let expected = match words.first() {
        Some(&"speech") => Expected::Speech,
        Some(&"clear") => Expected::Clear,
        Some(&"notify") => Expected::Notify,
        _ => return Err(format!("expect what? {rest:?}: speech, clear or notify")),
    };
    match words.as_slice() {
        [_] => Ok((expected, None)),
        [_, "within", d] => Ok((expected, Some(duration(d)?))),
        _ => Err(format!(
            "cannot read \"expect {rest}\": expect WHAT [within D]"
        )),
    }
}

/// `1500ms`, `1.5s` or `2s`.
fn duration(text: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration (say 1500ms or 1.5s)");
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        return Err(bad());
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    if !(0.0..=86_400.0).contains(&value) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(value * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_expectations_are_read_in_order() {
        let scenario = Scenario::parse(
            "say hi.wav\nexpect speech within 1.5s\nsilence 200ms # listen\npress 1#\nexpect clear within 300ms\nhangup\n",
            Path::new("/s"),
        )
        .unwrap();
        assert_eq!(
            scenario.steps,
            [
                Step::Say("/s/hi.wav".into()),
                Step::Silence(Duration::from_millis(200)),
                Step::Press("1#".into()),
                Step::Hangup
            ]
        );
        assert_eq!(scenario.expectations.len(), 2);
        assert_eq!(scenario.expectations[0].expected, Expected::Speech);
        assert_eq!(
            scenario.expectations[0].within,
            Some(Duration::from_millis(1500))
        );
        assert_eq!(scenario.expectations[0].after_step, Some(0));
        assert_eq!(scenario.expectations[1].after_step, Some(2));
        assert!(scenario.expectations[1]
            .text
            .starts_with("line 5: expect clear"));
    }

    #[test]
    fn an_expectation_before_every_step_is_measured_from_the_start() {
        let scenario =
            Scenario::parse("expect speech within 1s\nsilence 2s", Path::new(".")).unwrap();
        assert_eq!(scenario.expectations[0].after_step, None);
    }

    #[test]
    fn an_expectation_without_within_waits_for_the_whole_call() {
        let scenario = Scenario::parse("tone 1s\nexpect notify", Path::new(".")).unwrap();
        assert_eq!(scenario.expectations[0].within, None);
    }

    #[test]
    fn a_bad_line_is_named_with_its_number() {
        for (text, why) in [
            ("tone 1s\nsing", "line 2"),
            ("tone forever", "not a duration"),
            ("press 1x", "'x' is not a key"),
            ("tone 1s\nexpect applause", "speech, clear or notify"),
            ("hangup\ntone 1s", "after hangup"),
            ("# nothing", "no steps"),
        ] {
            let err = Scenario::parse(text, Path::new(".")).unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }
}
