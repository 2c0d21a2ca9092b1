//! The tiny_http host behind one server's front door: tiny_http on the front's private
//! Unix socket, and the thread that takes its requests, hands each to the webhooks
//! ([`super::webhooks`]) and writes their reply back through tiny_http.
//!
//! tiny_http 0.12 gives up for good after one `accept()` error; should it, the host starts
//! it again on the same socket and counts the restart ([`Restarts`]), so the gate's kept
//! connections to the instance that gave up are replaced.
//!
//! What stopping promises about tiny_http's own threads: it keeps no handle to them, so
//! they cannot be joined. Dropping it closes its listener and ends its accept thread; once
//! the gate has closed its connections too, its pool's threads have nothing left to serve
//! and end on their own within tiny_http's idle timeout (5 s). They hold nothing of the
//! server's: no state, no port, no file (the private directory is removed at once).

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc, Arc,
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use tiny_http::Header;

use crate::{
    error::{Error, Result},
    http::{
        hop::SOCKET_NAME,
        private,
        webhooks::{self, Incoming, Reply},
    },
    scheduling::{self, Role},
    shared::Shared,
    threads::{self, TICK},
};

/// How many times tiny_http has been started again on the private socket. A connection
/// opened before a restart reaches an instance whose requests nobody reads any more:
/// tiny_http's thread for it still takes requests, into a queue that went with the
/// instance. Such a connection is not used again, and a request waiting on a kept one is
/// sent again to the new instance ([`super::upstream`]).
pub(crate) struct Restarts(AtomicU64);

impl Restarts {
    /// No restart yet.
    pub(crate) const fn new() -> Restarts {
        Restarts(AtomicU64::new(0))
    }

    /// Counts a restart: called once the old instance has answered all it will, before
    /// the new one listens, so that a connection counted after it reaches the new one.
    pub(crate) fn note(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }

    /// The restarts so far: the instance a connection made now reaches.
    pub(crate) fn count(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// One server's tiny_http and the thread that serves its requests.
pub(crate) struct Host {
    /// The private directory holding the socket, removed when the host stops.
    dir: PathBuf,
    restarts: Arc<Restarts>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Host {
    /// Binds tiny_http in a private directory and serves its requests for `shared`'s
    /// server. The thread that binds it takes setup's place on the core first
    /// ([`scheduling::take_role`]), so tiny_http's threads, which inherit it, stand there too.
    pub(crate) fn start(shared: &Arc<Shared>) -> Result<Host> {
        let restarts = Arc::new(Restarts::new());
        let stop = Arc::new(AtomicBool::new(false));
        let (bound_tx, bound_rx) = mpsc::channel();
        let (s, r, st) = (Arc::clone(shared), Arc::clone(&restarts), Arc::clone(&stop));
        let thread = thread::Builder::new()
            .name("webhooks".into())
            .spawn(move || {
                if let Err(e) = scheduling::take_role(Role::Setup, &s.config, s.base_nice) {
                    log::warn!("webhooks stay at the process's priority: {e}");
                }
                match private::bind_in_private_dir(bind) {
                    Ok((dir, tiny)) => {
                        let socket = dir.join(SOCKET_NAME);
                        let _ = bound_tx.send(Ok(dir));
                        serve(tiny, &socket, &s, &r, &st);
                    }
                    Err(e) => {
                        let _ = bound_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| Error::io("starting the webhooks thread", e))?;
        let bound = bound_rx.recv().unwrap_or_else(|_| {
            Err(Error::io(
                "starting the webhooks",
                std::io::Error::other("the webhooks thread ended"),
            ))
        });
        let dir = match bound {
            Ok(dir) => dir,
            Err(e) => {
                let _ = thread.join();
                return Err(e);
            }
        };
        Ok(Host {
            dir,
            restarts,
            stop,
            thread: Some(thread),
        })
    }

    /// Where tiny_http listens.
    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.join(SOCKET_NAME)
    }

    /// The restarts of tiny_http, for the gate's connections to it.
    pub(crate) fn restarts(&self) -> Arc<Restarts> {
        Arc::clone(&self.restarts)
    }

    /// Stops serving once the request in hand is answered, drops tiny_http (see the
    /// module's doc for what that promises of its threads) and removes the private
    /// directory.
    pub(crate) fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.stop.store(true, Ordering::Release);
        let _ = thread.join();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves requests until `stop` is set, looking up every tick to see it. Should
/// tiny_http's accept thread give up, it is started again on the same socket.
fn serve(
    mut tiny: tiny_http::Server,
    socket: &Path,
    shared: &Shared,
    restarts: &Restarts,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Acquire) {
        match tiny.recv_timeout(TICK) {
            Ok(Some(request)) => {
                // A bug met by one request must not stop the webhooks; tiny_http answers
                // a request dropped unanswered with 500.
                if let Err(what) = threads::guarded(|| answer(request, shared)) {
                    log::error!("webhooks: a request panicked: {what}; serving on");
                }
            }
            Ok(None) => {}
            Err(e) => {
                log::error!("webhooks stopped accepting ({e}); starting them again");
                drop(tiny);
                // Every request the old instance read before it failed is answered.
                restarts.note();
                tiny = rebind(socket);
            }
        }
    }
}

/// Binds tiny_http on `socket` again, trying every 100 ms until it can.
fn rebind(socket: &Path) -> tiny_http::Server {
    loop {
        match bind(socket) {
            Ok(tiny) => return tiny,
            Err(e) => {
                log::error!("{e}");
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Binds tiny_http to the private socket.
fn bind(path: &Path) -> Result<tiny_http::Server> {
    let _ = std::fs::remove_file(path);
    tiny_http::Server::http_unix(path).map_err(|e| {
        Error::io(
            format!("starting the webhooks on {}", path.display()),
            std::io::Error::other(e.to_string()),
        )
    })
}

/// Reads one request whole, has the webhooks reply to it, and writes the reply.
fn answer(mut request: tiny_http::Request, shared: &Shared) {
    let mut body = Vec::new();
    // The gate has read the whole body already and bounded it; this only copies it.
    let read = request.as_reader().read_to_end(&mut body);
    let url = request.url().to_owned();
    let incoming = Incoming::new(request.method(), &url, request.headers(), body);
    let reply = match read {
        Ok(_) => webhooks::reply(&incoming, shared),
        Err(e) => Reply::error(400, format!("cannot read body: {e}")),
    };
    webhooks::account(&incoming, &reply, shared);
    let peer = incoming.peer().to_owned();
    let has_body = !reply.body.is_empty();
    let mut response = tiny_http::Response::from_string(reply.body).with_status_code(reply.status);
    if has_body {
        response.add_header(header("Content-Type", reply.content_type));
    }
    if let Some(allow) = reply.allow {
        response.add_header(header("Allow", allow));
    }
    if let Err(e) = request.respond(response) {
        log::debug!("{peer}: answer not delivered: {e}");
    }
}

fn header(name: &str, value: &str) -> Header {
    // Both are ASCII constants of ours.
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a valid header")
}
