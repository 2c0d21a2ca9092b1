//! The NCCO as Vonage reads it. Where Vonage fails the call (not a JSON array, an unknown
//! action, no socket to connect to), reading fails; where it quietly does something else
//! than the developer probably meant (a misspelled `contentType`, so 16 kHz), or would
//! refuse a field, the call goes on with a finding that says so.

use serde_json::{Map, Value};

use super::findings::{Check, Finding};
use crate::protocol::{
    audio::AudioFormat,
    ncco::{
        headers_len, Authorization, WebsocketEndpoint, KNOWN_ACTIONS, MAX_ENDPOINT_HEADERS_BYTES,
        MAX_TALK_CHARS,
    },
};

/// The longest custom `authorization` value Vonage sends, in characters.
pub const MAX_AUTHORIZATION_CHARS: usize = 8191;

/// What Vonage takes from an NCCO to connect the call to a socket.
#[derive(Debug, Clone)]
pub(crate) struct Reading {
    /// The socket, with the format Vonage will actually stream.
    pub(crate) endpoint: WebsocketEndpoint,
    /// What the `talk` actions say, in order.
    pub(crate) talks: Vec<String>,
    /// What Vonage would do otherwise than written, or refuse.
    pub(crate) findings: Vec<Finding>,
}

/// Reads `body` as Vonage does; the error names what fails the call, and where.
pub(crate) fn read(body: &[u8]) -> Result<Reading, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Array(actions) = value else {
        return Err("not a JSON array".into());
    };
    if actions.is_empty() {
        return Err("empty array: no action".into());
    }
    let mut talks = Vec::new();
    let mut findings = Vec::new();
    let mut endpoint = None;
    for (i, action) in actions.iter().enumerate() {
        let name = action
            .get("action")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("action {i} has no \"action\" name"))?;
        match name {
            "talk" => talks.push(talk(i, action)?),
            "connect" if endpoint.is_none() => {
                endpoint = Some(connect(i, action, &mut findings)?);
            }
            known if KNOWN_ACTIONS.contains(&known) => {}
            unknown => return Err(format!("action {i}: unknown action {unknown:?}")),
        }
    }
    let endpoint = endpoint.ok_or("no connect action with a websocket endpoint")?;
    Ok(Reading {
        endpoint,
        talks,
        findings,
    })
}

fn talk(i: usize, action: &Value) -> Result<String, String> {
    let text = action
        .get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("action {i} (talk): no text"))?;
    let chars = text.chars().count();
    if chars == 0 || chars > MAX_TALK_CHARS {
        return Err(format!(
            "action {i} (talk): text of {chars} characters; 1 to {MAX_TALK_CHARS} allowed"
        ));
    }
    Ok(text.to_owned())
}

/// The websocket endpoint of a `connect` action.
fn connect(
    i: usize,
    action: &Value,
    findings: &mut Vec<Finding>,
) -> Result<WebsocketEndpoint, String> {
    let endpoints = action
        .get("endpoint")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("action {i} (connect): no endpoint array"))?;
    let [endpoint] = endpoints.as_slice() else {
        return Err(format!(
            "action {i} (connect): {} endpoints; exactly one allowed",
            endpoints.len()
        ));
    };
    let kind = endpoint.get("type").and_then(Value::as_str);
    if kind != Some("websocket") {
        return Err(format!(
            "action {i} (connect): endpoint type {kind:?}; the emulator connects websocket endpoints only"
        ));
    }
    let at = format!("action {i} (connect)");
    let uri = uri(&at, endpoint, findings)?;
    let content_type = content_type(&at, endpoint, findings)?;
    let headers = headers(&at, endpoint, findings)?;
    let authorization = authorization(&at, endpoint, findings)?;
    Ok(WebsocketEndpoint {
        uri,
        content_type,
        headers,
        authorization,
    })
}

fn uri(at: &str, endpoint: &Value, findings: &mut Vec<Finding>) -> Result<String, String> {
    let uri = endpoint
        .get("uri")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{at}: the websocket endpoint has no uri"))?;
    if uri.starts_with("ws://") {
        findings.push(Finding::warning(
            Check::Ncco,
            format!(
                "{at}: uri {uri:?} is not encrypted; Vonage's guide asks for wss:// in production"
            ),
        ));
    } else if !uri.starts_with("wss://") {
        return Err(format!("{at}: uri {uri:?} is not ws:// or wss://"));
    }
    Ok(uri.to_owned())
}

/// The format Vonage streams: the hyphenated `content-type` only. A misspelled key is
/// ignored, as Vonage ignores it, and the call streams 16 kHz.
fn content_type(
    at: &str,
    endpoint: &Value,
    findings: &mut Vec<Finding>,
) -> Result<AudioFormat, String> {
    if let Some(value) = endpoint.get("content-type") {
        let text = value
            .as_str()
            .ok_or_else(|| format!("{at}: content-type is not a string"))?;
        return text.parse().map_err(|e| format!("{at}: {e}"));
    }
    let fallback = AudioFormat::L16Rate16000;
    let misspelled = ["contentType", "content_type", "contenttype", "Content-Type"]
        .into_iter()
        .find(|key| endpoint.get(*key).is_some());
    let text = match misspelled {
        Some(key) => format!(
            "{at}: the endpoint has {key:?}, which Vonage ignores (the key is \"content-type\"): \
             the call streams {} and websocket:connected says so",
            fallback.content_type()
        ),
        None => format!(
            "{at}: no content-type: the call streams {}",
            fallback.content_type()
        ),
    };
    findings.push(Finding::warning(Check::Ncco, text));
    Ok(fallback)
}

fn headers(
    at: &str,
    endpoint: &Value,
    findings: &mut Vec<Finding>,
) -> Result<Map<String, Value>, String> {
    let headers = match endpoint.get("headers") {
        None => return Ok(Map::new()),
        Some(Value::Object(headers)) => headers.clone(),
        Some(_) => return Err(format!("{at}: headers is not an object")),
    };
    let bytes = headers_len(&headers);
    if bytes > MAX_ENDPOINT_HEADERS_BYTES {
        findings.push(Finding::fault(
            Check::Ncco,
            format!("{at}: headers are {bytes} bytes; Vonage allows {MAX_ENDPOINT_HEADERS_BYTES}"),
        ));
    }
    Ok(headers)
}

fn authorization(
    at: &str,
    endpoint: &Value,
    findings: &mut Vec<Finding>,
) -> Result<Option<Authorization>, String> {
    let Some(value) = endpoint.get("authorization") else {
        return Ok(None);
    };
    let authorization: Authorization =
        serde_json::from_value(value.clone()).map_err(|e| format!("{at}: authorization: {e}"))?;
    if let Authorization::Custom { value } = &authorization {
        let chars = value.chars().count();
        if chars > MAX_AUTHORIZATION_CHARS {
            findings.push(Finding::fault(
                Check::Ncco,
                format!(
                    "{at}: the authorization value is {chars} characters; Vonage sends at most {MAX_AUTHORIZATION_CHARS}"
                ),
            ));
        }
        if !value.chars().all(|c| c == ' ' || c.is_ascii_graphic()) {
            findings.push(Finding::fault(
                Check::Ncco,
                format!("{at}: the authorization value is not printable ASCII"),
            ));
        }
    }
    Ok(Some(authorization))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(fields: &str) -> String {
        format!(
            r#"[{{"action":"talk","text":"hi"}},{{"action":"connect","endpoint":[{{"type":"websocket","uri":"wss://x/socket"{fields}}}]}}]"#
        )
    }

    fn read_ok(body: &str) -> Reading {
        read(body.as_bytes()).unwrap()
    }

    #[test]
    fn the_hyphenated_content_type_is_streamed() {
        let reading = read_ok(&endpoint(r#","content-type":"audio/l16;rate=8000""#));
        assert_eq!(reading.endpoint.content_type, AudioFormat::L16Rate8000);
        assert!(reading.findings.is_empty(), "{:?}", reading.findings);
        assert_eq!(reading.talks, ["hi"]);
    }

    #[test]
    fn content_type_in_camel_case_is_ignored_and_named() {
        let reading = read_ok(&endpoint(r#","contentType":"audio/l16;rate=8000""#));
        assert_eq!(reading.endpoint.content_type, AudioFormat::L16Rate16000);
        let [finding] = reading.findings.as_slice() else {
            panic!("{:?}", reading.findings)
        };
        assert!(!finding.is_fault());
        assert!(finding.text.contains("\"contentType\""), "{finding}");
        assert!(finding.text.contains("rate=16000"), "{finding}");
    }

    #[test]
    fn headers_over_512_bytes_are_a_fault() {
        let big = "x".repeat(600);
        let reading = read_ok(&endpoint(&format!(
            r#","content-type":"audio/l16;rate=8000","headers":{{"a":"{big}"}}"#
        )));
        assert!(reading
            .findings
            .iter()
            .any(|f| f.is_fault() && f.text.contains("512")));
    }

    #[test]
    fn a_ws_uri_is_a_warning() {
        let body = endpoint(r#","content-type":"audio/l16;rate=8000""#).replace("wss://", "ws://");
        let reading = read_ok(&body);
        assert!(reading
            .findings
            .iter()
            .any(|f| !f.is_fault() && f.text.contains("wss://")));
    }

    #[test]
    fn a_long_authorization_value_is_a_fault() {
        let value = "a".repeat(MAX_AUTHORIZATION_CHARS + 1);
        let reading = read_ok(&endpoint(&format!(
            r#","content-type":"audio/l16;rate=8000","authorization":{{"type":"custom","value":"{value}"}}"#
        )));
        assert!(reading
            .findings
            .iter()
            .any(|f| f.is_fault() && f.text.contains("8191")));
    }

    #[test]
    fn what_fails_the_call_is_named() {
        for (body, why) in [
            ("{}".to_owned(), "not a JSON array"),
            ("[]".to_owned(), "empty"),
            (r#"[{"action":"dance"}]"#.to_owned(), "unknown action"),
            (
                r#"[{"action":"talk","text":"hi"}]"#.to_owned(),
                "no connect action",
            ),
            (
                r#"[{"action":"connect","endpoint":[]}]"#.to_owned(),
                "0 endpoints",
            ),
            (
                endpoint(r#","content-type":"audio/l16;rate=44100""#),
                "unsupported content-type",
            ),
            (endpoint("").replace("wss://", "http://"), "not ws://"),
        ] {
            let err = read(body.as_bytes()).unwrap_err();
            assert!(err.contains(why), "{body}: {err}");
        }
    }

    #[test]
    fn the_servers_own_ncco_reads_as_built() {
        use crate::protocol::ncco::Ncco;
        let mut headers = Map::new();
        headers.insert("uuid".into(), "abc".into());
        let endpoint = WebsocketEndpoint {
            uri: "wss://example.com/socket?uuid=abc".into(),
            content_type: AudioFormat::L16Rate8000,
            headers,
            authorization: Some(Authorization::Vonage),
        };
        let json = Ncco::echo("hi", "NexmoTest", endpoint.clone()).to_json();
        let reading = read_ok(&json);
        assert_eq!(reading.endpoint, endpoint);
        assert_eq!(reading.talks, ["hi"]);
        assert!(reading.findings.is_empty(), "{:?}", reading.findings);
    }

    #[test]
    fn other_documented_actions_are_accepted() {
        let reading = read_ok(
            &endpoint(r#","content-type":"audio/l16;rate=8000""#).replace(
                r#"[{"action":"talk","text":"hi"}"#,
                r#"[{"action":"record"},{"action":"talk","text":"hi"}"#,
            ),
        );
        assert_eq!(reading.talks, ["hi"]);
    }

    #[test]
    fn arbitrary_bodies_never_panic() {
        let alphabet = b"[]{}\":,actiontalkconnectendpointtypewebsocketuriws://content-typeheaders";
        for body in crate::soup::strings(13, 20_000, 160, alphabet) {
            let _ = read(body.as_bytes());
        }
    }
}
