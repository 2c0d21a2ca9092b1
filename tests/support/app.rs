//! Mock Vonage applications for the emulator's tests: an answer webhook that answers an
//! NCCO (when told to, late), an event webhook that keeps what it is sent, and a socket
//! that runs the test's behaviour on each connection. Real sockets on 127.0.0.1, port 0.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    sync::{Arc, Mutex},
    thread,
    time::Duration,
};

use tungstenite::{Message, WebSocket};

/// A running mock application.
pub struct App {
    pub answer_url: String,
    /// The statuses posted to the event webhook, in order.
    pub events: Arc<Mutex<Vec<String>>>,
}

/// What the answer webhook answers, given the socket's uri.
pub type NccoFor = fn(&str) -> String;

/// The NCCO of a call at 8 kHz to `uri`.
pub fn ncco_8k(uri: &str) -> String {
    format!(
        r#"[{{"action":"talk","text":"hi"}},{{"action":"connect","endpoint":[{{"type":"websocket","uri":"{uri}","content-type":"audio/l16;rate=8000"}}]}}]"#
    )
}

/// Starts an application whose socket runs `behaviour`, answering `ncco` after `delay`.
pub fn start_app(
    ncco: NccoFor,
    delay: Duration,
    behaviour: impl Fn(WebSocket<TcpStream>) + Send + Sync + 'static,
) -> App {
    let sockets = TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("ws://{}/socket", sockets.local_addr().unwrap());
    let behaviour = Arc::new(behaviour);
    thread::spawn(move || {
        for stream in sockets.incoming() {
            let Ok(stream) = stream else { return };
            let behaviour = Arc::clone(&behaviour);
            thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
                if let Ok(ws) = tungstenite::accept(stream) {
                    behaviour(ws);
                }
            });
        }
    });
    let http = TcpListener::bind("127.0.0.1:0").unwrap();
    let answer_url = format!("http://{}/webhooks/answer", http.local_addr().unwrap());
    let events = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&events);
    let body = ncco(&uri);
    thread::spawn(move || {
        for stream in http.incoming() {
            let Ok(stream) = stream else { return };
            let (body, kept) = (body.clone(), Arc::clone(&kept));
            thread::spawn(move || serve_webhook(stream, &body, delay, &kept));
        }
    });
    App { answer_url, events }
}

fn serve_webhook(mut stream: TcpStream, ncco: &str, delay: Duration, events: &Mutex<Vec<String>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    // The head, then as much body as Content-Length says.
    loop {
        let Ok(n) = stream.read(&mut buf) else { return };
        if n == 0 {
            return;
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
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&request).to_string();
    let body =
        if text.starts_with("GET /webhooks/answer") || text.starts_with("POST /webhooks/answer") {
            thread::sleep(delay);
            ncco.to_owned()
        } else {
            if let Some(status) = text
                .split("\r\n\r\n")
                .nth(1)
                .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
                .and_then(|v| v["status"].as_str().map(str::to_owned))
            {
                events.lock().unwrap().push(status);
            }
            String::new()
        };
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
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
