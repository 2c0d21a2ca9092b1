//! # vonage-echo
//!
//! The application side of the Vonage Voice API's "connect a call to a WebSocket" feature,
//! as a small synchronous server: no async runtime, one OS thread per call.
//!
//! A call reaches a Vonage number; Vonage asks the **answer webhook** what to do; the
//! server answers with an [NCCO](ncco::Ncco) that greets the caller and connects the call
//! to its **WebSocket**; Vonage streams the caller's audio there, 20 ms a frame, and every
//! frame goes straight back, so the caller hears themselves. The **event webhook** logs the
//! call's life.
//!
//! ```no_run
//! use vonage_echo::{Config, Server};
//!
//! let server = Server::start(
//!     Config::default()
//!         .http_addr("127.0.0.1:0".parse().unwrap())
//!         .ws_addr("127.0.0.1:0".parse().unwrap()),
//! )
//! .expect("server starts");
//! println!("answer URL: http://{}/webhooks/answer", server.http_addr());
//! // ... play calls at it ...
//! server.drain(); // takes no new calls; the live ones go on
//! while !server.is_drained() {
//!     std::thread::sleep(std::time::Duration::from_millis(100)); // or until your deadline
//! }
//! server.shutdown(); // closes calls still live with 1001 and joins every thread
//! ```
//!
//! Where things live: [`webhooks`] answers HTTP (behind a guarding front door that bounds
//! time, size and connections), [`ncco`] builds the answer, [`events`] reads call events,
//! the socket listener admits calls and [`call`] echoes each on its own thread;
//! [`messages`] reads the socket's text events; `sim` (the `sim` feature, on by default)
//! plays Vonage's side for tests.
//!
//! Call setup comes first on the core: accepting, webhooks and handshakes keep the
//! process's priority, and each call's thread runs below them once its first frame is
//! echoed ([`config::AudioPriority`]), so new calls are answered on time however busy the
//! audio is. Call threads are kept between calls.
//!
//! # Features
//!
//! Both on by default:
//!
//! | feature | brings | crates it adds |
//! |---|---|---|
//! | (none) | the server library: `Server`, `Config`, the webhooks, the socket, NCCO and event types | tiny_http, tungstenite (no TLS), serde, serde_json, log, httparse, hmac, sha2, base64, uuid, hound, thread-priority, form_urlencoded |
//! | `sim` | `vonage_echo::sim`: Vonage's side (`call`, `load`), over `https://` and `wss://` too | ureq, rustls (with ring, which needs a C compiler), webpki-roots, mio, time |
//! | `cli` | the `vonage-echo` binary (needs `sim`) | clap, signal-hook, rlimit |
//!
//! A rig that embeds only the server depends on it with `default-features = false` (56
//! crates against 98). `Server::start` binds both listeners (port 0 picks free ports); many
//! servers can run in one process; dropping one shuts it down.
#![forbid(unsafe_code)]
// The public items are the library's contract: each says what it promises, or the build
// fails (CI also builds the docs, where a link that does not resolve fails).
#![deny(missing_docs)]

mod admission;
mod call_threads;
// First, so its macro is in scope in every module below, the emulator's among them.
#[macro_use]
mod setters;

pub mod config;
mod drain;
mod error;
mod http;
mod listen;
mod metrics;
mod protocol;
mod record;
mod scheduling;
mod server;
mod shared;
#[cfg(feature = "sim")]
pub mod sim;
#[cfg(test)]
mod soup;
mod text;
mod threads;
mod ws;

pub use http::webhooks;
pub use protocol::{audio, auth, call_id, events, messages, ncco};
pub use ws::{call, socket};

pub use audio::AudioFormat;
pub use call_id::CallId;
pub use config::Config;
pub use error::{Error, Result};
pub use ncco::Ncco;
pub use server::Server;

/// The README's Rust examples, compiled (and run where they can be) by `cargo test`, so an
/// example that drifts from the code fails.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}
