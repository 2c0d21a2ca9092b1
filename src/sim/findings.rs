//! What the emulator judged: each of Vonage's rules is a [`Check`], and each breach of one
//! is a [`Finding`], a fault (the call would fail or sound wrong on Vonage) or a warning
//! (it works, but not as the developer probably meant).

use std::fmt;

/// One of the rules a call is judged by.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Check {
    /// The answer webhook answers in time, with JSON.
    AnswerWebhook,
    /// The NCCO is one Vonage runs as the developer meant.
    Ncco,
    /// The socket at the NCCO's uri accepts Vonage's handshake.
    Handshake,
    /// Audio from the application comes in frames of the call's size.
    FrameSize,
    /// Audio from the application fits the playback buffer and plays without gaps.
    Playback,
    /// Text from the application is a command Vonage knows.
    Commands,
    /// The socket stays open until the caller hangs up, and closes cleanly.
    Socket,
    /// The event webhook takes the call's events.
    Events,
    /// The socket leg's event webhook (`connect`'s `eventUrl`) takes its events.
    SocketEvents,
    /// The caller id a `connect` presents is a number Vonage can show.
    CallerId,
    /// Every action of the NCCO is one Vonage runs and the emulator plays, in order.
    NccoActions,
    /// The audio comes back as sent (`--expect echo`).
    Echo,
    /// An expectation of a scenario, as written (with its line).
    Expectation(String),
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::AnswerWebhook => f.write_str("answer webhook"),
            Check::Ncco => f.write_str("NCCO"),
            Check::Handshake => f.write_str("socket handshake"),
            Check::FrameSize => f.write_str("frame sizes"),
            Check::Playback => f.write_str("playback buffer"),
            Check::Commands => f.write_str("commands"),
            Check::Socket => f.write_str("socket"),
            Check::Events => f.write_str("event webhook"),
            Check::SocketEvents => f.write_str("socket leg's events"),
            Check::CallerId => f.write_str("caller id"),
            Check::NccoActions => f.write_str("NCCO actions"),
            Check::Echo => f.write_str("echo"),
            Check::Expectation(text) => f.write_str(text),
        }
    }
}

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Vonage would fail the call, or the caller would hear something wrong.
    Fault,
    /// Allowed, but probably not what was meant.
    Warning,
}

/// One breach of a rule, said as a sentence the developer can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule.
    pub check: Check,
    /// Fault or warning.
    pub severity: Severity,
    /// What happened, and what Vonage does about it.
    pub text: String,
}

impl Finding {
    /// A fault of `check`.
    pub fn fault(check: Check, text: impl Into<String>) -> Finding {
        Finding {
            check,
            severity: Severity::Fault,
            text: text.into(),
        }
    }

    /// A warning of `check`.
    pub fn warning(check: Check, text: impl Into<String>) -> Finding {
        Finding {
            check,
            severity: Severity::Warning,
            text: text.into(),
        }
    }

    /// Whether it is a fault.
    pub fn is_fault(&self) -> bool {
        self.severity == Severity::Fault
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.check, self.text)
    }
}
