//! A call leg's id: Vonage's `uuid`, which names the call in the socket's URL, in logs and
//! in recordings' file names.

use std::{
    fmt,
    sync::atomic::{AtomicU64, Ordering},
};

/// The longest call id accepted.
pub const MAX_CALL_ID_LEN: usize = 64;

/// A call leg's id: Vonage's `uuid`. Limited to URL- and log-safe characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallId(String);

impl CallId {
    /// Accepts 1 to 64 ASCII letters, digits, `-`, `_` and `.`, not starting with `.`;
    /// the error says why not. A call id names the call's recordings, so it must name a
    /// file safely: `.`, `..` and hidden names are refused.
    pub fn parse(s: &str) -> Result<CallId, String> {
        if s.is_empty() || s.len() > MAX_CALL_ID_LEN {
            return Err(format!("uuid must be 1 to {MAX_CALL_ID_LEN} characters"));
        }
        if s.starts_with('.') {
            return Err(format!(
                "uuid {s:?} may not start with '.': it names the call's files"
            ));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "uuid {s:?} may hold only letters, digits, '-', '_' and '.'"
            ));
        }
        Ok(CallId(s.to_owned()))
    }

    /// A fresh random (v4) uuid, for an answer request that brought none.
    pub fn random() -> CallId {
        CallId(uuid::Uuid::new_v4().to_string())
    }

    /// An id for a socket whose uri named no call.
    pub fn anonymous() -> CallId {
        static SEQ: AtomicU64 = AtomicU64::new(1);
        CallId(format!("anon-{}", SEQ.fetch_add(1, Ordering::Relaxed)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_are_url_and_log_safe() {
        assert!(CallId::parse("aaaaaaaa-bbbb-cccc-dddd-123456789abc").is_ok());
        for bad in [
            "",
            "a b",
            "a&b=c",
            "a\nb",
            &"x".repeat(65),
            ".",
            "..",
            ".hidden",
        ] {
            assert!(CallId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn random_ids_are_valid_and_distinct() {
        let (a, b) = (CallId::random(), CallId::random());
        assert_ne!(a, b);
        assert!(CallId::parse(a.as_str()).is_ok());
    }
}
