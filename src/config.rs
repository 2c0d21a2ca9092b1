//! The server's settings, with defaults that run a working echo server and limits sized for
//! 20 ms audio frames.
//!
//! The binary takes each setting as a flag with an environment twin: the field `max_calls`
//! is `--max-calls` and `VONAGE_ECHO_MAX_CALLS`; `audio` is `--rate` (8000, 16000 or
//! 24000); the signature secret's variable is Vonage's own `VONAGE_SIGNATURE_SECRET`.
//! `--drain-timeout`, `--log-level` and `--log-format` are the binary's alone (a library
//! decides when to call [`Server::shutdown`](crate::Server::shutdown), and logs through the
//! `log` crate). `vonage-echo --help` lists them all with their defaults. Bad values are
//! refused at start ([`Config::validate`]), naming the flag and, when the value came from
//! the environment, the variable.
//!
//! Without [`Config::ws_url`] the socket URL put in the NCCO is derived per answer request:
//! behind a proxy from `X-Forwarded-Host` and `X-Forwarded-Proto`, directly from `Host` and
//! the socket listener's port.
//!
//! # The binary's flags
//!
//! Each limit is tested over real sockets (`tests/limits.rs`).
//!
//! | flag | environment | default | what it does |
//! |---|---|---|---|
//! | `--http-addr` | `VONAGE_ECHO_HTTP_ADDR` | `0.0.0.0:3000` | where the webhooks listen (`host:port`; a host name is resolved at start) |
//! | `--ws-addr` | `VONAGE_ECHO_WS_ADDR` | `0.0.0.0:3001` | where the WebSocket listens (as `--http-addr`) |
//! | `--ws-url` | `VONAGE_ECHO_WS_URL` | derived | the public socket URL put in the NCCO (the call's `?uuid=` is added) |
//! | `--rate` | `VONAGE_ECHO_RATE` | `16000` | audio rate asked for: 8000, 16000 or 24000 |
//! | `--greeting` | `VONAGE_ECHO_GREETING` | the tutorial's | what the `talk` action says (1 to 1,500 characters) |
//! | `--from` | `VONAGE_ECHO_FROM` | `NexmoTest` | the `connect` action's caller id |
//! | `--max-message-bytes` | `VONAGE_ECHO_MAX_MESSAGE_BYTES` | `65536` | largest WebSocket message; larger closes the call with 1009 (text that is not UTF-8: 1007; a protocol violation: 1002) |
//! | `--max-calls` | `VONAGE_ECHO_MAX_CALLS` | `4000` | calls at once; at it the answer webhook answers 503, and one more handshake gets 503; calls already up are untouched |
//! | `--idle-ping-after` | `VONAGE_ECHO_IDLE_PING_AFTER` | `60` | seconds of silence before the server pings a call |
//! | `--idle-close-after` | `VONAGE_ECHO_IDLE_CLOSE_AFTER` | `10` | seconds a pinged silent call has to answer, else it is closed with 1000 and its thread freed |
//! | `--handshake-timeout` | `VONAGE_ECHO_HANDSHAKE_TIMEOUT` | `5` | seconds a WebSocket handshake may take; then the connection is dropped |
//! | `--http-request-timeout` | `VONAGE_ECHO_HTTP_REQUEST_TIMEOUT` | `10` | seconds an HTTP request's head and body may take to arrive; else 408 |
//! | `--http-keep-alive` | `VONAGE_ECHO_HTTP_KEEP_ALIVE` | `5` | seconds a kept HTTP connection may wait for its next request (0: one request a connection) |
//! | `--write-timeout` | `VONAGE_ECHO_WRITE_TIMEOUT` | `5` | seconds a caller that stopped reading may block a write; then the call is dropped |
//! | `--max-http-connections` | `VONAGE_ECHO_MAX_HTTP_CONNECTIONS` | `1024` | HTTP connections at once; more get 503 |
//! | `--max-pending-handshakes` | `VONAGE_ECHO_MAX_PENDING_HANDSHAKES` | `1024` | WebSocket handshakes in progress; more get 503 |
//! | `--max-header-bytes` | `VONAGE_ECHO_MAX_HEADER_BYTES` | `8192` | largest HTTP request head; larger gets 431 |
//! | `--max-body-bytes` | `VONAGE_ECHO_MAX_BODY_BYTES` | `65536` | largest HTTP request body; larger gets 413, a chunked body 411 |
//! | `--signature-secret` | `VONAGE_SIGNATURE_SECRET` | none | verify Vonage's signed webhooks (README, Security) |
//! | `--signature-tolerance` | `VONAGE_ECHO_SIGNATURE_TOLERANCE` | `300` | seconds a signed token's `iat` may be from now |
//! | `--socket-auth` | `VONAGE_ECHO_SOCKET_AUTH` | `token` | `token`, `vonage` or `none` (README, Security) |
//! | `--socket-key` | `VONAGE_ECHO_SOCKET_KEY` | random | key for socket tokens; share it between instances |
//! | `--record-dir` | `VONAGE_ECHO_RECORD_DIR` | none | record each call's audio and events here (created when missing; refused at start when it cannot be written) |
//! | `--realtime-priority` | `VONAGE_ECHO_REALTIME_PRIORITY` | none | run call threads under `SCHED_RR` at this priority, 1-99, and call setup one above (README, Benchmarks); needs `CAP_SYS_NICE` or `ulimit -r` of at least one more, else the server refuses to start |
//! | `--audio-priority` | `VONAGE_ECHO_AUDIO_PRIORITY` | `idle` | where call threads run below call setup under the fair scheduler: `idle` (`SCHED_IDLE`) or `nice` (ten nice steps below, for hosts shared with CPU-bound work; the library's default) |
//! | `--drain-timeout` | `VONAGE_ECHO_DRAIN_TIMEOUT` | `300` | seconds the calls still up at SIGTERM or SIGINT may go on before they are closed with 1001 (README, Deployment) |
//! | `--drain-grace` | `VONAGE_ECHO_DRAIN_GRACE` | `15` | seconds after handing out an NCCO that its socket is still accepted during a drain (the greeting plays first; a longer greeting needs more) |
//! | `--log-level` | `VONAGE_ECHO_LOG_LEVEL` | `info` | error, warn, info, debug, trace (`RUST_LOG`'s level when unset; its `module=level` directives apply either way) |
//! | `--log-format` | `VONAGE_ECHO_LOG_FORMAT` | `text` | `text`, or `json`: one object a line, for log shippers |

use std::{net::SocketAddr, time::Duration};

use crate::{error::Error, protocol::audio::AudioFormat, protocol::auth::Secret};

/// How the socket handshake proves it comes from the call the NCCO was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum SocketAuth {
    /// The NCCO hands Vonage a token bound to the call's uuid (`"type": "custom"`); the
    /// handshake must bring it back.
    #[default]
    Token,
    /// The NCCO asks Vonage to sign the handshake (`"type": "vonage"`); the JWT is verified
    /// with the signature secret.
    Vonage,
    /// Anyone may open a socket (conformance suites, NCCOs written elsewhere).
    None,
}

/// Where a call's audio runs on the core, under the kernel's fair scheduler, beside call
/// setup (webhooks, handshakes), which always keeps the process's priority. A call not
/// answered in time is lost, while a frame delayed is only late, so audio runs below setup;
/// this says how far. (Under [`Config::realtime_priority`] audio runs one real-time level
/// below setup instead.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[non_exhaustive]
pub enum AudioPriority {
    /// `SCHED_IDLE`: audio runs in the time setup leaves, and a setup thread that wakes
    /// takes the core at once. The only choice that keeps setup on time when the audio
    /// fills the core (README, Benchmarks). Beside CPU-bound neighbours on the same host a
    /// few calls get little of the core: each call thread weighs a fifth of a nice-19 one.
    /// The binary's default: a server process of its own.
    #[cfg_attr(
        feature = "cli",
        value(help = "SCHED_IDLE: keeps setup on time when audio fills the core")
    )]
    Idle,
    /// Ten nice steps below setup (`SCHED_OTHER`): for hosts shared with CPU-bound work,
    /// and the library's default: a server embedded in a test rig shares its process with
    /// the rig's threads (a load generator that paces frames keeps a core busy), beside
    /// which audio under `SCHED_IDLE` would get only the time they leave. Setup then shares
    /// the core with the audio by weight, and waits seconds for it once the audio fills the
    /// core.
    #[default]
    #[cfg_attr(
        feature = "cli",
        value(help = "ten nice steps below setup, for hosts shared with CPU-bound work")
    )]
    Nice,
}

/// The greeting the tutorial speaks before connecting the caller.
pub const DEFAULT_GREETING: &str = "Please wait while we connect you to the echo server";

/// The caller id the tutorial's `connect` action presents.
pub const DEFAULT_FROM: &str = "NexmoTest";

/// Vonage's limit on a `talk` action's text, which the greeting is.
pub use crate::protocol::ncco::MAX_TALK_CHARS as MAX_GREETING_CHARS;

/// Settings for a [`Server`](crate::Server).
///
/// Every field has a default (see [`Config::default`]) and a builder setter of the same name:
///
/// ```
/// use vonage_echo::{AudioFormat, Config};
/// let config = Config::default()
///     .http_addr("127.0.0.1:0".parse().unwrap())
///     .ws_addr("127.0.0.1:0".parse().unwrap())
///     .audio(AudioFormat::L16Rate8000);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Where the webhooks listen. Default `0.0.0.0:3000`.
    pub http_addr: SocketAddr,
    /// Where the WebSocket listener accepts calls. Default `0.0.0.0:3001`.
    pub ws_addr: SocketAddr,
    /// The public socket URL handed out in the NCCO (`ws://` or `wss://`, path included).
    /// `None` (the default) derives it from each answer request's `Host` or
    /// `X-Forwarded-Host`/`X-Forwarded-Proto` headers.
    pub ws_url: Option<String>,
    /// The audio format asked for in the NCCO. Default 16 kHz.
    pub audio: AudioFormat,
    /// What the `talk` action says before connecting.
    pub greeting: String,
    /// The `connect` action's `from`.
    pub from: String,
    /// The largest WebSocket message accepted; a larger one closes the call with 1009.
    /// Default 64 KiB: a 20 ms frame is at most 960 bytes.
    pub max_message_bytes: usize,
    /// The most calls held at once; at it the answer webhook answers 503 at once, and the
    /// handshake of one more is answered 503. Default 4,000.
    pub max_calls: usize,
    /// The most WebSocket connections still in their handshake; beyond it new connections are
    /// answered 503, so idle connections cannot pile up threads. Default 1,024.
    pub max_pending_handshakes: usize,
    /// How long a WebSocket handshake may take from accept. Default 5 s.
    pub handshake_timeout: Duration,
    /// How long a call may stay silent (no message at all) before the server pings it.
    /// Vonage may send nothing during silence, so this is generous. Default 60 s.
    pub idle_ping_after: Duration,
    /// How long a pinged, silent call has to answer before it is closed. Default 10 s.
    pub idle_close_after: Duration,
    /// How long writing one message to a caller may block before the call is dropped as a
    /// reader that stopped reading. Default 5 s.
    pub write_timeout: Duration,
    /// The most HTTP connections served at once; more are answered 503. Default 1,024.
    pub max_http_connections: usize,
    /// How long an HTTP request's headers and body may take to arrive. Default 10 s.
    pub http_request_timeout: Duration,
    /// How long a kept HTTP connection may wait for its next request before it is closed.
    /// Default 5 s (as Node.js servers keep theirs).
    pub http_keep_alive: Duration,
    /// The largest HTTP request head (request line and headers); larger gets 431. Default 8 KiB.
    pub max_header_bytes: usize,
    /// The largest HTTP request body; larger gets 413. Default 64 KiB.
    pub max_body_bytes: usize,
    /// Vonage's signature secret: with it, every webhook must carry a valid signed JWT.
    pub signature_secret: Option<Secret>,
    /// How far a signed token's `iat` may be from now. Default 5 minutes.
    pub signature_tolerance: Duration,
    /// How socket handshakes are authorized. Default [`SocketAuth::Token`].
    pub socket_auth: SocketAuth,
    /// The key socket tokens are made with; instances sharing it accept each other's
    /// tokens. `None` (the default) draws a random key per server.
    pub socket_key: Option<Secret>,
    /// Where each call's inbound audio (`<uuid>.wav`) and events (`<uuid>.events.jsonl`)
    /// are written. `None` (the default) records nothing.
    pub record_dir: Option<std::path::PathBuf>,
    /// Run each call's thread under `SCHED_RR` at this real-time priority (1 to 99).
    /// `None` (the default) leaves call threads to the kernel's fair scheduler.
    ///
    /// Why: with a thousand call threads on one core, the fair scheduler lets some frames
    /// wait tens of milliseconds for their thread while the core is a third idle (README,
    /// Benchmarks); a real-time thread runs as soon as its frame arrives. Call setup
    /// (webhooks, handshakes) runs one real-time priority above the calls, so new calls are
    /// answered on time however busy the audio is. No call can keep the core from the
    /// others: a thread whose caller sends faster than real time yields after a few full
    /// reads, and `SCHED_RR`'s time slice bounds anything else. Needs `CAP_SYS_NICE` or an
    /// `RLIMIT_RTPRIO` (`ulimit -r`) of at least the priority plus one:
    /// [`Server::start`](crate::Server::start) refuses to start otherwise.
    pub realtime_priority: Option<u8>,
    /// Where calls' audio runs below call setup under the fair scheduler. Default
    /// [`AudioPriority::Nice`]; the binary's is `idle`.
    pub audio_priority: AudioPriority,
    /// How long after handing out an NCCO its socket is still accepted once the server
    /// drains ([`Server::drain`](crate::Server::drain)): Vonage plays the greeting before
    /// it opens the socket, so a caller answered just before the drain comes seconds
    /// later, and was promised this instance. Default 15 s: the default greeting takes
    /// about 4 s to speak; a longer greeting needs a longer grace.
    pub drain_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http_addr: SocketAddr::from(([0, 0, 0, 0], 3000)),
            ws_addr: SocketAddr::from(([0, 0, 0, 0], 3001)),
            ws_url: None,
            audio: AudioFormat::default(),
            greeting: DEFAULT_GREETING.to_owned(),
            from: DEFAULT_FROM.to_owned(),
            max_message_bytes: crate::protocol::limits::DEFAULT_MAX_MESSAGE_BYTES,
            max_calls: 4000,
            max_pending_handshakes: 1024,
            handshake_timeout: Duration::from_secs(5),
            idle_ping_after: Duration::from_secs(60),
            idle_close_after: Duration::from_secs(10),
            write_timeout: Duration::from_secs(5),
            max_http_connections: 1024,
            http_request_timeout: Duration::from_secs(10),
            http_keep_alive: Duration::from_secs(5),
            max_header_bytes: 8 * 1024,
            max_body_bytes: 64 * 1024,
            signature_secret: None,
            signature_tolerance: Duration::from_secs(300),
            socket_auth: SocketAuth::default(),
            socket_key: None,
            record_dir: None,
            realtime_priority: None,
            audio_priority: AudioPriority::default(),
            drain_grace: Duration::from_secs(15),
        }
    }
}

impl Config {
    setters! {
        /// Sets [`Config::http_addr`].
        http_addr: SocketAddr,
        /// Sets [`Config::ws_addr`].
        ws_addr: SocketAddr,
        /// Sets [`Config::ws_url`].
        ws_url: Option<String>,
        /// Sets [`Config::audio`].
        audio: AudioFormat,
        /// Sets [`Config::greeting`].
        greeting: String,
        /// Sets [`Config::from`].
        from: String,
        /// Sets [`Config::max_message_bytes`].
        max_message_bytes: usize,
        /// Sets [`Config::max_calls`].
        max_calls: usize,
        /// Sets [`Config::max_pending_handshakes`].
        max_pending_handshakes: usize,
        /// Sets [`Config::handshake_timeout`].
        handshake_timeout: Duration,
        /// Sets [`Config::idle_ping_after`].
        idle_ping_after: Duration,
        /// Sets [`Config::idle_close_after`].
        idle_close_after: Duration,
        /// Sets [`Config::write_timeout`].
        write_timeout: Duration,
        /// Sets [`Config::max_http_connections`].
        max_http_connections: usize,
        /// Sets [`Config::http_request_timeout`].
        http_request_timeout: Duration,
        /// Sets [`Config::http_keep_alive`].
        http_keep_alive: Duration,
        /// Sets [`Config::max_header_bytes`].
        max_header_bytes: usize,
        /// Sets [`Config::max_body_bytes`].
        max_body_bytes: usize,
        /// Sets [`Config::signature_secret`].
        signature_secret: Option<Secret>,
        /// Sets [`Config::signature_tolerance`].
        signature_tolerance: Duration,
        /// Sets [`Config::socket_auth`].
        socket_auth: SocketAuth,
        /// Sets [`Config::socket_key`].
        socket_key: Option<Secret>,
        /// Sets [`Config::record_dir`].
        record_dir: Option<std::path::PathBuf>,
        /// Sets [`Config::realtime_priority`].
        realtime_priority: Option<u8>,
        /// Sets [`Config::audio_priority`].
        audio_priority: AudioPriority,
        /// Sets [`Config::drain_grace`].
        drain_grace: Duration,
    }

    /// Checks that the settings can run a server; the error names the setting at fault.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(url) = &self.ws_url {
            validate_ws_url(url)?;
        }
        let greeting_chars = self.greeting.chars().count();
        if greeting_chars == 0 || greeting_chars > MAX_GREETING_CHARS {
            return Err(Error::config(
                "--greeting",
                format!("must be 1 to {MAX_GREETING_CHARS} characters, not {greeting_chars}"),
            ));
        }
        if self.socket_auth == SocketAuth::Vonage && self.signature_secret.is_none() {
            return Err(Error::config(
                "--socket-auth",
                "vonage needs --signature-secret to verify Vonage's handshake tokens",
            ));
        }
        if self.from.trim().is_empty() {
            return Err(Error::config("--from", "must not be empty"));
        }
        let frame = self.audio.frame_bytes();
        if self.max_message_bytes < frame || self.max_message_bytes > 64 * 1024 * 1024 {
            return Err(Error::config(
                "--max-message-bytes",
                format!(
                    "must be between one {frame}-byte audio frame and 64 MiB, not {}",
                    self.max_message_bytes
                ),
            ));
        }
        if let Some(priority @ (0 | 100..)) = self.realtime_priority {
            return Err(Error::config(
                "--realtime-priority",
                format!("must be 1 to 99, not {priority}"),
            ));
        }
        self.validate_limits()
    }

    /// The limits and timeouts: none may be zero, nor a timeout so short that no peer could
    /// meet it.
    fn validate_limits(&self) -> Result<(), Error> {
        let positive = [
            ("--max-calls", self.max_calls),
            ("--max-pending-handshakes", self.max_pending_handshakes),
            ("--max-http-connections", self.max_http_connections),
            ("--max-body-bytes", self.max_body_bytes),
        ];
        for (setting, value) in positive {
            if value == 0 {
                return Err(Error::config(setting, "must be at least 1"));
            }
        }
        if self.max_header_bytes < 512 {
            return Err(Error::config("--max-header-bytes", "must be at least 512"));
        }
        let durations = [
            ("--handshake-timeout", self.handshake_timeout),
            ("--idle-ping-after", self.idle_ping_after),
            ("--idle-close-after", self.idle_close_after),
            ("--write-timeout", self.write_timeout),
            ("--http-request-timeout", self.http_request_timeout),
            ("--signature-tolerance", self.signature_tolerance),
        ];
        for (setting, value) in durations {
            if value < Duration::from_millis(10) {
                return Err(Error::config(setting, "must be at least 10 ms"));
            }
        }
        Ok(())
    }
}

/// `--ws-url`: a ws:// or wss:// URL with a host, as Vonage will dial it.
fn validate_ws_url(url: &str) -> Result<(), Error> {
    let rest = url
        .strip_prefix("wss://")
        .or_else(|| url.strip_prefix("ws://"))
        .ok_or_else(|| {
            Error::config("--ws-url", format!("{url:?} is not a ws:// or wss:// URL"))
        })?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(Error::config("--ws-url", format!("{url:?} has no host")));
    }
    if url.contains(char::is_whitespace) || url.contains('#') {
        return Err(Error::config(
            "--ws-url",
            format!("{url:?} holds white space or a fragment"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn ws_url_must_be_a_websocket_url() {
        for bad in [
            "http://x/socket",
            "ws://",
            "wss:///socket",
            "ws://a b/socket",
        ] {
            let err = Config::default()
                .ws_url(Some(bad.into()))
                .validate()
                .unwrap_err();
            assert!(err.to_string().contains("--ws-url"), "{bad}: {err}");
        }
        Config::default()
            .ws_url(Some("wss://echo.example.com/socket".into()))
            .validate()
            .unwrap();
    }

    #[test]
    fn greeting_is_bounded_by_vonages_talk_limit() {
        let long = "a".repeat(MAX_GREETING_CHARS + 1);
        let err = Config::default().greeting(long).validate().unwrap_err();
        assert!(err.to_string().contains("--greeting"));
    }

    #[test]
    fn realtime_priority_is_one_to_ninety_nine() {
        for bad in [0, 100, 255] {
            let err = Config::default()
                .realtime_priority(Some(bad))
                .validate()
                .unwrap_err();
            assert!(
                err.to_string().contains("--realtime-priority"),
                "{bad}: {err}"
            );
        }
        for good in [1, 99] {
            Config::default()
                .realtime_priority(Some(good))
                .validate()
                .unwrap();
        }
    }

    #[test]
    fn max_message_must_hold_one_frame() {
        let err = Config::default()
            .max_message_bytes(100)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("--max-message-bytes"));
    }
}
