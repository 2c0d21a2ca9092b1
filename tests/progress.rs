//! Progress lines on standard error, from the real binary: one a second with `--progress`,
//! none when standard error is not a terminal and nothing asks for them.

mod support;

use std::{net::TcpStream, process::Command, time::Duration};

use support::app::{ncco_8k, start_app};
use tungstenite::{Message, WebSocket};

/// A socket that echoes every message.
fn echoes(mut ws: WebSocket<TcpStream>) {
    while let Ok(message) = ws.read() {
        if matches!(message, Message::Binary(_) | Message::Text(_)) && ws.send(message).is_err() {
            return;
        }
    }
}

/// Runs the binary's `subcommand` against an echo, with `extra` flags; its standard error.
fn stderr_of(subcommand: &[&str], extra: &[&str]) -> String {
    let app = start_app(ncco_8k, Duration::ZERO, echoes);
    let output = Command::new(env!("CARGO_BIN_EXE_vonage-echo"))
        .args(subcommand)
        .args(["--answer-url", &app.answer_url, "--talk-rate", "0"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_call_of_a_few_seconds_shows_a_line_a_second_when_asked() {
    let stderr = stderr_of(&["call", "--duration", "4.5"], &["--progress"]);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("call ")).collect();
    assert!(!lines.is_empty() && lines.len() <= 3, "{stderr}");
    assert!(lines[0].contains("frames sent"), "{stderr}");
}

#[test]
fn a_call_to_a_pipe_shows_no_progress() {
    let stderr = stderr_of(&["call", "--duration", "4.5"], &[]);
    assert!(!stderr.contains("frames sent"), "{stderr}");
}

#[test]
fn a_load_shows_calls_up_and_done_each_second_when_asked() {
    let stderr = stderr_of(
        &["load", "--calls", "3", "--duration", "2.5"],
        &["--progress"],
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("load ")).collect();
    assert!(!lines.is_empty(), "{stderr}");
    assert!(
        lines[0].contains(" up, ") && lines[0].contains("p99 handshake"),
        "{stderr}"
    );
}

#[test]
fn progress_and_no_progress_cannot_be_given_together() {
    let output = Command::new(env!("CARGO_BIN_EXE_vonage-echo"))
        .args([
            "call",
            "--answer-url",
            "http://127.0.0.1:9/x",
            "--progress",
            "--no-progress",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cannot be used with"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
