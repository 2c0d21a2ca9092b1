//! The reports of one load's shards, merged into the load's report: counts are summed, and
//! percentiles are read off the shards' latency histograms added together, so they are the
//! unsharded load's to within the histograms' stated precision. Reports of different loads,
//! or two of the same shard, are refused: their sum would describe no load that ran.
//!
//! `vonage-echo merge A.json B.json ...` reads the shards' `load --json` reports and writes
//! the whole load's (text, `--json`, `--junit FILE`): counts summed, percentiles read off
//! the summed histograms, the latest shard's ramp and elapsed time, and no server figures
//! (shards may share a server or not). Loads differ when their calls, ramp, duration or
//! arrival do; shards of different cuts (`1/3` and `1/4`) are refused too. A missing shard
//! is not refused: the report says its counts are not the whole load's.

use std::{collections::BTreeMap, path::Path};

use super::{
    arrival::Arrival,
    load::{LoadReport, Percentiles},
    shard::Shard,
};
use crate::error::{Error, Result};

/// A report as `load --json` wrote it to `path`.
pub fn read(path: &Path) -> Result<LoadReport> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::Merge(format!(
            "{} is not a report of `vonage-echo load --json` of this version: {e}",
            path.display()
        ))
    })
}

/// The report of the load that `reports` (each named, as by its file) are shards of.
pub fn merge(reports: &[(String, LoadReport)]) -> Result<LoadReport> {
    let Some((_, first)) = reports.first() else {
        return Err(Error::Merge("no reports to merge".into()));
    };
    same_load(reports)?;
    let merged_from = distinct_shards(reports)?;
    let mut merged = LoadReport {
        arrival: first.arrival,
        load: first.load.clone(),
        merged_from,
        ..LoadReport::default()
    };
    merged.histograms.relative_precision = first.histograms.relative_precision;
    for (_, report) in reports {
        add_counts(&mut merged, report);
        add_latencies(&mut merged, report);
    }
    read_percentiles(&mut merged);
    Ok(merged)
}

/// Refuses reports whose load (calls, ramp, duration, arrival) differs from the first's.
fn same_load(reports: &[(String, LoadReport)]) -> Result<()> {
    let (first_name, first) = &reports[0];
    for (name, report) in &reports[1..] {
        if report.load != first.load || report.arrival != first.arrival {
            return Err(Error::Merge(format!(
                "{name} and {first_name} are reports of different loads: {} against {}",
                describe(report),
                describe(first)
            )));
        }
    }
    Ok(())
}

/// A load as a person would name it: `2000 calls of 30 s at 200 a second, steady`.
fn describe(report: &LoadReport) -> String {
    let arrival = match report.arrival {
        Arrival::Steady => "steady".to_owned(),
        Arrival::Bursty { seed } => format!("bursty with seed {seed}"),
    };
    format!(
        "{} calls of {} s at {} a second, {arrival}",
        report.load.calls, report.load.duration_seconds, report.load.ramp
    )
}

/// The shards the reports hold, in order; refuses a shard held twice (its calls would be
/// counted twice) and shards of different cuts of the load.
fn distinct_shards(reports: &[(String, LoadReport)]) -> Result<Vec<Shard>> {
    let mut seen: BTreeMap<Shard, &str> = BTreeMap::new();
    for (name, report) in reports {
        for shard in shards_of(report) {
            if let Some(other) = seen.insert(shard, name) {
                return Err(Error::Merge(format!(
                    "{other} and {name} both hold shard {shard}: its calls would count twice"
                )));
            }
        }
    }
    let counts: Vec<u32> = seen.keys().map(Shard::count).collect();
    if counts.windows(2).any(|w| w[0] != w[1]) {
        let shards: Vec<String> = seen.keys().map(Shard::to_string).collect();
        return Err(Error::Merge(format!(
            "the reports cut the load into different numbers of shards: {}",
            shards.join(", ")
        )));
    }
    Ok(seen.into_keys().collect())
}

/// The shards a report covers: its own, or those it was merged from.
fn shards_of(report: &LoadReport) -> Vec<Shard> {
    if report.merged_from.is_empty() {
        vec![report.shard]
    } else {
        report.merged_from.clone()
    }
}

/// Adds a shard's counts: sums, and the latest or worst of the times.
fn add_counts(merged: &mut LoadReport, report: &LoadReport) {
    merged.attempted += report.attempted;
    merged.connected += report.connected;
    for (reason, n) in &report.failed {
        *merged.failed.entry(reason.clone()).or_default() += n;
    }
    merged.answer_retried += report.answer_retried;
    for (reason, n) in &report.event_failures {
        *merged.event_failures.entry(reason.clone()).or_default() += n;
    }
    merged.frames_sent += report.frames_sent;
    merged.frames_echoed += report.frames_echoed;
    merged.frames_lost += report.frames_lost;
    merged.frames_corrupted += report.frames_corrupted;
    merged.frames_late += report.frames_late;
    merged.max_late_ms = merged.max_late_ms.max(report.max_late_ms);
    // The shards ramp together: the load's ramp ended when the last shard's did.
    merged.ramp_seconds = merged.ramp_seconds.max(report.ramp_seconds);
    merged.planned_ramp_seconds = merged.planned_ramp_seconds.max(report.planned_ramp_seconds);
    merged.elapsed_seconds = merged.elapsed_seconds.max(report.elapsed_seconds);
    for died in &report.helpers_died {
        merged
            .helpers_died
            .push(format!("shard {}: {died}", report.shard));
    }
}

/// Adds a shard's histograms to the merged ones.
fn add_latencies(merged: &mut LoadReport, report: &LoadReport) {
    let (into, from) = (&mut merged.histograms, &report.histograms);
    into.answer_webhook.merge(&from.answer_webhook);
    into.handshake.merge(&from.handshake);
    into.round_trip.merge(&from.round_trip);
    into.steady_round_trip.merge(&from.steady_round_trip);
    into.reply.merge(&from.reply);
    into.barge_in_clear.merge(&from.barge_in_clear);
}

/// The merged report's percentiles, read off its histograms.
fn read_percentiles(merged: &mut LoadReport) {
    let h = &merged.histograms;
    merged.answer_webhook = Percentiles::of_histogram(&h.answer_webhook);
    merged.handshake = Percentiles::of_histogram(&h.handshake);
    merged.round_trip = Percentiles::of_histogram(&h.round_trip);
    merged.steady_round_trip =
        (h.steady_round_trip.count() > 0).then(|| Percentiles::of_histogram(&h.steady_round_trip));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::load::LoadPlan;

    /// A report of shard `shard` of 100 calls at 10 a second, its round trips `rtts` (us).
    fn shard_report(shard: &str, rtts: &[u64]) -> (String, LoadReport) {
        let mut report = LoadReport {
            shard: shard.parse().unwrap(),
            load: LoadPlan {
                calls: 100,
                ramp: 10.0,
                duration_seconds: 30.0,
            },
            attempted: 50,
            connected: 49,
            frames_sent: 100,
            ..LoadReport::default()
        };
        report.failed.insert("dial: refused".into(), 1);
        for &rtt in rtts {
            report.histograms.round_trip.record(rtt);
        }
        (format!("{shard}.json"), report)
    }

    #[test]
    fn counts_are_summed_and_percentiles_read_off_the_summed_histograms() {
        let low: Vec<u64> = (1..=900).collect();
        let high: Vec<u64> = (901..=1000).map(|v| v * 1000).collect();
        let merged = merge(&[shard_report("0/2", &low), shard_report("1/2", &high)]).unwrap();
        assert_eq!((merged.attempted, merged.connected), (100, 98));
        assert_eq!(merged.failed["dial: refused"], 2);
        assert_eq!(merged.frames_sent, 200);
        assert_eq!(merged.histograms.round_trip.count(), 1000);
        // The 500th of the 1,000 values is 0.5 ms and the 990th 990 ms: neither shard's own
        // percentiles say so.
        let p = merged.round_trip.p50_ms;
        assert!((p - 0.5).abs() <= 0.5 * 0.01, "{p}");
        assert!((merged.round_trip.p99_ms - 990.0).abs() <= 990.0 * 0.01);
        assert_eq!(merged.round_trip.max_ms, 1000.0);
        assert_eq!(merged.merged_from.len(), 2);
        assert!(merged.to_string().contains("merged from shards 0/2, 1/2"));
    }

    #[test]
    fn reports_of_different_loads_are_refused_naming_both() {
        let a = shard_report("0/2", &[1]);
        let mut b = shard_report("1/2", &[1]);
        b.1.load.ramp = 20.0;
        let e = merge(&[a, b]).unwrap_err().to_string();
        assert!(
            e.contains("1/2.json and 0/2.json are reports of different loads"),
            "{e}"
        );
        assert!(
            e.contains("at 20 a second") && e.contains("at 10 a second"),
            "{e}"
        );
    }

    #[test]
    fn a_shard_held_twice_is_refused() {
        let e = merge(&[shard_report("0/2", &[1]), shard_report("0/2", &[1])])
            .unwrap_err()
            .to_string();
        assert!(e.contains("both hold shard 0/2"), "{e}");
    }

    #[test]
    fn shards_of_different_cuts_are_refused() {
        let e = merge(&[shard_report("0/2", &[1]), shard_report("1/3", &[1])])
            .unwrap_err()
            .to_string();
        assert!(e.contains("different numbers of shards: 0/2, 1/3"), "{e}");
    }

    #[test]
    fn a_report_reads_back_as_written_and_merges_again() {
        let merged = merge(&[shard_report("0/3", &[5]), shard_report("1/3", &[7])]).unwrap();
        let back: LoadReport = serde_json::from_str(&merged.to_json()).unwrap();
        assert_eq!(back.histograms.round_trip, merged.histograms.round_trip);
        let again = merge(&[("m.json".into(), back), shard_report("2/3", &[9])]).unwrap();
        assert_eq!(again.attempted, 150);
        assert_eq!(again.merged_from.len(), 3);
    }
}
