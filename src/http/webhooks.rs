//! The webhook application: the answer and event webhooks, `/health`, `/ready` and
//! `/metrics` — routing, and the status code and body of every reply. Requests reach it
//! whole and checked, through the front door and tiny_http (`host`); it reads them and
//! replies, and knows nothing of either.
//!
//! What an operator reads from it:
//!
//! - `GET /health` answers 200 with `{"status": "ok", "draining": false, "active_calls": N,
//!   "uptime_seconds": S}`; `GET /ready` answers 200, or 503 while the server drains. Both
//!   take `HEAD`, as some balancers probe with it.
//! - `GET /metrics` serves Prometheus' text format: `vonage_echo_calls_active`,
//!   `vonage_echo_calls_total`, `vonage_echo_calls_ended_total{code}`,
//!   `vonage_echo_handshakes_refused_total{reason}`, `vonage_echo_frames_{in,out}_total`
//!   and `vonage_echo_bytes_{in,out}_total` (audio), `vonage_echo_texts_out_total` (texts
//!   echoed), `vonage_echo_dtmf_digits_total`,
//!   `vonage_echo_webhook_requests_total{route,status}`,
//!   `vonage_echo_call_events_total{status}`, the histogram
//!   `vonage_echo_call_duration_seconds`, the histogram
//!   `vonage_echo_webhook_duration_seconds{route}` (from a request read whole to its answer
//!   written, by route: `answer`, `events`, `health`, `ready`, `metrics`, `other`),
//!   `vonage_echo_draining` (1 while draining), `vonage_echo_build_info{version}`, and the
//!   process's own figures under the names of Prometheus' client libraries:
//!   `process_cpu_seconds_total`, `process_resident_memory_bytes`,
//!   `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds` and
//!   `process_start_time_seconds`. Route it through the proxy only if it should be public.
//! - A wrong request gets a JSON `{"error": "..."}` with 400, 404, 405, 408, 411, 413 or
//!   431.

use serde_json::{json, Map, Value};
use tiny_http::{Header, Method};

use crate::{
    config::SocketAuth,
    http::{hop::PEER_HEADER, refusal::error_body},
    metrics::State,
    protocol::auth::{self, AuthError},
    protocol::call_id::CallId,
    protocol::events::Event,
    protocol::ncco::{
        headers_len, Authorization, Ncco, WebsocketEndpoint, MAX_ENDPOINT_HEADERS_BYTES,
    },
    record,
    shared::Shared,
};

/// Where the webhooks are served.
pub const ANSWER_PATH: &str = "/webhooks/answer";
/// Where call events are posted.
pub const EVENTS_PATH: &str = "/webhooks/events";
/// The liveness check: 200 while the process serves, draining or not.
pub const HEALTH_PATH: &str = "/health";
/// The readiness check: 200 while the server takes new calls, 503 once it drains.
pub const READY_PATH: &str = "/ready";
/// The Prometheus scrape.
pub const METRICS_PATH: &str = "/metrics";
pub use crate::shared::SOCKET_PATH;

/// An answer: status, body and its type, and the `Allow` header of a 405.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: String,
    pub(crate) allow: Option<&'static str>,
    pub(crate) content_type: &'static str,
}

impl Reply {
    fn json(status: u16, body: &impl serde::Serialize) -> Reply {
        Reply {
            status,
            body: serde_json::to_string(body).unwrap_or_default(),
            allow: None,
            content_type: "application/json",
        }
    }

    /// A refusal or error, its reason in the one error body ([`error_body`]).
    pub(crate) fn error(status: u16, reason: impl Into<String>) -> Reply {
        Reply {
            status,
            body: error_body(&reason.into()),
            allow: None,
            content_type: "application/json",
        }
    }

    fn empty() -> Reply {
        Reply {
            status: 200,
            body: String::new(),
            allow: None,
            content_type: "application/json",
        }
    }

    fn method_not_allowed(allow: &'static str) -> Reply {
        Reply {
            allow: Some(allow),
            ..Reply::error(405, format!("method not allowed; use {allow}"))
        }
    }
}

/// What the webhooks read of a request: its method, target, headers and whole body, in
/// tiny_http's words.
pub(crate) struct Incoming<'a> {
    method: &'a Method,
    path: &'a str,
    query: &'a str,
    headers: &'a [Header],
    body: Vec<u8>,
}

impl<'a> Incoming<'a> {
    /// The request for `url` (path and query), with `headers` and `body`.
    pub(crate) fn new(
        method: &'a Method,
        url: &'a str,
        headers: &'a [Header],
        body: Vec<u8>,
    ) -> Incoming<'a> {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        Incoming {
            method,
            path,
            query,
            headers,
            body,
        }
    }

    /// The caller's address, as the gate names it ([`PEER_HEADER`]).
    pub(crate) fn peer(&self) -> &str {
        self.header(PEER_HEADER).unwrap_or("-")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str().trim())
    }
}

/// The webhooks' reply to a request: refused unless signed when a signature secret is set,
/// else as its route answers.
pub(crate) fn reply(req: &Incoming, shared: &Shared) -> Reply {
    match check_signature(req, shared) {
        Ok(()) => route(req, shared),
        Err(e) => Reply::error(401, e.to_string()),
    }
}

/// Counts a reply in the metrics and logs it: a refusal or error as a warning, the rest
/// at debug.
pub(crate) fn account(req: &Incoming, reply: &Reply, shared: &Shared) {
    shared.metrics.webhook(route_label(req.path), reply.status);
    // A draining instance's 503 at /ready is its answer, not a fault.
    if reply.status >= 400 && req.path != READY_PATH {
        log::warn!(
            "{} {} {}: {} {}",
            req.peer(),
            req.method,
            req.path,
            reply.status,
            reply.body
        );
    } else {
        log::debug!(
            "{} {} {}: {}",
            req.peer(),
            req.method,
            req.path,
            reply.status
        );
    }
}

/// With a signature secret, a webhook request must be signed by Vonage.
fn check_signature(req: &Incoming, shared: &Shared) -> Result<(), AuthError> {
    let Some(secret) = &shared.config.signature_secret else {
        return Ok(());
    };
    if !req.path.starts_with("/webhooks/") {
        return Ok(());
    }
    let body = (*req.method == Method::Post).then_some(req.body.as_slice());
    auth::verify_signed(
        req.header("Authorization"),
        secret,
        shared.config.signature_tolerance,
        body,
    )
    .map(|_| ())
}

fn route(req: &Incoming, shared: &Shared) -> Reply {
    match (req.path, req.method) {
        (ANSWER_PATH, Method::Get) => answer(query_fields(req.query), req, shared),
        (ANSWER_PATH, Method::Post) => match body_fields(&req.body) {
            Ok(fields) => answer(fields, req, shared),
            Err(reply) => reply,
        },
        (EVENTS_PATH, Method::Get) => event(query_fields(req.query), shared),
        (EVENTS_PATH, Method::Post) => match body_fields(&req.body) {
            Ok(fields) => event(fields, shared),
            Err(reply) => reply,
        },
        (HEALTH_PATH, Method::Get | Method::Head) => Reply::json(
            200,
            &json!({
                "status": "ok",
                "draining": shared.draining(),
                "active_calls": shared.active_calls(),
                "uptime_seconds": shared.started.elapsed().as_secs(),
            }),
        ),
        (READY_PATH, Method::Get | Method::Head) => ready(shared),
        (METRICS_PATH, Method::Get) => Reply {
            status: 200,
            body: shared.metrics.render(State {
                active_calls: shared.active_calls(),
                draining: shared.draining(),
            }),
            allow: None,
            content_type: "text/plain; version=0.0.4",
        },
        (ANSWER_PATH | EVENTS_PATH, _) => Reply::method_not_allowed("GET, POST"),
        // Some balancers probe with HEAD.
        (HEALTH_PATH | READY_PATH, _) => Reply::method_not_allowed("GET, HEAD"),
        (METRICS_PATH, _) => Reply::method_not_allowed("GET"),
        _ => Reply::error(404, format!("no such path: {}", req.path)),
    }
}

/// Readiness: whether a balancer should send this instance new calls.
fn ready(shared: &Shared) -> Reply {
    if shared.draining() {
        Reply::json(
            503,
            &json!({ "status": "draining", "active_calls": shared.active_calls() }),
        )
    } else {
        Reply::json(200, &json!({ "status": "ready" }))
    }
}

/// Query parameters as a JSON object of strings, the shape a POST body has.
fn query_fields(query: &str) -> Map<String, Value> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect()
}

fn body_fields(body: &[u8]) -> Result<Map<String, Value>, Reply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Reply::error(400, "empty body; expected a JSON object"));
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(Reply::error(400, "expected a JSON object")),
        Err(e) => Err(Reply::error(400, format!("malformed JSON: {e}"))),
    }
}

fn event(fields: Map<String, Value>, shared: &Shared) -> Reply {
    let event = Event::from_fields(fields);
    // The call's summary is its INFO line; its events are detail.
    match event.uuid.as_deref() {
        Some(uuid) => log::debug!(call = uuid; "event: {event}"),
        None => log::debug!("event: {event}"),
    }
    shared.metrics.event(event.status.as_ref());
    if let Some(dir) = &shared.config.record_dir {
        // The uuid names a file: only a valid call id may.
        if let Some(id) = event.uuid.as_deref().and_then(|u| CallId::parse(u).ok()) {
            if let Err(e) = record::append_event(dir, &id, &Value::Object(event.fields)) {
                log::error!(call = id.as_str(); "call {id}: event not recorded: {e}");
            }
        }
    }
    Reply::empty()
}

/// The route a request target counts under in the metrics: one of
/// [`ROUTES`](crate::metrics::ROUTES), whatever
/// clients ask for.
pub(crate) fn route_label(target: &str) -> &'static str {
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    match path {
        ANSWER_PATH => "answer",
        EVENTS_PATH => "events",
        HEALTH_PATH => "health",
        READY_PATH => "ready",
        METRICS_PATH => "metrics",
        _ => "other",
    }
}

fn answer(fields: Map<String, Value>, req: &Incoming, shared: &Shared) -> Reply {
    // Said at once, so Vonage can try the fallback answer URL (and a balancer another
    // instance) instead of connecting a call that the handshake would refuse.
    if shared.draining() {
        return Reply::error(503, "draining: this instance takes no new calls");
    }
    let max = shared.config.max_calls;
    if shared.active_calls() >= max {
        return Reply::error(503, format!("at capacity: {max} calls"));
    }
    let text = |k: &str| fields.get(k).and_then(Value::as_str);
    let id = match text("uuid") {
        Some(uuid) => match CallId::parse(uuid) {
            Ok(id) => id,
            Err(reason) => return Reply::error(400, reason),
        },
        None => CallId::random(),
    };
    let base = match socket_base_url(shared, req) {
        Ok(base) => base,
        Err(reason) => return Reply::error(400, reason),
    };
    let separator = if base.contains('?') { '&' } else { '?' };
    let uri = format!("{base}{separator}uuid={}", id.as_str());
    let from = text("from").or_else(|| text("from_user"));
    let endpoint = WebsocketEndpoint {
        uri,
        content_type: shared.config.audio,
        headers: endpoint_headers(&id, from, text("to")),
        authorization: match shared.config.socket_auth {
            SocketAuth::Token => Some(Authorization::Custom {
                value: format!("Bearer {}", auth::socket_token(&shared.socket_key, &id)),
            }),
            SocketAuth::Vonage => Some(Authorization::Vonage),
            SocketAuth::None => None,
        },
    };
    log::debug!(
        call = id.as_str();
        "call {id} answered: from={} to={}",
        from.unwrap_or("-"),
        text("to").unwrap_or("-")
    );
    let ncco = Ncco::echo(&shared.config.greeting, &shared.config.from, endpoint);
    shared.drain.promise(&id);
    Reply::json(200, &ncco)
}

/// The call's `uuid`, `from` and `to`, within Vonage's 512-byte limit: the uuid always,
/// then whichever of the others still fit.
fn endpoint_headers(id: &CallId, from: Option<&str>, to: Option<&str>) -> Map<String, Value> {
    let mut headers = Map::new();
    headers.insert("uuid".into(), id.as_str().into());
    for (key, value) in [("from", from), ("to", to)] {
        let Some(value) = value else { continue };
        headers.insert(key.into(), value.into());
        if headers_len(&headers) > MAX_ENDPOINT_HEADERS_BYTES {
            log::warn!(call = id.as_str(); "call {id}: {key} left out of the socket headers: over 512 bytes");
            headers.remove(key);
        }
    }
    headers
}

/// The socket URL before its query: `--ws-url`, else the proxy's forwarded host, else this
/// request's `Host` with the WebSocket listener's port.
fn socket_base_url(shared: &Shared, req: &Incoming) -> Result<String, String> {
    if let Some(url) = &shared.config.ws_url {
        return Ok(url.clone());
    }
    if let Some(forwarded) = req.header("X-Forwarded-Host") {
        let host = first_value(forwarded);
        if !is_host(host) {
            return Err(format!("invalid X-Forwarded-Host {host:?}"));
        }
        let https = req
            .header("X-Forwarded-Proto")
            .is_some_and(|p| first_value(p).eq_ignore_ascii_case("https"));
        let scheme = if https { "wss" } else { "ws" };
        return Ok(format!("{scheme}://{host}{SOCKET_PATH}"));
    }
    let host = req.header("Host").ok_or("no Host header")?;
    if !is_host(host) {
        return Err(format!("invalid Host header {host:?}"));
    }
    let host = strip_port(host);
    Ok(format!("ws://{host}:{}{SOCKET_PATH}", shared.ws_port))
}

/// The first of a comma-separated list of values (proxies chain them).
fn first_value(value: &str) -> &str {
    value.split(',').next().unwrap_or("").trim()
}

/// A host name, IPv4 address or bracketed IPv6 address, with an optional port: nothing that
/// could break out of a URL.
fn is_host(host: &str) -> bool {
    let Some((name, port)) = split_port(host) else {
        return false;
    };
    let name_ok = match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(v6) => {
            !v6.is_empty()
                && v6
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        }
        None => {
            !name.is_empty()
                && name.len() <= 253
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        }
    };
    name_ok && port.is_none_or(|p| p.parse::<u16>().is_ok())
}

/// `host[:port]` split in two; `None` when a bracketed address is not closed or is followed
/// by something other than a port.
fn split_port(host: &str) -> Option<(&str, Option<&str>)> {
    if host.starts_with('[') {
        let end = host.find(']')?;
        let (name, after) = host.split_at(end + 1);
        match after {
            "" => Some((name, None)),
            _ => Some((name, Some(after.strip_prefix(':')?))),
        }
    } else {
        Some(match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        })
    }
}

/// `host:port` without the port; brackets of an IPv6 address are kept.
fn strip_port(host: &str) -> &str {
    split_port(host).map_or(host, |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_names_or_addresses_with_an_optional_port() {
        for good in [
            "example.com",
            "example.com:443",
            "127.0.0.1:3000",
            "[::1]",
            "[::1]:3000",
            "a-b.c",
        ] {
            assert!(is_host(good), "{good}");
        }
        for bad in [
            "", "a b", "a/b", "x:99999", "[::1", "[zz]", "a\"b", "h:1:2:x",
        ] {
            assert!(!is_host(bad), "{bad}");
        }
    }

    #[test]
    fn port_is_stripped_from_names_and_ipv6_addresses() {
        assert_eq!(strip_port("example.com:3000"), "example.com");
        assert_eq!(strip_port("[::1]:3000"), "[::1]");
        assert_eq!(strip_port("example.com"), "example.com");
    }

    #[test]
    fn socket_headers_keep_the_uuid_and_drop_what_does_not_fit() {
        let id = CallId::parse("abc").unwrap();
        let huge = "9".repeat(600);
        let headers = endpoint_headers(&id, Some("447700900001"), Some(&huge));
        assert_eq!(headers["uuid"], "abc");
        assert_eq!(headers["from"], "447700900001");
        assert!(!headers.contains_key("to"));
    }

    #[test]
    fn arbitrary_query_strings_and_hosts_never_panic() {
        let alphabet = b"=&%+uuidfromtostatus0123456789abcdefABCDEF[]:.-";
        for text in crate::soup::strings(13, 20_000, 100, alphabet) {
            let fields = query_fields(&text);
            let _ = Event::from_fields(fields).to_string();
            let _ = is_host(&text);
            let _ = strip_port(&text);
        }
    }

    #[test]
    fn arbitrary_json_bodies_never_panic() {
        for text in crate::soup::strings(17, 20_000, 120, crate::soup::JSON) {
            if let Ok(fields) = body_fields(text.as_bytes()) {
                let _ = Event::from_fields(fields).to_string();
            }
        }
    }

    #[test]
    fn every_route_label_is_one_the_metrics_keep() {
        for target in [
            ANSWER_PATH,
            "/webhooks/events?uuid=a",
            HEALTH_PATH,
            READY_PATH,
            METRICS_PATH,
            "/elsewhere",
        ] {
            let label = route_label(target);
            assert!(crate::metrics::ROUTES.contains(&label), "{target}: {label}");
        }
        assert_eq!(route_label("/webhooks/answer?uuid=a"), "answer");
    }

    #[test]
    fn query_parameters_are_decoded() {
        let fields = query_fields("to=447700900000&from=%2B44%207700&uuid=u-1");
        assert_eq!(fields["from"], "+44 7700");
        assert_eq!(fields["uuid"], "u-1");
    }
}
