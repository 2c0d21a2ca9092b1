//! What the server withstands: oversized, slow, chunked and abandoned requests, idle and
//! silent sockets, too many calls, and an attack of idle connections on both ports, while
//! real calls go on.

mod support;

use std::{
    io::{Read, Write},
    net::{Shutdown, TcpStream},
    thread,
    time::{Duration, Instant},
};

use support::*;
use tungstenite::Message;
use vonage_echo::sim::call::{self, CallOptions};

fn quick() -> vonage_echo::Config {
    config()
        .http_request_timeout(Duration::from_millis(400))
        .handshake_timeout(Duration::from_millis(400))
}

#[test]
fn headers_over_8_kib_are_431() {
    let server = server();
    let big = format!("X-Filler: {}\r\n", "a".repeat(9000));
    let answer = http(server.http_addr(), "GET", "/health", &big, "");
    assert_eq!(answer.status, 431);
    assert!(answer.json()["error"].as_str().unwrap().contains("8192"));
}

#[test]
fn bodies_over_64_kib_are_413_before_they_are_read() {
    let server = server();
    let answer = raw_http(
        server.http_addr(),
        b"POST /webhooks/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n{",
    );
    assert_eq!(answer.status, 413);
}

#[test]
fn chunked_bodies_are_411() {
    let server = server();
    let answer = raw_http(
        server.http_addr(),
        b"POST /webhooks/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    );
    assert_eq!(answer.status, 411);
}

#[test]
fn a_request_that_never_finishes_is_408_and_dropped() {
    let server = start(quick());
    let mut slow = TcpStream::connect(server.http_addr()).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let answer = read_answer(&mut slow);
    assert_eq!(answer.status, 408);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn a_body_that_never_arrives_is_408() {
    let server = start(quick());
    let answer = raw_http(
        server.http_addr(),
        b"POST /webhooks/events HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{\"a\"",
    );
    assert_eq!(answer.status, 408);
}

#[test]
fn http_connections_beyond_the_limit_are_503() {
    let server = start(quick().max_http_connections(2));
    let _idle: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(server.http_addr()).unwrap())
        .collect();
    eventually("both held", || {
        // The third is refused at once while the first two are held.
        let answer = raw_http(
            server.http_addr(),
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        answer.status == 503
    });
}

#[test]
fn a_peer_gone_before_its_request_does_not_hurt_the_webhooks() {
    let server = server();
    for _ in 0..20 {
        let gone = TcpStream::connect(server.http_addr()).unwrap();
        gone.shutdown(Shutdown::Both).unwrap();
        let half = TcpStream::connect(server.http_addr()).unwrap();
        (&half)
            .write_all(b"POST /webhooks/events HTTP/1.1\r\nContent-Length: 5\r\n\r\n{")
            .unwrap();
        half.shutdown(Shutdown::Both).unwrap();
    }
    assert_eq!(
        http(server.http_addr(), "GET", "/health", "", "").status,
        200
    );
}

#[test]
fn a_handshake_that_never_finishes_is_dropped() {
    let server = start(quick());
    let mut slow = TcpStream::connect(server.ws_addr()).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    slow.write_all(b"GET /socket HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    assert_eq!(
        slow.read(&mut buf).unwrap_or(0),
        0,
        "closed without an answer"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn calls_beyond_max_calls_get_503_and_calls_up_are_untouched() {
    let server = start(config().max_calls(1));
    // Answered while there was room; the first call takes it before this one connects.
    let uri = endpoint(&server, "uuid=second");
    let mut first = open_call(&server, "first");
    let refused = try_ws_connect(
        uri["uri"].as_str().unwrap(),
        uri["authorization"]["value"].as_str(),
    );
    assert_eq!(refused_status(refused), 503);
    first.send(Message::binary(vec![5u8; 640])).unwrap();
    assert_eq!(next_data(&mut first), Message::binary(vec![5u8; 640]));
}

#[test]
fn the_answer_webhook_at_capacity_is_503_at_once() {
    let server = start(config().max_calls(1));
    let _first = open_call(&server, "first");
    let answer = http(
        server.http_addr(),
        "GET",
        "/webhooks/answer?uuid=second",
        "",
        "",
    );
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(answer.json()["error"]
        .as_str()
        .unwrap()
        .contains("at capacity: 1 calls"));
}

#[test]
fn a_silent_call_is_pinged_then_closed() {
    let server = start(
        config()
            .idle_ping_after(Duration::from_millis(300))
            .idle_close_after(Duration::from_millis(300)),
    );
    let mut ws = open_call(&server, "silent");
    // Stay away: no reads, so no pong goes back.
    thread::sleep(Duration::from_millis(1500));
    let mut saw_ping = false;
    let code = loop {
        match ws.read().unwrap() {
            Message::Ping(_) => saw_ping = true,
            Message::Close(frame) => break frame.map(|f| u16::from(f.code)),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(saw_ping, "pinged before being closed");
    assert_eq!(code, Some(1000));
    eventually("the thread to be freed", || server.active_calls() == 0);
}

#[test]
fn a_call_that_answers_pings_stays_up_through_silence() {
    let server = start(
        config()
            .idle_ping_after(Duration::from_millis(200))
            .idle_close_after(Duration::from_millis(200)),
    );
    let mut ws = open_call(&server, "quiet-but-alive");
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let until = Instant::now() + Duration::from_millis(1200);
    let mut pings = 0;
    while Instant::now() < until {
        match ws.read() {
            Ok(Message::Ping(_)) => pings += 1, // tungstenite queues the pong; the next read sends it
            Ok(other) => panic!("unexpected {other:?}"),
            Err(tungstenite::Error::Io(_)) => {}
            Err(e) => panic!("call ended: {e}"),
        }
    }
    assert!(pings >= 2, "pinged {pings} times");
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    ws.send(Message::binary(vec![9u8; 640])).unwrap();
    assert_eq!(next_data(&mut ws), Message::binary(vec![9u8; 640]));
}

#[test]
fn real_calls_echo_every_frame_under_an_attack_of_idle_connections_on_both_ports() {
    let server = start(
        quick()
            .http_request_timeout(Duration::from_secs(2))
            .handshake_timeout(Duration::from_secs(2))
            .max_pending_handshakes(1500)
            .max_http_connections(1500),
    );
    let mut attackers = Vec::with_capacity(2000);
    for _ in 0..1000 {
        let mut h = TcpStream::connect(server.http_addr()).unwrap();
        h.write_all(b"POST /webhooks/events HTTP/1.1\r\n").unwrap();
        attackers.push(h);
        let mut w = TcpStream::connect(server.ws_addr()).unwrap();
        w.write_all(b"GET /socket HTTP/1.1\r\n").unwrap();
        attackers.push(w);
    }
    let report =
        call::run(&CallOptions::new(answer_url(&server)).duration(Duration::from_secs(1))).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.echoed, 50);
    drop(attackers);
}

#[test]
fn garbage_on_both_ports_is_refused_and_the_server_carries_on() {
    let server = start(quick());
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let prefixes: [&[u8]; 4] = [
        b"",
        b"GET /socket HTTP/1.1\r\n",
        b"POST /webhooks/events HTTP/1.1\r\nContent-Length: 9\r\n",
        b"GET /webhooks/answer?uuid=",
    ];
    for i in 0..300 {
        let mut blob = prefixes[i % prefixes.len()].to_vec();
        for _ in 0..(x % 300) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let alphabet = b"\r\n:=?&%\x00\xff GETHost/ws";
            blob.push(alphabet[(x % alphabet.len() as u64) as usize]);
        }
        for addr in [server.http_addr(), server.ws_addr()] {
            let mut peer = TcpStream::connect(addr).unwrap();
            peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = peer.write_all(&blob);
            let _ = peer.shutdown(Shutdown::Write);
            let _ = peer.read_to_end(&mut Vec::new());
        }
    }
    assert_eq!(
        http(server.http_addr(), "GET", "/health", "", "").status,
        200
    );
    let report =
        call::run(&CallOptions::new(answer_url(&server)).duration(Duration::from_millis(400)))
            .unwrap();
    assert!(report.passed(), "{report}");
}

#[test]
fn a_handshake_trickled_byte_by_byte_is_dropped_at_its_deadline() {
    let server = start(quick());
    let slow = TcpStream::connect(server.ws_addr()).unwrap();
    let mut writer = slow.try_clone().unwrap();
    let started = Instant::now();
    thread::spawn(move || {
        // Never a whole request: a header line without end, a byte every 30 ms.
        let _ = writer.write_all(b"GET /socket HTTP/1.1\r\nX-Padding: ");
        while writer.write_all(b"a").is_ok() && started.elapsed() < Duration::from_secs(10) {
            thread::sleep(Duration::from_millis(30));
        }
    });
    let mut reader = slow;
    reader
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let closed = reader.read(&mut [0u8; 64]);
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "dropped after {:?}",
        started.elapsed()
    );
}
