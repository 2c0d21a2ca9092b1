//! The Nexmo Call Control Object: the JSON array the answer webhook returns to tell Vonage
//! what to do with a call. The server builds one; the simulator reads one as Vonage does
//! (`sim::ncco`), into these types.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::protocol::audio::AudioFormat;

/// Vonage's limit on a websocket endpoint's `headers`, serialized.
pub const MAX_ENDPOINT_HEADERS_BYTES: usize = 512;

/// Vonage's limit on a `talk` action's text, in characters.
pub const MAX_TALK_CHARS: usize = 1500;

/// Actions Vonage documents; any other action name fails the call.
pub const KNOWN_ACTIONS: [&str; 9] = [
    "talk",
    "stream",
    "input",
    "record",
    "connect",
    "conversation",
    "notify",
    "wait",
    "transfer",
];

/// An NCCO: the actions Vonage runs, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Ncco(pub Vec<Action>);

/// One NCCO action. Only the two the echo application uses are typed; the simulator
/// accepts the others Vonage documents as [`Action::Other`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Action {
    /// Speaks text to the caller.
    Talk(Talk),
    /// Connects the call to an endpoint: for us, our WebSocket.
    Connect(Connect),
    /// Another documented action, kept as it came.
    #[serde(skip)]
    Other(Value),
}

/// The `talk` action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Talk {
    /// What is said; at most 1,500 characters.
    pub text: String,
    /// BCP-47 language; Vonage defaults to en-US.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// The `connect` action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connect {
    /// The caller id presented to the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Exactly one endpoint.
    pub endpoint: Vec<Endpoint>,
}

/// A `connect` endpoint. Only `websocket` is typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Endpoint {
    /// A WebSocket that receives and sends the call's audio.
    Websocket(WebsocketEndpoint),
}

/// The websocket endpoint of a `connect` action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebsocketEndpoint {
    /// Where Vonage opens the socket (`wss://` in production).
    pub uri: String,
    /// The audio format streamed both ways.
    #[serde(rename = "content-type")]
    pub content_type: AudioFormat,
    /// Copied by Vonage to the top level of the socket's first message.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub headers: Map<String, Value>,
    /// How Vonage authorizes itself on the handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
}

/// The websocket endpoint's `authorization`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Authorization {
    /// Vonage sends `Authorization: Bearer <JWT>` signed with the signature secret.
    Vonage,
    /// Vonage sends `value` verbatim as the `Authorization` header.
    Custom {
        /// The header's value, e.g. `Bearer abc123`.
        value: String,
    },
}

impl Ncco {
    /// The echo application's NCCO: greet the caller, then connect it to our socket.
    pub fn echo(greeting: &str, from: &str, endpoint: WebsocketEndpoint) -> Ncco {
        Ncco(vec![
            Action::Talk(Talk {
                text: greeting.to_owned(),
                language: None,
            }),
            Action::Connect(Connect {
                from: Some(from.to_owned()),
                endpoint: vec![Endpoint::Websocket(endpoint)],
            }),
        ])
    }

    /// The websocket endpoint of the first `connect` action, if any.
    pub fn websocket(&self) -> Option<&WebsocketEndpoint> {
        self.0.iter().find_map(|a| match a {
            Action::Connect(c) => c.endpoint.first().map(|Endpoint::Websocket(ws)| ws),
            _ => None,
        })
    }

    /// The texts of the `talk` actions, in order.
    pub fn talks(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|a| match a {
            Action::Talk(t) => Some(t.text.as_str()),
            _ => None,
        })
    }

    /// The NCCO as the JSON Vonage expects.
    pub fn to_json(&self) -> String {
        // Serializing plain strings and maps cannot fail.
        serde_json::to_string(self).expect("an NCCO always serializes")
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(tag = "action", rename_all = "lowercase")]
        enum Typed<'a> {
            Talk(&'a Talk),
            Connect(&'a Connect),
        }
        match self {
            Action::Talk(t) => Typed::Talk(t).serialize(s),
            Action::Connect(c) => Typed::Connect(c).serialize(s),
            Action::Other(v) => v.serialize(s),
        }
    }
}

/// The size of `headers` as Vonage counts it: serialized JSON.
pub fn headers_len(headers: &Map<String, Value>) -> usize {
    serde_json::to_string(headers).map_or(usize::MAX, |s| s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> WebsocketEndpoint {
        let mut headers = Map::new();
        headers.insert("uuid".into(), "abc".into());
        WebsocketEndpoint {
            uri: "wss://example.com/socket?uuid=abc".into(),
            content_type: AudioFormat::L16Rate16000,
            headers,
            authorization: None,
        }
    }

    #[test]
    fn echo_ncco_has_the_tutorials_shape() {
        let json: Value =
            serde_json::from_str(&Ncco::echo("hi", "NexmoTest", endpoint()).to_json()).unwrap();
        assert_eq!(json[0]["action"], "talk");
        assert_eq!(json[0]["text"], "hi");
        assert_eq!(json[1]["action"], "connect");
        assert_eq!(json[1]["from"], "NexmoTest");
        assert_eq!(json[1]["endpoint"][0]["type"], "websocket");
        assert_eq!(
            json[1]["endpoint"][0]["content-type"],
            "audio/l16;rate=16000"
        );
        assert_eq!(json[1]["endpoint"][0]["headers"]["uuid"], "abc");
    }
}
