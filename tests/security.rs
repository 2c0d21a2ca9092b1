//! Who gets in: signed webhooks and socket authorization, over real sockets.

mod support;

use support::*;
use vonage_echo::{
    auth::{self, Secret},
    config::SocketAuth,
    sim::{
        call::{self, CallOptions},
        AnswerMethod, Dial,
    },
};

fn signed_server() -> vonage_echo::Server {
    start(config().signature_secret(Some(Secret::new("s3cret"))))
}

fn bearer(body: Option<&[u8]>, secret: &str) -> String {
    format!(
        "Authorization: Bearer {}\r\n",
        auth::sign(&auth::vonage_claims(body), &Secret::new(secret))
    )
}

#[test]
fn unsigned_webhook_is_401_when_a_secret_is_set() {
    let server = signed_server();
    let answer = http(
        server.http_addr(),
        "GET",
        "/webhooks/answer?uuid=u1",
        "",
        "",
    );
    assert_eq!(answer.status, 401);
    assert!(
        answer.json()["error"].as_str().unwrap().contains("Bearer"),
        "{answer:?}"
    );
}

#[test]
fn signed_webhook_is_answered() {
    let server = signed_server();
    let answer = http(
        server.http_addr(),
        "GET",
        "/webhooks/answer?uuid=u1",
        &bearer(None, "s3cret"),
        "",
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    let body = r#"{"uuid":"u1","status":"answered"}"#;
    let event = http(
        server.http_addr(),
        "POST",
        "/webhooks/events",
        &bearer(Some(body.as_bytes()), "s3cret"),
        body,
    );
    assert_eq!(event.status, 200, "{event:?}");
}

#[test]
fn webhook_signed_with_another_secret_is_401() {
    let server = signed_server();
    let answer = http(
        server.http_addr(),
        "GET",
        "/webhooks/answer",
        &bearer(None, "guess"),
        "",
    );
    assert_eq!(answer.status, 401);
    assert!(answer.body.contains("signature"), "{answer:?}");
}

#[test]
fn webhook_body_changed_after_signing_is_401() {
    let server = signed_server();
    let header = bearer(Some(br#"{"status":"answered"}"#), "s3cret");
    let event = http(
        server.http_addr(),
        "POST",
        "/webhooks/events",
        &header,
        r#"{"status":"failed"}"#,
    );
    assert_eq!(event.status, 401);
    assert!(event.body.contains("payload_hash"), "{event:?}");
}

#[test]
fn health_needs_no_signature() {
    let server = signed_server();
    assert_eq!(
        http(server.http_addr(), "GET", "/health", "", "").status,
        200
    );
}

#[test]
fn simulated_vonage_with_the_secret_gets_through() {
    let server = signed_server();
    let url = answer_url(&server);
    let dial = Dial::new(url.clone())
        .method(AnswerMethod::Post)
        .signature_secret(Some(Secret::new("s3cret")));
    let report = call::run(
        &CallOptions::new(url)
            .dial(dial)
            .duration(std::time::Duration::from_millis(300)),
    )
    .unwrap();
    assert!(report.passed(), "{report}");
}

#[test]
fn ncco_carries_a_per_call_socket_token() {
    let server = server();
    let endpoint = endpoint(&server, "uuid=tok-1");
    assert_eq!(endpoint["authorization"]["type"], "custom");
    assert!(endpoint["authorization"]["value"]
        .as_str()
        .unwrap()
        .starts_with("Bearer "));
    assert_ne!(
        endpoint["authorization"],
        support::endpoint(&server, "uuid=tok-2")["authorization"]
    );
}

#[test]
fn socket_without_the_token_is_refused_with_401() {
    let server = server();
    let uri = endpoint(&server, "uuid=tok-3")["uri"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(refused_status(try_ws_connect(&uri, None)), 401);
    assert_eq!(server.active_calls(), 0);
}

#[test]
fn another_calls_token_is_refused_with_401() {
    let server = server();
    let other = endpoint(&server, "uuid=tok-4")["authorization"]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let uri = endpoint(&server, "uuid=tok-5")["uri"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(refused_status(try_ws_connect(&uri, Some(&other))), 401);
}

#[test]
fn socket_without_a_uuid_is_refused_when_tokens_are_on() {
    let server = server();
    let uri = format!("ws://{}/socket", server.ws_addr());
    assert_eq!(refused_status(try_ws_connect(&uri, None)), 401);
}

#[test]
fn instances_sharing_a_socket_key_accept_each_others_tokens() {
    let key = Some(Secret::new("shared-key"));
    let a = start(config().socket_key(key.clone()));
    let b = start(config().socket_key(key));
    let token = endpoint(&a, "uuid=shared")["authorization"]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ws = ws_connect(
        &format!("ws://{}/socket?uuid=shared", b.ws_addr()),
        Some(&token),
    );
    ws.send(tungstenite::Message::binary(vec![1u8; 640]))
        .unwrap();
    assert_eq!(
        next_data(&mut ws),
        tungstenite::Message::binary(vec![1u8; 640])
    );
}

#[test]
fn socket_auth_none_lets_anyone_in() {
    let server = start(config().socket_auth(SocketAuth::None));
    assert!(endpoint(&server, "uuid=x")["authorization"].is_null());
    let _ws = ws_connect(&format!("ws://{}/socket", server.ws_addr()), None);
}

#[test]
fn socket_auth_vonage_verifies_the_handshake_jwt() {
    let server = start(
        config()
            .signature_secret(Some(Secret::new("s3cret")))
            .socket_auth(SocketAuth::Vonage),
    );
    let signed = format!(
        "Bearer {}",
        auth::sign(&auth::vonage_claims(None), &Secret::new("s3cret"))
    );
    let forged = format!(
        "Bearer {}",
        auth::sign(&auth::vonage_claims(None), &Secret::new("nope"))
    );
    let uri = format!("ws://{}/socket?uuid=v1", server.ws_addr());
    assert_eq!(refused_status(try_ws_connect(&uri, Some(&forged))), 401);
    let _ws = ws_connect(&uri, Some(&signed));
}

#[test]
fn socket_auth_vonage_without_a_secret_does_not_start() {
    let err = vonage_echo::Server::start(config().socket_auth(SocketAuth::Vonage))
        .err()
        .unwrap();
    assert!(err.to_string().contains("--socket-auth"), "{err}");
}
