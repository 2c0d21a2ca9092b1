//! The webhooks' front door. tiny_http 0.12 has no read timeout, no header size limit and
//! unbounded helper threads, panics on a peer that has already gone, and stops accepting for
//! good after one `accept()` error. So the public port is ours: this module accepts with
//! backoff, bounds connections, reads each request whole under a deadline and within size
//! limits, and only then hands it to tiny_http over a private Unix socket, where none of
//! those failure modes can be reached from the network.

use std::{
    io::{self, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::unix::net::UnixStream,
    sync::Arc,
    time::Instant,
};

use crate::{
    listen,
    server::{Shared, TICK},
    threads::Slot,
};

/// The header that carries the caller's address to the webhooks; any copy a client sends
/// is removed, so it cannot be forged.
pub(crate) const PEER_HEADER: &str = "X-Vonage-Echo-Peer";

/// Headers that describe this hop only and are not forwarded.
const HOP_HEADERS: [&str; 6] = [
    "connection",
    "keep-alive",
    "expect",
    "content-length",
    "proxy-connection",
    "x-vonage-echo-peer",
];

/// Accepts webhook connections until the server stops.
pub(crate) fn accept_loop(listener: TcpListener, shared: &Arc<Shared>) {
    listen::accept_loop(&listener, shared, "webhooks", |stream, peer| {
        let max = shared.config.max_http_connections;
        let Some(slot) = Slot::try_take(&shared.http_connections, max) else {
            log::warn!("{peer}: refused, {max} HTTP connections already open");
            shared.metrics.webhook("unread", 503);
            // Best effort: the socket's send buffer is empty, so this does not block.
            let _ = stream.set_nonblocking(true);
            let _ = (&stream).write_all(&refusal(503, "too many connections"));
            return;
        };
        let s = Arc::clone(shared);
        let spawned = shared.http_threads.spawn(format!("http-{peer}"), move || {
            let _slot = slot;
            serve_connection(stream, peer, &s);
        });
        if let Err(e) = spawned {
            log::error!("{peer}: cannot start a thread for the request: {e}");
        }
    });
}

/// Why a request is not forwarded.
#[derive(Debug)]
enum Refused {
    /// Answer with this status and reason.
    Status(u16, String),
    /// The peer went away or the server stops; nothing to answer.
    Gone,
}

fn serve_connection(mut client: TcpStream, peer: SocketAddr, shared: &Shared) {
    let _ = client.set_nodelay(true);
    let deadline = Instant::now() + shared.config.http_request_timeout;
    let _ = client.set_write_timeout(Some(shared.config.http_request_timeout));
    let request = match read_request(&mut client, peer, deadline, shared) {
        Ok(request) => request,
        Err(Refused::Status(status, reason)) => {
            log::warn!("{peer}: HTTP {status}: {reason}");
            shared.metrics.webhook("unread", status);
            let _ = client.write_all(&refusal(status, &reason));
            return;
        }
        Err(Refused::Gone) => return,
    };
    if let Err(e) = forward(&request, &mut client, shared) {
        log::error!("{peer}: webhooks did not answer: {e}");
        let _ = client.write_all(&refusal(503, "webhooks unavailable"));
    }
}

/// The head of a request as tiny_http gets it: one request per connection, hop headers
/// dropped, the body's length and the peer named.
fn upstream_head(parsed: &httparse::Request, body_len: usize, peer: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    let _ = write!(
        out,
        "{} {} HTTP/1.{}\r\n",
        parsed.method.unwrap_or("GET"),
        parsed.path.unwrap_or("/"),
        parsed.version.unwrap_or(1)
    );
    for h in parsed.headers.iter() {
        if HOP_HEADERS
            .iter()
            .any(|hop| h.name.eq_ignore_ascii_case(hop))
        {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    let _ = write!(
        out,
        "Content-Length: {body_len}\r\n{PEER_HEADER}: {peer}\r\nConnection: close\r\n\r\n"
    );
    out
}

const MAX_HEADERS: usize = 100;

/// Reads one request whole, within the limits, and returns it as tiny_http gets it.
fn read_request(
    client: &mut TcpStream,
    peer: SocketAddr,
    deadline: Instant,
    shared: &Shared,
) -> Result<Vec<u8>, Refused> {
    let limits = &shared.config;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_len = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if buf.len() >= limits.max_header_bytes {
            return Err(Refused::Status(
                431,
                format!("request headers exceed {} bytes", limits.max_header_bytes),
            ));
        }
        let room = (limits.max_header_bytes - buf.len()).min(chunk.len());
        let n = read_before(client, &mut chunk[..room], deadline, shared)?;
        buf.extend_from_slice(&chunk[..n]);
    };

    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(&buf[..head_len]) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(bad_request("incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refused::Status(
                431,
                format!("more than {MAX_HEADERS} headers"),
            ))
        }
        Err(e) => return Err(bad_request(&format!("malformed request: {e}"))),
    }
    let header = |name: &'static str| {
        parsed
            .headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
    };
    if header("transfer-encoding").next().is_some() {
        return Err(Refused::Status(
            411,
            "chunked bodies are not accepted; send Content-Length".into(),
        ));
    }
    let lengths: Vec<String> = header("content-length").collect();
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
    if header("expect").any(|e| e.eq_ignore_ascii_case("100-continue")) && buf.len() == head_len {
        let _ = client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    let mut request = upstream_head(&parsed, length, peer);
    let head_end = request.len();
    request.extend_from_slice(&buf[head_len..buf.len().min(head_len + length)]);
    while request.len() - head_end < length {
        let room = (length - (request.len() - head_end)).min(chunk.len());
        let n = read_before(client, &mut chunk[..room], deadline, shared)?;
        request.extend_from_slice(&chunk[..n]);
    }
    Ok(request)
}

fn bad_request(reason: &str) -> Refused {
    Refused::Status(400, reason.to_owned())
}

/// Reads some bytes, giving up at `deadline` (408) or when the server stops.
fn read_before(
    client: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
    shared: &Shared,
) -> Result<usize, Refused> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Refused::Status(408, "request not received in time".into()));
        }
        if shared.stopping() {
            return Err(Refused::Gone);
        }
        let _ = client.set_read_timeout(Some(left.min(TICK)));
        match client.read(buf) {
            Ok(0) => return Err(Refused::Gone),
            Ok(n) => return Ok(n),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return Err(Refused::Gone),
        }
    }
}

/// The largest answer the webhooks give (an NCCO is a few hundred bytes).
const MAX_ANSWER_BYTES: u64 = 1024 * 1024;

/// Hands the request to tiny_http and passes its answer to the client, marked
/// `Connection: close`: tiny_http would promise keep-alive on a connection the gate ends.
fn forward(request: &[u8], client: &mut TcpStream, shared: &Shared) -> io::Result<()> {
    let mut upstream = UnixStream::connect(&shared.webhooks_socket)?;
    let timeout = Some(shared.config.http_request_timeout);
    upstream.set_read_timeout(timeout)?;
    upstream.set_write_timeout(timeout)?;
    upstream.write_all(request)?;
    let mut answer = Vec::with_capacity(1024);
    upstream.take(MAX_ANSWER_BYTES).read_to_end(&mut answer)?;
    let Some(line_end) = answer.windows(2).position(|w| w == b"\r\n") else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no status line in the answer",
        ));
    };
    let (status_line, rest) = answer.split_at(line_end + 2);
    let mut out = Vec::with_capacity(answer.len() + 19);
    out.extend_from_slice(status_line);
    out.extend_from_slice(b"Connection: close\r\n");
    out.extend_from_slice(rest);
    // A client that left has nowhere to take its answer.
    let _ = client.write_all(&out);
    Ok(())
}

/// A complete HTTP response refusing a request, with the reason as JSON.
pub(crate) fn refusal(status: u16, reason: &str) -> Vec<u8> {
    let body = serde_json::json!({ "error": reason }).to_string();
    format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reason_phrase(status),
        body.len()
    )
    .into_bytes()
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_is_a_complete_response_with_a_json_reason() {
        let text = String::from_utf8(refusal(431, "too big")).unwrap();
        assert!(text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(text.ends_with("\r\n\r\n{\"error\":\"too big\"}"));
        assert!(text.contains("Content-Length: 19\r\n"));
    }

    #[test]
    fn upstream_request_drops_hop_headers_and_names_the_peer() {
        let head = b"POST /x HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nX-Vonage-Echo-Peer: forged\r\nContent-Length: 2\r\n\r\n";
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        parsed.parse(head).unwrap();
        let upstream = upstream_head(&parsed, 2, "1.2.3.4:5".parse().unwrap());
        assert_eq!(
            String::from_utf8(upstream).unwrap(),
            "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nX-Vonage-Echo-Peer: 1.2.3.4:5\r\nConnection: close\r\n\r\n"
        );
    }
}
