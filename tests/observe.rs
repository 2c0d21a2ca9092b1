//! Running it for real: metrics that move as calls happen, and recordings that hold what
//! callers said.

mod support;

use std::{path::PathBuf, time::Duration};

use support::*;
use vonage_echo::{
    sim::call::{self, CallOptions},
    AudioFormat,
};

/// The value of one sample line of a Prometheus exposition.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .parse()
        .unwrap()
}

fn scrape(server: &vonage_echo::Server) -> String {
    let answer = http(server.http_addr(), "GET", "/metrics", "", "");
    assert_eq!(answer.status, 200);
    assert!(answer
        .header("Content-Type")
        .unwrap()
        .starts_with("text/plain"));
    answer.body
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vonage-echo-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn metrics_move_as_a_call_happens() {
    let server = server();
    let before = scrape(&server);
    assert!(before.contains("# TYPE vonage_echo_calls_total counter"));
    let report = call::run(
        &CallOptions::new(answer_url(&server))
            .duration(Duration::from_secs(1))
            .dtmf("1#"),
    )
    .unwrap();
    assert!(report.passed(), "{report}");
    let after = scrape(&server);
    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(moved("vonage_echo_calls_total"), 1.0);
    assert_eq!(moved("vonage_echo_calls_ended_total{code=\"1000\"}"), 1.0);
    assert_eq!(moved("vonage_echo_frames_in_total"), 50.0);
    assert_eq!(moved("vonage_echo_bytes_in_total"), 50.0 * 640.0);
    // 50 frames, and 3 texts (websocket:connected and two keys), echoed.
    assert_eq!(moved("vonage_echo_frames_out_total"), 50.0);
    assert_eq!(moved("vonage_echo_texts_out_total"), 3.0);
    assert_eq!(moved("vonage_echo_bytes_out_total"), 50.0 * 640.0);
    assert_eq!(moved("vonage_echo_dtmf_digits_total"), 2.0);
    assert_eq!(moved("vonage_echo_call_duration_seconds_count"), 1.0);
    assert_eq!(
        moved("vonage_echo_call_duration_seconds_bucket{le=\"5\"}"),
        1.0
    );
    assert_eq!(sample(&after, "vonage_echo_calls_active"), 0.0);
    assert_eq!(
        sample(
            &after,
            "vonage_echo_webhook_requests_total{route=\"answer\",status=\"200\"}"
        ),
        1.0
    );
    // Two legs, each with its own events: the caller's, and the socket's, whose connect
    // names no eventUrl, so they come here too.
    assert_eq!(
        sample(
            &after,
            "vonage_echo_call_events_total{status=\"completed\"}"
        ),
        2.0
    );
    assert_eq!(
        sample(&after, "vonage_echo_call_events_total{status=\"started\"}"),
        2.0
    );
}

#[test]
fn webhook_latency_is_measured_by_route() {
    let server = server();
    let count = |text: &str| {
        sample(
            text,
            "vonage_echo_webhook_duration_seconds_count{route=\"answer\"}",
        )
    };
    let before = scrape(&server);
    let _ = endpoint(&server, "uuid=timed");
    let after = scrape(&server);
    assert_eq!(count(&after) - count(&before), 1.0);
    assert_eq!(
        sample(
            &after,
            "vonage_echo_webhook_duration_seconds_bucket{route=\"answer\",le=\"+Inf\"}"
        ),
        count(&after)
    );
}

#[test]
fn the_build_and_the_process_are_in_the_scrape() {
    let server = server();
    let text = scrape(&server);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample(
            &text,
            &format!("vonage_echo_build_info{{version=\"{version}\"}}")
        ),
        1.0
    );
    assert!(sample(&text, "process_resident_memory_bytes") > 1e6);
    assert!(
        sample(&text, "process_open_fds") >= 4.0,
        "two listeners and more"
    );
    assert!(sample(&text, "process_cpu_seconds_total") >= 0.0);
    assert!(sample(&text, "process_start_time_seconds") > 1.7e9);
}

#[test]
fn refused_handshakes_are_counted_by_reason() {
    let server = server();
    let _ = try_ws_connect(&format!("ws://{}/elsewhere", server.ws_addr()), None);
    let _ = try_ws_connect(&format!("ws://{}/socket?uuid=x", server.ws_addr()), None);
    let text = scrape(&server);
    assert_eq!(
        sample(
            &text,
            "vonage_echo_handshakes_refused_total{reason=\"path\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "vonage_echo_handshakes_refused_total{reason=\"unauthorized\"}"
        ),
        1.0
    );
}

#[test]
fn a_call_is_recorded_as_a_wav_with_its_events() {
    let dir = temp_dir("record");
    let server = start(
        config()
            .audio(AudioFormat::L16Rate8000)
            .record_dir(Some(dir.clone())),
    );
    let input = dir.join("signal.wav");
    let samples: Vec<i16> = (0..8000)
        .map(|i| ((i * 97) % 30000 - 15000) as i16)
        .collect();
    let mut writer =
        hound::WavWriter::create(&input, call::wav_spec(AudioFormat::L16Rate8000)).unwrap();
    for s in &samples {
        writer.write_sample(*s).unwrap();
    }
    writer.finalize().unwrap();

    let report = call::run(&CallOptions::new(answer_url(&server)).wav(Some(input))).unwrap();
    assert!(report.passed(), "{report}");
    eventually("the call to end", || server.active_calls() == 0);
    let id = report.id.as_str();
    let recorded = hound::WavReader::open(dir.join(format!("{id}.wav"))).unwrap();
    assert_eq!(recorded.spec(), call::wav_spec(AudioFormat::L16Rate8000));
    let got: Vec<i16> = recorded.into_samples().map(Result::unwrap).collect();
    assert_eq!(got, samples, "the recording holds what the caller sent");

    eventually("the completed event", || {
        std::fs::read_to_string(dir.join(format!("{id}.events.jsonl")))
            .is_ok_and(|t| t.contains("completed"))
    });
    let events = std::fs::read_to_string(dir.join(format!("{id}.events.jsonl"))).unwrap();
    let statuses: Vec<String> = events
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(statuses, ["started", "ringing", "answered", "completed"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_recording_is_finished_when_the_server_shuts_down() {
    let dir = temp_dir("record-shutdown");
    let server = start(config().record_dir(Some(dir.clone())));
    let mut ws = open_call(&server, "cut-short");
    for _ in 0..10 {
        ws.send(tungstenite::Message::binary(vec![3u8; 640]))
            .unwrap();
        let _ = next_data(&mut ws);
    }
    let stopper = std::thread::spawn(move || server.shutdown());
    assert_eq!(close_code(&mut ws), 1001);
    stopper.join().unwrap();
    let reader = hound::WavReader::open(dir.join("cut-short.wav")).unwrap();
    assert_eq!(
        reader.len(),
        10 * 320,
        "every sample, with a finished header"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_record_dir_that_fails_after_start_never_stops_a_call() {
    let dir = temp_dir("record-gone");
    let server = start(config().record_dir(Some(dir.clone())));
    std::fs::remove_dir_all(&dir).unwrap();
    let report =
        call::run(&CallOptions::new(answer_url(&server)).duration(Duration::from_millis(400)))
            .unwrap();
    assert!(report.passed(), "{report}");
}

#[test]
fn a_missing_record_dir_is_created_at_start() {
    let dir = temp_dir("record-created").join("calls");
    assert!(!dir.exists());
    let _server = start(config().record_dir(Some(dir.clone())));
    assert!(dir.is_dir());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no probe left");
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[test]
fn a_record_dir_that_cannot_be_written_is_refused_at_start_by_name() {
    let dir = temp_dir("record-under-a-file");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("a-file");
    std::fs::write(&file, "").unwrap();
    let refused = vonage_echo::Server::start(config().record_dir(Some(file.join("calls"))));
    let error = refused
        .err()
        .expect("the server refuses to start")
        .to_string();
    assert!(error.contains("--record-dir"), "{error}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn event_uuids_cannot_escape_the_record_dir() {
    let dir = temp_dir("record-escape");
    let server = start(config().record_dir(Some(dir.join("calls"))));
    std::fs::create_dir_all(dir.join("calls")).unwrap();
    let body = r#"{"uuid":"../escaped","status":"started"}"#;
    assert_eq!(
        http(server.http_addr(), "POST", "/webhooks/events", "", body).status,
        200
    );
    assert!(!dir.join("escaped.events.jsonl").exists());
    assert_eq!(std::fs::read_dir(dir.join("calls")).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_reconnected_call_keeps_its_first_recording() {
    let dir = temp_dir("record-twice");
    let server = start(config().record_dir(Some(dir.clone())));
    for fill in [1u8, 2u8] {
        let mut ws = open_call(&server, "again");
        ws.send(tungstenite::Message::binary(vec![fill; 640]))
            .unwrap();
        let _ = next_data(&mut ws);
        ws.close(None).unwrap();
        while ws.read().is_ok() {}
        eventually("the call to end", || server.active_calls() == 0);
    }
    let first: Vec<i16> = hound::WavReader::open(dir.join("again.wav"))
        .unwrap()
        .into_samples()
        .map(Result::unwrap)
        .collect();
    let second: Vec<i16> = hound::WavReader::open(dir.join("again.1.wav"))
        .unwrap()
        .into_samples()
        .map(Result::unwrap)
        .collect();
    assert_eq!(first, vec![i16::from_le_bytes([1, 1]); 320]);
    assert_eq!(second, vec![i16::from_le_bytes([2, 2]); 320]);
    let _ = std::fs::remove_dir_all(dir);
}
