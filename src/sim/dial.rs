//! Placing a call as Vonage places it: where and how ([`Dial`]: what Vonage knows from
//! the application's settings), and the blocking steps of call setup, the answer and the
//! NCCO read with the call's first events (`answer_call`), then each socket leg's
//! handshake and `websocket:connected` (`open_leg`).

use std::{
    net::{TcpStream, ToSocketAddrs},
    path::PathBuf,
    time::{Duration, Instant},
};

use serde_json::{Map, Value};
use tungstenite::{client::IntoClientRequest, http, stream::MaybeTlsStream, WebSocket};

use super::{
    answer::{self, Attempt, DEFAULT_ANSWER_TIMEOUT, DEFAULT_CONNECT_TIMEOUT},
    events::{self, EventTarget, HungUp, Leg, Status, EVENT_TIMEOUT},
    findings::Check,
    ncco::{self, Connect, Reading},
    tls,
    urls::{Origin, Rewrite, Urls},
};
use crate::{
    error::{Error, Result},
    protocol::audio::AudioFormat,
    protocol::auth::{self, Secret},
    protocol::call_id::CallId,
    protocol::limits,
    protocol::messages,
    protocol::ncco::Authorization,
};

/// How fast Vonage speaks a `talk`, by default, in characters a second: about 160 words a
/// minute of English, the pace of its text-to-speech voices. The emulator cannot hear its
/// own speech, so it estimates a talk's time from its text.
pub const DEFAULT_TALK_RATE: f64 = 15.0;

/// How long a caller listens to an NCCO's talks and waits, between socket legs, before it
/// hangs up, by default: a minute, longer than any greeting, short of hold music.
pub const DEFAULT_PATIENCE: Duration = Duration::from_secs(60);

/// How a webhook is requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// Parameters in the query string (Vonage's default for the answer webhook).
    #[default]
    Get,
    /// Parameters as a JSON body (an application's `answer_method: POST`; events' default).
    Post,
}

impl Method {
    /// `GET` or `POST`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// How the answer webhook is requested (the name it has always had).
pub type AnswerMethod = Method;

/// Where and how to place a call: what Vonage knows from the application's settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Dial {
    /// The answer webhook, e.g. `http://127.0.0.1:3000/webhooks/answer`.
    pub answer_url: String,
    /// Asked twice when the answer URL could not answer twice (default: none).
    pub fallback_answer_url: Option<String>,
    /// GET (default) or POST, for the answer and fallback answer URLs.
    pub method: Method,
    /// Where the call's events are posted; `None` derives `/webhooks/events` on the answer
    /// URL's host.
    pub event_url: Option<String>,
    /// Whether events are posted at all (default: true).
    pub post_events: bool,
    /// Where the NCCO's URLs are really reached: `--ws-url` and `--rewrite` (default: as
    /// written).
    pub urls: Urls,
    /// The caller's number.
    pub from: String,
    /// The number called.
    pub to: String,
    /// How long Vonage waits to connect to a webhook (default: 1 s).
    pub connect_timeout: Duration,
    /// How long Vonage waits for the answer webhook's whole answer (default: 5 s).
    pub answer_timeout: Duration,
    /// How long Vonage waits for the event webhook (default: 10 s).
    pub event_timeout: Duration,
    /// How fast a `talk` is spoken, in characters a second; 0 speaks it in no time
    /// (default: [`DEFAULT_TALK_RATE`]).
    pub talk_rate: f64,
    /// How long the caller listens to the NCCO's talks and waits, between socket legs,
    /// before it hangs up (default: [`DEFAULT_PATIENCE`]).
    pub patience: Duration,
    /// Vonage's signature secret: with it, every webhook request and a `vonage`-authorized
    /// handshake carry a signed JWT, as Vonage sends them (default: none).
    pub signature_secret: Option<Secret>,
    /// PEM certificates to trust for `https://` and `wss://` instead of the web's roots
    /// (a test or private CA; default: none).
    pub ca_file: Option<PathBuf>,
}

impl Dial {
    /// A call to `answer_url` with Vonage's defaults.
    pub fn new(answer_url: impl Into<String>) -> Dial {
        Dial {
            answer_url: answer_url.into(),
            fallback_answer_url: None,
            method: Method::Get,
            event_url: None,
            post_events: true,
            urls: Urls::default(),
            from: "447700900000".into(),
            to: "447700900001".into(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            answer_timeout: DEFAULT_ANSWER_TIMEOUT,
            event_timeout: EVENT_TIMEOUT,
            talk_rate: DEFAULT_TALK_RATE,
            patience: DEFAULT_PATIENCE,
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
    pub(crate) fn signed(&self, body: Option<&[u8]>) -> Option<String> {
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

    /// Sets [`Dial::answer_timeout`].
    pub fn answer_timeout(mut self, timeout: Duration) -> Self {
        self.answer_timeout = timeout;
        self
    }

    /// Sets [`Dial::event_timeout`].
    pub fn event_timeout(mut self, timeout: Duration) -> Self {
        self.event_timeout = timeout;
        self
    }

    /// Sets [`Dial::fallback_answer_url`].
    pub fn fallback_answer_url(mut self, url: Option<String>) -> Self {
        self.fallback_answer_url = url;
        self
    }

    /// Sets [`Dial::method`].
    pub fn method(mut self, method: Method) -> Self {
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

    /// Sets where every socket is opened, its path and query kept from the NCCO
    /// ([`Urls::socket`]).
    pub fn ws_url(mut self, origin: Option<Origin>) -> Self {
        self.urls.socket = origin;
        self
    }

    /// Sets the public origins whose URLs go to local ones ([`Urls::rewrites`]).
    pub fn rewrites(mut self, rewrites: Vec<Rewrite>) -> Self {
        self.urls.rewrites = rewrites;
        self
    }

    /// Sets [`Dial::patience`].
    pub fn patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }

    /// Sets [`Dial::talk_rate`].
    pub fn talk_rate(mut self, chars_per_second: f64) -> Self {
        self.talk_rate = chars_per_second;
        self
    }

    /// Sets [`Dial::ca_file`].
    pub fn ca_file(mut self, path: Option<PathBuf>) -> Self {
        self.ca_file = path;
        self
    }

    /// The certificates of `ca_file`, PEM.
    pub(crate) fn ca_pem(&self) -> Result<Option<Vec<u8>>> {
        let Some(path) = &self.ca_file else {
            return Ok(None);
        };
        std::fs::read(path)
            .map(Some)
            .map_err(|e| Error::io(format!("reading --ca-file {}", path.display()), e))
    }

    /// Requests a webhook as Vonage does: GET with `fields` in the query string (strings
    /// as they are, anything else as JSON), or POST with them as a JSON body; signed when
    /// Vonage signs; connected within `connect_timeout` and answered within `whole`.
    pub(crate) fn webhook(
        &self,
        agent: &ureq::Agent,
        method: Method,
        url: &str,
        fields: &Map<String, Value>,
        whole: Duration,
    ) -> std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        match method {
            Method::Get => {
                let pairs = fields.iter().map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.as_str(), v)
                });
                let mut request = agent.get(url).query_pairs(pairs);
                if let Some(signed) = self.signed(None) {
                    request = request.header("Authorization", signed);
                }
                let request = request.config().timeout_connect(Some(self.connect_timeout));
                request.timeout_global(Some(whole)).build().call()
            }
            Method::Post => {
                let body = Value::Object(fields.clone()).to_string();
                let mut request = agent.post(url).header("Content-Type", "application/json");
                if let Some(signed) = self.signed(Some(body.as_bytes())) {
                    request = request.header("Authorization", signed);
                }
                let request = request.config().timeout_connect(Some(self.connect_timeout));
                request.timeout_global(Some(whole)).build().send(body)
            }
        }
    }

    /// The HTTP client; each request sets the timeouts Vonage gives its webhook.
    pub(crate) fn agent(&self) -> Result<ureq::Agent> {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build();
        match self.ca_pem()? {
            Some(pem) => Ok(tls::agent(config, tls::client_config(Some(&pem))?)),
            None => Ok(config.new_agent()),
        }
    }

    /// How `wss://` sockets are verified: the CA file's certificates, else the web's roots.
    pub(crate) fn tls_connector(&self) -> Result<tungstenite::Connector> {
        let pem = self.ca_pem()?;
        Ok(tungstenite::Connector::Rustls(tls::client_config(
            pem.as_deref(),
        )?))
    }

    /// Where the call's events go, when they are posted at all.
    pub(crate) fn event_target(&self) -> Result<Option<EventTarget>> {
        if !self.post_events {
            return Ok(None);
        }
        let url = match &self.event_url {
            Some(url) => url.clone(),
            None => self.default_event_url()?,
        };
        Ok(Some(EventTarget {
            url,
            method: Method::Post,
        }))
    }

    /// The socket leg `connect` opens in `call`: to the uri as the NCCO wrote it, its
    /// caller id, its headers, and its events going where [`Dial::socket_event_target`]
    /// says.
    pub(crate) fn socket_leg(&self, connect: &Connect, call: &Leg) -> Leg {
        call.socket(
            &connect.endpoint.uri,
            connect.from.as_deref(),
            connect.endpoint.headers.clone(),
            self.socket_event_target(connect, call),
        )
    }

    /// Where a socket leg's events go: `connect`'s `eventUrl` (rewritten to a local
    /// address when asked), else the call's.
    pub(crate) fn socket_event_target(&self, connect: &Connect, call: &Leg) -> Option<EventTarget> {
        if !self.post_events {
            return None;
        }
        match &connect.events {
            Some(target) => Some(EventTarget {
                url: self.urls.rewrite(&target.url),
                method: target.method,
            }),
            None => call.target.clone(),
        }
    }

    /// `/webhooks/events` beside the answer URL.
    pub(crate) fn default_event_url(&self) -> Result<String> {
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

/// A socket leg Vonage has opened: the handshake made and `websocket:connected` sent.
pub(crate) struct Dialed {
    /// The call's uuid.
    pub(crate) id: CallId,
    pub(crate) format: AudioFormat,
    /// Where the socket was opened.
    pub(crate) socket_uri: String,
    pub(crate) ws: WebSocket<MaybeTlsStream<TcpStream>>,
    /// The first message, sent already; its echo is expected.
    pub(crate) connected: String,
    /// From the socket's TCP connect to the handshake's 101.
    pub(crate) handshake: Duration,
    /// When Vonage ends the leg, whatever happens on it (`connect`'s `limit`).
    pub(crate) ends_at: Instant,
}

/// A call or a leg that went no further: the rule it broke, and how.
#[derive(Debug)]
pub(crate) struct Failed {
    pub(crate) check: Check,
    pub(crate) error: Error,
}

/// How long the two steps of call setup took, as Vonage waits on them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SetupTimes {
    /// From the answer webhook's request to its whole answer (the attempt that gave it).
    pub(crate) answer: Duration,
    /// From the socket's TCP connect to the handshake's 101.
    pub(crate) handshake: Duration,
}

/// A call that has its NCCO.
pub(crate) struct Answered {
    pub(crate) reading: Reading,
    /// Every request to the answer and fallback answer URLs.
    pub(crate) attempts: Vec<Attempt>,
}

/// The start of a call as Vonage plays it: `started` and `ringing`, the answer webhook
/// (retries and fallback included), the NCCO read, and `answered`. A call that goes no
/// further has had its `completed` (and, for an NCCO Vonage cannot run, the error event
/// with its reason) handed to `post`; its attempts come back with the failure.
pub(crate) fn answer_call(
    dial: &Dial,
    agent: &ureq::Agent,
    leg: &mut Leg,
    post: &mut dyn FnMut(&Leg, events::Event),
) -> std::result::Result<Answered, (Failed, Vec<Attempt>)> {
    post(leg, leg.event(Status::Started));
    post(leg, leg.event(Status::Ringing));
    let params = [
        ("to", dial.to.clone()),
        ("from", dial.from.clone()),
        ("uuid", leg.uuid.as_str().to_owned()),
        ("conversation_uuid", leg.conversation.clone()),
        ("region_url", "https://api-us-3.vonage.com".to_owned()),
        ("endpoint_type", "phone".to_owned()),
    ];
    let asked = answer::ask(dial, agent, &params);
    let failed = |check, error, leg: &Leg, post: &mut dyn FnMut(&Leg, events::Event)| {
        post(leg, leg.event(Status::Completed(HungUp::Platform)));
        Failed { check, error }
    };
    let body = match asked.body {
        Ok(body) => body,
        Err(error) => {
            let check = match error {
                Error::Ncco(_) => Check::Ncco,
                _ => Check::AnswerWebhook,
            };
            return Err((failed(check, error, leg, post), asked.attempts));
        }
    };
    let reading = match ncco::read(&body) {
        Ok(reading) => reading,
        Err(reason) => {
            post(leg, leg.ncco_error(&reason));
            let fail = failed(Check::Ncco, Error::Ncco(reason), leg, post);
            return Err((fail, asked.attempts));
        }
    };
    leg.answer();
    post(leg, leg.event(Status::Answered));
    Ok(Answered {
        reading,
        attempts: asked.attempts,
    })
}

/// Opens the socket leg of `connect` as Vonage does: `started`, the handshake at the uri
/// (where `--ws-url` or `--rewrite` point it) within the action's `timeout`, then
/// `answered` and `websocket:connected`, or `failed`/`unanswered` with a detail.
pub(crate) fn open_leg(
    dial: &Dial,
    id: &CallId,
    connect: &Connect,
    leg: &mut Leg,
    post: &mut dyn FnMut(&Leg, events::Event),
) -> std::result::Result<Dialed, Failed> {
    post(leg, leg.event(Status::Started));
    let endpoint = &connect.endpoint;
    let socket_uri = dial.urls.socket(&endpoint.uri);
    let connecting = Instant::now();
    let deadline = connecting + connect.timeout;
    let opened = socket_request(dial, &socket_uri, endpoint.authorization.as_ref())
        .and_then(|request| open_socket(dial, &socket_uri, request, deadline));
    let mut ws = match opened {
        Ok(ws) => ws,
        Err(error) => {
            // A socket still not open at the connect's timeout did not answer; one that
            // failed sooner was not there to answer.
            let status = if Instant::now() >= deadline {
                Status::Unanswered("timeout")
            } else {
                Status::Failed("unavailable")
            };
            post(leg, leg.event(status));
            return Err(Failed {
                check: Check::Handshake,
                error,
            });
        }
    };
    let handshake = connecting.elapsed();
    leg.answer();
    post(leg, leg.event(Status::Answered));
    let connected = messages::connected(endpoint.content_type, &endpoint.headers);
    if let Err(e) = ws.send(tungstenite::Message::text(connected.clone())) {
        post(leg, leg.event(Status::Completed(HungUp::Platform)));
        return Err(Failed {
            check: Check::Handshake,
            error: Error::from(e),
        });
    }
    Ok(Dialed {
        id: id.clone(),
        format: endpoint.content_type,
        socket_uri,
        ws,
        connected,
        handshake,
        ends_at: Instant::now() + connect.limit,
    })
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
    deadline: Instant,
) -> Result<WebSocket<MaybeTlsStream<TcpStream>>> {
    let stream = connect(request.uri(), deadline)?;
    let config = limits::websocket_config(limits::DEFAULT_MAX_MESSAGE_BYTES);
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
                "socket handshake at {uri} timed out (the connect action's timeout)"
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

/// Opens the TCP connection for a `ws://` or `wss://` uri by `deadline`, and gives each of
/// its reads and writes what is then left: a handshake that stalls ends at the connect's
/// timeout. (A server that trickles its answer a byte at a time can outlast it, each read
/// waiting up to that much again.)
fn connect(uri: &http::Uri, deadline: Instant) -> Result<TcpStream> {
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
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            last = Some(std::io::ErrorKind::TimedOut.into());
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => {
                let left = deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1));
                stream
                    .set_nodelay(true)
                    .and_then(|()| stream.set_read_timeout(Some(left)))
                    .and_then(|()| stream.set_write_timeout(Some(left)))
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
