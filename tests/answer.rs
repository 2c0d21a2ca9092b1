//! The answer webhook: the NCCO's shape for GET and POST, and the socket URL it hands out.

mod support;

use support::*;
use vonage_echo::AudioFormat;

#[test]
fn get_answer_is_the_echo_ncco() {
    // The default greeting, not the tests' short one.
    let server = start(
        vonage_echo::Config::default()
            .http_addr("127.0.0.1:0".parse().unwrap())
            .ws_addr("127.0.0.1:0".parse().unwrap()),
    );
    let answer = http(
        server.http_addr(),
        "GET",
        "/webhooks/answer?to=447700900001&from=447700900000&uuid=call-1",
        "",
        "",
    );
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("Content-Type"), Some("application/json"));
    let ncco = answer.json();
    assert_eq!(ncco.as_array().unwrap().len(), 2);
    assert_eq!(ncco[0]["action"], "talk");
    assert_eq!(
        ncco[0]["text"],
        "Please wait while we connect you to the echo server"
    );
    assert_eq!(ncco[1]["action"], "connect");
    assert_eq!(ncco[1]["from"], "NexmoTest");
    let endpoint = &ncco[1]["endpoint"][0];
    assert_eq!(endpoint["type"], "websocket");
    assert_eq!(endpoint["content-type"], "audio/l16;rate=16000");
    assert_eq!(endpoint["headers"]["uuid"], "call-1");
    assert_eq!(endpoint["headers"]["from"], "447700900000");
    assert_eq!(endpoint["headers"]["to"], "447700900001");
}

#[test]
fn post_answer_reads_a_json_body() {
    let server = server();
    let body = r#"{"to":"447700900001","from":"447700900000","uuid":"call-2","conversation_uuid":"CON-1","endpoint_type":"phone","custom_data":{"a":1}}"#;
    let answer = http(
        server.http_addr(),
        "POST",
        "/webhooks/answer",
        "Content-Type: application/json\r\n",
        body,
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    let endpoint = &answer.json()[1]["endpoint"][0];
    assert_eq!(endpoint["headers"]["uuid"], "call-2");
    assert!(endpoint["uri"]
        .as_str()
        .unwrap()
        .ends_with("/socket?uuid=call-2"));
}

#[test]
fn direct_socket_url_uses_the_host_header_and_the_socket_port() {
    let server = server();
    let answer = raw_http(
        server.http_addr(),
        b"GET /webhooks/answer?uuid=u1 HTTP/1.1\r\nHost: echo.example.com:3000\r\nConnection: close\r\n\r\n",
    );
    let uri = answer.json()[1]["endpoint"][0]["uri"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        uri,
        format!(
            "ws://echo.example.com:{}/socket?uuid=u1",
            server.ws_addr().port()
        )
    );
}

#[test]
fn proxied_socket_url_uses_the_forwarded_host_and_proto() {
    let server = server();
    let https = http(
        server.http_addr(),
        "GET",
        "/webhooks/answer?uuid=u1",
        "X-Forwarded-Host: echo.example.com\r\nX-Forwarded-Proto: https\r\n",
        "",
    );
    assert_eq!(
        https.json()[1]["endpoint"][0]["uri"],
        "wss://echo.example.com/socket?uuid=u1"
    );
    let http_proxy = http(
        server.http_addr(),
        "GET",
        "/webhooks/answer?uuid=u1",
        "X-Forwarded-Host: proxy.local:8080\r\n",
        "",
    );
    assert_eq!(
        http_proxy.json()[1]["endpoint"][0]["uri"],
        "ws://proxy.local:8080/socket?uuid=u1"
    );
}

#[test]
fn explicit_socket_url_wins() {
    let server = start(config().ws_url(Some("wss://echo.example.com/socket".into())));
    let endpoint = endpoint(&server, "uuid=u9");
    assert_eq!(endpoint["uri"], "wss://echo.example.com/socket?uuid=u9");
}

#[test]
fn every_rate_gives_its_content_type() {
    for format in AudioFormat::ALL {
        let server = start(config().audio(format));
        assert_eq!(
            endpoint(&server, "uuid=u1")["content-type"],
            format.content_type()
        );
    }
}

#[test]
fn greeting_and_from_are_configurable() {
    let server = start(config().greeting("Hello".into()).from("Echo".into()));
    let ncco = http(server.http_addr(), "GET", "/webhooks/answer", "", "").json();
    assert_eq!(ncco[0]["text"], "Hello");
    assert_eq!(ncco[1]["from"], "Echo");
}

#[test]
fn answer_without_uuid_gets_a_fresh_one() {
    let server = server();
    let first = endpoint(&server, "");
    let second = endpoint(&server, "");
    let uuid = first["headers"]["uuid"].as_str().unwrap();
    assert_eq!(uuid.len(), 36);
    assert_ne!(first["headers"]["uuid"], second["headers"]["uuid"]);
    assert!(first["uri"]
        .as_str()
        .unwrap()
        .ends_with(&format!("?uuid={uuid}")));
}

#[test]
fn unsafe_uuid_is_refused_with_a_reason() {
    let server = server();
    let answer = http(
        server.http_addr(),
        "GET",
        "/webhooks/answer?uuid=a%22b",
        "",
        "",
    );
    assert_eq!(answer.status, 400);
    assert!(answer.json()["error"].as_str().unwrap().contains("uuid"));
}

#[test]
fn a_uuid_that_cannot_name_a_file_is_refused_with_a_reason() {
    let server = server();
    for uuid in [".", "..", ".hidden"] {
        let answer = http(
            server.http_addr(),
            "GET",
            &format!("/webhooks/answer?uuid={uuid}"),
            "",
            "",
        );
        assert_eq!(answer.status, 400, "{uuid}");
        let reason = answer.json()["error"].as_str().unwrap().to_owned();
        assert!(
            reason.contains("may not start with '.'"),
            "{uuid}: {reason}"
        );
    }
}

#[test]
fn a_socket_whose_uuid_cannot_name_a_file_is_refused_with_400() {
    let server = start(config().socket_auth(vonage_echo::config::SocketAuth::None));
    for uuid in [".", ".."] {
        let uri = format!("ws://{}/socket?uuid={uuid}", server.ws_addr());
        assert_eq!(refused_status(try_ws_connect(&uri, None)), 400, "{uuid}");
    }
}

#[test]
fn forged_host_header_is_refused() {
    let server = server();
    let answer = raw_http(
        server.http_addr(),
        b"GET /webhooks/answer HTTP/1.1\r\nHost: evil\"/x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(answer.status, 400);
}
