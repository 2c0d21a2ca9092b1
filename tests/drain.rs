//! `Server::drain`: the server says it is not ready and refuses new calls, while the calls it
//! holds, and those it promised a socket just before, go on. (The binary's signals are in
//! `tests/binary.rs`.)

mod support;

use std::time::Duration;

use support::*;
use tungstenite::Message;
use vonage_echo::config::SocketAuth;

fn metric(server: &vonage_echo::Server, name: &str) -> String {
    let body = http(server.http_addr(), "GET", "/metrics", "", "").body;
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_owned))
        .unwrap_or_else(|| panic!("no {name} in {body}"))
}

#[test]
fn ready_answers_200_while_serving_and_503_once_draining() {
    let server = server();
    let ready = http(server.http_addr(), "GET", "/ready", "", "");
    assert_eq!(ready.status, 200, "{ready:?}");
    assert!(!server.is_draining());
    server.drain();
    assert!(server.is_draining());
    let ready = http(server.http_addr(), "GET", "/ready", "", "");
    assert_eq!(ready.status, 503, "{ready:?}");
    assert_eq!(ready.json()["status"], "draining");
}

#[test]
fn health_stays_200_and_says_it_is_draining() {
    let server = server();
    assert_eq!(
        http(server.http_addr(), "GET", "/health", "", "").json()["draining"],
        false
    );
    server.drain();
    let health = http(server.http_addr(), "GET", "/health", "", "");
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["draining"], true);
}

#[test]
fn the_answer_webhook_answers_503_with_a_reason_while_draining() {
    let server = server();
    server.drain();
    let answer = http(
        server.http_addr(),
        "GET",
        "/webhooks/answer?uuid=after-drain",
        "",
        "",
    );
    assert_eq!(answer.status, 503);
    assert!(
        answer.json()["error"]
            .as_str()
            .unwrap()
            .contains("draining"),
        "{answer:?}"
    );
}

#[test]
fn the_draining_gauge_follows_the_drain() {
    let server = server();
    assert_eq!(metric(&server, "vonage_echo_draining"), "0");
    server.drain();
    assert_eq!(metric(&server, "vonage_echo_draining"), "1");
}

#[test]
fn a_live_call_goes_on_through_the_drain_and_its_end_completes_it() {
    let server = server();
    let mut ws = open_call(&server, "live-through-drain");
    server.drain();
    assert!(!server.is_drained(), "a call is up");
    for k in 0..20u8 {
        ws.send(Message::binary(vec![k; 640])).unwrap();
        assert_eq!(next_data(&mut ws), Message::binary(vec![k; 640]));
    }
    ws.close(None).unwrap();
    assert!(matches!(next_data(&mut ws), Message::Close(_)));
    eventually("the drain to complete", || server.is_drained());
}

#[test]
fn a_socket_promised_before_the_drain_is_accepted_during_it() {
    let server = server();
    let endpoint = endpoint(&server, "uuid=promised-before");
    server.drain();
    assert_eq!(server.promised_sockets(), 1);
    assert!(!server.is_drained(), "the promised socket may still come");
    let mut ws = ws_connect(
        endpoint["uri"].as_str().unwrap(),
        endpoint["authorization"]["value"].as_str(),
    );
    ws.send(Message::binary(vec![7; 640])).unwrap();
    assert_eq!(next_data(&mut ws), Message::binary(vec![7; 640]));
    assert_eq!(server.promised_sockets(), 0, "the promise is kept");
}

#[test]
fn a_socket_never_promised_is_refused_with_503_during_the_drain() {
    let server = start(config().socket_auth(SocketAuth::None));
    server.drain();
    let uri = format!("ws://{}/socket?uuid=never-answered", server.ws_addr());
    assert_eq!(refused_status(try_ws_connect(&uri, None)), 503);
    assert!(server.is_drained());
    let refused = metric(
        &server,
        "vonage_echo_handshakes_refused_total{reason=\"draining\"}",
    );
    assert_eq!(refused, "1");
}

#[test]
fn a_promise_older_than_the_grace_is_refused_and_no_longer_awaited() {
    let server = start(config().drain_grace(Duration::from_millis(100)));
    let endpoint = endpoint(&server, "uuid=promised-long-ago");
    std::thread::sleep(Duration::from_millis(200));
    server.drain();
    assert!(server.is_drained());
    let refused = try_ws_connect(
        endpoint["uri"].as_str().unwrap(),
        endpoint["authorization"]["value"].as_str(),
    );
    assert_eq!(refused_status(refused), 503);
}

#[test]
fn shutting_down_a_draining_server_closes_its_calls_with_1001() {
    let server = server();
    let mut ws = open_call(&server, "cut-at-shutdown");
    server.drain();
    let stopping = std::thread::spawn(move || server.shutdown());
    assert_eq!(close_code(&mut ws), 1001);
    stopping.join().unwrap();
}
