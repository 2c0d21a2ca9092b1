//! A load's dialers grow with the calls being set up at once: a slow load of quick setups
//! runs on a few threads, and a fast ramp of slow setups gets as many as keep its schedule.
//! Dialer threads are counted by name in this process, so the tests here run one at a time.

mod support;

use std::{
    net::TcpStream,
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use support::{
    answer_url,
    app::{ncco_8k, start_app},
    server,
};
use tungstenite::WebSocket;
use vonage_echo::sim::{
    load::{self, LoadOptions},
    Dial,
};

/// Held by each test while its load runs, so no other load's dialers are counted.
static ONE_LOAD_AT_A_TIME: Mutex<()> = Mutex::new(());

/// This process's threads named `dialer-*` now.
fn dialer_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("dialer-"))
        .count()
}

/// What `run` returns, and the most dialer threads seen while it ran.
fn with_peak_dialers<T>(run: impl FnOnce() -> T) -> (T, usize) {
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut peak = 0;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(dialer_threads());
                thread::sleep(Duration::from_millis(5));
            }
            peak
        });
        let out = run();
        done.store(true, Ordering::Relaxed);
        (out, sampler.join().unwrap())
    })
}

/// Echoes every message until the socket ends.
fn echo(mut ws: WebSocket<TcpStream>) {
    while let Ok(message) = ws.read() {
        if (message.is_binary() || message.is_text()) && ws.send(message).is_err() {
            return;
        }
    }
}

#[test]
fn a_slow_load_of_quick_setups_runs_on_a_few_dialers() {
    let _one = ONE_LOAD_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let server = server();
    let url = answer_url(&server);
    // 40 calls over a second, each set up in a few ms (no greeting's speaking time): one
    // dialer dials while another waits for the next call. The fixed pool ran 40.
    let options = LoadOptions::new(url.clone(), 40, Duration::from_millis(300))
        .ramp(40.0)
        .dial(Dial::new(url).talk_rate(0.0));
    let (report, peak) = with_peak_dialers(|| load::run(&options).unwrap());
    assert!(report.passed(), "{report}");
    assert!((1..=10).contains(&peak), "{peak} dialers at once");
}

#[test]
fn calls_whose_answer_takes_a_second_are_still_dialed_on_the_ramp() {
    let _one = ONE_LOAD_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let app = start_app(ncco_8k, Duration::from_secs(1), echo);
    // 60 calls at 60 a second, each a second in its answer webhook: about 60 are being set
    // up at once, so the dialers must grow to about 60 to keep the ramp.
    let options =
        LoadOptions::new(app.answer_url.clone(), 60, Duration::from_millis(500)).ramp(60.0);
    let started = Instant::now();
    let report = load::run(&options).unwrap();
    assert!(report.passed(), "{report}");
    // The last call is due 59/60 s after the first. Generous, for a busy machine: a pool
    // of 16 would ask for the last answer after 3.5 s, and end its dial after 4.6 s.
    let answers = app.answers();
    assert_eq!(answers.len(), 60);
    let last_asked = answers.iter().map(|a| a.at).max().unwrap() - started;
    assert!(last_asked < Duration::from_secs(2), "{last_asked:?}");
    assert!(
        report.ramp_seconds < report.planned_ramp_seconds + 2.5,
        "{report}"
    );
}
