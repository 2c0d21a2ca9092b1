//! How accurately `call` measures reply latency: a mock application answers each of the
//! caller's turns after a delay it chooses and times itself, and the emulator's measurement
//! of each turn is compared with it. A benchmark, not a timed test: it runs for about 40 s
//! and prints its figures.
//!
//! ```text
//! cargo test --release --test accuracy -- --ignored --nocapture --test-threads 1
//! ```
//!
//! Under load the emulator's figures are a histogram, not per turn: there the percentiles
//! of the measured replies are set against those of the application's own delays.

mod support;

use std::{
    net::TcpStream,
    path::Path,
    sync::mpsc,
    time::{Duration, Instant},
};

use support::app::{ncco_8k, send_frames, start_app};
use tungstenite::{Message, WebSocket};
use vonage_echo::sim::{
    call::{self, CallOptions},
    load::{self, LoadOptions},
    script::Scenario,
    Dial, Expect, Voice,
};

/// Turns in the call: a tenth of a second of tone, then the caller listens.
const TURNS: usize = 60;

/// The delay the application takes before its `i`th answer (counted over all its
/// calls): spread from 40 to 240 ms, so the emulator's 20 ms ticks fall at every phase of
/// it and the delays of a load are spread evenly, not a few values.
fn delay(i: usize) -> Duration {
    Duration::from_micros(40_000 + (i as u64 * 37_013) % 200_000)
}

/// Answers given so far, over every call of the application.
static ANSWERED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn is_loud(frame: &[u8]) -> bool {
    frame
        .chunks_exact(2)
        .any(|b| i16::from_le_bytes([b[0], b[1]]).unsigned_abs() > 1000)
}

/// Answers turn after turn, each `delay(i)` after its last loud frame arrived, and sends
/// the delay it really took (its own clock) on `truth`.
fn answers(truth: mpsc::Sender<Duration>) -> impl Fn(WebSocket<TcpStream>) + Send + Sync {
    let truth = std::sync::Mutex::new(truth);
    move |mut ws: WebSocket<TcpStream>| {
        let mut last_loud: Option<Instant> = None;
        loop {
            match ws.read() {
                Ok(Message::Binary(frame)) if is_loud(&frame) => last_loud = Some(Instant::now()),
                Ok(Message::Binary(_)) => {
                    if let Some(at) = last_loud.take() {
                        let i = ANSWERED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let due = at + delay(i);
                        std::thread::sleep(due.saturating_duration_since(Instant::now()));
                        let took = at.elapsed();
                        send_frames(&mut ws, 5);
                        let _ = truth.lock().unwrap().send(took);
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize]
}

#[test]
#[ignore = "a benchmark of about 40 s: cargo test --release --test accuracy -- --ignored --nocapture"]
fn one_calls_reply_latencies_are_within_2_ms_of_the_applications_own_at_p99() {
    let (tx, rx) = mpsc::channel();
    let app = start_app(ncco_8k, Duration::ZERO, answers(tx));
    let script = "tone 100ms\nsilence 560ms\n".repeat(TURNS);
    let scenario = Scenario::parse(&script, Path::new(".")).unwrap();
    let options = CallOptions::new(&app.answer_url)
        .dial(Dial::new(&app.answer_url).talk_rate(0.0))
        .expect(Expect::Protocol)
        .voice(Voice::Silence)
        .script(Some(scenario));
    let report = call::run(&options).unwrap();
    let truths: Vec<Duration> = rx.try_iter().collect();
    assert_eq!(report.turns.len(), TURNS, "{report}");
    assert_eq!(truths.len(), TURNS, "the application answered every turn");
    let mut errors: Vec<f64> = report
        .turns
        .iter()
        .zip(&truths)
        .map(|(turn, truth)| {
            let measured = turn.reply.expect("every turn was answered");
            (measured.as_secs_f64() - truth.as_secs_f64()).abs() * 1000.0
        })
        .collect();
    errors.sort_by(f64::total_cmp);
    let (p50, p99, max) = (
        percentile(&errors, 50.0),
        percentile(&errors, 99.0),
        errors[errors.len() - 1],
    );
    println!(
        "reply latency error over {TURNS} turns of one call: p50 {p50:.3} ms, p99 {p99:.3} ms, max {max:.3} ms \
         ({} emulator ticks late)",
        report.emulator_late_ticks
    );
    assert!(p99 < 2.0, "p99 error {p99:.3} ms: {errors:?}");
}

/// Calls of the load, and turns in each.
const LOAD_CALLS: usize = 500;
const LOAD_TURNS: usize = 6;

#[test]
#[ignore = "a benchmark of about 20 s: cargo test --release --test accuracy -- --ignored --nocapture --test-threads 1"]
fn reply_latencies_under_a_load_of_500_calls_are_within_5_ms_of_the_applications_own() {
    let (tx, rx) = mpsc::channel();
    let app = start_app(ncco_8k, Duration::ZERO, answers(tx));
    let script = "tone 100ms\nsilence 560ms\n".repeat(LOAD_TURNS);
    let call = CallOptions::new(&app.answer_url)
        .dial(Dial::new(&app.answer_url).talk_rate(0.0))
        .expect(Expect::Protocol)
        .voice(Voice::Silence)
        .script(Some(Scenario::parse(&script, Path::new(".")).unwrap()));
    let options = LoadOptions::new(&app.answer_url, LOAD_CALLS, Duration::from_secs(1))
        .dial(Dial::new(&app.answer_url).talk_rate(0.0))
        .ramp(100.0)
        .judge(Some(call));
    let report = load::run(&options).unwrap();
    let mut truths: Vec<f64> = rx.try_iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    truths.sort_by(f64::total_cmp);
    let measured = &report.histograms.reply;
    // On a busy machine an answer can come after the caller's next turn began, which
    // then leaves the turn unanswered: a few such are no error of measurement.
    assert!(
        measured.count() as f64 >= truths.len() as f64 * 0.99,
        "{} replies measured of {} answers: {report}",
        measured.count(),
        truths.len()
    );
    let mut worst: f64 = 0.0;
    let mut lines = Vec::new();
    for p in [1.0, 50.0, 90.0, 99.0] {
        let ours = measured.percentile(p) as f64 / 1000.0;
        let theirs = percentile(&truths, p);
        worst = worst.max((ours - theirs).abs());
        lines.push(format!("p{p}: {ours:.2} vs {theirs:.2} ms"));
    }
    println!(
        "reply latency under {LOAD_CALLS} calls ({} of {} answers measured; measured vs the application's own): {}; frames late {:.2} %",
        measured.count(),
        truths.len(),
        lines.join(", "),
        report.frames_late as f64 * 100.0 / report.frames_sent.max(1) as f64
    );
    assert!(
        worst < 5.0,
        "a percentile {worst:.2} ms off: {}",
        lines.join(", ")
    );
}
