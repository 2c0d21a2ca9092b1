//! What the README promises a newcomer, run: the scenario it shows passes against the echo
//! server, through the real binary, as the README's commands run it.

mod support;

use std::process::Command;

use support::{answer_url, server};

const BIN: &str = env!("CARGO_BIN_EXE_vonage-echo");

#[test]
fn the_readmes_echo_scenario_passes_against_the_echo_server() {
    let server = server();
    let out = Command::new(BIN)
        .args(["call", "--answer-url", &answer_url(&server)])
        .args(["--script", "tests/scenarios/echo.scenario"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("PASSED"), "{report}");
    assert!(
        report.contains("frames: 75 sent, 75 echoed, 0 lost"),
        "{report}"
    );
}
