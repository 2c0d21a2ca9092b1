//! The event webhook's payload: one status change of a call, and its one log line.

use std::fmt;

use serde_json::{Map, Value};

/// A call status Vonage reports. Unknown statuses are kept, not refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallStatus {
    /// The call was created.
    Started,
    /// The destination is ringing.
    Ringing,
    /// The destination answered.
    Answered,
    /// The destination was busy.
    Busy,
    /// The call was cancelled before it was answered.
    Cancelled,
    /// The destination did not answer.
    Unanswered,
    /// The call was rejected.
    Rejected,
    /// The call failed.
    Failed,
    /// The call rang out.
    Timeout,
    /// The call ended; carries duration and price.
    Completed,
    /// A websocket leg was closed.
    Disconnected,
    /// Answering machine detection found a person.
    Human,
    /// Answering machine detection found a machine.
    Machine,
    /// Any other status, as sent (`record`, `input`, `transfer`, ...).
    Other(String),
}

impl CallStatus {
    /// The status for its wire name.
    pub fn from_name(name: &str) -> CallStatus {
        match name {
            "started" => CallStatus::Started,
            "ringing" => CallStatus::Ringing,
            "answered" => CallStatus::Answered,
            "busy" => CallStatus::Busy,
            "cancelled" => CallStatus::Cancelled,
            "unanswered" => CallStatus::Unanswered,
            "rejected" => CallStatus::Rejected,
            "failed" => CallStatus::Failed,
            "timeout" => CallStatus::Timeout,
            "completed" => CallStatus::Completed,
            "disconnected" => CallStatus::Disconnected,
            "human" => CallStatus::Human,
            "machine" => CallStatus::Machine,
            other => CallStatus::Other(other.to_owned()),
        }
    }

    /// The wire name.
    pub fn name(&self) -> &str {
        match self {
            CallStatus::Started => "started",
            CallStatus::Ringing => "ringing",
            CallStatus::Answered => "answered",
            CallStatus::Busy => "busy",
            CallStatus::Cancelled => "cancelled",
            CallStatus::Unanswered => "unanswered",
            CallStatus::Rejected => "rejected",
            CallStatus::Failed => "failed",
            CallStatus::Timeout => "timeout",
            CallStatus::Completed => "completed",
            CallStatus::Disconnected => "disconnected",
            CallStatus::Human => "human",
            CallStatus::Machine => "machine",
            CallStatus::Other(s) => s,
        }
    }

    /// Whether the status says the call did not go through.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            CallStatus::Busy
                | CallStatus::Cancelled
                | CallStatus::Unanswered
                | CallStatus::Rejected
                | CallStatus::Failed
                | CallStatus::Timeout
        )
    }

    /// Every status Vonage documents for calls.
    pub const DOCUMENTED: [&'static str; 13] = [
        "started",
        "ringing",
        "answered",
        "busy",
        "cancelled",
        "unanswered",
        "rejected",
        "failed",
        "timeout",
        "completed",
        "disconnected",
        "human",
        "machine",
    ];
}

/// One event webhook request: the fields every status has, and all the others as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The call leg, when the event names one.
    pub uuid: Option<String>,
    /// The status, when the event has one (some events, like `record`, carry none).
    pub status: Option<CallStatus>,
    /// Every field, as sent.
    pub fields: Map<String, Value>,
}

impl Event {
    /// An event from a JSON object body or query parameters turned into one.
    pub fn from_fields(fields: Map<String, Value>) -> Event {
        let text = |k: &str| fields.get(k).and_then(Value::as_str).map(str::to_owned);
        Event {
            uuid: text("uuid"),
            status: text("status").map(|s| CallStatus::from_name(&s)),
            fields,
        }
    }

    /// A field as display text: strings bare, other JSON as JSON.
    fn field(&self, key: &str) -> Option<String> {
        match self.fields.get(key)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// The fields that matter for this event's status, as `key=value` pairs.
    fn details(&self) -> Vec<(&'static str, String)> {
        let keys: &[&'static str] = match &self.status {
            Some(CallStatus::Completed) => {
                &["duration", "price", "rate", "disconnected_by", "network"]
            }
            Some(s) if s.is_failure() => &["detail", "reason", "sip_code"],
            Some(CallStatus::Started | CallStatus::Ringing | CallStatus::Answered) => {
                &["from", "to", "direction"]
            }
            Some(CallStatus::Disconnected) => &["reason", "detail"],
            _ => &["detail", "reason"],
        };
        keys.iter()
            .filter_map(|&k| self.field(k).map(|v| (k, v)))
            .collect()
    }
}

impl fmt::Display for Event {
    /// The event's one log line: call, status and what matters for that status.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "call {} {}",
            self.uuid.as_deref().unwrap_or("-"),
            self.status.as_ref().map_or("(no status)", CallStatus::name)
        )?;
        for (k, v) in self.details() {
            write!(f, " {k}={v:?}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(v: Value) -> Event {
        let Value::Object(m) = v else { unreachable!() };
        Event::from_fields(m)
    }

    #[test]
    fn completed_line_carries_duration_and_price() {
        let e = event(
            json!({"uuid":"u1","status":"completed","duration":"12","price":"0.0024","from":"1"}),
        );
        let line = e.to_string();
        assert_eq!(line, r#"call u1 completed duration="12" price="0.0024""#);
    }

    #[test]
    fn failure_line_carries_the_reason() {
        let e = event(json!({"uuid":"u1","status":"failed","detail":"invalid_number"}));
        assert_eq!(e.to_string(), r#"call u1 failed detail="invalid_number""#);
    }

    #[test]
    fn unknown_status_is_kept() {
        let e = event(json!({"uuid":"u1","status":"teleported","x":1}));
        assert_eq!(e.status, Some(CallStatus::Other("teleported".into())));
        assert_eq!(e.to_string(), "call u1 teleported");
    }

    #[test]
    fn every_documented_status_is_known() {
        for s in CallStatus::DOCUMENTED {
            assert!(
                !matches!(CallStatus::from_name(s), CallStatus::Other(_)),
                "{s}"
            );
            assert_eq!(CallStatus::from_name(s).name(), s);
        }
    }
}
