//! Why the socket listener refuses or drops a handshake, each reason with its HTTP status
//! and the label it is counted under in the metrics.

/// Why a handshake was refused or dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not `/socket` (404).
    Path,
    /// A uuid that is not a call id (400).
    BadUuid,
    /// Missing or wrong authorization (401).
    Unauthorized,
    /// `--max-calls` reached (503).
    Capacity,
    /// The call's uuid already has an open socket (409).
    Duplicate,
    /// The server is stopping (503).
    ShuttingDown,
    /// The server drains and did not promise this call the socket (503).
    Draining,
    /// `--max-pending-handshakes` reached (dropped).
    TooManyPending,
    /// The handshake took longer than `--handshake-timeout` (dropped).
    Timeout,
    /// Not a WebSocket handshake at all.
    Malformed,
}

impl Refusal {
    #[cfg(test)]
    const ALL: [Refusal; 10] = [
        Refusal::Path,
        Refusal::BadUuid,
        Refusal::Unauthorized,
        Refusal::Capacity,
        Refusal::Duplicate,
        Refusal::ShuttingDown,
        Refusal::Draining,
        Refusal::TooManyPending,
        Refusal::Timeout,
        Refusal::Malformed,
    ];

    /// How the metrics label it: one of [`REFUSALS`](crate::metrics::REFUSALS).
    pub(crate) fn label(self) -> &'static str {
        match self {
            Refusal::Path => "path",
            Refusal::BadUuid => "bad_uuid",
            Refusal::Unauthorized => "unauthorized",
            Refusal::Capacity => "capacity",
            Refusal::Duplicate => "duplicate",
            Refusal::ShuttingDown => "shutting_down",
            Refusal::Draining => "draining",
            Refusal::TooManyPending => "too_many_pending",
            Refusal::Timeout => "timeout",
            Refusal::Malformed => "malformed",
        }
    }

    /// The HTTP status it is answered with (those dropped are answered with none).
    pub(crate) fn status(self) -> u16 {
        match self {
            Refusal::Path => 404,
            Refusal::BadUuid | Refusal::Malformed => 400,
            Refusal::Unauthorized => 401,
            Refusal::Duplicate => 409,
            Refusal::Capacity
            | Refusal::ShuttingDown
            | Refusal::Draining
            | Refusal::TooManyPending
            | Refusal::Timeout => 503,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::REFUSALS;

    #[test]
    fn every_refusal_is_counted_under_a_label_of_its_own() {
        let labels: Vec<&str> = Refusal::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels, REFUSALS);
    }
}
