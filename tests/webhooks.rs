//! The event webhook, /health, and the answers to requests that are wrong.

mod support;

use support::*;
use vonage_echo::events::CallStatus;

#[test]
fn every_documented_status_and_an_unknown_one_is_accepted() {
    let server = server();
    for status in CallStatus::DOCUMENTED.iter().chain(&["teleported"]) {
        let body = format!(
            r#"{{"uuid":"u1","conversation_uuid":"CON-1","status":"{status}","direction":"inbound","timestamp":"2026-01-01T00:00:00.000Z","duration":"5","price":"0.01","detail":"x","future_field":{{"a":1}}}}"#
        );
        let answer = http(
            server.http_addr(),
            "POST",
            "/webhooks/events",
            "Content-Type: application/json\r\n",
            &body,
        );
        assert_eq!(answer.status, 200, "{status}: {answer:?}");
    }
}

#[test]
fn events_by_get_are_accepted() {
    let server = server();
    let answer = http(
        server.http_addr(),
        "GET",
        "/webhooks/events?uuid=u1&status=answered",
        "",
        "",
    );
    assert_eq!(answer.status, 200);
}

#[test]
fn malformed_json_is_400_with_a_reason() {
    let server = server();
    for path in ["/webhooks/events", "/webhooks/answer"] {
        let answer = http(
            server.http_addr(),
            "POST",
            path,
            "Content-Type: application/json\r\n",
            "{\"status\":",
        );
        assert_eq!(answer.status, 400, "{path}");
        assert!(
            answer.json()["error"]
                .as_str()
                .unwrap()
                .contains("malformed JSON"),
            "{answer:?}"
        );
    }
}

#[test]
fn json_that_is_not_an_object_is_400() {
    let server = server();
    let answer = http(server.http_addr(), "POST", "/webhooks/events", "", "[1,2]");
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"], "expected a JSON object");
}

#[test]
fn wrong_method_is_405_with_allow() {
    let server = server();
    let answer = http(server.http_addr(), "DELETE", "/webhooks/answer", "", "");
    assert_eq!(answer.status, 405);
    assert_eq!(answer.header("Allow"), Some("GET, POST"));
    let health = http(server.http_addr(), "POST", "/health", "", "");
    assert_eq!(health.status, 405);
    assert_eq!(health.header("Allow"), Some("GET, HEAD"));
}

#[test]
fn head_on_health_and_ready_is_200_without_a_body() {
    let server = server();
    for path in ["/health", "/ready"] {
        let answer = http(server.http_addr(), "HEAD", path, "", "");
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
        assert_eq!(answer.body, "", "{path}");
    }
    server.drain();
    let ready = http(server.http_addr(), "HEAD", "/ready", "", "");
    assert_eq!(ready.status, 503, "{ready:?}");
}

#[test]
fn unknown_path_is_404() {
    let server = server();
    let answer = http(server.http_addr(), "GET", "/nothing/here", "", "");
    assert_eq!(answer.status, 404);
    assert!(answer.json()["error"]
        .as_str()
        .unwrap()
        .contains("/nothing/here"));
}

#[test]
fn health_reports_status_calls_and_uptime() {
    let server = server();
    let _call = open_call(&server, "h1");
    let health = http(server.http_addr(), "GET", "/health", "", "").json();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["active_calls"], 1);
    assert!(health["uptime_seconds"].is_u64());
}

#[test]
fn answers_close_the_connection() {
    let server = server();
    let answer = http(server.http_addr(), "GET", "/health", "", "");
    assert_eq!(answer.header("Connection"), Some("close"));
}

#[test]
fn servers_in_one_process_answer_each_for_itself_and_one_stopping_leaves_the_other_serving() {
    let greeting = |server: &vonage_echo::Server| {
        let answer = http(server.http_addr(), "GET", "/webhooks/answer", "", "");
        assert_eq!(answer.status, 200, "{answer:?}");
        answer.json()[0]["text"].as_str().unwrap().to_owned()
    };
    let first = start(config().greeting("first".into()));
    let second = start(config().greeting("second".into()));
    assert_eq!(greeting(&first), "first");
    assert_eq!(greeting(&second), "second");
    first.shutdown();
    assert_eq!(greeting(&second), "second");
}
