//! The NCCO as Vonage reads it: the actions it will run, in order. Where Vonage fails the
//! call (not a JSON array, an unknown action, a field it cannot take), reading fails with
//! the reason; where it quietly does something else than the developer probably meant (a
//! misspelled `contentType`, so 16 kHz; a caller id that is not a number), or would refuse
//! a field, the call goes on with a finding that says so.

use std::time::Duration;

use serde_json::{Map, Value};

use super::{
    dial::Method,
    events::EventTarget,
    findings::{Check, Finding},
};
use crate::protocol::{
    audio::AudioFormat,
    ncco::{
        headers_len, Authorization, WebsocketEndpoint, KNOWN_ACTIONS, MAX_ENDPOINT_HEADERS_BYTES,
        MAX_TALK_CHARS,
    },
};

/// The longest custom `authorization` value Vonage sends, in characters.
pub const MAX_AUTHORIZATION_CHARS: usize = 8191;

/// A `connect` action's longest leg, and its default (`limit`, in seconds).
pub const MAX_LIMIT: Duration = Duration::from_secs(7200);

/// How long a `connect` waits for its endpoint by default (`timeout`, in seconds).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a `wait` action waits when it names no `timeout`.
const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// One action, as the emulator runs it.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// Speaks `text` `loops` times (0: until the caller hangs up) before the next action.
    Talk { text: String, loops: u32 },
    /// Opens a socket leg to a websocket endpoint.
    Connect(Box<Connect>),
    /// Waits this long.
    Wait(Duration),
    /// An action the emulator does not play (a recording, an input, a connect to a
    /// phone...): reached, reported, and passed over.
    Unplayed(String),
}

#[cfg(test)]
impl Step {
    /// The action's name, as the report gives it.
    pub(crate) fn name(&self) -> String {
        match self {
            Step::Talk { .. } => "talk".into(),
            Step::Connect(_) => "connect".into(),
            Step::Wait(_) => "wait".into(),
            Step::Unplayed(what) => what.clone(),
        }
    }
}

/// A `connect` action to a websocket.
#[derive(Debug, Clone)]
pub(crate) struct Connect {
    /// The socket, with the format Vonage will actually stream.
    pub(crate) endpoint: WebsocketEndpoint,
    /// The caller id presented to the socket leg.
    pub(crate) from: Option<String>,
    /// Where the socket leg's events go (`eventUrl`, `eventMethod`); else the
    /// application's event URL.
    pub(crate) events: Option<EventTarget>,
    /// `eventType: "synchronous"`: the answer to `disconnected` may be a new NCCO.
    pub(crate) synchronous: bool,
    /// How long the socket may take to open.
    pub(crate) timeout: Duration,
    /// The leg's longest life.
    pub(crate) limit: Duration,
}

/// What Vonage takes from an NCCO.
#[derive(Debug, Clone)]
pub(crate) struct Reading {
    /// The actions, in order.
    pub(crate) steps: Vec<Step>,
    /// What Vonage would do otherwise than written, or refuse.
    pub(crate) findings: Vec<Finding>,
}

impl Reading {
    /// The texts of the `talk` actions, in order.
    pub(crate) fn talks(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::Talk { text, .. } => Some(text.clone()),
                _ => None,
            })
            .collect()
    }
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
    let mut steps = Vec::with_capacity(actions.len());
    let mut findings = Vec::new();
    for (i, action) in actions.iter().enumerate() {
        let name = action
            .get("action")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("action {i} has no \"action\" name"))?;
        steps.push(match name {
            "talk" => talk(i, action, &mut findings)?,
            "connect" => connect(i, action, &mut findings)?,
            "wait" => Step::Wait(wait(i, action)?),
            known if KNOWN_ACTIONS.contains(&known) => Step::Unplayed(known.to_owned()),
            unknown => return Err(format!("action {i}: unknown action {unknown:?}")),
        });
    }
    Ok(Reading { steps, findings })
}

fn talk(i: usize, action: &Value, findings: &mut Vec<Finding>) -> Result<Step, String> {
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
    let loops = match action.get("loop") {
        None => 1,
        Some(value) => value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("action {i} (talk): loop {value} is not a whole number"))?,
    };
    if loops == 0 {
        findings.push(Finding::warning(
            Check::NccoActions,
            format!(
                "action {i} (talk): loop 0 speaks until the caller hangs up, so no action after it is reached"
            ),
        ));
    }
    Ok(Step::Talk {
        text: text.to_owned(),
        loops,
    })
}

/// A `wait` action's time (`timeout`, seconds).
fn wait(i: usize, action: &Value) -> Result<Duration, String> {
    match action.get("timeout") {
        None => Ok(DEFAULT_WAIT),
        Some(value) => value
            .as_f64()
            .filter(|s| (0.0..=MAX_LIMIT.as_secs_f64()).contains(s))
            .map(Duration::from_secs_f64)
            .ok_or_else(|| format!("action {i} (wait): timeout {value} is not 0 to 7200 seconds")),
    }
}

/// A `connect` action: a socket leg to run, or, for an endpoint that is not a websocket
/// (a phone, SIP, an app), an action reached and not played.
fn connect(i: usize, action: &Value, findings: &mut Vec<Finding>) -> Result<Step, String> {
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
    let at = format!("action {i} (connect)");
    match endpoint.get("type").and_then(Value::as_str) {
        Some("websocket") => {}
        Some(kind) => return Ok(Step::Unplayed(format!("connect to {kind}"))),
        None => return Err(format!("{at}: the endpoint has no type")),
    }
    let endpoint = WebsocketEndpoint {
        uri: uri(&at, endpoint, findings)?,
        content_type: content_type(&at, endpoint, findings)?,
        headers: headers(&at, endpoint, findings)?,
        authorization: authorization(&at, endpoint, findings)?,
    };
    let from = caller_id(&at, action, findings)?;
    Ok(Step::Connect(Box::new(Connect {
        endpoint,
        from,
        events: event_target(&at, action)?,
        synchronous: event_type(&at, action)?,
        timeout: seconds(&at, action, "timeout", DEFAULT_CONNECT_TIMEOUT, findings)?,
        limit: seconds(&at, action, "limit", MAX_LIMIT, findings)?,
    })))
}

/// `from`: Vonage presents a number in E.164 digits; anything else shows as unknown.
fn caller_id(
    at: &str,
    action: &Value,
    findings: &mut Vec<Finding>,
) -> Result<Option<String>, String> {
    let Some(value) = action.get("from") else {
        return Ok(None);
    };
    let from = value
        .as_str()
        .ok_or_else(|| format!("{at}: from is not a string"))?;
    let digits = from.strip_prefix('+').unwrap_or(from);
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        findings.push(Finding::warning(
            Check::CallerId,
            format!(
                "{at}: from {from:?} is not a number in E.164 digits (e.g. 447700900000): \
                 Vonage shows the caller id as unknown"
            ),
        ));
    }
    Ok(Some(from.to_owned()))
}

/// `eventUrl` (an array; its first URL) and `eventMethod`.
fn event_target(at: &str, action: &Value) -> Result<Option<EventTarget>, String> {
    let method = match action.get("eventMethod").map(Value::as_str) {
        None => Method::Post,
        Some(Some(m)) if m.eq_ignore_ascii_case("POST") => Method::Post,
        Some(Some(m)) if m.eq_ignore_ascii_case("GET") => Method::Get,
        Some(other) => return Err(format!("{at}: eventMethod {other:?} is not GET or POST")),
    };
    let Some(urls) = action.get("eventUrl") else {
        return Ok(None);
    };
    let url = urls
        .as_array()
        .and_then(|urls| urls.first())
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{at}: eventUrl is not an array of URLs"))?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("{at}: eventUrl {url:?} is not http:// or https://"));
    }
    Ok(Some(EventTarget {
        url: url.to_owned(),
        method,
    }))
}

/// `eventType`: `synchronous`, or absent.
fn event_type(at: &str, action: &Value) -> Result<bool, String> {
    match action.get("eventType").map(Value::as_str) {
        None => Ok(false),
        Some(Some("synchronous")) => Ok(true),
        Some(other) => Err(format!(
            "{at}: eventType {other:?}; only \"synchronous\" is known"
        )),
    }
}

/// A field in whole seconds, up to Vonage's 7,200, or `default`.
fn seconds(
    at: &str,
    action: &Value,
    field: &str,
    default: Duration,
    findings: &mut Vec<Finding>,
) -> Result<Duration, String> {
    let Some(value) = action.get(field) else {
        return Ok(default);
    };
    let secs = value
        .as_u64()
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("{at}: {field} {value} is not a positive number of seconds"))?;
    if secs > MAX_LIMIT.as_secs() {
        findings.push(Finding::warning(
            Check::Ncco,
            format!("{at}: {field} {secs} s is more than Vonage's 7200 s, which it keeps to"),
        ));
    }
    Ok(Duration::from_secs(secs.min(MAX_LIMIT.as_secs())))
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

    /// The first connect action of a reading.
    fn connect_of(reading: &Reading) -> &Connect {
        reading
            .steps
            .iter()
            .find_map(|s| match s {
                Step::Connect(c) => Some(&**c),
                _ => None,
            })
            .expect("a connect action")
    }

    fn connect_with(fields: &str) -> String {
        format!(
            r#"[{{"action":"connect"{fields},"endpoint":[{{"type":"websocket","uri":"wss://x/socket","content-type":"audio/l16;rate=8000"}}]}}]"#
        )
    }

    #[test]
    fn the_hyphenated_content_type_is_streamed() {
        let reading = read_ok(&endpoint(r#","content-type":"audio/l16;rate=8000""#));
        assert_eq!(
            connect_of(&reading).endpoint.content_type,
            AudioFormat::L16Rate8000
        );
        assert!(reading.findings.is_empty(), "{:?}", reading.findings);
        assert_eq!(reading.talks(), ["hi"]);
    }

    #[test]
    fn content_type_in_camel_case_is_ignored_and_named() {
        let reading = read_ok(&endpoint(r#","contentType":"audio/l16;rate=8000""#));
        assert_eq!(
            connect_of(&reading).endpoint.content_type,
            AudioFormat::L16Rate16000
        );
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
                r#"[{"action":"talk","text":"hi","loop":"x"}]"#.to_owned(),
                "not a whole number",
            ),
            (
                connect_with(r#","eventUrl":"http://x/e""#),
                "not an array of URLs",
            ),
            (
                connect_with(r#","eventType":"later""#),
                "only \"synchronous\"",
            ),
            (connect_with(r#","limit":-1"#), "positive number"),
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
        assert_eq!(connect_of(&reading).endpoint, endpoint);
        assert_eq!(reading.talks(), ["hi"]);
        assert_eq!(connect_of(&reading).from.as_deref(), Some("NexmoTest"));
        let [caller_id] = reading.findings.as_slice() else {
            panic!("{:?}", reading.findings)
        };
        assert_eq!(caller_id.check, Check::CallerId, "{caller_id}");
    }

    #[test]
    fn a_caller_id_in_e164_digits_is_taken_as_it_is() {
        let reading = read_ok(&connect_with(r#","from":"447700900000""#));
        assert!(reading.findings.is_empty(), "{:?}", reading.findings);
    }

    #[test]
    fn the_socket_legs_settings_are_read() {
        let reading = read_ok(&connect_with(
            r#","eventUrl":["http://127.0.0.1:9/leg"],"eventMethod":"GET","eventType":"synchronous","limit":30,"timeout":5"#,
        ));
        let connect = connect_of(&reading);
        assert_eq!(
            connect.events,
            Some(EventTarget {
                url: "http://127.0.0.1:9/leg".into(),
                method: Method::Get
            })
        );
        assert!(connect.synchronous);
        assert_eq!(connect.limit, Duration::from_secs(30));
        assert_eq!(connect.timeout, Duration::from_secs(5));
    }

    #[test]
    fn without_settings_a_socket_leg_has_vonages_defaults() {
        let connect = connect_of(&read_ok(&connect_with(""))).clone();
        assert_eq!(connect.events, None);
        assert!(!connect.synchronous);
        assert_eq!(connect.limit, MAX_LIMIT);
        assert_eq!(connect.timeout, DEFAULT_CONNECT_TIMEOUT);
    }

    #[test]
    fn a_limit_past_7200_seconds_is_kept_to_7200_and_named() {
        let reading = read_ok(&connect_with(r#","limit":9000"#));
        assert_eq!(connect_of(&reading).limit, MAX_LIMIT);
        assert!(reading.findings.iter().any(|f| f.text.contains("9000")));
    }

    #[test]
    fn actions_keep_their_order_and_those_not_played_are_named() {
        let reading = read_ok(&format!(
            r#"[{{"action":"talk","text":"hi"}},{{"action":"wait","timeout":0.5}},{{"action":"connect","endpoint":[{{"type":"phone","number":"447700900001"}}]}},{}]"#,
            connect_with("")
                .trim_start_matches('[')
                .trim_end_matches(']')
        ));
        let names: Vec<String> = reading.steps.iter().map(Step::name).collect();
        assert_eq!(names, ["talk", "wait", "connect to phone", "connect"]);
        assert!(matches!(reading.steps[1], Step::Wait(d) if d == Duration::from_millis(500)));
    }

    #[test]
    fn an_ncco_that_only_talks_reads() {
        let reading = read_ok(r#"[{"action":"talk","text":"Goodbye","loop":2}]"#);
        assert!(matches!(&reading.steps[..], [Step::Talk { loops: 2, .. }]));
    }

    #[test]
    fn other_documented_actions_are_accepted() {
        let reading = read_ok(
            &endpoint(r#","content-type":"audio/l16;rate=8000""#).replace(
                r#"[{"action":"talk","text":"hi"}"#,
                r#"[{"action":"record"},{"action":"talk","text":"hi"}"#,
            ),
        );
        assert_eq!(reading.talks(), ["hi"]);
    }

    #[test]
    fn arbitrary_bodies_never_panic() {
        let alphabet = b"[]{}\":,actiontalkconnectendpointtypewebsocketuriws://content-typeheaders";
        for body in crate::soup::strings(13, 20_000, 160, alphabet) {
            let _ = read(body.as_bytes());
        }
    }
}
