//! When a load starts: now, or at a time of day given as `--start-at`, so that shards
//! started apart (on several hosts, or by an orchestrator that starts pods when it can) ramp
//! together, each call dialed when the whole load's ramp says.

use std::{
    fmt,
    str::FromStr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use time::{format_description::well_known::Rfc3339, OffsetDateTime};

/// How far past its start time a load may still begin: a process that started a moment
/// late loses nothing worth refusing it for. Later, its calls would be dialed at once and
/// its ramp would not be the others'.
pub const LATE_START: Duration = Duration::from_secs(1);

/// A wall-clock time at which a load starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartAt(SystemTime);

impl StartAt {
    /// The time, as the system clock reads it.
    pub fn time(&self) -> SystemTime {
        self.0
    }

    /// Waits for the start time; an error when it has passed by more than [`LATE_START`].
    pub fn wait(&self) -> Result<(), String> {
        match self.0.duration_since(SystemTime::now()) {
            Ok(ahead) => {
                std::thread::sleep(ahead);
                Ok(())
            }
            Err(past) if past.duration() <= LATE_START => Ok(()),
            Err(past) => Err(format!(
                "{self} passed {:.1} s ago: the load would not ramp with the others",
                past.duration().as_secs_f64()
            )),
        }
    }
}

impl From<SystemTime> for StartAt {
    fn from(at: SystemTime) -> StartAt {
        StartAt(at)
    }
}

impl fmt::Display for StartAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rfc3339 = OffsetDateTime::from(self.0).format(&Rfc3339);
        match rfc3339 {
            Ok(text) => f.write_str(&text),
            Err(_) => write!(f, "{:?}", self.0),
        }
    }
}

impl FromStr for StartAt {
    type Err = String;

    /// Unix seconds (`1767225600`, fractions allowed) or RFC 3339
    /// (`2026-01-01T00:00:00Z`).
    fn from_str(s: &str) -> Result<StartAt, String> {
        if let Ok(seconds) = s.parse::<f64>() {
            return Duration::try_from_secs_f64(seconds)
                .map(|d| StartAt(UNIX_EPOCH + d))
                .map_err(|_| format!("{s:?} is not a time in Unix seconds"));
        }
        OffsetDateTime::parse(s, &Rfc3339)
            .map(|t| StartAt(t.into()))
            .map_err(|e| {
                format!("{s:?} is neither Unix seconds nor RFC 3339 (2026-01-01T00:00:00Z): {e}")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_reads_as_unix_seconds_or_rfc_3339_alike() {
        let unix: StartAt = "1767225600".parse().unwrap();
        let rfc: StartAt = "2026-01-01T00:00:00Z".parse().unwrap();
        let offset: StartAt = "2026-01-01T01:00:00+01:00".parse().unwrap();
        assert_eq!(unix, rfc);
        assert_eq!(unix, offset);
        assert_eq!(rfc.to_string(), "2026-01-01T00:00:00Z");
        let fraction: StartAt = "1767225600.5".parse().unwrap();
        assert_eq!(
            fraction.time().duration_since(unix.time()).unwrap(),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn a_start_that_is_no_time_is_refused() {
        for bad in ["tomorrow", "-5", "2026-01-01", ""] {
            assert!(bad.parse::<StartAt>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_start_long_past_is_refused_and_one_just_past_begins_at_once() {
        let long_ago = StartAt(SystemTime::now() - Duration::from_secs(60));
        assert!(long_ago.wait().unwrap_err().contains("passed 60"));
        assert_eq!(StartAt(SystemTime::now()).wait(), Ok(()));
    }
}
