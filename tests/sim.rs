//! The simulator's verdicts: a faithful server passes, and a server that drops or corrupts
//! a frame, or answers a broken NCCO, fails with a message naming the fault.

mod support;

use std::{
    io::{Read, Write},
    net::TcpListener,
    thread,
    time::Duration,
};

use support::*;
use tungstenite::Message;
use vonage_echo::{
    sim::{
        call::{self, CallOptions},
        load::{self, LoadOptions},
        AnswerMethod, Arrival, Dial,
    },
    AudioFormat,
};

/// An application that answers every request with `ncco` and posts nothing back.
fn fake_answer(ncco: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{ncco}",
                ncco.len()
            );
        }
    });
    format!("http://{addr}/webhooks/answer")
}

/// A socket that echoes, except that it passes each binary frame through `tamper`.
fn faulty_socket(tamper: fn(u64, Vec<u8>) -> Option<Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            thread::spawn(move || {
                let mut ws = tungstenite::accept(stream).unwrap();
                let mut k = 0;
                while let Ok(message) = ws.read() {
                    let reply = match message {
                        Message::Binary(b) => {
                            k += 1;
                            tamper(k, b.to_vec()).map(Message::binary)
                        }
                        Message::Text(t) => Some(Message::Text(t)),
                        _ => None,
                    };
                    if let Some(reply) = reply {
                        if ws.send(reply).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    format!("ws://{addr}/socket")
}

fn ncco_for(uri: &str) -> String {
    format!(
        r#"[{{"action":"talk","text":"hi"}},{{"action":"connect","endpoint":[{{"type":"websocket","uri":"{uri}","content-type":"audio/l16;rate=8000"}}]}}]"#
    )
}

fn quiet(answer_url: String) -> CallOptions {
    CallOptions::new(answer_url.clone())
        .dial(Dial::new(answer_url).post_events(false))
        .duration(Duration::from_millis(600))
}

#[test]
fn call_against_our_server_passes_and_records_what_was_sent() {
    let server = server();
    let dir = std::env::temp_dir().join(format!("vonage-echo-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (input, output) = (dir.join("in.wav"), dir.join("out.wav"));
    let spec = call::wav_spec(AudioFormat::L16Rate16000);
    let mut writer = hound::WavWriter::create(&input, spec).unwrap();
    let samples: Vec<i16> = (0..16000)
        .map(|i| ((i * 37) % 20000 - 10000) as i16)
        .collect();
    for s in &samples {
        writer.write_sample(*s).unwrap();
    }
    writer.finalize().unwrap();

    let report = call::run(
        &CallOptions::new(answer_url(&server))
            .wav(Some(input.clone()))
            .record(Some(output.clone())),
    )
    .unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.sent, 50, "one second of 16 kHz is 50 frames");
    let recording = hound::WavReader::open(&output).unwrap();
    assert_eq!(recording.spec().channels, 2);
    assert_eq!(recording.spec().sample_rate, 16000);
    let interleaved: Vec<i16> = recording.into_samples().map(Result::unwrap).collect();
    let said: Vec<i16> = interleaved.iter().step_by(2).copied().collect();
    let heard: Vec<i16> = interleaved.iter().skip(1).step_by(2).copied().collect();
    assert_eq!(
        &said[..samples.len()],
        &samples[..],
        "the left channel holds exactly what the caller said, from the socket's opening"
    );
    // The echo plays once it is back, a tick or more later, whole and in order; a late
    // echo leaves a silent tick before it (an underrun), as Vonage would play it.
    let frame = AudioFormat::L16Rate16000.samples_per_frame();
    let played: Vec<i16> = heard
        .chunks(frame)
        .filter(|f| f.iter().any(|s| *s != 0))
        .flatten()
        .copied()
        .collect();
    // A late echo shifts the rest by a tick, so the last echo may still wait its turn when
    // the caller hangs up; Vonage drops what is unplayed then, and so does the recording.
    assert_eq!(report.dropped_frames + report.cleared_frames, 0, "{report}");
    assert_eq!(
        report.played_frames + report.unplayed_frames,
        50,
        "every echo is played or left unplayed at the end: {report}"
    );
    assert!(report.played_frames > 0, "{report}");
    let played_samples = report.played_frames as usize * frame;
    assert_eq!(
        played,
        samples[..played_samples],
        "the right channel holds the echo as played, in order, and nothing else"
    );
    assert!(
        heard[..frame].iter().all(|s| *s == 0),
        "nothing plays before the first echo is back"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn post_answer_method_works_against_our_server() {
    let server = server();
    let url = answer_url(&server);
    let report =
        call::run(&quiet(url.clone()).dial(Dial::new(url).method(AnswerMethod::Post))).unwrap();
    assert!(report.passed(), "{report}");
}

#[test]
fn a_dropped_frame_is_reported_lost() {
    let uri = faulty_socket(|k, b| (k != 10).then_some(b));
    let report = call::run(&quiet(fake_answer(ncco_for(&uri)))).unwrap();
    assert!(!report.passed());
    assert_eq!(report.lost, 1, "{report}");
    assert_eq!(report.corrupted, 0, "{report}");
    assert_eq!(report.echoed, report.sent - 1);
}

#[test]
fn a_corrupted_frame_is_reported_corrupted() {
    let uri = faulty_socket(|k, mut b| {
        if k == 7 {
            b[100] ^= 0xff;
        }
        Some(b)
    });
    let report = call::run(&quiet(fake_answer(ncco_for(&uri)))).unwrap();
    assert!(!report.passed());
    assert_eq!(report.corrupted, 1, "{report}");
    assert_eq!(report.lost, 0, "{report}");
}

#[test]
fn a_broken_ncco_fails_the_call_naming_the_fault() {
    let cases = [
        (r#"{"action":"talk"}"#.to_owned(), "not a JSON array"),
        (
            r#"[{"action":"talk","text":"hi"}]"#.to_owned(),
            "without a connect to a websocket",
        ),
        (
            ncco_for("ws://x/socket").replace("rate=8000", "rate=44100"),
            "unsupported content-type",
        ),
        (
            r#"[{"action":"connect","endpoint":[]}]"#.to_owned(),
            "0 endpoints",
        ),
    ];
    for (ncco, fault) in cases {
        let report = call::run(&quiet(fake_answer(ncco.clone()))).unwrap();
        assert!(!report.passed());
        assert!(
            report.faults.iter().any(|f| f.text.contains(fault)),
            "{ncco}: {report}"
        );
    }
}

#[test]
fn a_wav_at_the_wrong_rate_is_refused_clearly() {
    let server = server();
    let path = std::env::temp_dir().join(format!("vonage-echo-8k-{}.wav", std::process::id()));
    let mut writer =
        hound::WavWriter::create(&path, call::wav_spec(AudioFormat::L16Rate8000)).unwrap();
    writer.write_sample(0i16).unwrap();
    writer.finalize().unwrap();
    let err = call::run(&quiet(answer_url(&server)).wav(Some(path.clone())))
        .unwrap_err()
        .to_string();
    assert!(err.contains("8000 Hz, but the call is 16000 Hz"), "{err}");
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_call_refused_at_capacity_is_reported_with_its_status() {
    let server = start(config().max_calls(1));
    let _held = open_call(&server, "holder");
    let report = call::run(&quiet(answer_url(&server))).unwrap();
    assert!(!report.passed());
    let fault = report
        .faults
        .first()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(
        fault.starts_with("answer webhook:") && fault.contains("503"),
        "{report}"
    );
}

#[test]
fn load_counts_add_up() {
    let server = server();
    let report =
        load::run(&LoadOptions::new(answer_url(&server), 5, Duration::from_secs(1)).ramp(100.0))
            .unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!((report.attempted, report.connected), (5, 5));
    assert_eq!(report.frames_sent, 5 * 50);
    assert_eq!(
        report.frames_echoed + report.frames_lost + report.frames_corrupted,
        report.frames_sent
    );
    assert!(report.round_trip.p50_ms <= report.round_trip.p99_ms);
    assert!(report.round_trip.p99_ms <= report.round_trip.max_ms);
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["frames_echoed"], 250);
}

#[test]
fn load_reports_call_setup_latencies_of_their_own() {
    let server = server();
    let report = load::run(
        &LoadOptions::new(answer_url(&server), 5, Duration::from_millis(200)).ramp(100.0),
    )
    .unwrap();
    assert!(report.passed(), "{report}");
    for (name, setup) in [
        ("answer", &report.answer_webhook),
        ("handshake", &report.handshake),
    ] {
        // Every call was timed: a real request takes some time, and the order holds.
        assert!(setup.p50_ms > 0.0, "{name}: {report}");
        assert!(
            setup.p50_ms <= setup.p99_ms && setup.p99_ms <= setup.max_ms,
            "{name}"
        );
    }
    let text = report.to_string();
    assert!(text.contains("answer webhook ms:"), "{text}");
    assert!(text.contains("socket handshake ms:"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert!(json["answer_webhook"]["p99_ms"].as_f64().unwrap() > 0.0);
    assert!(json["handshake"]["max_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn load_json_carries_every_latency_whole_as_a_histogram_that_adds_up() {
    let server = server();
    let report =
        load::run(&LoadOptions::new(answer_url(&server), 3, Duration::from_secs(1)).ramp(100.0))
            .unwrap();
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    for (name, count) in [("answer_webhook", 3), ("handshake", 3), ("round_trip", 150)] {
        let histogram = &json["histograms"][name];
        assert_eq!(histogram["count"], count, "{name}: {histogram}");
        let buckets = histogram["buckets"].as_array().unwrap();
        let counted: u64 = buckets.iter().map(|b| b[1].as_u64().unwrap()).sum();
        assert_eq!(counted, count, "{name}: the buckets hold every value");
    }
}

#[test]
fn load_reports_failures_by_reason() {
    let server = start(config().max_calls(2));
    // Calls long enough that the two up are still up when the last dial lands, however
    // the machine delays it.
    let report =
        load::run(&LoadOptions::new(answer_url(&server), 4, Duration::from_secs(3)).ramp(1000.0))
            .unwrap();
    assert!(!report.passed());
    assert_eq!(report.connected, 2, "{report}");
    let refused: u64 = report
        .failed
        .iter()
        .filter(|(r, _)| r.contains("503"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(refused, 2, "{report}");
}

#[test]
fn server_usage_is_reported_for_a_pid() {
    let server = server();
    let report = load::run(
        &LoadOptions::new(answer_url(&server), 2, Duration::from_millis(400))
            .pid(Some(std::process::id())),
    )
    .unwrap();
    let usage = report.server.expect("usage with a pid");
    assert!(usage.peak_rss_mib > 0.0 && usage.peak_threads > 1);
}

#[test]
fn load_reports_its_ramp_as_run() {
    let server = server();
    let report =
        load::run(&LoadOptions::new(answer_url(&server), 5, Duration::from_millis(200)).ramp(20.0))
            .unwrap();
    assert!(report.passed(), "{report}");
    // Five calls at 20 a second: the last is due 4/20 s after the first.
    assert!((report.planned_ramp_seconds - 0.2).abs() < 1e-9, "{report}");
    assert!(
        report.ramp_seconds >= 0.2,
        "dialed ahead of the ramp: {report}"
    );
    assert!(report
        .to_string()
        .contains("ramp: the last dial ended after"));
}

#[test]
fn load_helpers_leave_the_core_to_the_threads_that_pace_frames() {
    const SCHED_OTHER: u32 = 0;
    const SCHED_IDLE: u32 = 5;
    let server = server();
    let url = answer_url(&server);
    let pid = std::process::id();
    let load = thread::spawn(move || {
        load::run(&LoadOptions::new(url, 2, Duration::from_secs(1)).pid(Some(pid))).unwrap()
    });
    // Mid-call: the dials are done, the event posters and the sampler wait for work.
    thread::sleep(Duration::from_millis(500));
    let threads = thread_scheduling();
    let report = load.join().unwrap();
    assert!(report.passed(), "{report}");
    let helpers: Vec<_> = threads
        .iter()
        .filter(|(name, ..)| name.starts_with("events-") || name == "sampler")
        .collect();
    assert!(helpers.len() >= 2, "{threads:?}");
    assert!(
        helpers.iter().all(|(_, p, ..)| *p == SCHED_IDLE),
        "{threads:?}"
    );
    let pacers: Vec<_> = threads
        .iter()
        .filter(|(name, ..)| name.starts_with("engine-"))
        .collect();
    assert!(!pacers.is_empty(), "{threads:?}");
    assert!(
        pacers.iter().all(|(_, p, ..)| *p == SCHED_OTHER),
        "{threads:?}"
    );
}

#[test]
fn load_streams_its_calls_on_as_many_poll_loops_as_it_has_threads() {
    // The binary, so that only this load's threads are counted.
    let server = server();
    let load = std::process::Command::new(env!("CARGO_BIN_EXE_vonage-echo"))
        .args(["load", "--answer-url", &answer_url(&server)])
        .args([
            "--calls",
            "6",
            "--duration",
            "1.5",
            "--ramp",
            "100",
            "--threads",
            "3",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Mid-call: every call has been dialed and handed to its loop.
    thread::sleep(Duration::from_millis(700));
    let loops = std::fs::read_dir(format!("/proc/{}/task", load.id()))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("engine-"))
        .count();
    let out = load.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert_eq!(loops, 3, "{report}");
    assert!(
        report.contains("calls: 6 attempted, 6 connected, 0 failed"),
        "{report}"
    );
    assert!(report.contains("frames: 450 sent, 450 echoed"), "{report}");
}

#[test]
fn load_with_bursty_arrival_echoes_every_frame_and_names_its_seed() {
    let server = server();
    let report = load::run(
        &LoadOptions::new(answer_url(&server), 3, Duration::from_secs(1))
            .ramp(100.0)
            .arrival(Arrival::Bursty { seed: 19 }),
    )
    .unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.frames_sent, 3 * 50, "{report}");
    assert_eq!(report.frames_echoed, report.frames_sent, "{report}");
    assert!(report.to_string().contains("seed 19"), "{report}");
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(
        (&json["arrival"], &json["seed"]),
        (&"bursty".into(), &19.into())
    );
}

#[test]
fn a_shard_dials_its_slice_of_the_load_at_the_whole_load_s_times() {
    let server = server();
    let report = load::run(
        &LoadOptions::new(answer_url(&server), 7, Duration::from_secs(1))
            .ramp(100.0)
            .shard("1/3".parse().unwrap()),
    )
    .unwrap();
    assert!(report.passed(), "{report}");
    // Calls 1 and 4 of 0 to 6: the last due 40 ms into the whole load's ramp.
    assert_eq!((report.attempted, report.connected), (2, 2), "{report}");
    assert_eq!(report.frames_sent, 2 * 50, "{report}");
    assert!(
        (report.planned_ramp_seconds - 0.04).abs() < 1e-9,
        "{report}"
    );
    assert!(
        report.to_string().contains("shard 1/3 of the load"),
        "{report}"
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["shard"], "1/3");
}

#[test]
fn a_load_started_at_a_time_dials_nothing_before_it() {
    let app = support::app::start_app(
        support::app::ncco_8k,
        Duration::ZERO,
        |mut ws: tungstenite::WebSocket<std::net::TcpStream>| {
            while let Ok(message) = ws.read() {
                if (message.is_binary() || message.is_text()) && ws.send(message).is_err() {
                    return;
                }
            }
        },
    );
    let asked = std::time::Instant::now();
    let at = std::time::SystemTime::now() + Duration::from_secs(1);
    let report = load::run(
        &LoadOptions::new(app.answer_url.clone(), 1, Duration::from_millis(200))
            .start_at(Some(at.into())),
    )
    .unwrap();
    assert!(report.passed(), "{report}");
    let answers = app.answers();
    assert_eq!(answers.len(), 1);
    // The two clocks are read a moment apart: a millisecond of slack.
    let waited = answers[0].at.duration_since(asked);
    assert!(waited >= Duration::from_millis(999), "{waited:?}");
}

/// A sample's value in Prometheus text: the number after `name{labels} `.
fn sample(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

#[test]
fn a_load_serves_its_live_counters_to_prometheus_while_it_runs() {
    let server = server();
    // A free port, taken back at once, for the load to listen on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = answer_url(&server);
    let load = thread::spawn(move || {
        load::run(
            &LoadOptions::new(url, 4, Duration::from_secs(2))
                .ramp(100.0)
                .shard("0/1".parse().unwrap())
                .metrics_addr(Some(addr)),
        )
        .unwrap()
    });
    let mut mid_call = None;
    eventually("frames counted while the calls stream", || {
        let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
            return false;
        };
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let answer = read_answer(&mut stream);
        let sent = sample(&answer.body, "vonage_echo_load_frames_sent_total");
        let streaming = sample(&answer.body, "vonage_echo_load_calls_streaming");
        let live = sent.is_some_and(|n| n > 0) && streaming.is_some_and(|n| n > 0);
        mid_call = live.then_some(answer);
        live
    });
    let answer = mid_call.unwrap();
    assert_eq!(answer.status, 200);
    assert!(
        answer
            .header("Content-Type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{}",
        answer.head
    );
    assert_eq!(
        sample(&answer.body, "vonage_echo_load_calls_planned"),
        Some(4)
    );
    assert!(answer
        .body
        .contains("# TYPE vonage_echo_load_frames_echoed_total counter"));
    assert!(answer.body.contains("{shard=\"0/1\"}"), "{}", answer.body);
    assert_eq!(http(addr, "GET", "/other", "", "").status, 404);
    let report = load.join().unwrap();
    assert!(report.passed(), "{report}");
    // Once the report is out, nothing listens there any more.
    assert!(std::net::TcpStream::connect(addr).is_err());
}
