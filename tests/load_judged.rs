//! `load` against any application: every call judged as `call` judges one, per-rule
//! counts with an example, reply and barge-in times over every turn, thresholds that decide
//! the exit status and appear in JUnit. Mock voice bots on real sockets.

mod support;

use std::{
    net::TcpStream,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;
use support::app::{is_loud, ncco_8k, send_frames, start_app};
use tungstenite::{Message, WebSocket};
use vonage_echo::sim::{
    call::CallOptions,
    load::{self, LoadOptions},
    script::Scenario,
    Dial, Expect, Voice,
};

/// A bot that answers each stretch of the caller's speech 200 ms after it ends.
fn answers(mut ws: WebSocket<TcpStream>) {
    let mut last_loud: Option<Instant> = None;
    loop {
        match ws.read() {
            Ok(Message::Binary(frame)) if is_loud(&frame) => last_loud = Some(Instant::now()),
            Ok(Message::Binary(_)) => {
                if let Some(at) = last_loud.take() {
                    let due = at + Duration::from_millis(200);
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    send_frames(&mut ws, 10);
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// A bot that talks for three seconds and never clears.
fn talks_on(mut ws: WebSocket<TcpStream>) {
    let _ = ws.read();
    send_frames(&mut ws, 150);
    while ws.read().is_ok() {}
}

/// A load of `calls` calls of `script`, judged by Vonage's rules.
fn judged_load(answer_url: &str, calls: usize, script: &str) -> LoadOptions {
    let scenario = Scenario::parse(script, Path::new(".")).unwrap();
    let call = CallOptions::new(answer_url)
        .dial(Dial::new(answer_url).talk_rate(0.0))
        .expect(Expect::Protocol)
        .voice(Voice::Silence)
        .script(Some(scenario));
    LoadOptions::new(answer_url, calls, Duration::from_secs(1))
        .dial(Dial::new(answer_url).talk_rate(0.0))
        .ramp(20.0)
        .judge(Some(call))
}

#[test]
fn every_call_of_a_voice_bot_is_judged_and_its_replies_timed() {
    let app = start_app(ncco_8k, Duration::ZERO, answers);
    let report = load::run(&judged_load(&app.answer_url, 4, "tone 300ms\nsilence 1s")).unwrap();
    assert!(report.passed(), "{report}");
    let judged = report.judged.as_ref().expect("judged");
    assert_eq!(
        (judged.calls, judged.passed, judged.answered),
        (4, 4, 4),
        "{report}"
    );
    assert!((150.0..600.0).contains(&judged.reply.p50_ms), "{report}");
    assert_eq!(report.histograms.reply.count(), 4);
    assert_eq!(report.frames_lost, 0, "a voice bot's calls lose no echo");
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["histograms"]["reply"]["count"], 4, "{json}");
    assert_eq!(json["judged"]["passed"], 4, "{json}");
}

#[test]
fn each_rule_broken_counts_its_calls_with_one_example() {
    let app = start_app(ncco_8k, Duration::ZERO, talks_on);
    let script = "silence 300ms\npress 5\nexpect clear within 300ms\nsilence 500ms";
    let report = load::run(&judged_load(&app.answer_url, 3, script)).unwrap();
    assert!(!report.passed(), "{report}");
    let judged = report.judged.as_ref().unwrap();
    assert_eq!(
        (judged.calls, judged.passed, judged.barge_ins),
        (3, 0, 3),
        "{report}"
    );
    let (rule, breaches) = judged.rules.iter().next().expect("a rule broken");
    assert!(rule.contains("expect clear"), "{report}");
    assert_eq!(breaches.calls, 3, "{report}");
    assert!(breaches.example.contains("never"), "{report}");
    assert!(report.to_string().contains("3 calls, e.g."), "{report}");
}

/// Runs the binary's load of a bot that answers in 200 ms, with `thresholds`; whether it
/// passed, and its JUnit.
fn load_with(thresholds: &[&str]) -> (bool, String) {
    let app = start_app(ncco_8k, Duration::ZERO, answers);
    let dir = std::env::temp_dir().join(format!(
        "vonage-echo-load-{}-{}",
        thresholds.len(),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("turn.scenario");
    std::fs::write(&script, "tone 300ms\nsilence 1s\n").unwrap();
    let junit = dir.join("load.xml");
    let output = Command::new(env!("CARGO_BIN_EXE_vonage-echo"))
        .args([
            "load",
            "--answer-url",
            &app.answer_url,
            "--talk-rate",
            "0",
            "--calls",
            "3",
            "--ramp",
            "20",
        ])
        .args(["--expect", "protocol", "--script"])
        .arg(&script)
        .arg("--junit")
        .arg(&junit)
        .args(thresholds)
        .output()
        .unwrap();
    let xml = std::fs::read_to_string(&junit).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    (output.status.success(), xml)
}

#[test]
fn thresholds_decide_the_exit_status_and_are_junit_testcases() {
    let (passed, xml) = load_with(&["--max-reply-p90", "800ms", "--min-pass-rate", "99.5"]);
    assert!(passed, "{xml}");
    assert!(
        xml.contains("classname=\"thresholds\" name=\"reply p90 at most 800 ms\">"),
        "{xml}"
    );
    assert!(
        xml.contains("name=\"at least 99.5 % of calls pass\""),
        "{xml}"
    );
    let (passed, xml) = load_with(&["--max-reply-p90", "50ms"]);
    assert!(!passed, "a reply of 200 ms is over 50 ms: {xml}");
    assert!(xml.contains("<failure message=\"measured "), "{xml}");
}

#[test]
fn a_judged_load_refuses_a_key_that_is_not_one_before_it_dials() {
    let app = start_app(ncco_8k, Duration::ZERO, answers);
    let call = CallOptions::new(&app.answer_url)
        .expect(Expect::Protocol)
        .dtmf("1x");
    let options = LoadOptions::new(&app.answer_url, 2, Duration::from_secs(1)).judge(Some(call));
    let error = load::run(&options).unwrap_err().to_string();
    assert!(error.contains("--dtmf") && error.contains("'x'"), "{error}");
    assert!(app.answers().is_empty(), "no call was dialed");
}
