//! What the integration tests share: a server on 127.0.0.1 port 0, raw HTTP, and a
//! hand-driven WebSocket client for the cases the simulator is too polite to play.
#![allow(dead_code)]

pub mod app;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use serde_json::Value;
use tungstenite::{client::IntoClientRequest, protocol::WebSocketConfig, Message, WebSocket};
use vonage_echo::{Config, Server};

/// A config listening on loopback, port 0 for both listeners, with a short greeting: the
/// emulator speaks a talk in the time its text takes (the default greeting takes 3.4 s).
pub fn config() -> Config {
    Config::default()
        .http_addr("127.0.0.1:0".parse().unwrap())
        .ws_addr("127.0.0.1:0".parse().unwrap())
        .greeting("Hi.".into())
}

/// A server with `config()`.
pub fn server() -> Server {
    start(config())
}

pub fn start(config: Config) -> Server {
    Server::start(config).expect("server starts")
}

pub fn answer_url(server: &Server) -> String {
    format!("http://{}/webhooks/answer", server.http_addr())
}

/// An HTTP answer, as read off the wire.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends `request` as is and reads the answer to the end.
pub fn raw_http(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream.write_all(request).unwrap();
    read_answer(&mut stream)
}

pub fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// A request with the usual headers.
pub fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    extra_headers: &str,
    body: &str,
) -> Answer {
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\n{extra_headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    raw_http(addr, request.as_bytes())
}

/// The NCCO's websocket endpoint for a GET answer with `query`.
pub fn endpoint(server: &Server, query: &str) -> Value {
    let answer = http(
        server.http_addr(),
        "GET",
        &format!("/webhooks/answer?{query}"),
        "",
        "",
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.json()[1]["endpoint"][0].clone()
}

/// Opens a socket at `uri` as a plain tungstenite client, with an `Authorization` header
/// when given.
pub fn ws_connect(uri: &str, authorization: Option<&str>) -> WebSocket<TcpStream> {
    try_ws_connect(uri, authorization).unwrap_or_else(|e| panic!("handshake at {uri}: {e}"))
}

/// The socket the NCCO for `uuid` names, opened with the authorization the NCCO carries.
pub fn call_socket(server: &Server, uuid: &str) -> WebSocket<TcpStream> {
    let endpoint = endpoint(server, &format!("uuid={uuid}"));
    ws_connect(
        endpoint["uri"].as_str().unwrap(),
        endpoint["authorization"]["value"].as_str(),
    )
}

/// The status a refused handshake was answered with.
pub fn refused_status(result: Result<WebSocket<TcpStream>, tungstenite::Error>) -> u16 {
    match result {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, the handshake succeeded"),
    }
}

pub fn try_ws_connect(
    uri: &str,
    authorization: Option<&str>,
) -> Result<WebSocket<TcpStream>, tungstenite::Error> {
    let mut request = uri.into_client_request().unwrap();
    if let Some(value) = authorization {
        request
            .headers_mut()
            .insert("Authorization", value.parse().unwrap());
    }
    let host = request.uri().host().unwrap().to_owned();
    let port = request.uri().port_u16().unwrap();
    let stream = TcpStream::connect((host.as_str(), port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let config = WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None);
    match tungstenite::client::client_with_config(request, stream, Some(config)) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(e)) => Err(e),
        Err(tungstenite::HandshakeError::Interrupted(_)) => panic!("handshake interrupted"),
    }
}

/// A call's socket, opened where the NCCO says, `websocket:connected` sent.
pub fn open_call(server: &Server, uuid: &str) -> WebSocket<TcpStream> {
    let endpoint = endpoint(
        server,
        &format!("uuid={uuid}&from=447700900000&to=447700900001"),
    );
    let mut ws = ws_connect(
        endpoint["uri"].as_str().unwrap(),
        endpoint["authorization"]["value"].as_str(),
    );
    let mut connected = endpoint["headers"].as_object().unwrap().clone();
    connected.insert("event".into(), "websocket:connected".into());
    connected.insert("content-type".into(), endpoint["content-type"].clone());
    let text = Value::Object(connected).to_string();
    ws.send(Message::text(text.clone())).unwrap();
    assert_eq!(
        next_data(&mut ws),
        Message::text(text),
        "connected message echoed"
    );
    ws
}

/// The next data or close message, skipping pings and pongs.
pub fn next_data(ws: &mut WebSocket<TcpStream>) -> Message {
    loop {
        match ws.read().expect("a message") {
            Message::Ping(_) | Message::Pong(_) => continue,
            other => return other,
        }
    }
}

/// Reads until the server's close frame, returning its code.
pub fn close_code(ws: &mut WebSocket<TcpStream>) -> u16 {
    loop {
        match ws.read() {
            Ok(Message::Close(Some(frame))) => return frame.code.into(),
            Ok(Message::Close(None)) => return 1005,
            Ok(_) => continue,
            Err(e) => panic!("no close frame: {e}"),
        }
    }
}

/// Waits (at most 10 s) for `cond` to hold.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Each live thread of this process as (name, scheduling policy, real-time priority, nice),
/// read from `/proc/self/task/*/stat`.
pub fn thread_scheduling() -> Vec<(String, u32, u32, i32)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let Ok(stat) = std::fs::read_to_string(task.unwrap().path().join("stat")) else {
            continue; // the thread ended meanwhile
        };
        let (head, rest) = stat.rsplit_once(')').unwrap();
        let name = head.split_once('(').unwrap().1.to_owned();
        // After the name come the fields from the 3rd (state) on; proc(5) numbers nice
        // 19, rt_priority 40 and policy 41.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        threads.push((
            name,
            fields[41 - 3].parse().unwrap(),
            fields[40 - 3].parse().unwrap(),
            fields[19 - 3].parse().unwrap(),
        ));
    }
    threads
}
