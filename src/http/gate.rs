//! The webhooks' front door. tiny_http 0.12 has no read timeout, no header size limit and
//! unbounded helper threads, panics on a peer that has already gone, stops accepting for
//! good after one `accept()` error, and refuses request heads with non-ASCII bytes that
//! `httparse` accepts. So the public port is ours: this module accepts with backoff, bounds
//! connections, reads each request whole under a deadline and within size limits, makes
//! its head one that tiny_http takes, and only then hands it to tiny_http over the private
//! socket ([`super::upstream`]), where none of those failure modes can be reached from the
//! network. A connection carries as many requests as its client sends (keep-alive), so a
//! webhook costs no connect and no thread of its own.

use std::{
    io::{self, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{atomic::AtomicUsize, Arc},
    time::{Duration, Instant},
};

use crate::{
    error::is_timeout,
    http::{hop::PEER_HEADER, refusal::refusal, upstream::Upstream, webhooks::route_label},
    listen::{self, IfNoThread, NotAdmitted},
    shared::Shared,
    threads::{ThreadSet, TICK},
};

/// Headers that describe the client's hop only and are not forwarded. Nor is the peer
/// header ([`PEER_HEADER`]): a client's copy cannot forge it.
const HOP_HEADERS: [&str; 6] = [
    "connection",
    "keep-alive",
    "expect",
    "content-length",
    "proxy-connection",
    "te",
];

/// Headers the webhooks read. tiny_http takes ASCII only: one of these that is not ASCII is
/// refused with 400; any other header that is not ASCII is left out, as nothing reads it.
const READ_HEADERS: [&str; 5] = [
    "host",
    "authorization",
    "x-forwarded-host",
    "x-forwarded-proto",
    "content-type",
];

/// The most headers a request may have; more get 431.
const MAX_HEADERS: usize = 100;

/// How long a closing connection keeps reading (and discarding) what its client still
/// sends ([`listen::linger`]).
const LINGER: Duration = Duration::from_secs(2);

/// The front door of one server: its connections from clients, each on a thread of its
/// own, and its connections to tiny_http.
pub(crate) struct Gate {
    shared: Arc<Shared>,
    upstream: Upstream,
    /// Client connections open now, bounded by `--max-http-connections`.
    open: Arc<AtomicUsize>,
    /// Each client connection's thread.
    threads: ThreadSet,
}

impl Gate {
    /// The gate of `shared`'s server, forwarding to tiny_http through `upstream`.
    pub(crate) fn new(shared: Arc<Shared>, upstream: Upstream) -> Gate {
        Gate {
            shared,
            upstream,
            open: Arc::default(),
            threads: ThreadSet::default(),
        }
    }

    /// Accepts webhook connections until the server stops.
    pub(crate) fn accept_loop(self: &Arc<Gate>, listener: TcpListener) {
        let shared = &self.shared;
        listen::accept_loop(&listener, shared, "webhooks", |stream, peer| {
            let max = shared.config.max_http_connections;
            let gate = Arc::clone(self);
            let serve = move |stream, _slot| {
                serve_connection(stream, peer, &gate.shared, &gate.upstream);
            };
            let name = format!("http-{peer}");
            let admitted = listen::admit(
                stream,
                (&self.open, max),
                &self.threads,
                name,
                IfNoThread::Close,
                serve,
            );
            match admitted {
                Ok(()) => {}
                Err(NotAdmitted::Full(stream)) => {
                    log::warn!("{peer}: refused, {max} HTTP connections already open");
                    shared.metrics.webhook("unread", 503);
                    listen::turn_away(&stream, &refusal(503, "too many connections"));
                }
                Err(NotAdmitted::NoThread(e, _)) => {
                    log::error!("{peer}: cannot start a thread for the request: {e}");
                }
            }
        });
    }

    /// Waits for every connection's thread (they end once the server stops), then closes
    /// the connections to tiny_http that were kept for the next request, so that
    /// tiny_http's threads serving them end.
    pub(crate) fn close(&self) {
        self.threads.join_all();
        self.upstream.close_all();
    }
}

/// Why a request is not forwarded.
#[derive(Debug)]
enum Refused {
    /// Answer with this status and reason, then close.
    Status(u16, String),
    /// The peer went away, stayed idle past keep-alive, or the server stops: nothing to
    /// answer.
    Gone,
}

/// One request, read whole and checked, as tiny_http gets it.
struct Request {
    /// Head and body for tiny_http.
    upstream: Vec<u8>,
    /// The client keeps the connection for another request.
    keep_alive: bool,
    /// A HEAD request: its answer has no body.
    head_only: bool,
    /// The route it counts under in the metrics.
    route: &'static str,
}

/// Serves one connection's requests, one after another, until the client closes, stays
/// idle past keep-alive, asks to close, or sends what is refused.
fn serve_connection(mut client: TcpStream, peer: SocketAddr, shared: &Shared, upstream: &Upstream) {
    let _ = client.set_nodelay(true);
    let _ = client.set_write_timeout(Some(shared.config.http_request_timeout));
    // Bytes read past the end of one request: the start of the next.
    let mut pending = Vec::new();
    let mut idle_until = None;
    loop {
        let request = match read_request(&mut client, &mut pending, idle_until, peer, shared) {
            Ok(request) => request,
            Err(Refused::Status(status, reason)) => {
                log::warn!("{peer}: HTTP {status}: {reason}");
                shared.metrics.webhook("unread", status);
                let _ = client.write_all(&refusal(status, &reason));
                break;
            }
            Err(Refused::Gone) => break,
        };
        let answering = Instant::now();
        // A draining server lets its clients go, so their next request goes to another
        // instance through the balancer.
        let keep_alive = request.keep_alive
            && !shared.config.http_keep_alive.is_zero()
            && !shared.stopping()
            && !shared.draining();
        let answer = match upstream.forward(&request.upstream, request.head_only) {
            Ok(answer) => with_connection(&answer, keep_alive),
            Err(e) => {
                log::error!("{peer}: webhooks did not answer: {e}");
                let _ = client.write_all(&refusal(503, "webhooks unavailable"));
                break;
            }
        };
        let written = client.write_all(&answer);
        shared
            .metrics
            .webhook_latency(request.route, answering.elapsed());
        if written.is_err() || !keep_alive {
            break;
        }
        idle_until = Some(Instant::now() + shared.config.http_keep_alive);
    }
    listen::linger(&mut client, LINGER);
}

/// tiny_http's answer with this hop's `Connection` header after its status line.
fn with_connection(answer: &[u8], keep_alive: bool) -> Vec<u8> {
    let line_end = answer
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(answer.len(), |at| at + 2);
    let (status_line, rest) = answer.split_at(line_end);
    let connection: &[u8] = if keep_alive {
        b"Connection: keep-alive\r\n"
    } else {
        b"Connection: close\r\n"
    };
    [status_line, connection, rest].concat()
}

/// What the gate keeps of a parsed request head.
#[derive(Debug)]
struct Head {
    /// Bytes of the head, through its blank line.
    len: usize,
    method: String,
    path: String,
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    version: u8,
    headers: Vec<(String, Vec<u8>)>,
}

impl Head {
    /// The values of header `name`, trimmed, as text.
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = String> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).trim().to_owned())
    }

    /// Whether a comma-separated header (`Connection`, `Expect`) holds `token`.
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.values(name)
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }

    /// HTTP/1.1 keeps a connection unless told to close; HTTP/1.0 only when asked to.
    fn keep_alive(&self) -> bool {
        match self.version {
            1 => !self.has_token("connection", "close"),
            _ => self.has_token("connection", "keep-alive"),
        }
    }
}

/// Reads one request whole, within the limits, and returns it as tiny_http gets it. With
/// `idle_until` (a kept connection), the client may take until then to start it.
fn read_request(
    client: &mut TcpStream,
    pending: &mut Vec<u8>,
    idle_until: Option<Instant>,
    peer: SocketAddr,
    shared: &Shared,
) -> Result<Request, Refused> {
    if let Some(idle_until) = idle_until {
        if pending.is_empty() {
            // Nothing came in time, or the client closed: an idle connection ends quietly.
            match read_before(client, pending, idle_until, shared) {
                Err(Refused::Status(408, _)) => return Err(Refused::Gone),
                other => other?,
            }
        }
    }
    let deadline = Instant::now() + shared.config.http_request_timeout;
    let head = read_head(client, pending, deadline, shared)?;
    let length = body_length(&head, &shared.config)?;
    if head.version == 1 && head.has_token("expect", "100-continue") && pending.len() == head.len {
        let _ = client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let mut upstream = upstream_head(&head, length, peer)?;
    while pending.len() < head.len + length {
        read_before(client, pending, deadline, shared)?;
    }
    upstream.extend_from_slice(&pending[head.len..head.len + length]);
    pending.drain(..head.len + length);
    Ok(Request {
        upstream,
        keep_alive: head.keep_alive(),
        head_only: head.method == "HEAD",
        route: route_label(&head.path),
    })
}

/// Reads until `pending` starts with a whole request head, as `httparse` sees its end (a
/// blank line, CRLF or bare LF), and parses it.
fn read_head(
    client: &mut TcpStream,
    pending: &mut Vec<u8>,
    deadline: Instant,
    shared: &Shared,
) -> Result<Head, Refused> {
    let max = shared.config.max_header_bytes;
    loop {
        if !pending.is_empty() {
            if let Some(head) = parse_head(pending)? {
                if head.len > max {
                    break;
                }
                return Ok(head);
            }
            if pending.len() >= max {
                break;
            }
        }
        read_before(client, pending, deadline, shared)?;
    }
    Err(Refused::Status(
        431,
        format!("request headers exceed {max} bytes"),
    ))
}

/// The head at the start of `buf`, or `None` while it is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Refused> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refused::Status(
                431,
                format!("more than {MAX_HEADERS} headers"),
            ))
        }
        Err(e) => return Err(bad_request(&format!("malformed request: {e}"))),
    };
    Ok(Some(Head {
        len,
        method: parsed.method.unwrap_or("GET").to_owned(),
        path: parsed.path.unwrap_or("/").to_owned(),
        version: parsed.version.unwrap_or(1),
        headers: parsed
            .headers
            .iter()
            .map(|h| (h.name.to_owned(), h.value.to_owned()))
            .collect(),
    }))
}

/// The body's length from `Content-Length`, within the limit; chunked bodies are refused.
fn body_length(head: &Head, limits: &crate::config::Config) -> Result<usize, Refused> {
    if head.values("transfer-encoding").next().is_some() {
        return Err(Refused::Status(
            411,
            "chunked bodies are not accepted; send Content-Length".into(),
        ));
    }
    let lengths: Vec<String> = head.values("content-length").collect();
    let length = match lengths.as_slice() {
        [] => 0,
        [first, rest @ ..] if rest.iter().all(|l| l == first) => first
            .parse::<usize>()
            .map_err(|_| bad_request(&format!("invalid Content-Length {first:?}")))?,
        _ => return Err(bad_request("conflicting Content-Length headers")),
    };
    if length > limits.max_body_bytes {
        return Err(Refused::Status(
            413,
            format!(
                "request body of {length} bytes exceeds {} bytes",
                limits.max_body_bytes
            ),
        ));
    }
    Ok(length)
}

/// The head of a request as tiny_http gets it: HTTP/1.1 on a kept connection, hop headers
/// dropped, only ASCII, the body's length, the peer named.
fn upstream_head(head: &Head, body_len: usize, peer: SocketAddr) -> Result<Vec<u8>, Refused> {
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(ascii_path(&head.path).as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &head.headers {
        let lower = name.to_ascii_lowercase();
        if HOP_HEADERS.contains(&lower.as_str()) || name.eq_ignore_ascii_case(PEER_HEADER) {
            continue;
        }
        if !value.is_ascii() {
            if READ_HEADERS.contains(&lower.as_str()) {
                return Err(bad_request(&format!("header {name} must be ASCII")));
            }
            log::debug!("{peer}: header {name} left out: not ASCII, and nothing reads it");
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    let _ = write!(
        out,
        "Content-Length: {body_len}\r\n{PEER_HEADER}: {peer}\r\n\r\n"
    );
    Ok(out)
}

/// The path with every non-ASCII byte percent-encoded, which means the same to a URL
/// decoder and is what tiny_http takes.
fn ascii_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii() {
            out.push(char::from(byte));
        } else {
            let _ = std::fmt::Write::write_fmt(&mut out, format_args!("%{byte:02X}"));
        }
    }
    out
}

fn bad_request(reason: &str) -> Refused {
    Refused::Status(400, reason.to_owned())
}

/// Reads some bytes onto `buf`, giving up at `deadline` (408) or when the server stops.
fn read_before(
    client: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    shared: &Shared,
) -> Result<(), Refused> {
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Refused::Status(408, "request not received in time".into()));
        }
        if shared.stopping() {
            return Err(Refused::Gone);
        }
        let _ = client.set_read_timeout(Some(left.min(TICK)));
        match client.read(&mut chunk) {
            Ok(0) => return Err(Refused::Gone),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted || is_timeout(&e) => {}
            Err(_) => return Err(Refused::Gone),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &[u8]) -> Head {
        match parse_head(text) {
            Ok(Some(head)) => head,
            other => panic!("not a whole head: {other:?}"),
        }
    }

    #[test]
    fn upstream_request_drops_hop_headers_and_names_the_peer() {
        let parsed = head(b"POST /x HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\nX-Vonage-Echo-Peer: forged\r\nContent-Length: 2\r\n\r\n");
        let upstream = upstream_head(&parsed, 2, "1.2.3.4:5".parse().unwrap()).unwrap();
        assert_eq!(
            String::from_utf8(upstream).unwrap(),
            "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nX-Vonage-Echo-Peer: 1.2.3.4:5\r\n\r\n"
        );
    }

    #[test]
    fn a_head_ends_where_the_parser_says_also_at_bare_lf() {
        assert_eq!(head(b"GET / HTTP/1.1\nHost: h\n\nrest").len, 24);
        assert_eq!(head(b"GET / HTTP/1.1\r\nHost: h\r\n\r\nrest").len, 27);
    }

    #[test]
    fn non_ascii_headers_nothing_reads_are_left_out() {
        let parsed = head("GET / HTTP/1.1\r\nHost: h\r\nX-Caller-Name: Zoë\r\n\r\n".as_bytes());
        let upstream = upstream_head(&parsed, 0, "1.2.3.4:5".parse().unwrap()).unwrap();
        assert!(!String::from_utf8(upstream).unwrap().contains("Caller"));
    }

    #[test]
    fn a_non_ascii_header_the_webhooks_read_is_refused() {
        let parsed = head("GET / HTTP/1.1\r\nHost: zoë.example\r\n\r\n".as_bytes());
        let refused = upstream_head(&parsed, 0, "1.2.3.4:5".parse().unwrap());
        assert!(matches!(refused, Err(Refused::Status(400, reason)) if reason.contains("Host")));
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_header() {
        assert!(head(b"GET / HTTP/1.1\r\n\r\n").keep_alive());
        assert!(!head(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive());
        assert!(!head(b"GET / HTTP/1.0\r\n\r\n").keep_alive());
        assert!(head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
    }

    #[test]
    fn non_ascii_path_bytes_are_percent_encoded() {
        assert_eq!(ascii_path("/a?n=Zoë"), "/a?n=Zo%C3%AB");
    }

    #[test]
    fn the_connection_header_follows_the_status_line() {
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            with_connection(answer, false),
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        );
    }
}
