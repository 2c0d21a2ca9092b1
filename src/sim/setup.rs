//! Call setup as Vonage plays it, in blocking steps: the answer and the NCCO read with the
//! call's first events (`answer_call`), then each socket leg's handshake and
//! `websocket:connected` (`open_leg`); and where each leg's events go.

use std::{
    net::{TcpStream, ToSocketAddrs},
    time::{Duration, Instant},
};

use tungstenite::{client::IntoClientRequest, http, stream::MaybeTlsStream, WebSocket};

use super::{
    answer::{self, Attempt},
    dial::{Dial, Method},
    events::{self, EventTarget, HungUp, Leg, Status},
    findings::Check,
    ncco::{self, Connect, Reading},
};
use crate::{
    error::{Error, Result},
    protocol::audio::AudioFormat,
    protocol::call_id::CallId,
    protocol::limits,
    protocol::messages,
    protocol::ncco::Authorization,
};

impl Dial {
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
