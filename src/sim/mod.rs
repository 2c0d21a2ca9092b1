//! The Vonage side of a call, so a call runs end to end on one machine. [`call`] plays one
//! call as Vonage plays it, for any application, and judges it by Vonage's rules (or, with
//! [`Expect::Echo`], checks that the audio comes back as sent); [`load`] plays many at
//! once against an echo and measures the server. Tests and test rigs call these directly;
//! the binary's `call` and `load` subcommands are thin wrappers.
//!
//! This page is also the manual of `vonage-echo call` and `vonage-echo load`; the README
//! gives the short version, and `--help` lists every flag.
//!
//! # What a call judges
//!
//! `vonage-echo call --answer-url URL` plays Vonage's side of a call for any application:
//! a voice bot, an IVR, a recorder. It asks the answer webhook, runs the NCCO as Vonage
//! runs it, opens the socket, streams the caller's audio from a monotonic clock, plays what
//! the application sends through a model of Vonage's playback buffer, answers `clear` and
//! `notify`, posts every event, and says which of Vonage's rules the application broke,
//! each a fault (the call would fail or sound wrong on Vonage) or a warning ([`findings`]).
//! On the socket it judges as Vonage's WebSockets guide describes the protocol (frame
//! sizes, `clear`, `notify`), its play-audio tutorial the buffer (size, pacing), and its
//! NCCO reference the endpoint's fields:
//!
//! - **Frame sizes.** Each binary message must be one 20 ms frame (320, 640 or 960 bytes).
//!   Another size ends the socket as Vonage ends it (the connection dropped); the fault
//!   names both sizes.
//! - **The playback buffer** ([`playback`]). The application's audio is queued and played
//!   one frame per 20 ms; it holds 3,072 frames (`--buffer-frames`), and frames beyond it
//!   are dropped, a fault. A gap of up to 100 ms between two played frames is an underrun,
//!   a warning; a gap at or right after a tick the emulator itself played 5 ms late is not
//!   counted, and the report states its lateness.
//! - **`clear`** empties the buffer at once and is answered with `websocket:cleared`;
//!   **`notify`** is answered with its payload once the audio queued before it has played.
//!   Other text is counted, warned of and ignored.
//! - **The NCCO**: a misspelled `contentType` is ignored (the call streams 16 kHz, and a
//!   warning names the key); `headers` over 512 bytes and an `authorization` over 8,191
//!   characters are faults; a `ws://` uri and a `from` that is not E.164 digits are
//!   warnings; an NCCO Vonage cannot run posts its `reason` and ends the call, a fault.
//! - **The socket's end**: the caller hangs up with 1000 after its last frame. The
//!   application may close the socket (then `disconnected` is posted and the NCCO goes on);
//!   closing it before the caller has said anything is a warning; a dropped connection is a
//!   fault.
//!
//! With `--expect echo` (the default) the audio and texts must also come back
//! byte-identical and in order; `--expect protocol` judges Vonage's rules only. The caller
//! streams a tone (`--silence`, or `--wav FILE` at the call's rate) for `--duration`, and
//! presses `--dtmf`'s keys spread over the call. `--arrival bursty` sends its frames as
//! Vonage does, in bursts of 6 to 8 every 120 to 160 ms ([`arrival`]; `--seed N` replays a
//! run's bursts). `--record FILE.wav` writes the call in two channels: left the caller,
//! right what Vonage played to the caller. A call whose NCCO connects more than one socket
//! (after a synchronous `disconnected`, say) goes on with the caller's audio where it left
//! off; the recording and a scenario's expectations hold its first socket.
//!
//! An application behind a tunnel writes its public host into its NCCO: `--ws-url` and
//! `--rewrite` point those URLs at a local address ([`urls`]). `--ca-file cert.pem` trusts
//! a private CA or a self-signed certificate, as curl's `--cacert` does.
//!
//! # The call's course, as Vonage runs it
//!
//! | what the emulator does | Vonage's document |
//! |---|---|
//! | Asks the answer webhook (GET, or POST with `--method POST`) with `to`, `from`, `uuid`, `conversation_uuid`, `region_url`, `endpoint_type`. Each request must connect within 1 s (`--connect-timeout`, the application's `connection_timeout`) and answer within 5 s (`--answer-timeout`, `socket_timeout`). | application API specification (`application.v2.yml`), webhook reference |
//! | On a refused or reset connection, a timeout, or 429, 503 or 504, asks the answer URL a second time, then `--fallback-answer-url` twice (its requests add `reason` and `original_request` with the first URL and `type: "answer"`; as query parameters for GET, `original_request` as JSON), then ends the call. Each failed attempt before one that gave an NCCO is a warning; no usable NCCO is a fault. Any other status, or an answer that is not `application/json`, fails the call at once. | troubleshooting guide ("Timeouts"), webhook reference ("Fallback URL") |
//! | Posts events with every common field (`from`, `to`, `uuid`, `conversation_uuid`, `status`, `direction`, `timestamp` in milliseconds, `headers`); `answered` adds `start_time`, `rate`, `network`; `completed` adds `start_time`, `end_time`, `duration`, `rate`, `price` (strings; the emulator bills nothing, so `0.00000000`), `network`, `disconnected_by`; failures add `detail`. | webhook reference ("Event webhook") |
//! | The caller's leg posts `started`, `ringing`, `answered`, `completed` to the application's event URL (`--event-url`, else `/webhooks/events` beside the answer URL). | webhook reference |
//! | A socket leg is a leg of its own: its own `uuid`, `to` the NCCO's uri, `direction: outbound`, the NCCO's `headers`. It posts `started` when the handshake begins, `answered` when it is made, `disconnected` when the application closed it, `completed` when it ends, and `unanswered` (`detail: timeout`) or `failed` (`detail: unavailable`) when it never opened. These go to `connect`'s `eventUrl` with its `eventMethod` (default POST), else to the application's event URL. Vonage does not document which statuses a socket leg posts besides `disconnected` and the failures: the emulator posts the ones a phone leg posts, less `ringing`, since nothing rings; the leg's `from` is `connect`'s `from`, else the number called; its `disconnected_by` is `user` when the application closed the socket, `platform` otherwise; `completed` leaves out `start_time` for a leg that never answered. | NCCO reference (`connect`), WebSockets guide |
//! | An event webhook that is refused, answers other than 2xx, or takes longer than 10 s (`--event-timeout`) is a warning naming the URL, the status and the start of its answer; it never ends the call. | webhook reference |
//! | Runs the actions in order: a `talk` takes its speaking time before the next action (estimated from its text at 15 characters a second, about 160 words a minute; `--talk-rate` changes it, `0` speaks in no time; the estimate is in the report); `loop: 0` talks until the caller hangs up: between socket legs the caller listens to talks and waits for `--patience` (60 s), then hangs up. `wait` waits its `timeout`. `connect` opens the socket within its `timeout` (default 60 s) and ends the leg at its `limit` (default and most 7,200 s). | NCCO reference |
//! | When a socket leg ends other than by the caller hanging up, the actions after `connect` run; with `eventType: "synchronous"` the answer to `disconnected`, when it is an NCCO, replaces what was left. The call ends when the NCCO runs out (`disconnected_by: platform`) or the caller hangs up (`user`); then `completed`. | NCCO reference, WebSockets guide |
//! | `--arrival bursty` sends the caller's frames in bursts, as Vonage's recorder sample saved them from a real call. | `python-websocket-recorder`'s `timestamps.json` |
//!
//! Not played: `stream`, `input`, `record`, `conversation`, `notify`, `transfer` and
//! `connect` to anything but a websocket are reached, reported with when, and passed over;
//! `bargeIn`, `level` and `premium` change nothing. `load` plays the course up to the
//! socket and then streams for `--duration`; it does not play `limit` or the actions after
//! `connect`.
//!
//! # Scenarios
//!
//! `--script FILE` plays a scenario ([`script`]) instead of `--duration`, `--wav` and
//! `--dtmf`: one step or expectation a line; `#` starts a comment.
//!
//! | line | means |
//! |---|---|
//! | `say FILE.wav` | the caller streams a WAV file (relative to the scenario's folder) |
//! | `tone 2s` / `silence 1500ms` | the caller streams a 440 Hz tone, or silence, this long |
//! | `press 12#` | the caller presses keys, 300 ms each |
//! | `hangup` | the caller hangs up (else after the last step) |
//! | `expect speech [within D]` | the caller hears the application within D of the end of the step before |
//! | `expect clear [within D]` | a `clear` arrives within D of the start of the step before (a barge-in) |
//! | `expect notify [within D]` | a `notify` arrives within D of the start of the step before |
//!
//! Without `within`, any time before the call ends will do; speech that began before the
//! step ended does not count (that is talking over the caller); an expectation before
//! every step is measured from the call's start. `tests/scenarios/` keeps
//! `echo.scenario` (the README's, which passes against the echo server),
//! `greeting.scenario` (the application greets within 500 ms and asks to be told when it
//! has played) and `barge-in.scenario` (a key interrupts the greeting: `clear` within
//! 300 ms, then `notify`), which the tests run against a small voice bot.
//!
//! # The report
//!
//! A summary by default, showing the call's course (the README shows one); `--json` prints
//! one object: `passed`, `faults` and `warnings` (sentences), the frame counts, setup times
//! and round trips, `answer_attempts` (`url`, `fallback`, `status` or `error`, `ms`),
//! `events` (`status`, `leg`, `url`, `method`, `http_status` or `error`) and
//! `ncco_actions` (`action`, `start_ms`, `end_ms`, `note`). `--junit FILE` writes a
//! testcase for each rule (failed with its faults, skipped when setup never reached it).
//! The exit status is non-zero on any fault. In a test rig the same runs as a library call
//! ([`call::run`]).
//!
//! Every call also times the application ([`turns`] says exactly how): each *turn* of the
//! caller (a scenario's `say`, `tone` or `press`, a stretch of speech in `--wav` or of the
//! tone, a key of `--dtmf`) to the application's **reply** as the caller hears it, each
//! **barge-in** (a turn begun while the caller hears the application) to the
//! application's `clear` and to the first tick the caller no longer hears it, and **first
//! audio** from the socket's opening. A scenario's expectations keep their meaning (judged
//! on the 20 ms ticks the caller hears) and show the measured time beside the bound.
//! Against a bot that greets, clears on a key and answers after 640 ms:
//!
//! ```text
//!   first audio: 182.8 ms after the socket opened
//!   turns: 2, 2 answered; reply p50 401.5 ms, max 640.8 ms
//!     1. press 5, ended at 0.60 s: reply after 401.5 ms
//!     2. tone 800ms, ended at 3.18 s: reply after 640.8 ms
//!   barge-ins: 1
//!     turn 1: press 5 at 0.60 s: clear after 0.3 ms, stopped after 0.3 ms, talked over the caller 0.0 ms
//!   line 1: expect speech within 500ms: 200 ms (bound 500 ms) met
//!   line 4: expect clear within 200ms: 1 ms (bound 200 ms) met
//!   line 7: expect speech within 800ms: 640 ms (bound 800 ms) met
//! ```
//!
//! `--json` adds `first_audio_ms`, `turns` (each `what`, `ended_ms`, `reply_ms`),
//! `barge_ins` (each `turn`, `what`, `at_ms`, `clear_ms`, `stopped_ms`, `talked_over_ms`)
//! and `expectations` (each `expectation`, `within_ms`, `measured_ms`, `met`); JUnit adds a
//! passing testcase per turn and per barge-in whose `time` is the reply or the clear, which
//! CI systems chart.
//!
//! `--html FILE` writes the report as one page that needs no network ([`html`]): the
//! verdict and headline figures (answer, handshake, first audio, turns answered, median
//! reply, barge-ins, frames played, underruns) over the faults and warnings; the call's
//! timeline, one lane each for the NCCO's actions, the caller's speech and keys, the
//! application's audio as the caller heard it, clears, notifies and barge-ins, every mark
//! with its times on hover; histograms of reply, barge-in and round-trip latency; a table
//! of the turns and one of the events with how each webhook took it.
//!
//! A call longer than 3 s prints a line of progress on standard error each second (frames
//! sent and played, late ticks, turns, the latest reply) when standard error is a terminal;
//! `--progress` forces it, `--no-progress` silences it.
//!
//! # Many calls: `load`
//!
//! `vonage-echo load` plays many calls at a steady ramp ([`load`]). Against an echo server
//! it checks every echo and measures round trips; with `--expect protocol`, `--script`,
//! `--wav`, `--dtmf` or `--silence` every call's socket is played as `call` plays it (the
//! playback buffer, every rule, the scenario's expectations, turn timing), all of them from
//! one poll loop ([`judged`]). The report counts, per rule broken, the calls that broke it
//! with one example, and gives reply and barge-in percentiles over every turn beside the
//! answer and handshake ones. Thresholds decide the exit status when given
//! (`--max-reply-p50`, `-p90`, `-p99`, `--max-barge-in-p90`, `--max-answer-p99`,
//! `--max-handshake-p99`, `--max-round-trip-p99`, `--min-pass-rate`; [`thresholds`]), each
//! a testcase of `--junit FILE`; `--json` carries every latency whole as a histogram
//! (`histograms`: `unit`, `relative_precision`, `count`, `min`, `max`, `sum`, `buckets` as
//! `[lowest µs, count]`; [`histogram`]) and each second's calls up and frames late
//! (`over_time`). Against a voice bot that clears on a key and answers in 300 to 800 ms:
//!
//! ```sh
//! vonage-echo load --answer-url http://127.0.0.1:8000/webhooks/answer --calls 50 --ramp 50 \
//!   --expect protocol --script bot.scenario --max-reply-p90 800ms --min-pass-rate 99.5 --junit load.xml
//! ```
//!
//! ```text
//! calls: 50 attempted, 50 connected, 0 failed
//! judged as call judges: 50 of 50 calls passed (100.00 % of calls dialed)
//! turns: 150, 100 answered; barge-ins: 50
//! reply ms:                     p50 398.34, p90 494.59, p99 494.59, p99.9 496.52, max 496.52
//! barge-in to clear ms:         p50 30.27, p90 30.66, p99 31.52, p99.9 31.52, max 31.52
//! threshold reply p90 at most 800 ms: 494.6 ms met
//! threshold at least 99.5 % of calls pass: 100.00 % met
//! ```
//!
//! `load --html FILE` writes a page of calls up and frames late each second over the
//! histograms of answer, handshake, round trip, reply and barge-in, and the rules broken. A
//! load prints a line of progress each second on a terminal (calls up, done and failed,
//! frames late, the p99 handshake and round trip); `--progress` and `--no-progress` as for
//! `call`.
//!
//! # Load past one machine
//!
//! `load` streams its calls on one `mio` poll loop per core it may run on (`--threads N`
//! to choose; under `taskset -c 1`, one). Past one machine, cut the load into shards
//! ([`shard`]): `--shard K/N` dials slice K of N (K from 0, as a Kubernetes Indexed Job
//! numbers its pods): calls K, K+N, K+2N, ... of the whole `--calls`, each at its time on
//! the whole load's ramp, so N shards together are the load. `--start-at` (Unix seconds or
//! RFC 3339) starts every shard's ramp at one moment ([`start`]: the hosts' clocks must
//! agree; a shard more than a second late refuses to run). `--metrics-addr ADDR` serves the
//! live counters at `http://ADDR/metrics` in Prometheus' text format (calls planned,
//! dialed, connected, failed, streaming; frames sent, echoed, lost, corrupted, late; named
//! `vonage_echo_load_*` and labelled `shard="K/N"`), so one Prometheus sees the whole load
//! as it runs. `vonage-echo merge A.json B.json ...` makes the shards' `--json` reports
//! into the whole load's ([`merge`]). The README gives a plain-shell recipe for a few hosts
//! and a Kubernetes Indexed Job; the Job's reports are its pods' standard output:
//!
//! ```sh
//! for k in 0 1 2 3; do
//!     kubectl logs -l job-name=echo-load,batch.kubernetes.io/job-completion-index=$k > shard-$k.json
//! done
//! vonage-echo merge shard-*.json --junit load.xml
//! ```
//!
//! # How it is built
//!
//! A call's course, as Vonage runs it, is blocking and made of named parts: [`answer`]
//! asks the answer webhook (again, then its fallback, when it must), `ncco` reads the NCCO
//! into actions, `course` runs them in order, [`events`] posts each leg's events beside the
//! call, [`urls`] points an NCCO's public URLs at a local application, [`dial`] holds what
//! Vonage knows of the application (its URLs, timeouts and client), and `setup` makes the
//! blocking steps of setup, the socket's handshake among them. One call's socket then runs
//! in `session`, tick by tick; a
//! load's calls stream in `engine`, a `mio` poll loop where one thread paces and checks
//! many calls. A load may be one [`shard`] of a larger one, begun at a [`start`] time that
//! its other shards share, and its `live` counters served to Prometheus by `exporter`; its
//! report carries every latency as a [`histogram`], so that [`merge`] makes the reports of
//! a load's shards into the load's.
pub mod answer;
pub mod arrival;
pub mod call;
mod caller;
mod course;
pub mod dial;
mod engine;
pub mod events;
mod exporter;
pub mod findings;
pub mod histogram;
pub mod html;
pub mod judged;
mod live;
pub mod load;
mod load_junit;
pub mod merge;
mod ncco;
pub mod playback;
mod progress;
mod report;
pub mod script;
mod session;
mod setup;
pub mod shard;
pub mod start;
mod stats;
mod tape;
pub mod thresholds;
mod tls;
pub mod turns;
pub mod urls;

pub use arrival::Arrival;
pub use caller::{read_wav, wav_spec, Voice};
pub use dial::EVENT_TIMEOUT;
pub use dial::{AnswerMethod, Dial, Method, DEFAULT_PATIENCE, DEFAULT_TALK_RATE};
pub use dial::{DEFAULT_ANSWER_TIMEOUT, DEFAULT_CONNECT_TIMEOUT};
pub use session::Expect;
pub use shard::Shard;
pub use start::StartAt;
