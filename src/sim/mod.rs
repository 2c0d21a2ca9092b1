//! The Vonage side of a call, so a call runs end to end on one machine. [`call`] plays one
//! call as Vonage plays it, for any application, and judges it by Vonage's rules (or, with
//! [`Expect::Echo`], checks that the audio comes back as sent); [`load`] plays many at
//! once against an echo and measures the server. Tests and test rigs call these directly;
//! the binary's `call` and `load` subcommands are thin wrappers.
//!
//! A call's course, as Vonage runs it, is blocking and made of named parts: [`answer`]
//! asks the answer webhook (again, then its fallback, when it must), `ncco` reads the NCCO
//! into actions, `course` runs them in order, [`events`] posts each leg's events beside the
//! call, [`urls`] points an NCCO's public URLs at a local application, and [`dial`] makes
//! the blocking steps of setup, the socket's handshake among them. One call's socket then runs in `session`, tick by tick; a
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
pub mod shard;
pub mod start;
mod stats;
mod tape;
pub mod thresholds;
mod tls;
pub mod turns;
pub mod urls;

pub use answer::{DEFAULT_ANSWER_TIMEOUT, DEFAULT_CONNECT_TIMEOUT};
pub use arrival::Arrival;
pub use caller::{read_wav, wav_spec, Voice};
pub use dial::{AnswerMethod, Dial, Method, DEFAULT_PATIENCE, DEFAULT_TALK_RATE};
pub use events::EVENT_TIMEOUT;
pub use session::Expect;
pub use shard::Shard;
pub use start::StartAt;

pub(crate) use answer::attempt_findings;
pub(crate) use dial::{answer_call, open_leg, tcp, Dialed, Failed, SetupTimes};
pub(crate) use stats::{ms, percentile};
