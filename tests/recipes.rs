//! The README's deployment recipes, checked as far as this machine can: the systemd unit
//! verifies, and the unit's and the Kubernetes Deployment's stop timeouts outlast the
//! binary's drain, with the probes on `/ready` and `/health`.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_vonage-echo");

/// The README's first fenced block in `language`.
fn recipe(language: &str) -> String {
    let readme = include_str!("../README.md");
    let opening = format!("```{language}\n");
    let start = readme
        .find(&opening)
        .unwrap_or_else(|| panic!("no {language} block in the README"))
        + opening.len();
    let length = readme[start..].find("```").expect("the block ends");
    readme[start..start + length].to_owned()
}

/// The value of `key` in `text`'s lines `key<separator>value`, trimmed.
fn setting<'a>(text: &'a str, key: &str, separator: char) -> &'a str {
    text.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(separator))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        .trim()
}

/// The binary's default drain timeout, in seconds, as `--help` shows it.
fn default_drain_timeout() -> f64 {
    let help = Command::new(BIN).arg("--help").output().unwrap().stdout;
    let help = String::from_utf8_lossy(&help);
    let after = &help[help.find("--drain-timeout").expect("the flag is listed")..];
    let shown = &after[after.find("[default: ").unwrap() + "[default: ".len()..];
    shown[..shown.find(']').unwrap()].parse().unwrap()
}

#[test]
fn the_unit_stops_after_the_drain_it_asks_for() {
    let unit = recipe("ini");
    let stop: f64 = setting(&unit, "TimeoutStopSec", '=').parse().unwrap();
    let drain: f64 = setting(&unit, "Environment", '=')
        .strip_prefix("VONAGE_ECHO_DRAIN_TIMEOUT=")
        .expect("the unit sets the drain timeout")
        .parse()
        .unwrap();
    assert_eq!(
        drain,
        default_drain_timeout(),
        "the unit spells out the default"
    );
    assert!(
        stop > drain,
        "TimeoutStopSec {stop} within the drain {drain}"
    );
    assert_eq!(setting(&unit, "KillSignal", '='), "SIGTERM");
}

#[test]
fn the_deployment_outlasts_the_drain_and_probes_ready_and_health() {
    let deployment = recipe("yaml");
    let grace: f64 = setting(&deployment, "terminationGracePeriodSeconds", ':')
        .parse()
        .unwrap();
    assert!(grace > default_drain_timeout(), "grace {grace}");
    let probe_path = |probe: &str| {
        let after = &deployment[deployment.find(probe).expect(probe)..];
        let path = &after[after.find("path: ").unwrap() + "path: ".len()..];
        path[..path.find([',', '}', '\n']).unwrap()].to_owned()
    };
    assert_eq!(probe_path("readinessProbe:"), "/ready");
    assert_eq!(probe_path("livenessProbe:"), "/health");
}

#[test]
#[ignore = "needs systemd-analyze (systemd): .ci/run installs it and runs this (cargo test --test recipes -- --ignored)"]
fn the_systemd_unit_verifies() {
    let unit = recipe("ini").replace("/usr/local/bin/vonage-echo", BIN);
    let dir = std::env::temp_dir().join(format!("vonage-echo-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vonage-echo.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
    // An unknown key is only a warning to it: the unit must draw none.
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}
