//! The webhooks' front door: what it serves that tiny_http alone would refuse, how it keeps
//! and ends connections, and that no answer is lost to a reset.

mod support;

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use support::*;

const ANSWER: &str = "/webhooks/answer?uuid=door-1&from=447700900000&to=447700900001";

#[test]
fn a_header_value_in_utf8_is_served() {
    let server = server();
    let answer = http(
        server.http_addr(),
        "GET",
        ANSWER,
        "X-Caller-Name: Zoë\r\n",
        "",
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(answer.json()[1]["endpoint"][0]["uri"].is_string());
}

#[test]
fn a_header_the_webhooks_read_in_utf8_is_400_with_a_reason() {
    let server = server();
    let request =
        format!("GET {ANSWER} HTTP/1.1\r\nHost: zoë.example\r\nConnection: close\r\n\r\n");
    let answer = raw_http(server.http_addr(), request.as_bytes());
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(answer.json()["error"].as_str().unwrap().contains("Host"));
}

#[test]
fn a_head_ending_in_bare_lf_is_answered_without_waiting() {
    // With the request timeout long, a server waiting for CRLFCRLF would not answer within
    // the client's 15 s.
    let server = start(config().http_request_timeout(Duration::from_secs(60)));
    let request = format!("GET {ANSWER} HTTP/1.1\nHost: 127.0.0.1\nConnection: close\n\n");
    let answer = raw_http(server.http_addr(), request.as_bytes());
    assert_eq!(answer.status, 200, "{answer:?}");
}

#[test]
fn http_1_0_with_expect_100_continue_gets_no_interim_answer() {
    let server = server();
    let body = r#"{"uuid":"door-2","status":"started"}"#;
    let request = format!(
        "POST /webhooks/events HTTP/1.0\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut stream = TcpStream::connect(server.http_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let answer = read_answer(&mut stream);
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(!answer.head.contains("100 Continue"), "{answer:?}");
}

#[test]
fn http_1_1_with_expect_100_continue_is_told_to_go_on() {
    let server = server();
    let body = r#"{"uuid":"door-3","status":"started"}"#;
    let request = format!(
        "POST /webhooks/events HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut stream = TcpStream::connect(server.http_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(body.as_bytes()).unwrap();
    assert_eq!(read_answer(&mut stream).status, 200);
}

#[test]
fn a_refused_body_sent_whole_ends_in_a_close_not_a_reset() {
    let server = server();
    let body = vec![b'x'; 200 * 1024];
    let mut request = format!(
        "POST /webhooks/events HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let (answer, ending) = answer_and_ending(server.http_addr(), &request);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    ending.expect("a clean close: a reset can destroy the answer on its way");
}

#[test]
fn bytes_after_a_closing_request_end_in_a_close_not_a_reset() {
    let server = server();
    let mut request = b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n".to_vec();
    request.extend_from_slice(&[b'z'; 64 * 1024]);
    let (answer, ending) = answer_and_ending(server.http_addr(), &request);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("Connection: close"), "{answer}");
    ending.expect("a clean close: a reset can destroy the answer on its way");
}

/// Sends `request` whole, then reads to the end: the answer, and how the connection ended
/// (`Ok` for the peer's close, the error for a reset).
fn answer_and_ending(addr: std::net::SocketAddr, request: &[u8]) -> (String, std::io::Result<()>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    // The server may refuse before it has read it all.
    let _ = stream.write_all(request);
    // Let the server answer and end the connection before the answer is read.
    std::thread::sleep(Duration::from_millis(100));
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    let ending = loop {
        match stream.read(&mut chunk) {
            Ok(0) => break Ok(()),
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) => break Err(e),
        }
    };
    (String::from_utf8_lossy(&answer).into_owned(), ending)
}

#[test]
fn a_kept_connection_carries_request_after_request() {
    let server = server();
    let mut stream = TcpStream::connect(server.http_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    for i in 0..3 {
        let request =
            format!("GET /webhooks/answer?uuid=kept-{i} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let (head, body) = read_one(&mut stream);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("Connection: keep-alive"), "{head}");
        assert!(body.contains(&format!("uuid=kept-{i}")), "{body}");
    }
}

#[test]
fn a_kept_connection_idle_past_keep_alive_is_closed() {
    let server = start(config().http_keep_alive(Duration::from_millis(200)));
    let mut stream = TcpStream::connect(server.http_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (head, _) = read_one(&mut stream);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "nothing but the close follows");
}

/// Reads one answer framed by its Content-Length.
fn read_one(stream: &mut TcpStream) -> (String, String) {
    let mut bytes = Vec::new();
    let mut byte = [0u8; 1];
    while !bytes.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        bytes.push(byte[0]);
    }
    let head = String::from_utf8(bytes).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no length in {head}"));
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    (head, String::from_utf8(body).unwrap())
}

#[test]
fn a_burst_of_new_connections_is_answered_in_full() {
    // A new server opens its connections to the webhooks afresh, so a burst of requests on
    // new client connections has it open many at once. A request the webhooks leave
    // unanswered gets 503 when the (shortened) request timeout runs out.
    for round in 0..4 {
        let server = start(config().http_request_timeout(Duration::from_secs(2)));
        let addr = server.http_addr();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(32));
        let requests: Vec<_> = (0..32)
            .map(|i| {
                let barrier = std::sync::Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    let target = format!("/webhooks/answer?uuid=burst-{round}-{i}");
                    http(addr, "GET", &target, "", "").status
                })
            })
            .collect();
        let statuses: Vec<u16> = requests.into_iter().map(|r| r.join().unwrap()).collect();
        assert!(
            statuses.iter().all(|&s| s == 200),
            "round {round}: {statuses:?}"
        );
    }
}
