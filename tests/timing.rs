//! Turn timing against mock applications over real sockets: a bot that answers each of the
//! caller's turns after a known delay, one that clears when interrupted and one that talks
//! on, and the measurements in the text, JSON and JUnit reports.

mod support;

use std::{
    net::TcpStream,
    path::Path,
    time::{Duration, Instant},
};

use serde_json::Value;
use support::app::{drain, is_loud, ncco_8k, send_frames, start_app, tone_8k};
use tungstenite::{Message, WebSocket};
use vonage_echo::sim::{
    call::{self, CallOptions, CallReport},
    script::Scenario,
    Dial, Expect, Voice,
};

/// A call of `scenario` to `answer_url`, judged by Vonage's rules only.
fn scripted_call(answer_url: &str, scenario: &str) -> CallReport {
    let scenario = Scenario::parse(scenario, Path::new(".")).unwrap();
    let options = CallOptions::new(answer_url)
        .dial(Dial::new(answer_url))
        .expect(Expect::Protocol)
        .voice(Voice::Silence)
        .script(Some(scenario));
    call::run(&options).unwrap()
}

/// A bot that answers each stretch of the caller's speech with a fifth of a second of its
/// own, `delay` after the stretch's last frame arrived.
fn replies_after(delay: Duration) -> impl Fn(WebSocket<TcpStream>) + Send + Sync + 'static {
    move |mut ws: WebSocket<TcpStream>| {
        let mut last_loud: Option<Instant> = None;
        loop {
            match ws.read() {
                Ok(Message::Binary(frame)) if is_loud(&frame) => last_loud = Some(Instant::now()),
                Ok(Message::Binary(_)) => {
                    if let Some(at) = last_loud.take() {
                        std::thread::sleep((at + delay).saturating_duration_since(Instant::now()));
                        send_frames(&mut ws, 10);
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }
}

#[test]
fn each_turns_reply_is_measured_from_its_end_to_the_bots_audio() {
    let app = start_app(
        ncco_8k,
        Duration::ZERO,
        replies_after(Duration::from_millis(300)),
    );
    let report = scripted_call(
        &app.answer_url,
        "tone 400ms\nsilence 1s\ntone 200ms\nsilence 1s",
    );
    assert!(report.passed(), "{report}");
    let whats: Vec<&str> = report.turns.iter().map(|t| t.what.as_str()).collect();
    assert_eq!(whats, ["tone 400ms", "tone 200ms"], "{report}");
    for turn in &report.turns {
        let reply = turn.reply.expect("each turn was answered");
        assert!(
            (Duration::from_millis(250)..Duration::from_millis(600)).contains(&reply),
            "{report}"
        );
    }
    assert!(report.barge_ins.is_empty(), "{report}");
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    assert!(json["turns"][1]["reply_ms"].as_f64().is_some(), "{json}");
    assert!(
        report.to_string().contains("1. tone 400ms, ended at"),
        "{report}"
    );
}

#[test]
fn the_time_to_first_audio_is_measured_from_the_socket_opening() {
    let app = start_app(ncco_8k, Duration::ZERO, |mut ws: WebSocket<TcpStream>| {
        let _ = ws.read();
        std::thread::sleep(Duration::from_millis(200));
        send_frames(&mut ws, 10);
        drain(&mut ws);
    });
    let report = scripted_call(&app.answer_url, "silence 800ms");
    let first = report.first_audio.expect("the bot spoke");
    assert!(
        (Duration::from_millis(190)..Duration::from_millis(500)).contains(&first),
        "{report}"
    );
}

/// A bot that talks for three seconds at once, and clears when the caller presses a key if
/// `clears`.
fn talks(clears: bool) -> impl Fn(WebSocket<TcpStream>) + Send + Sync + 'static {
    move |mut ws: WebSocket<TcpStream>| {
        let _ = ws.read();
        send_frames(&mut ws, 150);
        loop {
            match ws.read() {
                Ok(Message::Text(t)) if clears && t.as_str().contains("websocket:dtmf") => {
                    let _ = ws.send(Message::text(r#"{"action":"clear"}"#));
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }
}

#[test]
fn a_key_over_the_bots_audio_is_a_barge_in_timed_to_its_clear_and_silence() {
    let app = start_app(ncco_8k, Duration::ZERO, talks(true));
    let report = scripted_call(&app.answer_url, "silence 400ms\npress 5\nsilence 600ms");
    assert_eq!(report.barge_ins.len(), 1, "{report}");
    let barge_in = &report.barge_ins[0];
    assert_eq!(barge_in.what, "press 5");
    let clear = barge_in.clear.expect("the bot cleared");
    assert!(clear < Duration::from_millis(300), "{report}");
    assert!(
        barge_in
            .stopped
            .is_some_and(|s| s <= clear + Duration::from_millis(25)),
        "{report}"
    );
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    assert!(
        json["barge_ins"][0]["clear_ms"].as_f64().is_some(),
        "{json}"
    );
    assert!(
        json["barge_ins"][0]["stopped_ms"].as_f64().is_some(),
        "{json}"
    );
    let junit = report.to_junit();
    assert!(
        junit.contains("name=\"barge-in 1: press 5: clear\" time=\"0."),
        "{junit}"
    );
}

#[test]
fn a_bot_that_talks_on_over_the_caller_never_clears_and_never_stops() {
    let app = start_app(ncco_8k, Duration::ZERO, talks(false));
    let report = scripted_call(&app.answer_url, "silence 400ms\ntone 600ms\nsilence 200ms");
    let barge_in = &report.barge_ins[0];
    assert_eq!((barge_in.clear, barge_in.stopped), (None, None), "{report}");
    assert!(
        barge_in.talked_over >= Duration::from_millis(500),
        "the bot talked over the whole tone: {report}"
    );
}

#[test]
fn an_expectation_reports_its_measured_time_beside_its_bound() {
    let app = start_app(
        ncco_8k,
        Duration::ZERO,
        replies_after(Duration::from_millis(200)),
    );
    let report = scripted_call(
        &app.answer_url,
        "tone 300ms\nexpect speech within 1s\nsilence 1s\ntone 300ms\nexpect speech within 50ms\nsilence 1s",
    );
    let [met, missed] = report.expectations.as_slice() else {
        panic!("two expectations: {report}");
    };
    assert!(met.met && !missed.met, "{report}");
    let measured = met.measured.expect("measured");
    // Expectations are judged on the 20 ms ticks the caller hears, from the tick after
    // the step's last frame.
    assert!(measured >= Duration::from_millis(160), "{report}");
    let text = report.to_string();
    assert!(text.contains("(bound 1000 ms) met"), "{text}");
    assert!(text.contains("(bound 50 ms) NOT MET"), "{text}");
    let junit = report.to_junit();
    assert!(junit.contains("measured: "), "{junit}");
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["expectations"][1]["within_ms"], 50.0, "{json}");
}

#[test]
fn a_wavs_stretches_of_speech_are_its_turns() {
    let dir = std::env::temp_dir().join(format!("vonage-echo-turns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wav = dir.join("two-questions.wav");
    let mut writer = hound::WavWriter::create(
        &wav,
        hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        },
    )
    .unwrap();
    // A second of speech, a second of silence, a second of speech, a second of silence.
    let loud = tone_8k();
    let silent = vec![0u8; loud.len()];
    for frame in [&loud, &silent, &loud, &silent] {
        for _ in 0..50 {
            for pair in frame.chunks_exact(2) {
                writer
                    .write_sample(i16::from_le_bytes([pair[0], pair[1]]))
                    .unwrap();
            }
        }
    }
    writer.finalize().unwrap();
    let app = start_app(
        ncco_8k,
        Duration::ZERO,
        replies_after(Duration::from_millis(100)),
    );
    let options = CallOptions::new(&app.answer_url)
        .dial(Dial::new(&app.answer_url))
        .expect(Expect::Protocol)
        .wav(Some(wav));
    let report = call::run(&options).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(report.turns.len(), 2, "{report}");
    assert!(
        report
            .turns
            .iter()
            .all(|t| t.what == "speech" && t.reply.is_some()),
        "{report}"
    );
}
