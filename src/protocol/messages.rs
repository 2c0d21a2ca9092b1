//! The text messages on the socket: the events Vonage sends (`websocket:connected`,
//! `websocket:dtmf`, ...) and how to write them, for the simulator.

use serde_json::{Map, Value};

use crate::protocol::audio::AudioFormat;

/// What a text message from Vonage says. Parsing never fails: anything unrecognised is
/// [`SocketEvent::Other`] or [`SocketEvent::Unparsed`], to be logged and tolerated.
#[derive(Debug, Clone, PartialEq)]
pub enum SocketEvent {
    /// The first message of a call: its audio format and the NCCO endpoint's headers.
    Connected {
        /// The `content-type`, if it names a supported format.
        format: Option<AudioFormat>,
        /// The `content-type` as sent.
        content_type: Option<String>,
        /// Every other top-level field: the endpoint's `headers`, copied by Vonage.
        headers: Map<String, Value>,
    },
    /// A key the caller pressed.
    Dtmf {
        /// `0`-`9`, `*` or `#`.
        digit: char,
        /// How long it was held, in milliseconds, when sent.
        duration_ms: Option<u64>,
    },
    /// Vonage emptied its playback buffer after a `clear` command.
    Cleared,
    /// Audio queued before a `notify` command has played.
    Notify {
        /// The payload the command carried.
        payload: Value,
    },
    /// A JSON event this crate does not know (tolerated).
    Other {
        /// Its `event` field.
        event: String,
    },
    /// Text that is not a JSON object with an `event` string, or a malformed known event.
    Unparsed {
        /// Why.
        reason: String,
    },
}

/// Parses one text message from Vonage.
pub fn parse(text: &str) -> SocketEvent {
    let mut object = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) => o,
        Ok(_) => return unparsed("not a JSON object"),
        Err(e) => return unparsed(&format!("not JSON: {e}")),
    };
    let event = match object.remove("event") {
        Some(Value::String(e)) => e,
        _ => return unparsed("no \"event\" string"),
    };
    match event.as_str() {
        "websocket:connected" => {
            let content_type = match object.remove("content-type") {
                Some(Value::String(s)) => Some(s),
                _ => None,
            };
            SocketEvent::Connected {
                format: content_type.as_deref().and_then(|c| c.parse().ok()),
                content_type,
                headers: object,
            }
        }
        "websocket:dtmf" => {
            let digit = match object.get("digit") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return unparsed("websocket:dtmf without a digit"),
            };
            let mut chars = digit.chars();
            let (Some(d), None) = (chars.next(), chars.next()) else {
                return unparsed(&format!("websocket:dtmf digit {digit:?} is not one key"));
            };
            if !is_dtmf_digit(d) {
                return unparsed(&format!("websocket:dtmf digit {digit:?} is not a key"));
            }
            SocketEvent::Dtmf {
                digit: d,
                duration_ms: object.get("duration").and_then(Value::as_u64),
            }
        }
        "websocket:cleared" => SocketEvent::Cleared,
        "websocket:notify" => SocketEvent::Notify {
            payload: object.remove("payload").unwrap_or(Value::Null),
        },
        _ => SocketEvent::Other { event },
    }
}

/// Whether `c` is a key of a telephone keypad.
pub fn is_dtmf_digit(c: char) -> bool {
    c.is_ascii_digit() || c == '*' || c == '#'
}

fn unparsed(reason: &str) -> SocketEvent {
    SocketEvent::Unparsed {
        reason: reason.to_owned(),
    }
}

/// The `websocket:connected` message Vonage sends first: the endpoint's headers at the top
/// level beside `event` and `content-type`.
pub fn connected(format: AudioFormat, headers: &Map<String, Value>) -> String {
    let mut object = headers.clone();
    object.insert("event".into(), "websocket:connected".into());
    object.insert("content-type".into(), format.content_type().into());
    Value::Object(object).to_string()
}

/// The `websocket:dtmf` message Vonage sends for a key press.
pub fn dtmf(digit: char, duration_ms: u64) -> String {
    serde_json::json!({"event": "websocket:dtmf", "digit": digit.to_string(), "duration": duration_ms})
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connected_message_carries_format_and_headers() {
        let mut headers = Map::new();
        headers.insert("uuid".into(), "abc".into());
        let text = connected(AudioFormat::L16Rate8000, &headers);
        assert_eq!(
            parse(&text),
            SocketEvent::Connected {
                format: Some(AudioFormat::L16Rate8000),
                content_type: Some("audio/l16;rate=8000".into()),
                headers,
            }
        );
    }

    #[test]
    fn dtmf_message_round_trips() {
        assert_eq!(
            parse(&dtmf('#', 260)),
            SocketEvent::Dtmf {
                digit: '#',
                duration_ms: Some(260)
            }
        );
    }

    #[test]
    fn unknown_events_are_tolerated() {
        assert_eq!(
            parse(r#"{"event":"websocket:future","x":1}"#),
            SocketEvent::Other {
                event: "websocket:future".into()
            }
        );
    }

    #[test]
    fn arbitrary_text_never_panics() {
        for text in crate::soup::strings(7, 20_000, 120, crate::soup::JSON) {
            let _ = parse(&text);
        }
    }

    #[test]
    fn garbage_is_unparsed_not_an_error() {
        for text in [
            "",
            "[1]",
            "{\"event\":5}",
            r#"{"event":"websocket:dtmf","digit":"55"}"#,
            r#"{"event":"websocket:dtmf","digit":"x"}"#,
        ] {
            assert!(
                matches!(parse(text), SocketEvent::Unparsed { .. }),
                "{text}"
            );
        }
    }
}
