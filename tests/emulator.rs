//! The emulator plays Vonage for any application: one mock application per rule, each
//! breaking it or keeping it, and the report says which rule and how.

mod support;

use std::{
    net::TcpStream,
    sync::mpsc,
    time::{Duration, Instant},
};

use support::app::{self, await_text, drain, ncco_8k, send_frames, start_app};
use tungstenite::{Message, WebSocket};
use vonage_echo::{
    sim::{
        call::{self, CallOptions, CallReport},
        findings::Check,
        script::Scenario,
        Arrival, Dial, Expect, Voice,
    },
    AudioFormat,
};

/// A call that expects no echo, to `answer_url`, lasting `secs`, caller silent.
fn protocol_call(answer_url: &str, duration: Duration) -> CallOptions {
    CallOptions::new(answer_url)
        .dial(Dial::new(answer_url))
        .expect(Expect::Protocol)
        .voice(Voice::Silence)
        .duration(duration)
}

/// Every frame the application sent was played, dropped, cleared away or left unplayed.
fn assert_frames_add_up(report: &CallReport) {
    assert_eq!(
        report.played_frames
            + report.dropped_frames
            + report.cleared_frames
            + report.unplayed_frames,
        report.received_frames,
        "{report}"
    );
}

fn has_fault(report: &CallReport, check: Check, words: &[&str]) -> bool {
    report
        .faults
        .iter()
        .any(|f| f.check == check && words.iter().all(|w| f.text.contains(w)))
}

#[test]
fn a_prompt_sent_ahead_plays_in_real_time_and_is_notified_once_played() {
    let (tx, rx) = mpsc::channel();
    let app = start_app(
        ncco_8k,
        Duration::ZERO,
        move |mut ws: WebSocket<TcpStream>| {
            let _ = ws.read(); // websocket:connected
            send_frames(&mut ws, 50); // one second, sent at once
            let _ = ws.send(Message::text(
                r#"{"action":"notify","payload":{"prompt":"greeting"}}"#,
            ));
            let asked = Instant::now();
            let notified = await_text(&mut ws, r#""prompt":"greeting""#);
            let _ = tx.send((notified, asked.elapsed()));
            drain(&mut ws);
        },
    );
    let report = call::run(&protocol_call(&app.answer_url, Duration::from_secs(2))).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(
        (report.played_frames, report.dropped_frames),
        (50, 0),
        "{report}"
    );
    assert_eq!(report.notified, 1, "{report}");
    let (notified, after) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(notified, "websocket:notify came back with its payload");
    assert!(
        after >= Duration::from_millis(900),
        "notified after {after:?}: before the second of audio had played"
    );
}

#[test]
fn a_clear_on_a_key_empties_the_buffer_and_is_answered() {
    let (tx, rx) = mpsc::channel();
    let app = start_app(
        ncco_8k,
        Duration::ZERO,
        move |mut ws: WebSocket<TcpStream>| {
            let _ = ws.read();
            send_frames(&mut ws, 150); // three seconds of prompt
            if await_text(&mut ws, "websocket:dtmf") {
                let _ = ws.send(Message::text(r#"{"action":"clear"}"#));
                let _ = tx.send(await_text(&mut ws, "websocket:cleared"));
            }
            drain(&mut ws);
        },
    );
    let report =
        call::run(&protocol_call(&app.answer_url, Duration::from_secs(2)).dtmf("5")).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.cleared, 1, "{report}");
    assert!(report.cleared_frames > 0, "{report}");
    assert_frames_add_up(&report);
    assert!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        "websocket:cleared was sent"
    );
    // The key came a second in: about 50 frames played, the rest were cleared.
    assert!((40..=70).contains(&report.played_frames), "{report}");
}

#[test]
fn a_frame_of_the_wrong_size_ends_the_socket_naming_both_sizes() {
    let (tx, rx) = mpsc::channel();
    let app = start_app(
        ncco_8k,
        Duration::ZERO,
        move |mut ws: WebSocket<TcpStream>| {
            let _ = ws.read();
            let _ = ws.send(Message::binary(vec![0u8; 160]));
            // Vonage stops listening and drops the connection: no close frame comes.
            let ended = loop {
                match ws.read() {
                    Ok(Message::Close(_)) => break "a close frame",
                    Ok(_) => {}
                    Err(_) => break "dropped",
                }
            };
            let _ = tx.send(ended);
        },
    );
    let report = call::run(&protocol_call(&app.answer_url, Duration::from_secs(2))).unwrap();
    assert!(!report.passed());
    assert!(
        has_fault(&report, Check::FrameSize, &["160 bytes", "320"]),
        "{report}"
    );
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "dropped");
}

#[test]
fn audio_past_the_buffer_is_dropped_and_counted() {
    let app = start_app(ncco_8k, Duration::ZERO, |mut ws: WebSocket<TcpStream>| {
        let _ = ws.read();
        send_frames(&mut ws, 100);
        drain(&mut ws);
    });
    let report =
        call::run(&protocol_call(&app.answer_url, Duration::from_millis(600)).buffer_frames(20))
            .unwrap();
    assert!(!report.passed());
    // Twenty fit at once, and each frame played made room for one more.
    assert!(report.dropped_frames >= 1, "{report}");
    assert!(
        report.dropped_frames <= report.received_frames.saturating_sub(20),
        "{report}"
    );
    assert_frames_add_up(&report);
    assert!(
        has_fault(&report, Check::Playback, &["20 frames", "dropped"]),
        "{report}"
    );
}

#[test]
fn content_type_in_camel_case_streams_16_khz_and_is_named() {
    let (tx, rx) = mpsc::channel();
    let app = start_app(
        |uri| ncco_8k(uri).replace("content-type", "contentType"),
        Duration::ZERO,
        move |mut ws: WebSocket<TcpStream>| {
            let connected = ws.read().map(|m| m.to_string()).unwrap_or_default();
            let first = loop {
                match ws.read() {
                    Ok(Message::Binary(b)) => break b.len(),
                    Ok(_) => {}
                    Err(_) => break 0,
                }
            };
            let _ = tx.send((connected, first));
            drain(&mut ws);
        },
    );
    let report = call::run(&protocol_call(&app.answer_url, Duration::from_millis(400))).unwrap();
    assert_eq!(report.format, Some(AudioFormat::L16Rate16000));
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.text.contains("\"contentType\"")),
        "{report}"
    );
    let (connected, frame) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(connected.contains("audio/l16;rate=16000"), "{connected}");
    assert_eq!(frame, 640, "the caller streams 16 kHz frames");
}

#[test]
fn an_answer_slower_than_vonage_waits_is_asked_twice_then_fails_the_call() {
    let app = start_app(
        ncco_8k,
        Duration::from_millis(700),
        |mut ws: WebSocket<TcpStream>| drain(&mut ws),
    );
    let options = protocol_call(&app.answer_url, Duration::from_millis(200));
    let options = options
        .clone()
        .dial(options.dial.answer_timeout(Duration::from_millis(300)));
    let report = call::run(&options).unwrap();
    assert_eq!(report.answer_attempts.len(), 2, "{report}");
    assert!(
        report
            .answer_attempts
            .iter()
            .all(|a| a.error.as_deref().is_some_and(|e| e.contains("0.30 s"))),
        "{report}"
    );
    assert!(
        has_fault(
            &report,
            Check::AnswerWebhook,
            &[
                "no NCCO after asking the answer URL twice",
                "--fallback-answer-url"
            ]
        ),
        "{report}"
    );
    assert_eq!(report.sent, 0, "no call without an NCCO: {report}");
    assert_eq!(app.statuses(), ["started", "ringing", "completed"]);
}

#[test]
fn text_vonage_does_not_know_is_reported_and_tolerated() {
    let app = start_app(ncco_8k, Duration::ZERO, |mut ws: WebSocket<TcpStream>| {
        let _ = ws.read();
        for text in ["hello", "{", r#"{"action":"dance"}"#, "\u{0}\u{ffff}"] {
            let _ = ws.send(Message::text(text));
        }
        let _ = ws.send(Message::Ping(vec![1, 2].into()));
        drain(&mut ws);
    });
    let report = call::run(&protocol_call(&app.answer_url, Duration::from_millis(400))).unwrap();
    assert!(report.passed(), "{report}");
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.check == Check::Commands && w.text.starts_with("4 text message(s)")),
        "{report}"
    );
}

#[test]
fn an_application_that_closes_the_socket_is_reported_with_a_disconnected_event() {
    let app = start_app(ncco_8k, Duration::ZERO, |mut ws: WebSocket<TcpStream>| {
        let _ = ws.read();
        std::thread::sleep(Duration::from_millis(200));
        let _ = ws.close(None);
        drain(&mut ws);
    });
    let report = call::run(&protocol_call(&app.answer_url, Duration::from_secs(2))).unwrap();
    assert!(
        report.passed(),
        "the application may end its socket: {report}"
    );
    assert!(report.closed_by_application, "{report}");
    assert!(report.sent < 50, "the caller stopped streaming: {report}");
    let legs: Vec<(String, String)> = app
        .events()
        .iter()
        .map(|e| {
            let leg = if e.fields["direction"] == "outbound" {
                "socket"
            } else {
                "call"
            };
            (
                leg.to_owned(),
                e.fields["status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let expected = [
        ("call", "started"),
        ("call", "ringing"),
        ("call", "answered"),
        ("socket", "started"),
        ("socket", "answered"),
        ("socket", "disconnected"),
        ("socket", "completed"),
        ("call", "completed"),
    ];
    assert_eq!(
        legs,
        expected.map(|(l, s)| (l.to_owned(), s.to_owned())),
        "the socket leg's events go to the application's event URL when its connect names none"
    );
}

#[test]
fn an_application_that_drops_the_connection_is_a_fault() {
    let app = start_app(ncco_8k, Duration::ZERO, |mut ws: WebSocket<TcpStream>| {
        let _ = ws.read();
        let _ = ws.get_mut().shutdown(std::net::Shutdown::Both);
    });
    let report = call::run(&protocol_call(&app.answer_url, Duration::from_secs(1))).unwrap();
    assert!(!report.passed());
    assert!(
        report.faults.iter().any(|f| f.check == Check::Socket),
        "{report}"
    );
}

#[test]
fn audio_paced_late_underruns_and_is_warned_of() {
    let app = start_app(ncco_8k, Duration::ZERO, |mut ws: WebSocket<TcpStream>| {
        let _ = ws.read();
        let frame = app::tone_8k();
        // A timer that waits 20 ms from each send, and now and then 60 ms more: it never
        // catches up, so each slip leaves the buffer empty for a few ticks.
        for k in 0..40u32 {
            let slip = if k % 10 == 9 { 60 } else { 0 };
            std::thread::sleep(Duration::from_millis(20 + slip));
            if ws.send(Message::binary(frame.clone())).is_err() {
                return;
            }
        }
        drain(&mut ws);
    });
    let report = call::run(&protocol_call(&app.answer_url, Duration::from_millis(1200))).unwrap();
    assert!(report.underruns >= 2, "{report}");
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.check == Check::Playback && w.text.contains("gaps")),
        "{report}"
    );
}

/// A voice bot: it greets the caller with a second of audio and asks to be told when the
/// greeting has played; on a key it stops talking, answers with half a second and asks
/// again.
fn bot(mut ws: WebSocket<TcpStream>) {
    let _ = ws.read();
    send_frames(&mut ws, 50);
    let _ = ws.send(Message::text(
        r#"{"action":"notify","payload":{"played":"greeting"}}"#,
    ));
    loop {
        match ws.read() {
            Ok(Message::Text(t)) if t.as_str().contains("websocket:dtmf") => {
                let _ = ws.send(Message::text(r#"{"action":"clear"}"#));
                send_frames(&mut ws, 25);
                let _ = ws.send(Message::text(
                    r#"{"action":"notify","payload":{"played":"answer"}}"#,
                ));
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

fn scenario(name: &str) -> Scenario {
    Scenario::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/scenarios")
            .join(name),
    )
    .unwrap()
}

#[test]
fn the_greeting_scenario_passes_against_a_bot_that_greets() {
    let app = start_app(ncco_8k, Duration::ZERO, bot);
    let options =
        protocol_call(&app.answer_url, Duration::ZERO).script(Some(scenario("greeting.scenario")));
    let report = call::run(&options).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.notified, 1, "{report}");
    assert!(report
        .checks
        .iter()
        .any(|c| matches!(c, Check::Expectation(_))));
}

#[test]
fn the_barge_in_scenario_passes_against_a_bot_that_clears() {
    let app = start_app(ncco_8k, Duration::ZERO, bot);
    let options =
        protocol_call(&app.answer_url, Duration::ZERO).script(Some(scenario("barge-in.scenario")));
    let report = call::run(&options).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.cleared, 1, "{report}");
}

#[test]
fn the_barge_in_scenario_fails_against_a_bot_that_never_clears() {
    let app = start_app(ncco_8k, Duration::ZERO, |mut ws: WebSocket<TcpStream>| {
        let _ = ws.read();
        send_frames(&mut ws, 50);
        drain(&mut ws);
    });
    let options =
        protocol_call(&app.answer_url, Duration::ZERO).script(Some(scenario("barge-in.scenario")));
    let report = call::run(&options).unwrap();
    assert!(!report.passed());
    assert!(
        report
            .faults
            .iter()
            .any(|f| matches!(&f.check, Check::Expectation(e) if e.contains("expect clear"))),
        "{report}"
    );
}

#[test]
fn garbage_on_the_socket_ends_in_a_report_naming_it() {
    let app = start_app(ncco_8k, Duration::ZERO, |mut ws: WebSocket<TcpStream>| {
        let _ = ws.read();
        // A whole frame header with reserved bits and opcode 15: no WebSocket peer sends it.
        let _ = std::io::Write::write_all(ws.get_mut(), &[0xff, 0x00]);
        drain(&mut ws);
    });
    let report = call::run(&protocol_call(&app.answer_url, Duration::from_secs(1))).unwrap();
    assert!(!report.passed());
    assert!(
        has_fault(&report, Check::Socket, &["the connection broke mid-call"]),
        "{report}"
    );
}

#[test]
fn an_answer_webhook_that_speaks_no_http_ends_in_a_report() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/webhooks/answer", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let _ = std::io::Write::write_all(&mut stream, b"\x00\xffnot http at all\r\n\r\n");
        }
    });
    let options = protocol_call(&url, Duration::from_millis(200));
    let options = options.clone().dial(options.dial.post_events(false));
    let report = call::run(&options).unwrap();
    assert!(!report.passed());
    assert_eq!(
        report.checks,
        [Check::Events, Check::AnswerWebhook],
        "{report}"
    );
    assert!(report.faults[0].check == Check::AnswerWebhook, "{report}");
}

#[test]
fn the_binary_reports_as_json_and_junit_and_fails_on_a_fault() {
    let app = start_app(ncco_8k, Duration::ZERO, |mut ws: WebSocket<TcpStream>| {
        let _ = ws.read();
        send_frames(&mut ws, 100);
        drain(&mut ws);
    });
    let junit = std::env::temp_dir().join(format!("vonage-echo-junit-{}.xml", std::process::id()));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vonage-echo"))
        .args([
            "call",
            "--answer-url",
            &app.answer_url,
            "--expect",
            "protocol",
        ])
        .args([
            "--duration",
            "0.4",
            "--buffer-frames",
            "10",
            "--json",
            "--junit",
        ])
        .arg(&junit)
        .output()
        .unwrap();
    assert!(!output.status.success(), "a fault fails the run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(json["passed"], false);
    assert!(json["dropped_frames"].as_u64().unwrap() >= 1, "{json}");
    assert!(
        json["faults"][0].as_str().unwrap().contains("10 frames"),
        "{json}"
    );
    for count in ["played_frames", "underruns", "cleared", "notified"] {
        assert!(json[count].is_u64(), "{count}: {json}");
    }
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("<testcase classname=\"vonage\" name=\"playback buffer\"><failure"),
        "{xml}"
    );
    assert!(
        xml.contains("<testcase classname=\"vonage\" name=\"frame sizes\"></testcase>"),
        "{xml}"
    );
    let _ = std::fs::remove_file(junit);
}

#[test]
fn ncco_fields_vonage_would_refuse_are_faults_and_ws_is_a_warning() {
    let app = start_app(
        |uri| {
            let big = "x".repeat(600);
            ncco_8k(uri).replace(
                r#""content-type""#,
                &format!(r#""headers":{{"note":"{big}"}},"content-type""#),
            )
        },
        Duration::ZERO,
        |mut ws: WebSocket<TcpStream>| drain(&mut ws),
    );
    let report = call::run(&protocol_call(&app.answer_url, Duration::from_millis(200))).unwrap();
    assert!(
        has_fault(&report, Check::Ncco, &["headers are", "512"]),
        "{report}"
    );
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.check == Check::Ncco && w.text.contains("wss://")),
        "{report}"
    );
}

/// When each of the caller's audio frames reached an application that only listens, for a
/// two-second call with `arrival`.
fn arrival_times(arrival: Arrival) -> (CallReport, Vec<Instant>) {
    let (tx, rx) = mpsc::channel();
    let app = start_app(
        ncco_8k,
        Duration::ZERO,
        move |mut ws: WebSocket<TcpStream>| {
            let mut arrived = Vec::new();
            while let Ok(message) = ws.read() {
                if message.is_binary() {
                    arrived.push(Instant::now());
                }
            }
            let _ = tx.send(arrived);
        },
    );
    let options = protocol_call(&app.answer_url, Duration::from_secs(2)).arrival(arrival);
    let report = call::run(&options).unwrap();
    (report, rx.recv_timeout(Duration::from_secs(5)).unwrap())
}

/// The gaps between arrivals, in ms, sorted.
fn sorted_gaps_ms(arrived: &[Instant]) -> Vec<f64> {
    let mut gaps: Vec<f64> = arrived
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0)
        .collect();
    gaps.sort_by(f64::total_cmp);
    gaps
}

#[test]
fn steady_arrival_reaches_the_application_a_frame_every_20_ms() {
    let (report, arrived) = arrival_times(Arrival::Steady);
    assert!(report.passed(), "{report}");
    assert_eq!(arrived.len() as u64, report.sent, "{report}");
    assert_eq!(report.sent, 100, "{report}");
    let gaps = sorted_gaps_ms(&arrived);
    let median = gaps[gaps.len() / 2];
    assert!((12.0..=28.0).contains(&median), "median gap {median} ms");
}

#[test]
fn bursty_arrival_reaches_the_application_in_bursts_at_the_same_rate() {
    let (report, arrived) = arrival_times(Arrival::Bursty { seed: 19 });
    assert!(report.passed(), "{report}");
    assert_eq!(arrived.len() as u64, report.sent, "{report}");
    assert_eq!(
        report.sent, 100,
        "as many frames as a steady call: {report}"
    );
    let gaps = sorted_gaps_ms(&arrived);
    let median = gaps[gaps.len() / 2];
    assert!(
        median < 5.0,
        "frames of a burst come together: median gap {median} ms"
    );
    // A hundred frames in bursts of 6 to 8 are 13 to 17 bursts: 12 to 16 gaps between
    // them, of 120 to 160 ms. A busy machine may stretch a gap, or split a burst in two.
    let between = gaps.iter().filter(|g| **g >= 60.0).count();
    assert!(
        (10..=20).contains(&between),
        "{between} long gaps: {gaps:?}"
    );
}

#[test]
fn an_application_that_closes_at_once_is_warned_of_and_still_passes() {
    let app = start_app(ncco_8k, Duration::ZERO, |mut ws: WebSocket<TcpStream>| {
        let _ = ws.read();
        let _ = ws.close(None);
        drain(&mut ws);
    });
    let report = call::run(&protocol_call(&app.answer_url, Duration::from_secs(1))).unwrap();
    assert!(report.passed(), "{report}");
    assert!(report.closed_by_application, "{report}");
    assert!(
        report.warnings.iter().any(|w| w.check == Check::Socket
            && w.text.contains(" ms, before the caller had said anything")),
        "{report}"
    );
}

#[test]
fn an_application_that_closes_after_the_caller_spoke_is_not_warned_of() {
    let app = start_app(ncco_8k, Duration::ZERO, |mut ws: WebSocket<TcpStream>| {
        // The caller speaks for 200 ms, then listens: close half a second after that.
        let mut frames = 0;
        while frames < 35 {
            match ws.read() {
                Ok(Message::Binary(_)) => frames += 1,
                Ok(_) => {}
                Err(_) => return,
            }
        }
        let _ = ws.close(None);
        drain(&mut ws);
    });
    let scenario = Scenario::parse("tone 200ms\nsilence 2s", std::path::Path::new(".")).unwrap();
    let options = protocol_call(&app.answer_url, Duration::ZERO).script(Some(scenario));
    let report = call::run(&options).unwrap();
    assert!(report.passed(), "{report}");
    assert!(report.closed_by_application, "{report}");
    assert!(
        report.warnings.iter().all(|w| w.check != Check::Socket),
        "{report}"
    );
}

#[test]
fn the_binary_plays_bursty_arrival_from_the_seed_given_or_from_one_it_states() {
    let app = start_app(ncco_8k, Duration::ZERO, |mut ws: WebSocket<TcpStream>| {
        drain(&mut ws)
    });
    let run = |seed: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_vonage-echo"))
            .args([
                "call",
                "--answer-url",
                &app.answer_url,
                "--expect",
                "protocol",
            ])
            .args([
                "--silence",
                "--duration",
                "0.3",
                "--json",
                "--arrival",
                "bursty",
            ])
            .args(seed)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(json["arrival"], "bursty", "{json}");
        json["seed"].as_u64()
    };
    assert_eq!(run(&["--seed", "19"]), Some(19));
    assert!(run(&[]).is_some(), "a drawn seed is stated");
}
