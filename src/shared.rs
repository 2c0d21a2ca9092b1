//! What the two paths of a call share: the server's state that every thread of it holds,
//! and the socket's path.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Instant,
};

use crate::{
    call_threads::CallThreads, config::Config, drain::Drain, metrics::Metrics,
    protocol::auth::Secret, scheduling, threads::ThreadSet,
};

/// The path the WebSocket listener upgrades, which the NCCO's socket URL names.
pub const SOCKET_PATH: &str = "/socket";

/// What every thread of one server shares.
pub(crate) struct Shared {
    pub(crate) config: Config,
    /// The key this server's socket tokens are made with.
    pub(crate) socket_key: Secret,
    pub(crate) metrics: Metrics,
    pub(crate) started: Instant,
    pub(crate) stopping: AtomicBool,
    /// Whether the server drains, and the sockets its NCCOs promised.
    pub(crate) drain: Drain,
    /// The WebSocket listener's real port (the configured one may be 0).
    pub(crate) ws_port: u16,
    /// The nice value the server started with: setup's, which audio runs below.
    pub(crate) base_nice: i32,
    pub(crate) active_calls: Arc<AtomicUsize>,
    /// The uuids of calls whose socket is open.
    pub(crate) live_ids: Arc<Mutex<HashSet<String>>>,
    pub(crate) pending_handshakes: Arc<AtomicUsize>,
    /// Each connection's thread while its handshake lasts.
    pub(crate) handshakes: ThreadSet,
    /// The threads that run calls, kept between calls.
    pub(crate) calls: CallThreads,
}

impl Shared {
    /// A server's state as it starts, with `config`, its socket listener on `ws_port`; it
    /// takes the calling thread's nice value as setup's.
    pub(crate) fn new(config: Config, ws_port: u16) -> Shared {
        Shared {
            base_nice: scheduling::own_nice(),
            socket_key: config.socket_key.clone().unwrap_or_else(Secret::random),
            metrics: Metrics::default(),
            drain: Drain::new(config.drain_grace, config.max_calls),
            config,
            started: Instant::now(),
            stopping: AtomicBool::new(false),
            ws_port,
            active_calls: Arc::default(),
            live_ids: Arc::default(),
            pending_handshakes: Arc::default(),
            handshakes: ThreadSet::default(),
            calls: CallThreads::default(),
        }
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    pub(crate) fn draining(&self) -> bool {
        self.drain.draining()
    }

    pub(crate) fn active_calls(&self) -> usize {
        self.active_calls.load(Ordering::Acquire)
    }
}
