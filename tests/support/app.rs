//! Mock Vonage applications for the emulator's tests: an answer webhook that answers an
//! NCCO (when told to, late), an event webhook that keeps what it is sent, and a socket
//! that runs the test's behaviour on each connection. Real sockets on 127.0.0.1, port 0.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use tungstenite::{Message, WebSocket};

/// A running mock application.
pub struct App {
    pub answer_url: String,
    /// Its fallback answer URL (`/fallback`), which answers the NCCO at once.
    pub fallback_url: String,
    /// Its HTTP base, `http://127.0.0.1:PORT`.
    pub http: String,
    /// Its socket listener's origin, `ws://127.0.0.1:PORT`.
    pub socket_origin: String,
    /// Every request the HTTP side took, in order.
    pub requests: Arc<Mutex<Vec<Request>>>,
    /// The path and query of every socket handshake, and when it came.
    pub sockets: Arc<Mutex<Vec<(String, Instant)>>>,
}

/// One request to the mock's HTTP side.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// The JSON body, or the query's fields as a JSON object for a GET.
    pub fields: serde_json::Value,
    /// When it came.
    pub at: Instant,
}

impl App {
    /// The statuses posted to the event webhooks (any path but the answer's), in order.
    pub fn statuses(&self) -> Vec<String> {
        self.events()
            .iter()
            .filter_map(|r| r.fields["status"].as_str().map(str::to_owned))
            .collect()
    }

    /// The requests to the event webhooks, in order.
    pub fn events(&self) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| !is_answer(&r.target))
            .cloned()
            .collect()
    }

    /// The requests to the answer and fallback URLs, in order.
    pub fn answers(&self) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| is_answer(&r.target))
            .cloned()
            .collect()
    }
}

fn is_answer(target: &str) -> bool {
    target.starts_with("/webhooks/answer") || target.starts_with("/fallback")
}

/// What the answer webhook answers, given the socket's uri.
pub type NccoFor = fn(&str) -> String;

/// The NCCO of a call at 8 kHz to `uri`.
pub fn ncco_8k(uri: &str) -> String {
    format!(
        r#"[{{"action":"talk","text":"hi"}},{{"action":"connect","endpoint":[{{"type":"websocket","uri":"{uri}","content-type":"audio/l16;rate=8000"}}]}}]"#
    )
}

/// Writes the NCCO, given the socket's uri and the HTTP base.
pub type WriteNcco = dyn Fn(&str, &str) -> String + Send + Sync;

/// How the mock's HTTP side behaves.
pub struct Plan {
    /// The NCCO, given the socket's uri and the HTTP base.
    pub ncco: Box<WriteNcco>,
    /// How long the answer URL waits before it answers.
    pub delay: Duration,
    /// What the answer URL answers to its first requests, before it gives its NCCO (a
    /// status; 0 closes the connection without a word).
    pub answer_failures: Vec<u16>,
    /// What `/webhooks/events` answers.
    pub event_status: u16,
    /// What any other event path answers `disconnected` with (a synchronous event's NCCO),
    /// given the socket's uri and the HTTP base.
    pub on_disconnected: Box<WriteNcco>,
}

impl Plan {
    /// The NCCO of `ncco`, answered at once, every event taken.
    pub fn new(ncco: impl Fn(&str, &str) -> String + Send + Sync + 'static) -> Plan {
        Plan {
            ncco: Box::new(ncco),
            delay: Duration::ZERO,
            answer_failures: Vec::new(),
            event_status: 200,
            on_disconnected: Box::new(|_, _| String::new()),
        }
    }
}

/// Starts an application whose socket runs `behaviour`, answering `ncco` after `delay`.
pub fn start_app(
    ncco: NccoFor,
    delay: Duration,
    behaviour: impl Fn(WebSocket<TcpStream>) + Send + Sync + 'static,
) -> App {
    let mut plan = Plan::new(move |uri, _| ncco(uri));
    plan.delay = delay;
    start_mock(plan, behaviour)
}

/// Starts an application that behaves as `plan` says, its socket running `behaviour`.
pub fn start_mock(
    plan: Plan,
    behaviour: impl Fn(WebSocket<TcpStream>) + Send + Sync + 'static,
) -> App {
    let sockets = TcpListener::bind("127.0.0.1:0").unwrap();
    let socket_origin = format!("ws://{}", sockets.local_addr().unwrap());
    let uri = format!("{socket_origin}/socket");
    let behaviour = Arc::new(behaviour);
    let opened = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&opened);
    thread::spawn(move || {
        for stream in sockets.incoming() {
            let Ok(stream) = stream else { return };
            let (behaviour, seen) = (Arc::clone(&behaviour), Arc::clone(&seen));
            thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
                // tungstenite's callback type returns its whole error response.
                #[allow(clippy::result_large_err)]
                let note = |request: &tungstenite::handshake::server::Request, response| {
                    let path = request.uri().path_and_query().map_or("", |p| p.as_str());
                    seen.lock().unwrap().push((path.to_owned(), Instant::now()));
                    Ok(response)
                };
                if let Ok(ws) = tungstenite::accept_hdr(stream, note) {
                    behaviour(ws);
                }
            });
        }
    });
    let http = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", http.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&requests);
    let body = (plan.ncco)(&uri, &base);
    let on_disconnected = (plan.on_disconnected)(&uri, &base);
    let plan = Arc::new((plan, Mutex::new(0usize), on_disconnected));
    thread::spawn(move || {
        for stream in http.incoming() {
            let Ok(stream) = stream else { return };
            let (body, kept, plan) = (body.clone(), Arc::clone(&kept), Arc::clone(&plan));
            thread::spawn(move || serve_webhook(stream, &body, &plan, &kept));
        }
    });
    App {
        answer_url: format!("{base}/webhooks/answer"),
        fallback_url: format!("{base}/fallback"),
        http: base,
        socket_origin,
        requests,
        sockets: opened,
    }
}

fn serve_webhook(
    mut stream: TcpStream,
    ncco: &str,
    plan: &(Plan, Mutex<usize>, String),
    requests: &Mutex<Vec<Request>>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(request) = read_request(&mut stream) else {
        return;
    };
    let target = request.target.clone();
    requests.lock().unwrap().push(request.clone());
    let (plan, asked, on_disconnected) = plan;
    let (status, body) = if target.starts_with("/webhooks/answer") {
        let n = {
            let mut asked = asked.lock().unwrap();
            *asked += 1;
            *asked - 1
        };
        thread::sleep(plan.delay);
        match plan.answer_failures.get(n) {
            Some(0) => return,
            Some(status) => (*status, String::new()),
            None => (200, ncco.to_owned()),
        }
    } else if target.starts_with("/fallback") {
        (200, ncco.to_owned())
    } else if target.starts_with("/webhooks/events") {
        (plan.event_status, String::new())
    } else if request.fields["status"] == "disconnected" {
        (200, on_disconnected.clone())
    } else {
        (200, String::new())
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Reads one request: its head, then as much body as Content-Length says.
fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let (head_end, length) = loop {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        request.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&request).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                break (end, length);
            }
        }
    };
    let text = String::from_utf8_lossy(&request).to_string();
    let mut words = text.split_whitespace();
    let method = words.next()?.to_owned();
    let target = words.next()?.to_owned();
    let body = &text[head_end + 4..head_end + 4 + length];
    let fields = if method == "GET" {
        let query = target.split_once('?').map_or("", |(_, q)| q);
        serde_json::Value::Object(
            form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned().into()))
                .collect(),
        )
    } else {
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
    };
    Some(Request {
        method,
        target,
        fields,
        at: Instant::now(),
    })
}

/// A 20 ms frame of a loud 400 Hz tone at 8 kHz: speech, to the emulator.
pub fn tone_8k() -> Vec<u8> {
    (0..160)
        .flat_map(|i| {
            let s = (f64::sin(2.0 * std::f64::consts::PI * 400.0 * f64::from(i) / 8000.0) * 8000.0)
                as i16;
            s.to_le_bytes()
        })
        .collect()
}

/// Sends `n` frames of the tone at once, faster than real time.
pub fn send_frames(ws: &mut WebSocket<TcpStream>, n: usize) {
    let frame = tone_8k();
    for _ in 0..n {
        if ws.send(Message::binary(frame.clone())).is_err() {
            return;
        }
    }
}

/// Reads until a text message containing `needle`, or the socket ends; whether it came.
pub fn await_text(ws: &mut WebSocket<TcpStream>, needle: &str) -> bool {
    loop {
        match ws.read() {
            Ok(Message::Text(t)) if t.as_str().contains(needle) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

/// Reads until the socket ends, so the caller's close is answered.
pub fn drain(ws: &mut WebSocket<TcpStream>) {
    while ws.read().is_ok() {}
}

/// Whether a frame of 16-bit audio is loud: the caller speaking (a tone), not silence.
pub fn is_loud(frame: &[u8]) -> bool {
    frame
        .chunks_exact(2)
        .any(|b| i16::from_le_bytes([b[0], b[1]]).unsigned_abs() > 1000)
}
