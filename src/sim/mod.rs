//! The Vonage side of a call, so a call runs end to end on one machine. [`call`] plays one
//! call as Vonage plays it, for any application, and judges it by Vonage's rules (or, with
//! [`Expect::Echo`], checks that the audio comes back as sent); [`load`] plays many at
//! once against an echo and measures the server. Tests and test rigs call these directly;
//! the binary's `call` and `load` subcommands are thin wrappers.
//!
//! Dialing (webhooks, the NCCO as Vonage reads it, the handshake) is blocking and happens
//! here. One call's socket then runs in `session`, tick by tick; a load's calls stream in
//! `engine`, a `mio` poll loop where one thread paces and checks many calls.

pub mod arrival;
pub mod call;
mod caller;
mod engine;
pub mod findings;
pub mod load;
mod ncco;
pub mod playback;
mod report;
pub mod script;
mod session;
mod tape;
mod tls;

use std::{
    net::{TcpStream, ToSocketAddrs},
    path::PathBuf,
    time::{Duration, Instant},
};

use serde_json::{json, Map, Value};
use tungstenite::{client::IntoClientRequest, http, stream::MaybeTlsStream, WebSocket};

use crate::{
    config::Config,
    error::{Error, Result},
    protocol::audio::AudioFormat,
    protocol::auth::{self, Secret},
    protocol::call_id::CallId,
    protocol::messages,
    protocol::ncco::Authorization,
    ws::socket,
};
use findings::{Check, Finding};

pub use arrival::Arrival;
pub use caller::{read_wav, wav_spec, Voice};
pub use session::Expect;

/// How long Vonage waits for the answer webhook's connection, by default (the
/// application's `connection_timeout`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long Vonage waits for the answer webhook's answer, by default (the application's
/// `socket_timeout`).
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// How the answer webhook is requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnswerMethod {
    /// Parameters in the query string (Vonage's default).
    #[default]
    Get,
    /// Parameters as a JSON body (an application's `answer_method: POST`).
    Post,
}

/// Where and how to place a call: what Vonage knows from the application's settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Dial {
    /// The answer webhook, e.g. `http://127.0.0.1:3000/webhooks/answer`.
    pub answer_url: String,
    /// GET (default) or POST.
    pub method: AnswerMethod,
    /// Where events are posted; `None` derives `/webhooks/events` on the answer URL's host.
    pub event_url: Option<String>,
    /// Whether call events are posted at all.
    pub post_events: bool,
    /// Connect here instead of the NCCO's `uri`.
    pub ws_url: Option<String>,
    /// The caller's number.
    pub from: String,
    /// The number called.
    pub to: String,
    /// Bound on each HTTP exchange and on the WebSocket handshake.
    pub timeout: Duration,
    /// How long Vonage waits to connect to the answer webhook; a slower connect fails.
    pub connect_timeout: Duration,
    /// How long Vonage waits for the answer; a slower answer is a fault (Vonage would
    /// retry, then try the fallback URL), though the call goes on to judge the rest.
    pub answer_timeout: Duration,
    /// Vonage's signature secret: with it, every webhook request and a `vonage`-authorized
    /// handshake carry a signed JWT, as Vonage sends them.
    pub signature_secret: Option<Secret>,
    /// PEM certificates to trust for `https://` and `wss://` instead of the web's roots
    /// (a test or private CA).
    pub ca_file: Option<PathBuf>,
}

impl Dial {
    /// A call to `answer_url` with Vonage's defaults.
    pub fn new(answer_url: impl Into<String>) -> Dial {
        Dial {
            answer_url: answer_url.into(),
            method: AnswerMethod::Get,
            event_url: None,
            post_events: true,
            ws_url: None,
            from: "447700900000".into(),
            to: "447700900001".into(),
            timeout: Duration::from_secs(10),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            answer_timeout: DEFAULT_ANSWER_TIMEOUT,
            signature_secret: None,
            ca_file: None,
        }
    }

    /// Sets [`Dial::signature_secret`].
    pub fn signature_secret(mut self, secret: Option<Secret>) -> Self {
        self.signature_secret = secret;
        self
    }

    /// The `Authorization` header Vonage would send with `body`, when it signs.
    fn signed(&self, body: Option<&[u8]>) -> Option<String> {
        let secret = self.signature_secret.as_ref()?;
        Some(format!(
            "Bearer {}",
            auth::sign(&auth::vonage_claims(body), secret)
        ))
    }

    /// Sets [`Dial::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`Dial::answer_timeout`]; the wait for it grows to match when it is longer.
    pub fn answer_timeout(mut self, timeout: Duration) -> Self {
        self.answer_timeout = timeout;
        self.timeout = self.timeout.max(timeout + Duration::from_secs(5));
        self
    }

    /// Sets [`Dial::method`].
    pub fn method(mut self, method: AnswerMethod) -> Self {
        self.method = method;
        self
    }

    /// Sets [`Dial::event_url`].
    pub fn event_url(mut self, url: Option<String>) -> Self {
        self.event_url = url;
        self
    }

    /// Sets [`Dial::post_events`].
    pub fn post_events(mut self, post: bool) -> Self {
        self.post_events = post;
        self
    }

    /// Sets [`Dial::ws_url`].
    pub fn ws_url(mut self, url: Option<String>) -> Self {
        self.ws_url = url;
        self
    }

    /// Sets [`Dial::ca_file`].
    pub fn ca_file(mut self, path: Option<PathBuf>) -> Self {
        self.ca_file = path;
        self
    }

    /// The certificates of `ca_file`, PEM.
    fn ca_pem(&self) -> Result<Option<Vec<u8>>> {
        let Some(path) = &self.ca_file else {
            return Ok(None);
        };
        std::fs::read(path)
            .map(Some)
            .map_err(|e| Error::io(format!("reading --ca-file {}", path.display()), e))
    }

    fn agent(&self) -> Result<ureq::Agent> {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(self.timeout))
            .timeout_connect(Some(self.connect_timeout))
            .build();
        match self.ca_pem()? {
            Some(pem) => Ok(tls::agent(config, tls::client_config(Some(&pem))?)),
            None => Ok(config.new_agent()),
        }
    }

    /// How `wss://` sockets are verified: the CA file's certificates, else the web's roots.
    fn tls_connector(&self) -> Result<tungstenite::Connector> {
        let pem = self.ca_pem()?;
        Ok(tungstenite::Connector::Rustls(tls::client_config(
            pem.as_deref(),
        )?))
    }

    /// Where events go, when they are posted at all.
    fn event_target(&self) -> Result<Option<String>> {
        if self.post_events {
            self.events().map(Some)
        } else {
            Ok(None)
        }
    }

    /// The event URL: given, or `/webhooks/events` beside the answer URL.
    fn events(&self) -> Result<String> {
        if let Some(url) = &self.event_url {
            return Ok(url.clone());
        }
        let uri: http::Uri = self
            .answer_url
            .parse()
            .map_err(|e| Error::Http(format!("answer URL {:?}: {e}", self.answer_url)))?;
        match (uri.scheme_str(), uri.authority()) {
            (Some(scheme), Some(authority)) => {
                Ok(format!("{scheme}://{authority}/webhooks/events"))
            }
            _ => Err(Error::Http(format!(
                "answer URL {:?} is not absolute",
                self.answer_url
            ))),
        }
    }
}

/// A call that Vonage has put through: the socket is open and `websocket:connected` sent.
pub(crate) struct Dialed {
    pub(crate) id: CallId,
    pub(crate) conversation: String,
    pub(crate) format: AudioFormat,
    /// Where the socket was opened.
    pub(crate) socket_uri: String,
    pub(crate) ws: WebSocket<MaybeTlsStream<TcpStream>>,
    /// The first message, sent already; its echo is expected.
    pub(crate) connected: String,
    pub(crate) talks: Vec<String>,
    /// The NCCO endpoint's headers, which the socket leg's events carry.
    pub(crate) headers: Map<String, Value>,
    pub(crate) answered_at: Instant,
    /// How long the call waited on Vonage's side of call setup.
    pub(crate) setup: SetupTimes,
    /// What setup did otherwise than Vonage expects, short of failing the call.
    pub(crate) findings: Vec<Finding>,
}

/// A call that never reached its socket: the rule it broke, and how.
#[derive(Debug)]
pub(crate) struct Failed {
    pub(crate) check: Check,
    pub(crate) error: Error,
}

/// Ties an error of call setup to the rule it breaks.
fn at<T>(check: Check, result: Result<T>) -> std::result::Result<T, Failed> {
    result.map_err(|error| Failed { check, error })
}

/// How long the two steps of call setup took, as Vonage waits on them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SetupTimes {
    /// From the answer webhook's request to its whole answer.
    pub(crate) answer: Duration,
    /// From the socket's TCP connect to the handshake's 101.
    pub(crate) handshake: Duration,
}

/// Plays the start of a call as Vonage does: events, the answer webhook, the NCCO's checks,
/// the handshake at the NCCO's uri, and `websocket:connected`.
/// `post` is handed each call event (the call's common fields and a status) as Vonage would
/// send it: inline for one call, queued by a load so that dialing does not wait on them.
pub(crate) fn dial(
    dial: &Dial,
    id: CallId,
    agent: &ureq::Agent,
    post: &mut dyn FnMut(&Value, &'static str) -> Result<()>,
) -> std::result::Result<Dialed, Failed> {
    let conversation = format!("CON-{}", uuid::Uuid::new_v4());
    let base = json!({
        "from": dial.from, "to": dial.to, "uuid": id.as_str(),
        "conversation_uuid": conversation, "direction": "inbound",
    });
    at(Check::Events, post(&base, "started"))?;
    at(Check::Events, post(&base, "ringing"))?;

    let params = [
        ("to", dial.to.as_str()),
        ("from", dial.from.as_str()),
        ("uuid", id.as_str()),
        ("conversation_uuid", conversation.as_str()),
        ("region_url", "https://api-us-3.vonage.com"),
        ("endpoint_type", "phone"),
    ];
    let asked = Instant::now();
    let body = at(Check::AnswerWebhook, ask_answer(dial, agent, &params))?;
    let answer_time = asked.elapsed();
    let reading = ncco::read(&body).map_err(|reason| Failed {
        check: Check::Ncco,
        error: Error::Ncco(reason),
    })?;
    let mut findings = reading.findings;
    findings.extend(late_answer(dial, answer_time));
    let endpoint = reading.endpoint;
    at(Check::Events, post(&base, "answered"))?;

    let socket_uri = dial.ws_url.clone().unwrap_or_else(|| endpoint.uri.clone());
    let request = at(
        Check::Handshake,
        socket_request(dial, &socket_uri, endpoint.authorization.as_ref()),
    )?;
    let connecting = Instant::now();
    let mut ws = at(Check::Handshake, open_socket(dial, &socket_uri, request))?;
    let handshake_time = connecting.elapsed();
    let connected = messages::connected(endpoint.content_type, &endpoint.headers);
    at(
        Check::Handshake,
        ws.send(tungstenite::Message::text(connected.clone()))
            .map_err(Error::from),
    )?;
    Ok(Dialed {
        id,
        conversation,
        format: endpoint.content_type,
        socket_uri,
        ws,
        connected,
        talks: reading.talks,
        headers: endpoint.headers,
        answered_at: Instant::now(),
        setup: SetupTimes {
            answer: answer_time,
            handshake: handshake_time,
        },
        findings,
    })
}

/// A fault when the answer took longer than Vonage waits for it.
fn late_answer(dial: &Dial, took: Duration) -> Option<Finding> {
    (took > dial.answer_timeout).then(|| {
        Finding::fault(
            Check::AnswerWebhook,
            format!(
                "answered after {:.2} s; Vonage waits {:.2} s, then retries and tries the fallback answer URL",
                took.as_secs_f64(),
                dial.answer_timeout.as_secs_f64()
            ),
        )
    })
}

/// Asks the answer webhook, by the dial's method, with Vonage's parameters; returns its
/// body once it has answered 200 with JSON.
fn ask_answer(dial: &Dial, agent: &ureq::Agent, params: &[(&str, &str); 6]) -> Result<Vec<u8>> {
    let response = match dial.method {
        AnswerMethod::Get => {
            let mut request = agent
                .get(&dial.answer_url)
                .query_pairs(params.iter().copied());
            if let Some(signed) = dial.signed(None) {
                request = request.header("Authorization", signed);
            }
            request.call()
        }
        AnswerMethod::Post => {
            let body: Map<String, Value> = params
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect();
            let body = Value::Object(body).to_string();
            let mut request = agent
                .post(&dial.answer_url)
                .header("Content-Type", "application/json");
            if let Some(signed) = dial.signed(Some(body.as_bytes())) {
                request = request.header("Authorization", signed);
            }
            request.send(body)
        }
    };
    let mut response = response.map_err(|e| match e {
        ureq::Error::Timeout(ureq::Timeout::Connect) => Error::Http(format!(
            "could not connect to {} within {:.2} s; Vonage gives up there, retries, then tries the fallback answer URL",
            dial.answer_url,
            dial.connect_timeout.as_secs_f64()
        )),
        e => Error::Http(format!("answer webhook {}: {e}", dial.answer_url)),
    })?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = response
        .body_mut()
        .with_config()
        .limit(1024 * 1024)
        .read_to_vec()
        .map_err(|e| Error::Http(format!("answer webhook body: {e}")))?;
    if status != 200 {
        return Err(Error::Http(format!(
            "answer webhook returned {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )));
    }
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return Err(Error::Ncco(format!(
            "answered with Content-Type {content_type:?}, not application/json: Vonage fails the call"
        )));
    }
    Ok(body)
}

/// The handshake request for the NCCO's socket, with the endpoint's authorization.
fn socket_request(
    dial: &Dial,
    uri: &str,
    authorization: Option<&Authorization>,
) -> Result<tungstenite::handshake::client::Request> {
    let mut request = uri
        .into_client_request()
        .map_err(|e| Error::Ncco(format!("socket uri {uri:?}: {e}")))?;
    match authorization {
        Some(Authorization::Custom { value }) => {
            let value = http::HeaderValue::from_str(value)
                .map_err(|_| Error::Ncco("authorization value is not a valid header".into()))?;
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value);
        }
        Some(Authorization::Vonage) => {
            let signed = dial.signed(None).ok_or_else(|| {
                Error::Ncco(
                    "authorization type vonage needs the signature secret (--signature-secret)"
                        .into(),
                )
            })?;
            let value = http::HeaderValue::from_str(&signed)
                .map_err(|_| Error::Ncco("signed token is not a valid header".into()))?;
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value);
        }
        None => {}
    }
    Ok(request)
}

/// Connects to the socket and completes its handshake (over TLS for `wss://`).
fn open_socket(
    dial: &Dial,
    uri: &str,
    request: tungstenite::handshake::client::Request,
) -> Result<WebSocket<MaybeTlsStream<TcpStream>>> {
    let stream = connect(request.uri(), dial.timeout)?;
    let config = socket::ws_config(&Config::default());
    let connector = match request.uri().scheme_str() {
        Some("wss") => Some(dial.tls_connector()?),
        _ => None,
    };
    let (ws, _) = tungstenite::client_tls_with_config(request, stream, Some(config), connector)
        .map_err(|e| match e {
            tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response)) => {
                let body = response
                    .body()
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                Error::Http(format!(
                    "socket handshake at {uri} refused with {}: {body}",
                    response.status()
                ))
            }
            tungstenite::HandshakeError::Failure(e) => {
                Error::Http(format!("socket handshake at {uri}: {e}"))
            }
            tungstenite::HandshakeError::Interrupted(_) => Error::Http(format!(
                "socket handshake at {uri} timed out after {:?}",
                dial.timeout
            )),
        })?;
    Ok(ws)
}

/// The TCP stream under a socket, TLS or not.
pub(crate) fn tcp(stream: &MaybeTlsStream<TcpStream>) -> &TcpStream {
    match stream {
        MaybeTlsStream::Plain(s) => s,
        MaybeTlsStream::Rustls(s) => s.get_ref(),
        // The crate enables no other TLS backend.
        _ => unreachable!("only plain and rustls streams are built"),
    }
}

/// Opens the TCP connection for a `ws://` or `wss://` uri.
fn connect(uri: &http::Uri, timeout: Duration) -> Result<TcpStream> {
    let default_port = match uri.scheme_str() {
        Some("ws") => 80,
        Some("wss") => 443,
        _ => return Err(Error::Http(format!("{uri}: not a ws:// or wss:// uri"))),
    };
    let host = uri
        .host()
        .ok_or_else(|| Error::Http(format!("{uri}: no host")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(default_port);
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::io(format!("resolving {host}"), e))?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                stream
                    .set_nodelay(true)
                    .and_then(|()| stream.set_read_timeout(Some(timeout)))
                    .and_then(|()| stream.set_write_timeout(Some(timeout)))
                    .map_err(|e| Error::io("setting up the socket", e))?;
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(Error::io(
        format!("connecting to {host}:{port}"),
        last.unwrap_or_else(|| std::io::Error::other("no address")),
    ))
}

/// Posts one call event as Vonage does.
pub(crate) fn post_event(
    agent: &ureq::Agent,
    dial: &Dial,
    url: &str,
    base: &Value,
    status: &str,
    extra: Map<String, Value>,
) -> Result<()> {
    let mut event = base.as_object().cloned().unwrap_or_default();
    event.insert("status".into(), status.into());
    event.insert("timestamp".into(), now_rfc3339().into());
    event.extend(extra);
    let body = Value::Object(event).to_string();
    let mut request = agent.post(url).header("Content-Type", "application/json");
    if let Some(signed) = dial.signed(Some(body.as_bytes())) {
        request = request.header("Authorization", signed);
    }
    let response = request
        .send(body)
        .map_err(|e| Error::Http(format!("event webhook {url}: {e}")))?;
    match response.status().as_u16() {
        200..=299 => Ok(()),
        code => Err(Error::Http(format!(
            "event webhook {url} answered {code} to {status:?}"
        ))),
    }
}

/// Now, formatted as Vonage's ISO 8601 timestamps are.
fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A duration in milliseconds, as the reports print them.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Sorted round trips in microseconds, read at a percentile.
pub(crate) fn percentile(sorted: &[u32], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    Duration::from_micros(u64::from(sorted[rank.min(sorted.len() - 1)]))
}
