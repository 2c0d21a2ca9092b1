//! [`Server`]: binds both listeners, owns every thread they start, and stops them all.

use std::{
    net::{SocketAddr, TcpListener},
    sync::{atomic::Ordering, Arc},
    thread::{self, JoinHandle},
};

use crate::{
    config::{Config, SocketAuth},
    error::{Error, Result},
    http::Front,
    listen, record, scheduling,
    shared::Shared,
    ws::socket,
};

/// A running echo server: the webhooks and the WebSocket listener, each on its own port.
///
/// Dropping it shuts it down, as [`Server::shutdown`] does.
pub struct Server {
    http_addr: SocketAddr,
    ws_addr: SocketAddr,
    shared: Arc<Shared>,
    /// The webhooks, from their listener to tiny_http; `None` once stopped.
    front: Option<Front>,
    /// The socket listener's accept loop.
    ws_accept: Option<JoinHandle<()>>,
}

impl Server {
    /// Validates `config`, binds both listeners (port 0 picks a free port) and starts serving.
    pub fn start(config: Config) -> Result<Server> {
        config.validate()?;
        if let Some(priority) = config.realtime_priority {
            check_realtime(priority)?;
        }
        if let Some(dir) = &config.record_dir {
            record::prepare_dir(dir)?;
        }
        let (http_listener, http_addr) = bind("webhooks", config.http_addr)?;
        let (ws_listener, ws_addr) = bind("socket", config.ws_addr)?;
        warn_about_openness(&config);
        let shared = Arc::new(Shared::new(config, ws_addr.port()));

        let front = Front::start(http_listener, http_addr, &shared)?;
        let s = Arc::clone(&shared);
        let ws_accept = listen::spawn_accept_thread("ws-accept", &shared, move || {
            socket::accept_loop(ws_listener, &s)
        });
        let ws_accept = match ws_accept {
            Ok(thread) => thread,
            Err(e) => {
                shared.stopping.store(true, Ordering::Release);
                front.stop();
                return Err(e);
            }
        };

        log::info!("webhooks listening on http://{http_addr}");
        log::info!("WebSocket listening on ws://{ws_addr}/socket");
        Ok(Server {
            http_addr,
            ws_addr,
            shared,
            front: Some(front),
            ws_accept: Some(ws_accept),
        })
    }

    /// The webhooks' address (with the real port when port 0 was asked for).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The WebSocket listener's address.
    pub fn ws_addr(&self) -> SocketAddr {
        self.ws_addr
    }

    /// Calls connected now.
    pub fn active_calls(&self) -> usize {
        self.shared.active_calls()
    }

    /// The settings the server runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Begins a drain, for leaving service without cutting a call: from now on `GET /ready`
    /// answers 503 (a balancer stops sending new calls), `/health` says `"draining": true`,
    /// the answer webhook answers 503 with a JSON reason (Vonage then tries the
    /// application's fallback answer URL, a balancer another instance), and a handshake is
    /// refused with 503 unless this server handed out its call's NCCO within
    /// [`Config::drain_grace`]. Calls already up go on. A drain cannot be undone; end it
    /// with [`Server::shutdown`] once [`Server::is_drained`] says so, or once the calls left
    /// have had the time you give them. Calling it again does nothing.
    pub fn drain(&self) {
        if self.shared.drain.begin() {
            log::info!(
                "draining: new calls are refused; {} calls up",
                self.active_calls()
            );
        }
    }

    /// Whether [`Server::drain`] has been called.
    pub fn is_draining(&self) -> bool {
        self.shared.draining()
    }

    /// Sockets this server promised in an NCCO that may still come (see
    /// [`Config::drain_grace`]).
    pub fn promised_sockets(&self) -> usize {
        self.shared.drain.promised()
    }

    /// Whether a drain has left nothing to wait for: no call up, and no promised socket
    /// still to come.
    pub fn is_drained(&self) -> bool {
        // Promises first: a promised handshake takes its call's place before it gives up
        // its promise, so read in this order the two cannot both miss it.
        self.is_draining() && self.promised_sockets() == 0 && self.active_calls() == 0
    }

    /// Stops accepting, closes every call with 1001 (going away), and returns once every
    /// thread the server started has ended. tiny_http's own threads (the server's webhooks
    /// run on a tiny_http of its own) cannot be joined: tiny_http keeps no handle to them.
    /// By the time this returns its listener and every connection to it are closed, so they
    /// have nothing left to serve and end on their own within tiny_http's idle timeout of
    /// 5 s; they hold no port, file or state of the server's meanwhile.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(front) = self.front.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::Release);
        listen::wake(self.ws_addr);
        front.stop();
        if let Some(accept) = self.ws_accept.take() {
            let _ = accept.join();
        }
        self.shared.handshakes.join_all();
        self.shared.calls.join_all();
        log::info!("server on {} stopped", self.http_addr);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds `listener` at `addr`, and reads the address it got (the real port for port 0).
fn bind(listener: &'static str, addr: SocketAddr) -> Result<(TcpListener, SocketAddr)> {
    let bound = TcpListener::bind(addr).map_err(|source| Error::Bind {
        listener,
        addr,
        source,
    })?;
    let local = bound
        .local_addr()
        .map_err(|e| Error::io("reading a listener's address", e))?;
    Ok((bound, local))
}

/// Refuses a real-time priority the system will not grant, at start rather than on each
/// call: a scratch thread asks for it, so no thread of the server keeps it.
fn check_realtime(priority: u8) -> Result<()> {
    // Setup runs one above the calls (scheduling::take_role).
    let highest = scheduling::setup_priority(priority);
    let granted = thread::Builder::new()
        .name("realtime-check".into())
        .spawn(move || scheduling::make_realtime(highest))
        .map_err(|e| Error::io("starting the real-time check thread", e))?
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the check panicked")));
    granted.map_err(|e| {
        Error::config(
            "--realtime-priority",
            format!(
                "the system refuses SCHED_RR priority {highest} ({e}); it needs \
                 CAP_SYS_NICE or `ulimit -r` of at least {highest} (call setup runs one \
                 above the calls)"
            ),
        )
    })?;
    log::info!("call threads run under SCHED_RR, priority {priority}; setup at {highest}");
    Ok(())
}

/// Says at start what is not verified, once.
fn warn_about_openness(config: &Config) {
    if config.signature_secret.is_none() {
        log::warn!("webhooks are not verified: no --signature-secret (VONAGE_SIGNATURE_SECRET)");
    }
    if let Some(dir) = &config.record_dir {
        log::info!("recording calls to {}", dir.display());
    }
    if config.socket_auth == SocketAuth::Token && config.signature_secret.is_none() {
        log::warn!(
            "socket tokens without --signature-secret: anyone who can reach the answer webhook \
             can ask it for a call's token"
        );
    }
    if config.socket_auth == SocketAuth::None {
        log::warn!("--socket-auth none: anyone who finds the socket can stream into it");
    }
}
