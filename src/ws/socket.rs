//! The WebSocket listener: accepts connections, checks each handshake (path, capacity,
//! deadline), and starts one thread per admitted call.

use std::{
    io::Write,
    net::{SocketAddr, TcpListener, TcpStream},
    sync::Arc,
    time::Instant,
};

use tungstenite::{
    handshake::{
        server::{Callback, ErrorResponse, Request, Response, ServerHandshake},
        HandshakeError,
    },
    http,
    protocol::WebSocketConfig,
    WebSocket,
};

use crate::{
    admission::{Registered, Slot},
    call_threads::CallJob,
    config::{Config, SocketAuth},
    http::refusal::{error_body, refusal},
    listen::{self, IfNoThread, NotAdmitted},
    protocol::auth,
    protocol::call_id::CallId,
    shared::{Shared, SOCKET_PATH},
    threads::{self, TICK},
    ws::call::{self, CallGuards},
    ws::refusal::Refusal,
    ws::stream::CallStream,
};

/// The WebSocket settings for a call: Vonage-sized buffers, and the configured largest
/// message.
pub fn ws_config(config: &Config) -> WebSocketConfig {
    crate::protocol::limits::websocket_config(config.max_message_bytes)
}

/// Accepts socket connections until the server stops.
pub(crate) fn accept_loop(listener: TcpListener, shared: &Arc<Shared>) {
    listen::accept_loop(&listener, shared, "socket", |stream, peer| {
        let max = shared.config.max_pending_handshakes;
        let s = Arc::clone(shared);
        // The handshake runs on a thread of setup's; the call then on a call thread.
        let serve = move |stream, pending| {
            if let Some((ws, admitted)) = handshake(stream, peer, pending, &s) {
                start_call(ws, admitted, peer, &s);
            }
        };
        let (count, threads) = (&shared.pending_handshakes, &shared.handshakes);
        let name = format!("ws-{peer}");
        match listen::admit(
            stream,
            (count, max),
            threads,
            name,
            IfNoThread::Answer,
            serve,
        ) {
            Ok(()) => {}
            Err(NotAdmitted::Full(stream)) => {
                log::warn!("{peer}: refused, {max} handshakes already pending");
                shared.metrics.refused(Refusal::TooManyPending.label());
                let answer = refusal(503, "too many handshakes in progress");
                listen::turn_away(&stream, &answer);
            }
            Err(NotAdmitted::NoThread(e, reply_to)) => {
                log::error!(
                    "{peer}: cannot start a thread for the handshake: {e}; refused with 503"
                );
                shared.metrics.refused(Refusal::Capacity.label());
                if let Some(stream) = reply_to {
                    listen::turn_away(&stream, &refusal(503, "server cannot take the call now"));
                }
            }
        }
    });
}

/// Hands an admitted call to a call thread, which names itself for the call and runs the
/// echo loop to the end (taking the audio's place on the core once the call has settled).
fn start_call(
    ws: WebSocket<CallStream>,
    admitted: Admitted,
    peer: SocketAddr,
    shared: &Arc<Shared>,
) {
    let Admitted { id, guards } = admitted;
    let name = format!("call-{id}");
    // Kept to close the socket with 1013 should no thread run the call.
    let socket = ws.get_ref().try_clone_socket().ok();
    let s = Arc::clone(shared);
    let thread_name = name.clone();
    let job: CallJob = Box::new(move || {
        threads::rename_own(&thread_name);
        call::run(ws, id, peer, guards, &s);
    });
    let s = Arc::clone(shared);
    let stopping = Arc::new(move || s.stopping());
    if let Err(e) = shared.calls.run(name.clone(), job, stopping) {
        log::error!("{name}: cannot start its thread: {e}; closed with 1013");
        if let Some(socket) = socket {
            let mut ws = WebSocket::from_raw_socket(
                CallStream::new(socket),
                tungstenite::protocol::Role::Server,
                Some(ws_config(&shared.config)),
            );
            let _ = ws.close(Some(tungstenite::protocol::CloseFrame {
                code: tungstenite::protocol::frame::coding::CloseCode::Again,
                reason: "server cannot take the call now".into(),
            }));
            let _ = ws.flush();
        }
    }
}

/// A connection the handshake let in: its call, and what it holds while it lasts.
struct Admitted {
    id: CallId,
    guards: CallGuards,
}

// tungstenite's handshake callback fixes its error type, an HTTP response.
#[allow(clippy::result_large_err)]
fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    pending: Slot,
    shared: &Shared,
) -> Option<(WebSocket<CallStream>, Admitted)> {
    let config = &shared.config;
    let prepared = stream
        .set_nodelay(true)
        .and_then(|()| stream.set_read_timeout(Some(TICK)))
        .and_then(|()| stream.set_write_timeout(Some(config.write_timeout)));
    if let Err(e) = prepared {
        log::debug!("{peer}: socket setup failed: {e}");
        return None;
    }
    let deadline = Instant::now() + config.handshake_timeout;
    // To answer a request tungstenite refuses without a word (not a WebSocket handshake).
    let reply_to = stream.try_clone().ok();
    let mut stream = CallStream::new(stream);
    // However the request trickles in, the handshake looks up at its deadline.
    stream.yield_at(deadline);
    let mut admitted = None;
    let callback = |request: &Request, response: Response| {
        let admission = admit(request, shared).map_err(|(why, reason)| {
            shared.metrics.refused(why.label());
            let status = why.status();
            // The refusal's one line: tungstenite's error that follows says only the status.
            log::info!("{peer}: handshake refused with {status}: {reason}");
            refuse(status, &reason)
        })?;
        admitted = Some(admission);
        Ok(response)
    };
    let attempt = tungstenite::accept_hdr_with_config(stream, callback, Some(ws_config(config)));
    let mut ws = match drive(attempt, deadline, shared) {
        Ok(ws) => ws,
        Err(Unfinished::Stopping) => {
            shared.metrics.refused(Refusal::ShuttingDown.label());
            return None;
        }
        Err(Unfinished::TimedOut) => {
            log::warn!(
                "{peer}: handshake not completed within {:?}; dropped",
                config.handshake_timeout
            );
            shared.metrics.refused(Refusal::Timeout.label());
            return None;
        }
        // A refusal of ours, logged where it was decided.
        Err(Unfinished::Refused) => return None,
        Err(Unfinished::Failed(e)) => {
            log::info!("{peer}: handshake failed: {e}");
            if admitted.is_none() {
                shared.metrics.refused(Refusal::Malformed.label());
                if let Some(mut socket) = reply_to {
                    let reason = format!("not a WebSocket handshake: {e}");
                    let _ = socket.write_all(&refusal(400, &reason));
                }
            }
            return None;
        }
    };
    drop(pending);
    ws.get_mut().defer_writes();
    drop(reply_to);
    // A completed handshake has passed the callback.
    admitted.map(|admitted| (ws, admitted))
}

/// Why a handshake did not end in a socket.
enum Unfinished {
    /// The server stops.
    Stopping,
    /// Its deadline passed.
    TimedOut,
    /// The callback refused it, and answered.
    Refused,
    /// It was not a WebSocket handshake, or the connection failed.
    Failed(tungstenite::Error),
}

/// Carries a handshake on, a tick at a time, until it is done, fails, passes `deadline`
/// or the server stops.
fn drive<C: Callback>(
    mut attempt: Result<WebSocket<CallStream>, HandshakeError<ServerHandshake<CallStream, C>>>,
    deadline: Instant,
    shared: &Shared,
) -> Result<WebSocket<CallStream>, Unfinished> {
    loop {
        match attempt {
            Ok(ws) => return Ok(ws),
            Err(HandshakeError::Interrupted(mid)) => {
                if shared.stopping() {
                    return Err(Unfinished::Stopping);
                }
                if Instant::now() >= deadline {
                    return Err(Unfinished::TimedOut);
                }
                attempt = mid.handshake();
            }
            Err(HandshakeError::Failure(tungstenite::Error::Http(_))) => {
                return Err(Unfinished::Refused)
            }
            Err(HandshakeError::Failure(e)) => return Err(Unfinished::Failed(e)),
        }
    }
}

/// Decides whether a handshake request becomes a call.
fn admit(request: &Request, shared: &Shared) -> Result<Admitted, (Refusal, String)> {
    let uri = request.uri();
    if uri.path() != SOCKET_PATH {
        let reason = format!("no WebSocket at {}; use {SOCKET_PATH}", uri.path());
        return Err((Refusal::Path, reason));
    }
    if shared.stopping() {
        return Err((Refusal::ShuttingDown, "server is shutting down".into()));
    }
    let uuid = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "uuid")
        .map(|(_, v)| v.into_owned());
    let id = match uuid {
        Some(uuid) => Some(CallId::parse(&uuid).map_err(|reason| (Refusal::BadUuid, reason))?),
        None => None,
    };
    if !shared.drain.admits(id.as_ref()) {
        let reason = "server is draining: it takes no new calls";
        return Err((Refusal::Draining, reason.into()));
    }
    let authorization = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let config = &shared.config;
    let verified = match (config.socket_auth, &id, &config.signature_secret) {
        (SocketAuth::None, _, _) => Ok(()),
        (SocketAuth::Token, Some(id), _) => {
            auth::verify_socket_token(authorization, &shared.socket_key, id)
        }
        (SocketAuth::Token, None, _) => {
            let reason = "the socket URL must carry the uuid the NCCO gave";
            return Err((Refusal::Unauthorized, reason.into()));
        }
        (SocketAuth::Vonage, _, Some(secret)) => {
            auth::verify_signed(authorization, secret, config.signature_tolerance, None).map(|_| ())
        }
        // Config::validate refuses vonage without a secret.
        (SocketAuth::Vonage, _, None) => Err(auth::AuthError::Missing),
    };
    verified.map_err(|e| (Refusal::Unauthorized, e.to_string()))?;
    let registered = match &id {
        Some(id) => Some(
            Registered::try_register(&shared.live_ids, id.as_str()).ok_or_else(|| {
                (
                    Refusal::Duplicate,
                    format!("call {id} already has an open socket"),
                )
            })?,
        ),
        None => None,
    };
    let id = id.unwrap_or_else(CallId::anonymous);
    let max = shared.config.max_calls;
    let slot = Slot::try_take(&shared.active_calls, max)
        .ok_or_else(|| (Refusal::Capacity, format!("at capacity: {max} calls")))?;
    // Counted among the calls now, so the promise can go (see Server::is_drained).
    shared.drain.redeem(&id);
    let guards = CallGuards::new(slot, registered);
    Ok(Admitted { id, guards })
}

/// A handshake refusal with a JSON reason.
fn refuse(status: u16, reason: &str) -> ErrorResponse {
    let mut response = http::Response::new(Some(error_body(reason)));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
