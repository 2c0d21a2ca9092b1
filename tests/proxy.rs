//! One public host for many instances: nginx terminates TLS on loopback in front of two
//! instances sharing a socket key, and `vonage-echo call` plays calls through it over
//! `https://` and `wss://`, also while one instance is drained and started again. The
//! configuration is the README's, with test paths and ports.
//! `cargo test` reports these ignored, saying why; `.ci/run` installs nginx and openssl and
//! runs them (`cargo test --test proxy -- --ignored`).

mod support;

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use support::*;
use vonage_echo::{
    auth::Secret,
    sim::{
        call::{self, CallOptions},
        Dial,
    },
    Server,
};

fn nginx() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A test CA (`ca.pem`) and a certificate it signed for localhost and 127.0.0.1
/// (`cert.pem`, `key.pem`): webpki refuses a self-signed CA as a server's own certificate.
fn certificate(dir: &Path) -> bool {
    let openssl = |args: &[&str]| {
        Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .is_ok()
        && openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=vonage-echo test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ])
        && openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "key.pem",
            "-out",
            "leaf.csr",
        ])
        && openssl(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "leaf.ext",
            "-out",
            "cert.pem",
        ])
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_nginx(binary: &Path, dir: &Path, port: u16, instances: &[&Server]) -> Nginx {
    let upstream = |addr: fn(&Server) -> std::net::SocketAddr| {
        instances
            .iter()
            .map(|s| format!("        server {};\n", addr(s)))
            .collect::<String>()
    };
    let conf = format!(
        r#"daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    upstream vonage_echo_webhooks {{
{webhooks}    }}
    upstream vonage_echo_sockets {{
{sockets}    }}
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate     {dir}/cert.pem;
        ssl_certificate_key {dir}/key.pem;

        location /webhooks/ {{
            proxy_pass http://vonage_echo_webhooks;
            proxy_next_upstream error timeout http_503 non_idempotent;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-Host $host:$server_port;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
        location ~ ^/(health|ready)$ {{
            proxy_pass http://vonage_echo_webhooks;
        }}
        location = /socket {{
            proxy_pass http://vonage_echo_sockets;
            proxy_next_upstream error timeout http_503;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_read_timeout 3h;
            proxy_send_timeout 3h;
        }}
    }}
}}
"#,
        dir = dir.display(),
        webhooks = upstream(Server::http_addr),
        sockets = upstream(Server::ws_addr),
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = Command::new(binary)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let nginx = Nginx(child);
    eventually("nginx to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    nginx
}

/// Answers of the answer webhook with an NCCO (200) so far.
fn calls_answered(server: &Server) -> u64 {
    let metrics = http(server.http_addr(), "GET", "/metrics", "", "").body;
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("vonage_echo_webhook_requests_total{route=\"answer\",status=\"200\"} ")
        })
        .map_or(0, |n| n.parse().unwrap())
}

fn calls_total(server: &Server) -> u64 {
    let metrics = http(server.http_addr(), "GET", "/metrics", "", "").body;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("vonage_echo_calls_total "))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
#[ignore = "needs nginx and openssl: .ci/run installs them and runs it (cargo test --test proxy -- --ignored)"]
fn calls_through_nginx_with_tls_reach_both_instances() {
    let binary = nginx().expect("nginx is installed");
    let dir = std::env::temp_dir().join(format!("vonage-echo-nginx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    assert!(certificate(&dir), "openssl makes a certificate");
    let key = Some(Secret::new("shared between instances"));
    let a = start(config().socket_key(key.clone()));
    let b = start(config().socket_key(key));
    let port = free_port();
    let _nginx = start_nginx(&binary, &dir, port, &[&a, &b]);

    let answer_url = format!("https://localhost:{port}/webhooks/answer");
    for _ in 0..6 {
        let dial = Dial::new(answer_url.clone()).ca_file(Some(dir.join("ca.pem")));
        let report = call::run(
            &CallOptions::new(answer_url.clone())
                .dial(dial)
                .duration(Duration::from_millis(400)),
        )
        .unwrap();
        assert!(report.passed(), "{report}");
        assert!(
            report
                .socket_uri
                .starts_with(&format!("wss://localhost:{port}/socket?uuid=")),
            "the NCCO names the proxy: {}",
            report.socket_uri
        );
    }
    let (on_a, on_b) = (calls_total(&a), calls_total(&b));
    assert_eq!(on_a + on_b, 6);
    assert!(
        on_a > 0 && on_b > 0,
        "calls landed on both instances: {on_a} and {on_b}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
#[ignore = "needs nginx and openssl: .ci/run installs them and runs it (cargo test --test proxy -- --ignored)"]
fn the_binary_plays_a_call_through_nginx() {
    let binary = nginx().expect("nginx is installed");
    let dir = std::env::temp_dir().join(format!("vonage-echo-nginx-bin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    assert!(certificate(&dir), "openssl makes a certificate");
    let server = server();
    let port = free_port();
    let _nginx = start_nginx(&binary, &dir, port, &[&server]);
    let out = Command::new(env!("CARGO_BIN_EXE_vonage-echo"))
        .args([
            "call",
            "--answer-url",
            &format!("https://localhost:{port}/webhooks/answer"),
            "--duration",
            "0.5",
        ])
        .arg("--ca-file")
        .arg(dir.join("ca.pem"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains(&format!("socket: wss://localhost:{port}/socket?uuid=")),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A call through nginx, streaming for `duration`, on a thread of its own.
fn dial(
    answer_url: &str,
    ca: &Path,
    duration: Duration,
) -> std::thread::JoinHandle<vonage_echo::Result<call::CallReport>> {
    let dial = Dial::new(answer_url.to_owned()).ca_file(Some(ca.to_owned()));
    let options = CallOptions::new(answer_url.to_owned())
        .dial(dial)
        .duration(duration);
    std::thread::spawn(move || call::run(&options))
}

fn assert_passed(call: std::thread::JoinHandle<vonage_echo::Result<call::CallReport>>) {
    let report = call.join().unwrap().unwrap();
    assert!(report.passed(), "{report}");
}

#[test]
#[ignore = "needs nginx and openssl: .ci/run installs them and runs it (cargo test --test proxy -- --ignored)"]
fn a_rolling_restart_through_nginx_cuts_no_call_and_fails_none() {
    let binary = nginx().expect("nginx is installed");
    let dir = std::env::temp_dir().join(format!("vonage-echo-nginx-roll-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    assert!(certificate(&dir), "openssl makes a certificate");
    let ca = dir.join("ca.pem");
    let key = Some(Secret::new("shared between instances"));
    // The drain waits out the grace of each socket a promised, also of those nginx took to
    // b; the emulator connects at once, so a short grace does.
    let grace = Duration::from_secs(2);
    let a = start(config().socket_key(key.clone()).drain_grace(grace));
    let b = start(config().socket_key(key.clone()));
    let port = free_port();
    let _nginx = start_nginx(&binary, &dir, port, &[&a, &b]);
    let answer_url = format!("https://localhost:{port}/webhooks/answer");

    // Calls that stream through the restart, on both instances.
    let live: Vec<_> = (0..6)
        .map(|_| dial(&answer_url, &ca, Duration::from_secs(3)))
        .collect();
    eventually("calls up on both instances", || {
        a.active_calls() > 0 && b.active_calls() > 0
    });
    let answered_by_a = calls_answered(&a);
    a.drain();

    // Calls dialed during the drain: nginx takes a's 503 to b.
    let during: Vec<_> = (0..4)
        .map(|_| dial(&answer_url, &ca, Duration::from_millis(300)))
        .collect();
    during.into_iter().for_each(assert_passed);
    assert_eq!(
        calls_answered(&a),
        answered_by_a,
        "the draining instance answered no call"
    );
    eventually("the drain to complete", || a.is_drained());
    live.into_iter().for_each(assert_passed);

    // Started again on the same ports, where nginx looks for it.
    let (http_addr, ws_addr) = (a.http_addr(), a.ws_addr());
    a.shutdown();
    let _a = start(
        config()
            .socket_key(key)
            .http_addr(http_addr)
            .ws_addr(ws_addr),
    );
    let after: Vec<_> = (0..4)
        .map(|_| dial(&answer_url, &ca, Duration::from_millis(300)))
        .collect();
    after.into_iter().for_each(assert_passed);
    let _ = std::fs::remove_dir_all(dir);
}

/// `GET path` through nginx's TLS listener on `port`, by `openssl s_client`: the status line.
fn status_through_tls(port: u16, path: &str) -> String {
    use std::io::Write;
    let mut client = Command::new("openssl")
        .args(["s_client", "-quiet", "-servername", "localhost", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    client
        .stdin
        .take()
        .unwrap()
        .write_all(request.as_bytes())
        .unwrap();
    let output = client.wait_with_output().unwrap();
    let answer = String::from_utf8_lossy(&output.stdout).into_owned();
    answer.lines().next().unwrap_or("").trim().to_owned()
}

#[test]
#[ignore = "needs nginx and openssl: .ci/run installs them and runs it (cargo test --test proxy -- --ignored)"]
fn health_and_readiness_answer_through_nginx_and_readiness_fails_while_draining() {
    let binary = nginx().expect("nginx is installed");
    let dir = std::env::temp_dir().join(format!("vonage-echo-nginx-ready-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    assert!(certificate(&dir), "openssl makes a certificate");
    let server = start(config());
    let port = free_port();
    let _nginx = start_nginx(&binary, &dir, port, &[&server]);

    assert_eq!(status_through_tls(port, "/health"), "HTTP/1.1 200 OK");
    assert_eq!(status_through_tls(port, "/ready"), "HTTP/1.1 200 OK");
    server.drain();
    assert_eq!(
        status_through_tls(port, "/ready"),
        "HTTP/1.1 503 Service Unavailable"
    );
    assert_eq!(status_through_tls(port, "/health"), "HTTP/1.1 200 OK");
    let _ = std::fs::remove_dir_all(dir);
}
