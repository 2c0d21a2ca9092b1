//! `--ca-file` trusts a self-signed certificate as curl's `--cacert` does: the one
//! `openssl req -x509` makes (which says CA:TRUE) serves both the `https://` webhooks and
//! the `wss://` socket, and a certificate outside the file is still refused. One without a
//! subjectAltName, as the README's plain command makes it, is held to its subject's common
//! name, as curl holds it. The servers here are rustls on loopback. `cargo test` reports
//! these ignored, saying why; `.ci/run` installs openssl and runs them
//! (`cargo test --test sim_tls -- --ignored`).

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
    thread,
    time::Duration,
};

use rustls::{ServerConfig, ServerConnection, StreamOwned};
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use tungstenite::Message;
use vonage_echo::sim::{
    call::{self, CallOptions},
    Dial,
};

/// A directory of its own for one test's certificates, removed afterwards.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("vonage-echo-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The README's command for a test server's certificate (section "Testing your own Vonage
/// application"), word for word: its subject's CN is localhost, and it has no
/// subjectAltName.
const README_COMMAND: &[&str] = &[
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "key.pem",
    "-out",
    "cert.pem",
    "-days",
    "365",
    "-subj",
    "/CN=localhost",
];

/// Runs `openssl` with `args` in the directory `{dir}/{name}`, which they make a
/// certificate and its key in, `cert.pem` and `key.pem`; returns the certificate's path.
fn openssl_req(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new("openssl")
        .current_dir(&dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl makes a certificate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("cert.pem")
}

/// The certificate the README's command makes, in `{dir}/{name}`.
fn readme_certificate(dir: &Path, name: &str) -> PathBuf {
    openssl_req(dir, name, README_COMMAND)
}

/// A self-signed certificate and its key, made as a reader would make one for a test
/// server; `extra` adds to the command.
fn self_signed(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let mut args = vec![
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "cert.pem",
        "-days", "1",
    ];
    args.extend_from_slice(extra);
    openssl_req(dir, name, &args)
}

/// Whether the certificate at `cert` has a subjectAltName extension.
fn has_subject_alt_name(cert: &Path) -> bool {
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    assert!(text.status.success());
    String::from_utf8_lossy(&text.stdout).contains("Subject Alternative Name")
}

/// A certificate naming localhost and 127.0.0.1 in its subjectAltName (`-addext`), which
/// webpki checks the server's name against; the README's plain command names localhost in
/// its subject's CN alone (`readme_certificate`).
fn localhost(dir: &Path, name: &str) -> PathBuf {
    self_signed(
        dir,
        name,
        &[
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
    )
}

/// A rustls server presenting the certificate at `cert` (its key beside it, `key.pem`).
fn server_tls(cert: &Path) -> Arc<ServerConfig> {
    let chain = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(cert.with_file_name("key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    Arc::new(config)
}

/// Accepts TLS connections on 127.0.0.1, each handed to `serve` on a thread of its own
/// (the handshake happens at its first read); returns the port.
fn tls_listener(
    tls: Arc<ServerConfig>,
    serve: impl Fn(StreamOwned<ServerConnection, TcpStream>) + Send + Sync + 'static,
) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let serve = Arc::new(serve);
    thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { return };
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
            let (tls, serve) = (tls.clone(), serve.clone());
            thread::spawn(move || {
                let Ok(conn) = ServerConnection::new(tls) else {
                    return;
                };
                serve(StreamOwned::new(conn, tcp));
            });
        }
    });
    port
}

/// One request's path, with its body read so that the next request on the connection can
/// be; `None` once the client is gone (or refused the handshake).
fn read_request(stream: &mut impl Read) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(head) = request.parse(&buf).ok()? {
            let length = request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                .unwrap_or(0usize);
            let path = request.path?.to_owned();
            let mut body = buf.len() - head;
            while body < length {
                body += match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => n,
                };
            }
            return Some(path);
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// An application on `https://localhost` presenting `cert`: its answer webhook connects
/// the call to `socket`, its event webhook takes anything. Returns the answer URL and the
/// paths asked for.
fn https_application(cert: &Path, socket: String) -> (String, Arc<Mutex<Vec<String>>>) {
    let ncco = format!(
        r#"[{{"action":"connect","endpoint":[{{"type":"websocket","uri":"{socket}","content-type":"audio/l16;rate=8000"}}]}}]"#
    );
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = asked.clone();
    let port = tls_listener(server_tls(cert), move |mut stream| {
        while let Some(path) = read_request(&mut stream) {
            seen.lock().unwrap().push(path.clone());
            let body = if path.starts_with("/webhooks/answer") {
                ncco.as_str()
            } else {
                ""
            };
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(answer.as_bytes()).is_err() || stream.flush().is_err() {
                return;
            }
        }
    });
    (format!("https://localhost:{port}/webhooks/answer"), asked)
}

/// A `wss://{host}` socket (on 127.0.0.1) presenting `cert` that echoes every message.
fn wss_echo(cert: &Path, host: &str) -> String {
    let port = tls_listener(server_tls(cert), |stream| {
        let Ok(mut ws) = tungstenite::accept(stream) else {
            return;
        };
        while let Ok(message) = ws.read() {
            let echo = match message {
                Message::Binary(_) | Message::Text(_) => message,
                _ => continue,
            };
            if ws.send(echo).is_err() {
                return;
            }
        }
        // As a TLS server should: the simulator counts a bare TCP close as a lost connection.
        let stream = ws.get_mut();
        stream.conn.send_close_notify();
        let _ = stream.flush();
    });
    format!("wss://{host}:{port}/socket")
}

fn call_trusting(answer_url: &str, ca_file: &Path) -> vonage_echo::Result<call::CallReport> {
    call::run(
        &CallOptions::new(answer_url)
            .dial(Dial::new(answer_url).ca_file(Some(ca_file.to_owned())))
            .duration(Duration::from_millis(400)),
    )
}

/// Why a call that should not have connected did not: its error, or its failed report.
fn refused(answer_url: &str, ca_file: &Path) -> String {
    match call_trusting(answer_url, ca_file) {
        Err(e) => e.to_string(),
        Ok(report) => {
            assert!(!report.passed(), "{report}");
            report.to_string()
        }
    }
}

#[test]
#[ignore = "needs openssl: .ci/run installs it and runs it (cargo test --test sim_tls -- --ignored)"]
fn a_self_signed_certificate_in_the_ca_file_serves_https_and_wss() {
    let dir = TempDir::new("tls-self-signed");
    let cert = localhost(&dir.0, "server");
    let constraints = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "basicConstraints", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&constraints.stdout).contains("CA:TRUE"),
        "the certificate is one webpki alone refuses as a server's"
    );

    let socket = wss_echo(&cert, "127.0.0.1");
    let (answer_url, asked) = https_application(&cert, socket.clone());
    let report = call_trusting(&answer_url, &cert).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.socket_uri, socket);
    assert!(report.sent > 0, "{report}");

    let asked = asked.lock().unwrap();
    assert!(
        asked.iter().any(|p| p.starts_with("/webhooks/answer?")),
        "{asked:?}"
    );
    assert_eq!(
        asked
            .iter()
            .filter(|p| p.as_str() == "/webhooks/events")
            .count(),
        7,
        "the call's started, ringing, answered and completed, and the socket leg's started, \
         answered and completed, went over https: {asked:?}"
    );
}

#[test]
#[ignore = "needs openssl: .ci/run installs it and runs it (cargo test --test sim_tls -- --ignored)"]
fn a_certificate_not_in_the_ca_file_is_refused() {
    let dir = TempDir::new("tls-untrusted");
    let trusted = localhost(&dir.0, "trusted");
    let other = localhost(&dir.0, "other");

    let (answer_url, _) = https_application(&other, wss_echo(&trusted, "127.0.0.1"));
    let err = refused(&answer_url, &trusted);
    assert!(err.contains("webhook https://localhost:"), "{err}");
    assert!(err.contains("invalid peer certificate"), "{err}");

    let socket = wss_echo(&other, "127.0.0.1");
    let (answer_url, asked) = https_application(&trusted, socket.clone());
    let err = refused(&answer_url, &trusted);
    assert!(err.contains(&socket), "{err}");
    assert!(err.contains("invalid peer certificate"), "{err}");
    assert!(
        asked
            .lock()
            .unwrap()
            .iter()
            .any(|p| p.starts_with("/webhooks/answer?")),
        "the trusted webhook was asked"
    );
}

#[test]
#[ignore = "needs openssl: .ci/run installs it and runs it (cargo test --test sim_tls -- --ignored)"]
fn a_certificate_in_the_ca_file_must_still_name_the_server() {
    let dir = TempDir::new("tls-other-name");
    let cert = self_signed(
        &dir.0,
        "elsewhere",
        &[
            "-subj",
            "/CN=elsewhere.example",
            "-addext",
            "subjectAltName=DNS:elsewhere.example",
        ],
    );
    let (answer_url, _) = https_application(&cert, wss_echo(&cert, "127.0.0.1"));
    let err = refused(&answer_url, &cert);
    assert!(
        err.contains("certificate not valid for name \"localhost\""),
        "{err}"
    );
}

#[test]
#[ignore = "needs openssl: .ci/run installs it and runs it (cargo test --test sim_tls -- --ignored)"]
fn a_certificate_in_the_ca_file_must_allow_server_authentication() {
    let dir = TempDir::new("tls-client-only");
    let cert = self_signed(
        &dir.0,
        "client",
        &[
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "extendedKeyUsage=clientAuth",
        ],
    );
    let (answer_url, _) = https_application(&cert, wss_echo(&cert, "127.0.0.1"));
    let err = refused(&answer_url, &cert);
    assert!(err.contains("InvalidPurpose"), "{err}");
}

#[test]
#[ignore = "needs openssl: .ci/run installs it and runs it (cargo test --test sim_tls -- --ignored)"]
fn the_readme_certificate_serves_localhost_by_its_common_name() {
    let dir = TempDir::new("tls-readme");
    let cert = readme_certificate(&dir.0, "readme");
    assert!(
        !has_subject_alt_name(&cert),
        "the certificate is one webpki alone refuses for every name"
    );

    let socket = wss_echo(&cert, "localhost");
    let (answer_url, asked) = https_application(&cert, socket.clone());
    let report = call_trusting(&answer_url, &cert).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.socket_uri, socket);
    assert!(report.sent > 0, "{report}");
    assert!(
        asked
            .lock()
            .unwrap()
            .iter()
            .any(|p| p.starts_with("/webhooks/answer?")),
        "the webhook was asked over https"
    );
}

#[test]
#[ignore = "needs openssl: .ci/run installs it and runs it (cargo test --test sim_tls -- --ignored)"]
fn a_common_name_only_certificate_must_name_the_server() {
    let dir = TempDir::new("tls-other-cn");
    let cert = self_signed(&dir.0, "otherhost", &["-subj", "/CN=otherhost"]);
    assert!(!has_subject_alt_name(&cert));
    let (answer_url, _) = https_application(&cert, wss_echo(&cert, "localhost"));
    let err = refused(&answer_url, &cert);
    assert!(err.contains("webhook https://localhost:"), "{err}");
    assert!(
        err.contains("certificate not valid for name \"localhost\""),
        "{err}"
    );
    assert!(err.contains("CommonName(\"otherhost\")"), "{err}");
}

#[test]
#[ignore = "needs openssl: .ci/run installs it and runs it (cargo test --test sim_tls -- --ignored)"]
fn a_common_name_only_certificate_names_an_ip_address_as_written() {
    let dir = TempDir::new("tls-ip-cn");
    let host = readme_certificate(&dir.0, "readme");
    let ip = self_signed(&dir.0, "ip", &["-subj", "/CN=127.0.0.1"]);
    assert!(!has_subject_alt_name(&ip));
    let both = dir.0.join("both.pem");
    let pem = [&host, &ip].map(|cert| std::fs::read_to_string(cert).unwrap());
    std::fs::write(&both, pem.concat()).unwrap();

    let socket = wss_echo(&ip, "127.0.0.1");
    let (answer_url, _) = https_application(&host, socket.clone());
    let report = call_trusting(&answer_url, &both).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.socket_uri, socket);

    // CN=localhost does not name 127.0.0.1.
    let socket = wss_echo(&host, "127.0.0.1");
    let (answer_url, _) = https_application(&host, socket.clone());
    let err = refused(&answer_url, &both);
    assert!(err.contains(&socket), "{err}");
    assert!(
        err.contains("certificate not valid for name \"127.0.0.1\""),
        "{err}"
    );
}
