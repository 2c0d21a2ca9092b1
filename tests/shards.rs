//! A load cut into shards: the shards, run at once from one start time as on several hosts
//! and merged by the real binary, are the unsharded load; reports of different loads are
//! refused.

mod support;

use std::{
    path::PathBuf,
    process::{Command, Output},
    thread,
    time::{Duration, SystemTime},
};

use support::*;
use vonage_echo::sim::{
    histogram::{Histogram, RELATIVE_PRECISION},
    load::{self, LoadOptions, LoadReport},
    Shard,
};

/// A file for this test's report `name`, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> TempFile {
        let file = format!("vonage-echo-shards-{}-{name}", std::process::id());
        TempFile(std::env::temp_dir().join(file))
    }

    fn holding(name: &str, report: &LoadReport) -> TempFile {
        let file = TempFile::new(name);
        std::fs::write(&file.0, report.to_json()).unwrap();
        file
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `vonage-echo merge` on `files`, with `flags`.
fn merge(files: &[&TempFile], flags: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vonage-echo"))
        .arg("merge")
        .args(files.iter().map(|f| &f.0))
        .args(flags)
        .output()
        .unwrap()
}

/// The two histograms added together, as a reader of the two reports would.
fn by_hand(a: &Histogram, b: &Histogram) -> Histogram {
    let mut sum = a.clone();
    sum.merge(b);
    sum
}

/// Whether a percentile read off the merged report (ms) is the hand-merged histogram's
/// (us) to within the histograms' precision.
fn within_precision(reported_ms: f64, expected_us: u64) -> bool {
    let expected_ms = expected_us as f64 / 1000.0;
    (reported_ms - expected_ms).abs() <= expected_ms * RELATIVE_PRECISION + 0.001
}

#[test]
fn two_shards_merged_are_the_unsharded_load() {
    let server = server();
    let options = |shard: Shard| {
        LoadOptions::new(answer_url(&server), 8, Duration::from_secs(1))
            .ramp(50.0)
            .shard(shard)
    };
    let whole = load::run(&options(Shard::WHOLE)).unwrap();
    assert!(whole.passed(), "{whole}");
    // Both shards at once, ramping from one start time, as on two hosts.
    let at = SystemTime::now() + Duration::from_millis(300);
    let shards: Vec<LoadReport> = thread::scope(|s| {
        let runs: Vec<_> = (0..2)
            .map(|k| {
                let shard = Shard::new(k, 2).unwrap();
                let options = options(shard).start_at(Some(at.into()));
                s.spawn(move || load::run(&options).unwrap())
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let files = [
        TempFile::holding("0.json", &shards[0]),
        TempFile::holding("1.json", &shards[1]),
    ];
    let junit = TempFile::new("junit.xml");
    let junit_flag = junit.0.to_str().unwrap();
    let out = merge(&[&files[0], &files[1]], &["--json", "--junit", junit_flag]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let merged: LoadReport = serde_json::from_slice(&out.stdout).unwrap();

    let counts = |r: &LoadReport| {
        (
            r.attempted,
            r.connected,
            r.failed_calls(),
            r.frames_sent,
            r.frames_echoed,
            r.frames_lost + r.frames_corrupted,
        )
    };
    assert_eq!(counts(&merged), counts(&whole), "{merged}");
    assert_eq!(
        merged.merged_from,
        [Shard::new(0, 2).unwrap(), Shard::new(1, 2).unwrap()]
    );
    let (a, b, m) = (
        &shards[0].histograms,
        &shards[1].histograms,
        &merged.histograms,
    );
    for (name, reported, in_report, summed) in [
        (
            "round trip",
            &merged.round_trip,
            &m.round_trip,
            by_hand(&a.round_trip, &b.round_trip),
        ),
        (
            "answer webhook",
            &merged.answer_webhook,
            &m.answer_webhook,
            by_hand(&a.answer_webhook, &b.answer_webhook),
        ),
        (
            "handshake",
            &merged.handshake,
            &m.handshake,
            by_hand(&a.handshake, &b.handshake),
        ),
    ] {
        assert_eq!(
            in_report, &summed,
            "{name}: the report's histogram is the shards' summed"
        );
        for (p, got) in [
            (50.0, reported.p50_ms),
            (90.0, reported.p90_ms),
            (99.0, reported.p99_ms),
        ] {
            assert!(
                within_precision(got, summed.percentile(p)),
                "{name} p{p}: {got} ms"
            );
        }
        assert!(
            within_precision(reported.max_ms, summed.max()),
            "{name} max"
        );
    }
    assert_eq!(merged.histograms.round_trip.count(), whole.frames_echoed);
    let xml = std::fs::read_to_string(&junit.0).unwrap();
    assert!(xml.contains("tests=\"3\" failures=\"0\""), "{xml}");

    let text = merge(&[&files[0], &files[1]], &[]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("merged from shards 0/2, 1/2\n"), "{text}");
    assert!(
        text.contains("calls: 8 attempted, 8 connected, 0 failed"),
        "{text}"
    );
}

#[test]
fn merge_refuses_reports_of_different_loads_naming_them() {
    let server = server();
    let run = |ramp: f64, shard: &str| {
        load::run(
            &LoadOptions::new(answer_url(&server), 2, Duration::from_millis(200))
                .ramp(ramp)
                .shard(shard.parse().unwrap()),
        )
        .unwrap()
    };
    let slow = TempFile::holding("slow.json", &run(10.0, "0/2"));
    let fast = TempFile::holding("fast.json", &run(20.0, "1/2"));
    let out = merge(&[&slow, &fast], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no report of a load that never ran");
    assert!(
        stderr.contains("are reports of different loads"),
        "{stderr}"
    );
    assert!(
        stderr.contains("2 calls of 0.2 s at 20 a second, steady against 2 calls of 0.2 s at 10 a second, steady"),
        "{stderr}"
    );
    assert!(stderr.contains(slow.0.to_str().unwrap()), "{stderr}");

    let twice = merge(&[&slow, &slow], &[]);
    let stderr = String::from_utf8_lossy(&twice.stderr);
    assert!(!twice.status.success());
    assert!(stderr.contains("both hold shard 0/2"), "{stderr}");
}
