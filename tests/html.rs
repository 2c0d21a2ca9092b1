//! The HTML report of the real binary's `call`: one self-contained page, and, where a
//! headless Chromium is installed, one that renders with no error in its console.

mod support;

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use support::app::{ncco_8k, send_frames, start_app};
use tungstenite::{Message, WebSocket};

/// A bot that greets the caller with three seconds of audio at once and clears it when a
/// key is pressed, then answers.
fn greets_and_clears(mut ws: WebSocket<TcpStream>) {
    let _ = ws.read();
    send_frames(&mut ws, 150);
    let _ = ws.send(Message::text(r#"{"action":"notify","payload":{}}"#));
    loop {
        match ws.read() {
            Ok(Message::Text(t)) if t.as_str().contains("websocket:dtmf") => {
                let _ = ws.send(Message::text(r#"{"action":"clear"}"#));
                std::thread::sleep(Duration::from_millis(150));
                send_frames(&mut ws, 20);
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// Plays a call with a barge-in against the bot and writes its page; the page's path.
fn page_of_a_call(name: &str) -> PathBuf {
    let app = start_app(ncco_8k, Duration::ZERO, greets_and_clears);
    let dir = std::env::temp_dir().join(format!("vonage-echo-html-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("barge-in.scenario");
    std::fs::write(
        &script,
        "silence 500ms\npress 5\nexpect clear within 500ms\nsilence 1s\n",
    )
    .unwrap();
    let page = dir.join("call.html");
    let output = Command::new(env!("CARGO_BIN_EXE_vonage-echo"))
        .args([
            "call",
            "--answer-url",
            &app.answer_url,
            "--expect",
            "protocol",
        ])
        .arg("--script")
        .arg(&script)
        .arg("--html")
        .arg(&page)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    page
}

#[test]
fn the_call_page_holds_its_timeline_and_histograms_and_needs_no_network() {
    let page = page_of_a_call("content");
    let html = std::fs::read_to_string(&page).unwrap();
    let _ = std::fs::remove_dir_all(page.parent().unwrap());
    for part in [
        "<h2>Timeline</h2>",
        "caller presses",
        "application heard",
        "Reply",
        "Barge-in",
        "Round trip",
        "press 5",
    ] {
        assert!(html.contains(part), "{part} missing");
    }
    for outside in ["src=", "href=", "<link", "@import", "url("] {
        assert!(
            !html.contains(outside),
            "the page reaches outside: {outside}"
        );
    }
}

/// The installed Chromium, if there is one.
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// Renders `page` in headless Chromium: the DOM after its script ran, and its log.
fn render(browser: &str, page: &Path) -> (String, String) {
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
#[ignore = "needs a headless Chromium (.ci/run installs it and runs this)"]
fn the_call_page_renders_in_chromium_with_no_console_errors() {
    let browser = chromium().expect("chromium is installed");
    let page = page_of_a_call("render");
    let (dom, log) = render(browser, &page);
    let _ = std::fs::remove_dir_all(page.parent().unwrap());
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "the console says: {console:#?}");
    assert!(
        dom.contains("data-rendered=\"yes\""),
        "the page's charts were not all drawn: {dom}"
    );
    assert!(dom.contains("4 chart(s) drawn"), "{dom}");
}

/// A socket that echoes every message.
fn echoes(mut ws: WebSocket<TcpStream>) {
    while let Ok(message) = ws.read() {
        if matches!(message, Message::Binary(_) | Message::Text(_)) && ws.send(message).is_err() {
            return;
        }
    }
}

/// Plays a short load against an echo and writes its page; the page's path.
fn page_of_a_load(name: &str) -> PathBuf {
    let app = start_app(ncco_8k, Duration::ZERO, echoes);
    let dir = std::env::temp_dir().join(format!("vonage-echo-html-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("load.html");
    let output = Command::new(env!("CARGO_BIN_EXE_vonage-echo"))
        .args(["load", "--answer-url", &app.answer_url, "--talk-rate", "0"])
        .args(["--calls", "4", "--ramp", "4", "--duration", "2.5", "--html"])
        .arg(&page)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    page
}

#[test]
fn the_load_page_holds_calls_over_time_and_every_latency_histogram() {
    let page = page_of_a_load("load-content");
    let html = std::fs::read_to_string(&page).unwrap();
    let _ = std::fs::remove_dir_all(page.parent().unwrap());
    for part in [
        "Calls up",
        "polyline",
        "Answer webhook",
        "Socket handshake",
        "of each echoed frame; p50",
    ] {
        assert!(html.contains(part), "{part} missing");
    }
    assert!(!html.contains("src=") && !html.contains("href="));
}

#[test]
#[ignore = "needs a headless Chromium (.ci/run installs it and runs this)"]
fn the_load_page_renders_in_chromium_with_no_console_errors() {
    let browser = chromium().expect("chromium is installed");
    let page = page_of_a_load("load-render");
    let (dom, log) = render(browser, &page);
    let _ = std::fs::remove_dir_all(page.parent().unwrap());
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "the console says: {console:#?}");
    assert!(dom.contains("data-rendered=\"yes\""), "{dom}");
    assert!(dom.contains("4 chart(s) drawn"), "{dom}");
}
