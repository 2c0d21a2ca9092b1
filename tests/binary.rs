//! The real binary: it starts with flags, completes a call played by its own `call`
//! subcommand, refuses bad settings by name, drains on SIGTERM and exits 0.

mod support;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

const BIN: &str = env!("CARGO_BIN_EXE_vonage-echo");

/// The binary started on ports 0, and the addresses it logged.
struct Running {
    child: Child,
    http: String,
    lines: mpsc::Receiver<String>,
    /// What it logged (on standard error) up to its addresses.
    seen: Vec<String>,
}

fn start(extra: &[&str]) -> Running {
    start_with(Command::new(BIN), extra)
}

fn start_with(mut command: Command, extra: &[&str]) -> Running {
    command
        .args(["--http-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0"])
        .args(extra);
    start_command(command)
}

/// The binary as `command` starts it, its log read.
fn start_command(mut command: Command) -> Running {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut http = None;
    let mut seen = Vec::new();
    while http.is_none() {
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .expect("the binary logs its addresses");
        if let Some((_, addr)) = line.split_once("webhooks listening on http://") {
            // A JSON line goes on after the address.
            http = Some(addr.split('"').next().unwrap().trim().to_owned());
        }
        seen.push(line);
    }
    Running {
        child,
        http: http.unwrap(),
        lines,
        seen,
    }
}

/// The WebSocket listener's `host:port`, read from the binary's log.
fn ws_addr(server: &Running) -> String {
    loop {
        let line = server.lines.recv_timeout(Duration::from_secs(10)).unwrap();
        if let Some((_, rest)) = line.split_once("WebSocket listening on ws://") {
            return rest.trim().trim_end_matches("/socket").to_owned();
        }
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args(["-s", name, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn binary_serves_a_call_and_exits_zero_on_sigterm() {
    let mut server = start(&["--rate", "8000"]);
    let call = Command::new(BIN)
        .args([
            "call",
            "--answer-url",
            &format!("http://{}/webhooks/answer", server.http),
            "--duration",
            "1",
            "--dtmf",
            "9",
        ])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&call.stdout);
    assert!(
        call.status.success(),
        "call failed: {report} {}",
        String::from_utf8_lossy(&call.stderr)
    );
    assert!(report.contains("audio/l16;rate=8000"), "{report}");
    assert!(
        report.contains("50 sent, 50 echoed, 0 lost, 0 corrupted"),
        "{report}"
    );
    signal(&server.child, "TERM");
    let status = server.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let log: Vec<String> = server.lines.try_iter().collect();
    assert!(
        log.iter()
            .any(|l| l.contains("ended after") && l.contains("dtmf \"9\"")),
        "the call's summary names the key: {log:#?}"
    );
}

fn place_call(server: &Running) -> std::process::Output {
    Command::new(BIN)
        .args([
            "call",
            "--answer-url",
            &format!("http://{}/webhooks/answer", server.http),
            "--duration",
            "0.5",
        ])
        .output()
        .unwrap()
}

#[test]
fn listeners_survive_running_out_of_file_descriptors() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("SKIPPED: prlimit (util-linux) is not installed");
        return;
    }
    let mut prlimited = Command::new("prlimit");
    prlimited.args(["--nofile=40:40", BIN]);
    let mut server = start_with(
        prlimited,
        &[
            "--handshake-timeout",
            "0.5",
            "--http-request-timeout",
            "0.5",
        ],
    );
    let ws_port = ws_addr(&server);
    // More connections than the process has descriptors: accept() fails with EMFILE.
    let flood: Vec<_> = (0..60)
        .flat_map(|_| {
            [
                std::net::TcpStream::connect(&ws_port),
                std::net::TcpStream::connect(&server.http),
            ]
        })
        .collect();
    let mut log = Vec::new();
    while !log.iter().any(|l: &String| l.contains("accept failed")) {
        log.push(
            server
                .lines
                .recv_timeout(Duration::from_secs(10))
                .expect("an accept failure is logged"),
        );
    }
    drop(flood);
    std::thread::sleep(Duration::from_secs(2));
    let call = place_call(&server);
    assert!(
        call.status.success(),
        "both listeners accept again: {}{}",
        String::from_utf8_lossy(&call.stdout),
        String::from_utf8_lossy(&call.stderr)
    );
    signal(&server.child, "TERM");
    assert_eq!(server.child.wait().unwrap().code(), Some(0));
}

#[test]
fn binary_says_when_it_cannot_raise_the_file_limit() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("SKIPPED: prlimit (util-linux) is not installed");
        return;
    }
    let mut prlimited = Command::new("prlimit");
    prlimited.args(["--nofile=100:100", BIN]);
    let mut server = start_with(prlimited, &[]);
    let said = server
        .seen
        .iter()
        .any(|l| l.contains("open-file limit is 100, below"));
    signal(&server.child, "TERM");
    let _ = server.child.wait();
    assert!(said, "the binary names the limit it could not raise");
}

#[test]
fn binary_refuses_a_realtime_priority_the_system_will_not_grant() {
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("SKIPPED: prlimit and setpriv (util-linux) are not installed");
        return;
    }
    // No real-time budget, and for root, no CAP_SYS_NICE either.
    let mut unprivileged = Command::new("prlimit");
    unprivileged.arg("--rtprio=0:0");
    let uid = Command::new("id").arg("-u").output().unwrap().stdout;
    if uid.trim_ascii() == b"0" {
        unprivileged.args([
            "setpriv",
            "--bounding-set=-sys_nice",
            "--inh-caps=-sys_nice",
        ]);
    }
    let out = unprivileged
        .args([
            BIN,
            "--http-addr",
            "127.0.0.1:0",
            "--ws-addr",
            "127.0.0.1:0",
        ])
        .args(["--realtime-priority", "10"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "started without the privilege");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("--realtime-priority") && said.contains("CAP_SYS_NICE"),
        "{said}"
    );
}

/// Opens a socket at `ws_addr` (a server with `--socket-auth none`) and sends 640-byte
/// audio frames as fast as the connection takes them, reading and dropping the echoes,
/// until `stop` is set.
fn flood(ws_addr: &str, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(ws_addr).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .unwrap();
    socket
        .write_all(
            b"GET /socket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        socket.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let mut reader = socket.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut sink = [0u8; 65536];
        while matches!(reader.read(&mut sink), Ok(1..)) {}
    });
    // A masked binary frame; the all-zero mask leaves the payload as it is.
    let mut frame = vec![0x82, 0x80 | 126, 0x02, 0x80, 0, 0, 0, 0];
    frame.resize(frame.len() + 640, 0x55);
    let burst = frame.repeat(32);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if socket.write_all(&burst).is_err() {
            return;
        }
    }
}

#[test]
fn a_flooding_caller_does_not_stall_other_calls_on_a_realtime_core() {
    let allowed = Command::new("chrt").args(["-r", "10", "true"]).output();
    if !allowed.is_ok_and(|out| out.status.success()) {
        eprintln!("SKIPPED: no chrt (util-linux), or no real-time priority for this user");
        return;
    }
    // The whole server on one core, so the flood's thread and the call's must share it.
    let mut pinned = Command::new("taskset");
    pinned.args(["-c", "0", BIN]);
    let mut server = start_with(
        pinned,
        &["--realtime-priority", "10", "--socket-auth", "none"],
    );
    let ws_addr = ws_addr(&server);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooding = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || flood(&ws_addr, stop))
    };
    std::thread::sleep(Duration::from_millis(300));
    let call = place_call(&server);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flooding.join().unwrap();
    signal(&server.child, "TERM");
    let _ = server.child.wait();
    assert!(
        call.status.success(),
        "a call beside the flood completes: {}{}",
        String::from_utf8_lossy(&call.stdout),
        String::from_utf8_lossy(&call.stderr)
    );
}

#[test]
fn binary_exits_zero_on_sigint() {
    let mut server = start(&[]);
    signal(&server.child, "INT");
    assert_eq!(server.child.wait().unwrap().code(), Some(0));
}

#[test]
fn bad_settings_are_refused_by_name() {
    for (flag, value) in [
        ("--rate", "44100"),
        ("--http-addr", "nowhere"),
        ("--max-message-bytes", "10"),
        ("--ws-url", "http://x/socket"),
    ] {
        let out = Command::new(BIN)
            .args([
                "--http-addr",
                "127.0.0.1:0",
                "--ws-addr",
                "127.0.0.1:0",
                flag,
                value,
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag} {value} accepted");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(said.contains(flag), "{flag}: {said}");
    }
}

#[test]
fn settings_have_environment_twins() {
    let out = Command::new(BIN)
        .args(["--http-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0"])
        .env("VONAGE_ECHO_RATE", "11025")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("--rate"), "{said}");
}

/// What the binary said on standard error when it refused to start.
fn refusal(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(!out.status.success(), "started with {args:?} {env:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_enumerated_setting_refuses_an_unknown_value_listing_the_ones_it_takes() {
    for (flag, takes) in [
        ("--socket-auth", "token, vonage, none"),
        ("--audio-priority", "idle, nice"),
        ("--log-format", "text, json"),
    ] {
        let said = refusal(&[flag, "bogus"], &[]);
        assert!(said.contains(flag), "{flag}: {said}");
        assert!(
            said.contains(&format!("[possible values: {takes}]")),
            "{flag}: {said}"
        );
    }
}

#[test]
fn a_value_from_the_environment_is_refused_naming_its_variable() {
    let any_port = ["--http-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0"];
    // Refused by the flag's parser, and by the library's checks.
    for (flag, env, value) in [
        ("--rate", "VONAGE_ECHO_RATE", "44100"),
        ("--greeting", "VONAGE_ECHO_GREETING", ""),
        (
            "--record-dir",
            "VONAGE_ECHO_RECORD_DIR",
            "/proc/self/recordings",
        ),
    ] {
        let said = refusal(&any_port, &[(env, value)]);
        assert!(said.contains(flag) && said.contains(env), "{said}");
    }
    let said = refusal(&["--rate", "44100"], &[]);
    assert!(!said.contains("VONAGE_ECHO_RATE"), "{said}");
}

#[test]
fn an_address_in_use_is_refused_naming_the_flag_and_its_variable() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let said = refusal(&["--http-addr", &addr, "--ws-addr", "127.0.0.1:0"], &[]);
    assert!(
        said.contains("--http-addr") && said.contains(&addr),
        "{said}"
    );
    let said = refusal(
        &["--http-addr", "127.0.0.1:0"],
        &[("VONAGE_ECHO_WS_ADDR", &addr)],
    );
    assert!(
        said.contains("--ws-addr") && said.contains("VONAGE_ECHO_WS_ADDR"),
        "{said}"
    );
}

#[test]
fn a_host_name_in_an_address_is_resolved() {
    let mut command = Command::new(BIN);
    command.args(["--http-addr", "localhost:0", "--ws-addr", "localhost:0"]);
    let server = start_command(command);
    let log = log_after_sigterm(server);
    assert!(
        log.iter()
            .any(|l| l.contains("webhooks listening on http://127.0.0.1:")
                || l.contains("webhooks listening on http://[::1]:")),
        "{log:#?}"
    );
}

#[test]
fn every_realtime_priority_out_of_range_gets_the_same_message() {
    for value in ["0", "150", "300"] {
        let said = refusal(&["--realtime-priority", value], &[]);
        assert!(
            said.contains(&format!("{value} is not in 1..=99")),
            "{value}: {said}"
        );
    }
}

#[test]
fn the_flags_defaults_are_the_librarys() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let defaults = vonage_echo::Config::default();
    for shown in [
        defaults.http_addr.to_string(),
        defaults.max_calls.to_string(),
        defaults.max_header_bytes.to_string(),
        defaults.http_keep_alive.as_secs().to_string(),
        defaults.signature_tolerance.as_secs().to_string(),
        defaults.audio.rate().to_string(),
    ] {
        assert!(
            help.contains(&format!("[default: {shown}]")),
            "{shown} is not shown as a default: {help}"
        );
    }
}

#[test]
fn help_lists_every_setting() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--http-addr",
        "--ws-addr",
        "--ws-url",
        "--rate",
        "--greeting",
        "--from",
        "--max-message-bytes",
        "--log-level",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
        let env = format!(
            "VONAGE_ECHO_{}",
            flag.trim_start_matches("--")
                .replace('-', "_")
                .to_uppercase()
        );
        assert!(help.contains(&env), "{env} missing from --help");
    }
}

#[test]
fn binary_serves_with_an_unwritable_temporary_directory() {
    let mut command = Command::new(BIN);
    command.env("TMPDIR", "/proc/self");
    let mut server = start_with(command, &[]);
    let health = Command::new(BIN)
        .args([
            "call",
            "--answer-url",
            &format!("http://{}/webhooks/answer", server.http),
            "--duration",
            "0.2",
        ])
        .output()
        .unwrap();
    assert!(
        health.status.success(),
        "{}",
        String::from_utf8_lossy(&health.stdout)
    );
    signal(&server.child, "TERM");
    assert_eq!(server.child.wait().unwrap().code(), Some(0));
}

/// A call's socket on the binary, answered by its webhook, its first frame echoed.
fn live_call(server: &Running, uuid: &str) -> tungstenite::WebSocket<std::net::TcpStream> {
    let answer = support::http(
        server.http.parse().unwrap(),
        "GET",
        &format!("/webhooks/answer?uuid={uuid}"),
        "",
        "",
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    let endpoint = answer.json()[1]["endpoint"][0].clone();
    let mut ws = support::ws_connect(
        endpoint["uri"].as_str().unwrap(),
        endpoint["authorization"]["value"].as_str(),
    );
    echoes(&mut ws, 0);
    ws
}

/// Sends a frame and reads its echo.
fn echoes(ws: &mut tungstenite::WebSocket<std::net::TcpStream>, k: u8) {
    let frame = tungstenite::Message::binary(vec![k; 640]);
    ws.send(frame.clone()).unwrap();
    assert_eq!(support::next_data(ws), frame);
}

/// `GET /ready`'s status.
fn ready(server: &Running) -> u16 {
    support::http(server.http.parse().unwrap(), "GET", "/ready", "", "").status
}

/// Waits (at most 10 s) for the binary to exit, and returns its code.
fn exit_code(server: &mut Running) -> Option<i32> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            return status.code();
        }
        if std::time::Instant::now() > deadline {
            let _ = server.child.kill();
            panic!("the binary did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for a log line holding `needle`, returning whether it came within 10 s.
fn logged(server: &Running, needle: &str) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match server.lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

#[test]
fn sigterm_lets_a_live_call_finish_then_exits_zero() {
    let mut server = start(&[]);
    let mut ws = live_call(&server, "through-sigterm");
    assert_eq!(ready(&server), 200);
    signal(&server.child, "TERM");
    support::eventually("readiness to flip", || ready(&server) == 503);
    for k in 1..20 {
        echoes(&mut ws, k);
    }
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "exited with a call up"
    );
    ws.close(None).unwrap();
    assert!(matches!(
        support::next_data(&mut ws),
        tungstenite::Message::Close(_)
    ));
    assert_eq!(exit_code(&mut server), Some(0));
    assert!(logged(&server, "drained: no call left"));
}

#[test]
fn a_second_signal_closes_live_calls_with_1001_at_once() {
    let mut server = start(&[]);
    let mut ws = live_call(&server, "second-signal");
    signal(&server.child, "TERM");
    support::eventually("readiness to flip", || ready(&server) == 503);
    echoes(&mut ws, 1);
    let signalled = std::time::Instant::now();
    signal(&server.child, "INT");
    assert_eq!(support::close_code(&mut ws), 1001);
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "closed {:?} after the second signal",
        signalled.elapsed()
    );
    assert_eq!(exit_code(&mut server), Some(0));
}

#[test]
fn the_drain_timeout_closes_the_calls_left_with_1001_and_counts_them_meanwhile() {
    let mut server = start(&["--drain-timeout", "5.5"]);
    let mut ws = live_call(&server, "past-drain-timeout");
    signal(&server.child, "TERM");
    support::eventually("readiness to flip", || ready(&server) == 503);
    // The call is still served until the timeout.
    echoes(&mut ws, 1);
    assert!(
        logged(&server, "draining: 1 calls left"),
        "the drain counts the calls left"
    );
    assert_eq!(support::close_code(&mut ws), 1001);
    assert_eq!(exit_code(&mut server), Some(0));
}

/// What the binary logged from its start to its exit, after SIGTERM.
fn log_after_sigterm(mut server: Running) -> Vec<String> {
    signal(&server.child, "TERM");
    assert_eq!(exit_code(&mut server), Some(0));
    let mut log = server.seen.clone();
    log.extend(server.lines.iter());
    log
}

#[test]
fn logs_go_to_standard_error_and_standard_output_stays_empty() {
    let mut server = start(&[]);
    let mut stdout = server.child.stdout.take().unwrap();
    let log = log_after_sigterm(server);
    assert!(log.iter().any(|l| l.contains("drained")), "{log:#?}");
    let mut printed = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut printed).unwrap();
    assert_eq!(printed, "", "standard output carries no log");
}

#[test]
fn json_logs_are_one_object_a_line_and_a_call_logs_one_info_line() {
    let server = start(&["--log-format", "json"]);
    let mut ws = live_call(&server, "json-logged");
    ws.close(None).unwrap();
    let _ = support::next_data(&mut ws);
    let log = log_after_sigterm(server);
    let objects: Vec<serde_json::Value> = log
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for object in &objects {
        for key in ["time", "level", "target", "message"] {
            assert!(object[key].is_string(), "no {key}: {object}");
        }
    }
    let about_the_call: Vec<_> = objects
        .iter()
        .filter(|o| o["call"] == "json-logged" && o["level"] == "INFO")
        .collect();
    assert_eq!(about_the_call.len(), 1, "{about_the_call:#?}");
    let summary = about_the_call[0]["message"].as_str().unwrap();
    assert!(summary.contains("ended after"), "{summary}");
}

#[test]
fn a_refused_handshake_is_logged_once_with_its_peer_and_reason() {
    let server = start(&[]);
    let ws = ws_addr(&server);
    let refused = support::try_ws_connect(
        &format!("ws://{ws}/socket?uuid=no-token"),
        Some("Bearer wrong"),
    );
    assert_eq!(support::refused_status(refused), 401);
    let log = log_after_sigterm(server);
    let lines: Vec<_> = log.iter().filter(|l| l.contains("handshake")).collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("INFO") && lines[0].contains("127.0.0.1:") && lines[0].contains("401"),
        "{}",
        lines[0]
    );
}

#[test]
fn rust_log_module_directives_are_honoured() {
    let mut command = Command::new(BIN);
    command.env("RUST_LOG", "warn,vonage_echo::server=info");
    let server = start_with(command, &[]);
    let log = log_after_sigterm(server);
    assert!(
        log.iter().any(|l| l.contains("webhooks listening")),
        "the server module logs at info: {log:#?}"
    );
    assert!(
        !log.iter().any(|l| l.contains("socket URL handed out")),
        "the binary's own module logs at warn: {log:#?}"
    );
}

#[test]
fn a_rust_log_that_cannot_be_honoured_is_refused_with_the_reason() {
    let out = Command::new(BIN)
        .args(["--http-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0"])
        .env("RUST_LOG", "info/answered")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("RUST_LOG") && said.contains("not supported"),
        "{said}"
    );
}

#[test]
fn call_refuses_an_output_file_it_cannot_write_before_dialing() {
    let server = support::server();
    let answer_url = support::answer_url(&server);
    for flag in ["--junit", "--record"] {
        let out = Command::new(BIN)
            .args([
                "call",
                "--answer-url",
                &answer_url,
                flag,
                "/nonexistent/out",
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag} accepted");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains(&format!("cannot write {flag} /nonexistent/out")),
            "{said}"
        );
    }
    let metrics = support::http(server.http_addr(), "GET", "/metrics", "", "").body;
    assert!(
        !metrics.contains("route=\"answer\",status"),
        "a call was dialed: {metrics}"
    );
}

#[test]
fn call_writes_its_junit_file() {
    let server = support::server();
    let dir = std::env::temp_dir().join(format!("vonage-echo-junit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junit = dir.join("report.xml");
    let out = Command::new(BIN)
        .args(["call", "--answer-url", &support::answer_url(&server)])
        .args(["--duration", "0.2", "--junit"])
        .arg(&junit)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("sent"));
    assert!(std::fs::read_to_string(&junit)
        .unwrap()
        .contains("<testsuite"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_call_that_never_starts_leaves_no_file_where_it_only_checked() {
    let server = support::server();
    let dir = std::env::temp_dir().join(format!("vonage-echo-nojunit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junit = dir.join("report.xml");
    let out = Command::new(BIN)
        .args(["call", "--answer-url", &support::answer_url(&server)])
        .args(["--script", "/nonexistent/call.scenario", "--junit"])
        .arg(&junit)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!junit.exists(), "the check left a file behind");
    let _ = std::fs::remove_dir_all(dir);
}
