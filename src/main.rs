//! The `vonage-echo` binary: the echo server by default, and the Vonage side of a call
//! (`call`, `load`) for trying and measuring it.

// What only the binary uses lives beside it, in a folder of its own, not among the
// library's modules.
#[path = "main/logging.rs"]
mod logging;
#[path = "main/origin.rs"]
mod origin;

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use log::LevelFilter;
use signal_hook::{
    consts::{SIGINT, SIGTERM},
    iterator::Signals,
};
use vonage_echo::{
    auth::Secret,
    config::{AudioPriority, SocketAuth},
    sim::{
        self,
        call::{self, CallOptions},
        load::{self, LoadOptions},
        script::Scenario,
        thresholds::Threshold,
        urls::{Origin, Rewrite},
        Arrival, Dial, Expect, Method, Shard, StartAt, Voice,
    },
    AudioFormat, Config, Server,
};

#[derive(Parser)]
#[command(
    name = "vonage-echo",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the echo server (the default when no subcommand is given).
    Serve(ServeArgs),
    /// Play one call as Vonage does and check its echo.
    Call(CallArgs),
    /// Play many concurrent calls and measure the server.
    Load(LoadArgs),
    /// Merge the --json reports of one load's shards into the load's report.
    Merge(MergeArgs),
}

/// Where and how the simulator places calls.
#[derive(Args, Clone)]
struct DialArgs {
    /// The answer webhook, e.g. http://127.0.0.1:3000/webhooks/answer.
    #[arg(long)]
    answer_url: String,
    /// The application's fallback answer URL: asked twice when the answer URL could not
    /// give an NCCO twice (refused, timed out, 429, 503 or 504).
    #[arg(long)]
    fallback_answer_url: Option<String>,
    /// How the answer webhook is requested.
    #[arg(long, value_enum, default_value_t = MethodArg::Get)]
    method: MethodArg,
    /// Where call events are posted [default: /webhooks/events on the answer URL's host].
    #[arg(long)]
    event_url: Option<String>,
    /// Post no call events.
    #[arg(long)]
    no_events: bool,
    /// Open every socket at this scheme, host and port (e.g. ws://127.0.0.1:8000), keeping
    /// the NCCO uri's path and query.
    #[arg(long, value_parser = Origin::parse)]
    ws_url: Option<Origin>,
    /// Reach every URL the NCCO names on a public origin at a local one instead, keeping
    /// its path and query: PUBLIC=LOCAL, e.g. https://abc.ngrok.app=http://127.0.0.1:8000
    /// (sockets and eventUrl alike; repeatable).
    #[arg(long, value_name = "PUBLIC=LOCAL")]
    rewrite: Vec<Rewrite>,
    /// How fast Vonage speaks a talk action, in characters a second (its time is estimated
    /// from its text); 0 speaks it in no time.
    #[arg(long, default_value_t = sim::DEFAULT_TALK_RATE)]
    talk_rate: f64,
    /// Seconds the caller listens to the NCCO's talks and waits, between socket legs,
    /// before it hangs up (a talk with loop 0 plays until then).
    #[arg(long, default_value_t = Seconds(sim::DEFAULT_PATIENCE), value_parser = seconds_arg)]
    patience: Seconds,
    /// PEM certificates to trust for https:// and wss:// (a private or test CA).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Vonage's signature secret, to sign webhooks and handshakes as Vonage does.
    #[arg(long, env = "VONAGE_SIGNATURE_SECRET", hide_env_values = true)]
    signature_secret: Option<String>,
    /// Seconds Vonage waits to connect to the answer webhook (the application's
    /// connection_timeout).
    #[arg(long, default_value_t = Seconds(sim::DEFAULT_CONNECT_TIMEOUT), value_parser = seconds_arg)]
    connect_timeout: Seconds,
    /// Seconds Vonage waits for the whole answer (the application's socket_timeout); a
    /// slower answer is asked again, as a refused connection is.
    #[arg(long, default_value_t = Seconds(sim::DEFAULT_ANSWER_TIMEOUT), value_parser = seconds_arg)]
    answer_timeout: Seconds,
    /// Seconds Vonage waits for the event webhook; a slower one is a warning.
    #[arg(long, default_value_t = Seconds(sim::EVENT_TIMEOUT), value_parser = seconds_arg)]
    event_timeout: Seconds,
    /// Log level.
    #[arg(long, default_value = "warn")]
    log_level: LevelFilter,
}

impl DialArgs {
    fn dial(&self) -> Dial {
        let method = match self.method {
            MethodArg::Get => Method::Get,
            MethodArg::Post => Method::Post,
        };
        Dial::new(self.answer_url.clone())
            .method(method)
            .fallback_answer_url(self.fallback_answer_url.clone())
            .event_url(self.event_url.clone())
            .post_events(!self.no_events)
            .ws_url(self.ws_url.clone())
            .rewrites(self.rewrite.clone())
            .talk_rate(self.talk_rate)
            .patience(self.patience.0)
            .event_timeout(self.event_timeout.0)
            .signature_secret(self.signature_secret.clone().map(Secret::new))
            .ca_file(self.ca_file.clone())
            .connect_timeout(self.connect_timeout.0)
            .answer_timeout(self.answer_timeout.0)
    }
}

/// `--method`'s values.
#[derive(Clone, Copy, ValueEnum)]
enum MethodArg {
    /// Parameters in the query string (Vonage's default).
    #[value(name = "GET")]
    Get,
    /// Parameters as a JSON body (an application's `answer_method: POST`).
    #[value(name = "POST")]
    Post,
}

/// `--expect`'s values.
#[derive(Clone, Copy, ValueEnum)]
enum ExpectArg {
    /// The audio and texts must come back as sent.
    Echo,
    /// Any application: only Vonage's rules are judged.
    Protocol,
}

/// How the caller's frames reach the application.
#[derive(Args, Clone)]
struct ArrivalArgs {
    /// How the caller's frames are spread over time.
    #[arg(long, value_enum, default_value_t = ArrivalKind::Steady)]
    arrival: ArrivalKind,
    /// The seed of --arrival bursty, to play a run's bursts again [default: random, stated
    /// in the report].
    #[arg(long)]
    seed: Option<u64>,
}

/// `--arrival`'s values: an arrival without its seed, which `--seed` gives.
#[derive(Clone, Copy, ValueEnum)]
enum ArrivalKind {
    /// A frame every 20 ms, on the tick.
    Steady,
    /// Bursts of 6 to 8 frames at once, each when its last frame is due, as Vonage sends
    /// them.
    Bursty,
}

impl ArrivalArgs {
    fn arrival(&self) -> Arrival {
        match self.arrival {
            ArrivalKind::Steady => Arrival::Steady,
            ArrivalKind::Bursty => Arrival::bursty(self.seed),
        }
    }
}

/// Whether progress lines go to standard error.
#[derive(Args, Clone)]
struct ProgressArgs {
    /// Print a line of progress on standard error each second, even when it is not a
    /// terminal [default: only on a terminal].
    #[arg(long, conflicts_with = "no_progress")]
    progress: bool,
    /// Print no progress, even on a terminal.
    #[arg(long)]
    no_progress: bool,
}

impl ProgressArgs {
    fn shown(&self) -> bool {
        use std::io::IsTerminal;
        self.progress || (!self.no_progress && std::io::stderr().is_terminal())
    }
}

#[derive(Args)]
struct CallArgs {
    #[command(flatten)]
    dial: DialArgs,
    #[command(flatten)]
    arrival: ArrivalArgs,
    #[command(flatten)]
    progress: ProgressArgs,
    /// Seconds of audio to stream (a tone; with --wav, the file's length).
    #[arg(long, default_value_t = Seconds(call::DEFAULT_DURATION), value_parser = seconds_arg)]
    duration: Seconds,
    /// Stream this mono 16-bit WAV file at the call's rate instead of a tone.
    #[arg(long)]
    wav: Option<PathBuf>,
    /// Keys to press during the call, e.g. 12#.
    #[arg(long, default_value = "")]
    dtmf: String,
    /// Record the call to this WAV file: left what the caller said, right what Vonage
    /// played to the caller.
    #[arg(long)]
    record: Option<PathBuf>,
    /// The caller streams silence instead of a tone.
    #[arg(long)]
    silence: bool,
    /// What the application does with the audio.
    #[arg(long, value_enum, default_value_t = ExpectArg::Echo)]
    expect: ExpectArg,
    /// Vonage's playback buffer, in 20 ms frames.
    #[arg(long, default_value_t = sim::playback::DEFAULT_BUFFER_FRAMES)]
    buffer_frames: usize,
    /// Play this scenario instead of --duration, --wav and --dtmf: a step a line (`say
    /// FILE.wav`, `tone 2s`, `silence 1500ms`, `press 12#`, `hangup`) or an expectation
    /// (`expect speech|clear|notify [within 500ms]`), `#` a comment; tests/scenarios/ has
    /// examples.
    #[arg(long, conflicts_with_all = ["duration", "wav", "dtmf", "silence"])]
    script: Option<PathBuf>,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Also write the report as JUnit XML to this file, a testcase per rule.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Also write the report as one self-contained HTML page to this file: the call's
    /// timeline and its latency histograms.
    #[arg(long)]
    html: Option<PathBuf>,
}

#[derive(Args)]
struct LoadArgs {
    #[command(flatten)]
    dial: DialArgs,
    #[command(flatten)]
    arrival: ArrivalArgs,
    #[command(flatten)]
    progress: ProgressArgs,
    /// Concurrent calls: the whole load's, of which --shard dials a slice.
    #[arg(long, default_value_t = 100)]
    calls: usize,
    /// Seconds each call streams.
    #[arg(long, default_value = "30", value_parser = seconds)]
    duration: Duration,
    /// Calls started per second.
    #[arg(long, default_value_t = load::DEFAULT_RAMP)]
    ramp: f64,
    /// The server's pid, to report its CPU time and peak memory.
    #[arg(long)]
    pid: Option<u32>,
    /// Poll loops that stream the calls, each on a thread of its own [default: one for each
    /// core this process may run on, as taskset leaves them].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// Dial only slice K of N of the load, K from 0 as a Kubernetes Indexed Job's
    /// completion index (calls K, K+N, K+2N, ..., each at its time on the whole load's ramp),
    /// so N generators together play the whole load; merge their --json reports with
    /// `vonage-echo merge`.
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    /// Start the load's ramp at this time (Unix seconds, or RFC 3339 such as
    /// 2026-01-01T12:00:00Z) rather than at once, so shards started apart ramp together.
    #[arg(long, value_name = "TIME")]
    start_at: Option<StartAt>,
    /// Serve the load's live counters in Prometheus' text format at http://ADDR/metrics
    /// while it runs, e.g. 0.0.0.0:9464.
    #[arg(long, value_name = "ADDR", value_parser = socket_addr)]
    metrics_addr: Option<SocketAddr>,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Also write the report as one self-contained HTML page to this file: calls up and
    /// frames late over time, and the latency histograms.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Also write the report as JUnit XML to this file: the calls, each rule the judged
    /// calls broke, each threshold.
    #[arg(long)]
    junit: Option<PathBuf>,
    #[command(flatten)]
    judge: LoadJudgeArgs,
    #[command(flatten)]
    thresholds: ThresholdArgs,
}

/// What each call of a load does, when it is judged as `call` judges one: any of these
/// but the default echo makes the load judge every call by Vonage's rules and time its
/// turns.
#[derive(Args)]
struct LoadJudgeArgs {
    /// What the application does with the audio (protocol: any application, every call
    /// judged by Vonage's rules).
    #[arg(long, value_enum, default_value_t = ExpectArg::Echo)]
    expect: ExpectArg,
    /// Each call plays this scenario (steps and expectations) instead of --duration's tone.
    #[arg(long, conflicts_with_all = ["wav", "dtmf", "silence"])]
    script: Option<PathBuf>,
    /// Each call streams this mono 16-bit WAV file at the call's rate.
    #[arg(long)]
    wav: Option<PathBuf>,
    /// Keys each call presses, spread evenly over it.
    #[arg(long, default_value = "")]
    dtmf: String,
    /// The callers stream silence instead of a tone.
    #[arg(long)]
    silence: bool,
    /// Vonage's playback buffer, in 20 ms frames.
    #[arg(long, default_value_t = sim::playback::DEFAULT_BUFFER_FRAMES)]
    buffer_frames: usize,
}

/// What a load must achieve; with any given, they decide its exit status.
#[derive(Args)]
struct ThresholdArgs {
    /// The most the median reply may take (e.g. 500ms).
    #[arg(long, value_parser = bound)]
    max_reply_p50: Option<Duration>,
    /// The most the 90th percentile reply may take (e.g. 800ms).
    #[arg(long, value_parser = bound)]
    max_reply_p90: Option<Duration>,
    /// The most the 99th percentile reply may take.
    #[arg(long, value_parser = bound)]
    max_reply_p99: Option<Duration>,
    /// The most the 90th percentile time from a barge-in to the application's clear may take.
    #[arg(long, value_parser = bound)]
    max_barge_in_p90: Option<Duration>,
    /// The most the 99th percentile answer webhook may take.
    #[arg(long, value_parser = bound)]
    max_answer_p99: Option<Duration>,
    /// The most the 99th percentile socket handshake may take.
    #[arg(long, value_parser = bound)]
    max_handshake_p99: Option<Duration>,
    /// The most the 99th percentile round trip of an echoed frame may take.
    #[arg(long, value_parser = bound)]
    max_round_trip_p99: Option<Duration>,
    /// The least share of the calls dialed that must pass, in percent (e.g. 99.5).
    #[arg(long)]
    min_pass_rate: Option<f64>,
}

fn bound(s: &str) -> Result<Duration, String> {
    sim::thresholds::parse_bound(s)
}

impl ThresholdArgs {
    fn thresholds(&self) -> Vec<Threshold> {
        use sim::thresholds::Metric;
        let max = |metric, percentile, bound: Option<Duration>| {
            bound.map(|bound| Threshold::Max {
                metric,
                percentile,
                bound,
            })
        };
        [
            max(Metric::Reply, 50.0, self.max_reply_p50),
            max(Metric::Reply, 90.0, self.max_reply_p90),
            max(Metric::Reply, 99.0, self.max_reply_p99),
            max(Metric::BargeInClear, 90.0, self.max_barge_in_p90),
            max(Metric::Answer, 99.0, self.max_answer_p99),
            max(Metric::Handshake, 99.0, self.max_handshake_p99),
            max(Metric::RoundTrip, 99.0, self.max_round_trip_p99),
            self.min_pass_rate.map(Threshold::MinPassRate),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

#[derive(Args)]
struct MergeArgs {
    /// The shards' reports, as `load --json` wrote them.
    #[arg(required = true, value_name = "REPORT.json")]
    reports: Vec<PathBuf>,
    /// Print the merged report as one JSON object (which merges again).
    #[arg(long)]
    json: bool,
    /// Also write the merged report as JUnit XML to this file.
    #[arg(long)]
    junit: Option<PathBuf>,
}

/// The server's settings; each has an environment-variable twin.
#[derive(Args, Clone)]
struct ServeArgs {
    /// Address of the answer and event webhooks (a host name is resolved at start).
    #[arg(long, env = "VONAGE_ECHO_HTTP_ADDR", default_value_t = DEFAULTS.http_addr, value_parser = socket_addr)]
    http_addr: SocketAddr,
    /// Address of the WebSocket listener (a host name is resolved at start).
    #[arg(long, env = "VONAGE_ECHO_WS_ADDR", default_value_t = DEFAULTS.ws_addr, value_parser = socket_addr)]
    ws_addr: SocketAddr,
    /// Public socket URL put in the NCCO (e.g. wss://echo.example.com/socket); derived from
    /// each answer request's Host or X-Forwarded-* headers when absent.
    #[arg(long, env = "VONAGE_ECHO_WS_URL")]
    ws_url: Option<String>,
    /// Audio sample rate asked for in the NCCO.
    #[arg(long, env = "VONAGE_ECHO_RATE", default_value_t = DEFAULTS.audio.rate(), value_parser = rate)]
    rate: u32,
    /// What the NCCO's talk action says before connecting.
    #[arg(long, env = "VONAGE_ECHO_GREETING", default_value_t = DEFAULTS.greeting.clone())]
    greeting: String,
    /// The connect action's caller id.
    #[arg(long, env = "VONAGE_ECHO_FROM", default_value_t = DEFAULTS.from.clone())]
    from: String,
    /// Largest WebSocket message accepted, in bytes; larger closes the call with 1009.
    #[arg(long, env = "VONAGE_ECHO_MAX_MESSAGE_BYTES", default_value_t = DEFAULTS.max_message_bytes)]
    max_message_bytes: usize,
    /// Most calls at once; at it the answer webhook answers 503, and one more handshake gets 503.
    #[arg(long, env = "VONAGE_ECHO_MAX_CALLS", default_value_t = DEFAULTS.max_calls)]
    max_calls: usize,
    /// Seconds a call may be silent before the server pings it.
    #[arg(long, env = "VONAGE_ECHO_IDLE_PING_AFTER", default_value_t = Seconds(DEFAULTS.idle_ping_after), value_parser = seconds_arg)]
    idle_ping_after: Seconds,
    /// Seconds a pinged silent call has to answer before it is closed.
    #[arg(long, env = "VONAGE_ECHO_IDLE_CLOSE_AFTER", default_value_t = Seconds(DEFAULTS.idle_close_after), value_parser = seconds_arg)]
    idle_close_after: Seconds,
    /// Seconds a WebSocket handshake may take.
    #[arg(long, env = "VONAGE_ECHO_HANDSHAKE_TIMEOUT", default_value_t = Seconds(DEFAULTS.handshake_timeout), value_parser = seconds_arg)]
    handshake_timeout: Seconds,
    /// Seconds an HTTP request's headers and body may take to arrive.
    #[arg(long, env = "VONAGE_ECHO_HTTP_REQUEST_TIMEOUT", default_value_t = Seconds(DEFAULTS.http_request_timeout), value_parser = seconds_arg)]
    http_request_timeout: Seconds,
    /// Seconds a kept HTTP connection may wait for its next request (0: one request each).
    #[arg(long, env = "VONAGE_ECHO_HTTP_KEEP_ALIVE", default_value_t = Seconds(DEFAULTS.http_keep_alive), value_parser = seconds_arg)]
    http_keep_alive: Seconds,
    /// Seconds a silent caller may block a write before its call is dropped.
    #[arg(long, env = "VONAGE_ECHO_WRITE_TIMEOUT", default_value_t = Seconds(DEFAULTS.write_timeout), value_parser = seconds_arg)]
    write_timeout: Seconds,
    /// Most HTTP connections at once; more are answered 503.
    #[arg(long, env = "VONAGE_ECHO_MAX_HTTP_CONNECTIONS", default_value_t = DEFAULTS.max_http_connections)]
    max_http_connections: usize,
    /// Most WebSocket handshakes in progress; more connections are answered 503.
    #[arg(
        long,
        env = "VONAGE_ECHO_MAX_PENDING_HANDSHAKES",
        default_value_t = DEFAULTS.max_pending_handshakes
    )]
    max_pending_handshakes: usize,
    /// Largest HTTP request head in bytes; larger is answered 431.
    #[arg(long, env = "VONAGE_ECHO_MAX_HEADER_BYTES", default_value_t = DEFAULTS.max_header_bytes)]
    max_header_bytes: usize,
    /// Largest HTTP request body in bytes; larger is answered 413.
    #[arg(long, env = "VONAGE_ECHO_MAX_BODY_BYTES", default_value_t = DEFAULTS.max_body_bytes)]
    max_body_bytes: usize,
    /// Vonage's signature secret: every webhook must then carry Vonage's signed JWT.
    #[arg(long, env = "VONAGE_SIGNATURE_SECRET", hide_env_values = true)]
    signature_secret: Option<String>,
    /// Seconds a signed token's iat may be from now.
    #[arg(long, env = "VONAGE_ECHO_SIGNATURE_TOLERANCE", default_value_t = Seconds(DEFAULTS.signature_tolerance), value_parser = seconds_arg)]
    signature_tolerance: Seconds,
    /// How socket handshakes are authorized (vonage needs --signature-secret).
    #[arg(long, env = "VONAGE_ECHO_SOCKET_AUTH", value_enum, default_value_t = DEFAULTS.socket_auth)]
    socket_auth: SocketAuth,
    /// Where calls' audio runs below call setup under the fair scheduler.
    // The binary's own default: a server process of its own (the library's is nice,
    // see AudioPriority).
    #[arg(long, env = "VONAGE_ECHO_AUDIO_PRIORITY", value_enum, default_value_t = AudioPriority::Idle)]
    audio_priority: AudioPriority,
    /// Key for socket tokens, shared by instances behind one host [default: random per process].
    #[arg(long, env = "VONAGE_ECHO_SOCKET_KEY", hide_env_values = true)]
    socket_key: Option<String>,
    /// Record each call's inbound audio (<uuid>.wav) and events (<uuid>.events.jsonl) here.
    #[arg(long, env = "VONAGE_ECHO_RECORD_DIR")]
    record_dir: Option<PathBuf>,
    /// Run call threads under SCHED_RR at this priority (1-99), so a frame's thread runs
    /// as soon as the frame arrives; needs CAP_SYS_NICE or `ulimit -r` of at least it.
    #[arg(long, env = "VONAGE_ECHO_REALTIME_PRIORITY", value_parser = clap::value_parser!(u8).range(1..=99))]
    realtime_priority: Option<u8>,
    /// Seconds the calls still up at SIGTERM or SIGINT may go on before they are closed
    /// with 1001; the server takes no new calls meanwhile, and a second signal closes them
    /// at once. Five minutes by default: most phone calls are over by then, so a deploy
    /// cuts few, and a rolling restart of a few instances still fits a maintenance window.
    /// The service manager's stop timeout must be longer (systemd's TimeoutStopSec,
    /// Kubernetes' terminationGracePeriodSeconds).
    #[arg(long, env = "VONAGE_ECHO_DRAIN_TIMEOUT", default_value_t = Seconds(DEFAULT_DRAIN_TIMEOUT), value_parser = seconds_arg)]
    drain_timeout: Seconds,
    /// Seconds after handing out an NCCO that its socket is still accepted during a drain
    /// (Vonage plays the greeting before it connects; a longer greeting needs more).
    #[arg(long, env = "VONAGE_ECHO_DRAIN_GRACE", default_value_t = Seconds(DEFAULTS.drain_grace), value_parser = seconds_arg)]
    drain_grace: Seconds,
    /// Log level: error, warn, info, debug or trace (RUST_LOG's level is taken when this
    /// is absent; its module=level directives apply either way).
    #[arg(long, env = "VONAGE_ECHO_LOG_LEVEL")]
    log_level: Option<LevelFilter>,
    /// How log lines are written to standard error.
    #[arg(long, env = "VONAGE_ECHO_LOG_FORMAT", value_enum, default_value_t = logging::Format::Text)]
    log_format: logging::Format,
}

/// How long a drain waits for the calls still up, unless `--drain-timeout` says otherwise.
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(300);

/// How often a drain logs the calls it still waits for.
const DRAIN_REPORT_EVERY: Duration = Duration::from_secs(5);

/// How often a drain looks whether it is done or signalled again.
const DRAIN_TICK: Duration = Duration::from_millis(50);

/// `host:port`, a host name resolved (its first address), or an address as it is.
fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let mut addrs = s
        .to_socket_addrs()
        .map_err(|e| format!("{s:?} is not host:port, or its host does not resolve ({e})"))?;
    addrs
        .next()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

/// A sample rate Vonage streams: 8000, 16000 or 24000.
fn rate(s: &str) -> Result<u32, String> {
    s.parse()
        .ok()
        .filter(|&hz| AudioFormat::from_rate(hz).is_some())
        .ok_or_else(|| format!("{s:?} is not 8000, 16000 or 24000"))
}

/// The server's defaults, which its flags show and take: one home for each, `Config`.
static DEFAULTS: std::sync::LazyLock<Config> = std::sync::LazyLock::new(Config::default);

/// A flag's number of seconds, shown as given (`5`, `0.25`).
#[derive(Clone, Copy, Debug)]
struct Seconds(Duration);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.as_secs_f64())
    }
}

fn seconds_arg(s: &str) -> Result<Seconds, String> {
    seconds(s).map(Seconds)
}

/// Seconds, fractions allowed: `5`, `0.25`.
fn seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is not a duration"))
}

impl ServeArgs {
    fn config(&self) -> Config {
        Config::default()
            .http_addr(self.http_addr)
            .ws_addr(self.ws_addr)
            .ws_url(self.ws_url.clone())
            // The parser has checked the rate.
            .audio(AudioFormat::from_rate(self.rate).unwrap_or_default())
            .greeting(self.greeting.clone())
            .from(self.from.clone())
            .max_message_bytes(self.max_message_bytes)
            .max_calls(self.max_calls)
            .idle_ping_after(self.idle_ping_after.0)
            .idle_close_after(self.idle_close_after.0)
            .handshake_timeout(self.handshake_timeout.0)
            .http_request_timeout(self.http_request_timeout.0)
            .http_keep_alive(self.http_keep_alive.0)
            .write_timeout(self.write_timeout.0)
            .max_http_connections(self.max_http_connections)
            .max_pending_handshakes(self.max_pending_handshakes)
            .max_header_bytes(self.max_header_bytes)
            .max_body_bytes(self.max_body_bytes)
            .signature_secret(self.signature_secret.clone().map(Secret::new))
            .signature_tolerance(self.signature_tolerance.0)
            .audio_priority(self.audio_priority)
            .socket_auth(self.socket_auth)
            .socket_key(self.socket_key.clone().map(Secret::new))
            .record_dir(self.record_dir.clone())
            .realtime_priority(self.realtime_priority)
            .drain_grace(self.drain_grace.0)
    }

    /// File descriptors the settings can use at once: a socket per call and per pending
    /// handshake, two per HTTP connection (the client's and the hop to tiny_http), and a
    /// margin for listeners, logs and the process itself.
    fn descriptors_needed(&self) -> u64 {
        (self.max_calls + self.max_pending_handshakes + 2 * self.max_http_connections + 64) as u64
    }
}

/// Raises the soft open-file limit to what the settings need (up to the hard limit), or
/// says why it cannot.
fn raise_file_limit(needed: u64) {
    match rlimit::increase_nofile_limit(needed) {
        Ok(got) if got >= needed => {
            log::info!("open-file limit {got} (the settings need {needed})")
        }
        Ok(got) => log::warn!(
            "open-file limit is {got}, below the {needed} the settings need (hard limit reached): \
             lower --max-calls or raise the hard limit (ulimit -Hn)"
        ),
        Err(e) => log::warn!("cannot raise the open-file limit to {needed}: {e}"),
    }
}

/// Logs as text at `level` (the simulator's commands).
fn init_logging(level: Option<LevelFilter>) {
    start_logging(level, logging::Format::Text);
}

/// Logs at `level` in `format`, with `RUST_LOG`'s module directives; a `RUST_LOG` that
/// cannot be honoured ends the process with the reason, before anything is done.
fn start_logging(level: Option<LevelFilter>, format: logging::Format) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) => logging::Filter::parse(&spec, level),
        Err(_) => Ok(logging::Filter::new(level.unwrap_or(LevelFilter::Info))),
    };
    match filter {
        Ok(filter) => logging::init(filter, format),
        Err(reason) => {
            eprintln!("error: {reason}");
            std::process::exit(2);
        }
    }
}

fn main() -> ExitCode {
    let (cli, from_env) = origin::parse::<Cli>(Cli::command());
    let status = match cli.command {
        None => serve(&cli.serve, &from_env),
        Some(Command::Serve(args)) => serve(&args, &from_env),
        Some(Command::Call(args)) => place_call(&args),
        Some(Command::Load(args)) => place_load(&args),
        Some(Command::Merge(args)) => merge_reports(&args),
    };
    // Lines still queued are printed before the process ends.
    log::logger().flush();
    status
}

/// The call the flags ask for, its report files checked writable before dialing, so
/// that a bad path costs no call.
fn call_options(args: &CallArgs) -> Result<CallOptions, String> {
    for (flag, path) in [
        ("--junit", &args.junit),
        ("--record", &args.record),
        ("--html", &args.html),
    ] {
        let Some(path) = path else { continue };
        writable(path).map_err(|e| format!("cannot write {flag} {}: {e}", path.display()))?;
    }
    let script = args
        .script
        .as_deref()
        .map(Scenario::load)
        .transpose()
        .map_err(|e| e.to_string())?;
    let expect = match args.expect {
        ExpectArg::Echo => Expect::Echo,
        ExpectArg::Protocol => Expect::Protocol,
    };
    let voice = if args.silence {
        Voice::Silence
    } else {
        Voice::Tone
    };
    Ok(CallOptions::new(args.dial.answer_url.clone())
        .dial(args.dial.dial())
        .duration(args.duration.0)
        .voice(voice)
        .wav(args.wav.clone())
        .dtmf(args.dtmf.clone())
        .script(script)
        .expect(expect)
        .arrival(args.arrival.arrival())
        .buffer_frames(args.buffer_frames)
        .record(args.record.clone())
        .progress(args.progress.shown()))
}

/// `vonage-echo call`: one call played, its report printed and written where asked.
fn place_call(args: &CallArgs) -> ExitCode {
    init_logging(Some(args.dial.log_level));
    let options = match call_options(args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("call failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = call::run(&options);
    let files = match &report {
        Ok(report) => write_files(&[
            ("--junit", args.junit.as_ref(), &|| report.to_junit()),
            ("--html", args.html.as_ref(), &|| {
                sim::html::call_page(report)
            }),
        ]),
        Err(_) => Ok(()),
    };
    let shown = |r: call::CallReport| {
        if args.json {
            r.to_json()
        } else {
            r.to_string()
        }
    };
    // The report is printed whatever became of the file.
    let status = verdict("call", report.map(|r| (r.passed(), shown(r))));
    match files {
        Ok(()) => status,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// A report file asked for: its flag, its path if given, and what it holds.
type ReportFile<'a> = (&'a str, Option<&'a PathBuf>, &'a dyn Fn() -> String);

/// Writes each report file asked for; the first that cannot be written is named with its
/// flag.
fn write_files(files: &[ReportFile]) -> Result<(), String> {
    for (flag, path, contents) in files {
        if let Some(path) = path {
            std::fs::write(path, contents())
                .map_err(|e| format!("cannot write {flag} {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// Whether `path` can be written: opened for appending, created if missing and then
/// removed again, so nothing is left behind.
fn writable(path: &std::path::Path) -> std::io::Result<()> {
    let existed = path.exists();
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

fn place_load(args: &LoadArgs) -> ExitCode {
    init_logging(Some(args.dial.log_level));
    let options = LoadOptions::new(args.dial.answer_url.clone(), args.calls, args.duration)
        .dial(args.dial.dial())
        .ramp(args.ramp)
        .pid(args.pid)
        .arrival(args.arrival.arrival())
        .progress(args.progress.shown())
        .threads(args.threads.map_or_else(load::default_threads, usize::from))
        .shard(args.shard.unwrap_or_default())
        .start_at(args.start_at)
        .metrics_addr(args.metrics_addr);
    for (flag, path) in [("--html", &args.html), ("--junit", &args.junit)] {
        let Some(path) = path else { continue };
        if let Err(e) = writable(path) {
            eprintln!("load failed: cannot write {flag} {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    let judge = match load_judge(args) {
        Ok(judge) => judge,
        Err(e) => {
            eprintln!("load failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = options
        .judge(judge)
        .thresholds(args.thresholds.thresholds());
    let report = load::run(&options);
    let files = match &report {
        Ok(report) => write_files(&[
            ("--html", args.html.as_ref(), &|| {
                sim::html::load_page(report)
            }),
            ("--junit", args.junit.as_ref(), &|| report.to_junit()),
        ]),
        Err(_) => Ok(()),
    };
    let shown = |r: load::LoadReport| {
        if args.json {
            r.to_json()
        } else {
            r.to_string()
        }
    };
    let status = verdict("load", report.map(|r| (r.passed(), shown(r))));
    match files {
        Ok(()) => status,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// What each call of a load does when it is judged as `call` judges one; `None` for the
/// default echo load.
fn load_judge(args: &LoadArgs) -> Result<Option<CallOptions>, vonage_echo::Error> {
    let j = &args.judge;
    let echo = matches!(j.expect, ExpectArg::Echo);
    if echo && j.script.is_none() && j.wav.is_none() && j.dtmf.is_empty() && !j.silence {
        return Ok(None);
    }
    let script = j.script.as_deref().map(Scenario::load).transpose()?;
    let expect = if echo { Expect::Echo } else { Expect::Protocol };
    let voice = if j.silence {
        Voice::Silence
    } else {
        Voice::Tone
    };
    Ok(Some(
        CallOptions::new(args.dial.answer_url.clone())
            .dial(args.dial.dial())
            .duration(args.duration)
            .voice(voice)
            .wav(j.wav.clone())
            .dtmf(j.dtmf.clone())
            .script(script)
            .expect(expect)
            .arrival(args.arrival.arrival())
            .buffer_frames(j.buffer_frames),
    ))
}

/// Merges the shards' reports, writes the JUnit file if asked, and prints the load's report.
fn merge_reports(args: &MergeArgs) -> ExitCode {
    let reports = args
        .reports
        .iter()
        .map(|path| sim::merge::read(path).map(|r| (path.display().to_string(), r)))
        .collect::<Result<Vec<_>, _>>();
    let merged = reports.and_then(|reports| sim::merge::merge(&reports));
    let junit = match (&merged, &args.junit) {
        (Ok(report), Some(path)) => std::fs::write(path, report.to_junit())
            .map_err(|e| format!("cannot write --junit {}: {e}", path.display())),
        _ => Ok(()),
    };
    let shown = |r: load::LoadReport| {
        if args.json {
            r.to_json()
        } else {
            r.to_string()
        }
    };
    let status = verdict("merge", merged.map(|r| (r.passed(), shown(r))));
    match junit {
        Ok(()) => status,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a simulator's report, and exits non-zero unless it passed.
fn verdict(what: &str, report: Result<(bool, String), vonage_echo::Error>) -> ExitCode {
    match report {
        Ok((passed, shown)) => {
            println!("{shown}");
            if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("{what} failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &ServeArgs, from_env: &origin::FromEnvironment) -> ExitCode {
    start_logging(args.log_level, args.log_format);
    let mut signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(signals) => signals,
        Err(e) => {
            log::error!("cannot listen for signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    raise_file_limit(args.descriptors_needed());
    let config = args.config();
    let server = match Server::start(config) {
        Ok(server) => server,
        Err(e) => {
            let note = match &e {
                vonage_echo::Error::Config { setting, .. } => from_env.note(setting),
                vonage_echo::Error::Bind { listener, .. } => {
                    from_env.note(vonage_echo::Error::listener_flag(listener))
                }
                _ => String::new(),
            };
            log::error!("{e}{note}");
            return ExitCode::FAILURE;
        }
    };
    match &server.config().ws_url {
        Some(url) => log::info!("socket URL handed out: {url}?uuid=<call>"),
        None => log::info!(
            "socket URL handed out: derived per request: ws://<Host>:{}/socket, or ws(s)://<X-Forwarded-Host>/socket behind a proxy",
            server.ws_addr().port()
        ),
    }
    if let Some(signal) = signals.forever().next() {
        log::info!(
            "signal {signal}: draining for at most {}s (--drain-timeout); a second signal stops at once",
            args.drain_timeout
        );
    }
    match drain(&server, &mut signals, args.drain_timeout.0) {
        DrainEnd::Drained => log::info!("drained: no call left"),
        DrainEnd::TimedOut => log::warn!(
            "--drain-timeout of {}s passed: closing {} calls with 1001",
            args.drain_timeout,
            server.active_calls()
        ),
        DrainEnd::Signalled(signal) => log::warn!(
            "signal {signal} again: closing {} calls with 1001 at once",
            server.active_calls()
        ),
    }
    server.shutdown();
    ExitCode::SUCCESS
}

/// How a drain ended.
enum DrainEnd {
    /// No call left, and no promised socket still to come.
    Drained,
    /// `--drain-timeout` passed first.
    TimedOut,
    /// Another signal came first.
    Signalled(i32),
}

/// Drains `server` until nothing is left, `timeout` passes or another signal comes, and
/// says every few seconds how many calls are left.
fn drain(server: &Server, signals: &mut Signals, timeout: Duration) -> DrainEnd {
    server.drain();
    let started = Instant::now();
    let deadline = started + timeout;
    let mut next_report = started + DRAIN_REPORT_EVERY;
    loop {
        if server.is_drained() {
            return DrainEnd::Drained;
        }
        if let Some(signal) = signals.pending().next() {
            return DrainEnd::Signalled(signal);
        }
        let now = Instant::now();
        if now >= deadline {
            return DrainEnd::TimedOut;
        }
        if now >= next_report {
            log::info!(
                "draining: {} calls left, {} promised sockets still to come; {:.0}s to --drain-timeout",
                server.active_calls(),
                server.promised_sockets(),
                (deadline - now).as_secs_f64()
            );
            next_report += DRAIN_REPORT_EVERY;
        }
        std::thread::sleep(DRAIN_TICK.min(deadline - now));
    }
}
