//! What both listeners do with their connections, written once: the accept loop, on a
//! thread of call setup's, which accepts until the server stops and backs off when
//! `accept()` fails (out of file descriptors, most often) so the loop neither spins nor
//! gives up for good, as tiny_http's own loop would; admission, a bounded count and a
//! setup thread for each connection let in; and the linger that ends a connection without
//! a reset.

use std::{
    io::{self, Read, Write},
    net::{Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{atomic::AtomicUsize, Arc},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use crate::{
    admission::Slot,
    error::{is_timeout, Error, Result},
    scheduling::{self, Role},
    shared::Shared,
    threads::{ThreadSet, SETUP_STACK},
};

/// Starts a listener's thread, named `name`, which takes setup's place on the core
/// ([`Role::Setup`]) before it runs `accept` (an accept loop): the threads it starts for
/// its connections then stand where it does.
pub(crate) fn spawn_accept_thread(
    name: &str,
    shared: &Arc<Shared>,
    accept: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>> {
    let s = Arc::clone(shared);
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            if let Err(e) = scheduling::take_role(Role::Setup, &s.config, s.base_nice) {
                log::warn!("setup stays at the process's priority: {e}");
            }
            accept();
        })
        .map_err(|e| Error::io(format!("starting thread {name}"), e))
}

/// Hands every accepted connection to `on_accept` until the server stops.
pub(crate) fn accept_loop(
    listener: &TcpListener,
    shared: &Shared,
    label: &str,
    mut on_accept: impl FnMut(TcpStream, SocketAddr),
) {
    let mut failures = 0u32;
    loop {
        let accepted = listener.accept();
        if shared.stopping() {
            return;
        }
        match accepted {
            Ok((stream, peer)) => {
                failures = 0;
                on_accept(stream, peer);
            }
            Err(e) => {
                back_off(label, &e, failures);
                failures += 1;
            }
        }
    }
}

/// Waits 5 ms after the first failure, doubling to 640 ms; logs the first of a run and
/// every 50th after it.
fn back_off(label: &str, e: &io::Error, failures: u32) {
    let delay = Duration::from_millis(5 << failures.min(7));
    if failures.is_multiple_of(50) {
        log::error!("{label} accept failed: {e}; retrying in {delay:?}");
    }
    thread::sleep(delay);
}

/// Unblocks a listener's `accept` by connecting to it once, so its loop sees that the
/// server stops.
pub(crate) fn wake(addr: SocketAddr) {
    let mut target = addr;
    if target.ip().is_unspecified() {
        target.set_ip(match addr {
            SocketAddr::V4(_) => [127, 0, 0, 1].into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    let _ = TcpStream::connect_timeout(&target, Duration::from_secs(1));
}

/// Why a connection was not let in: given back, so its listener can say why.
pub(crate) enum NotAdmitted {
    /// The count was at its maximum.
    Full(TcpStream),
    /// No thread could be started for it; the connection, when it was kept to answer.
    NoThread(io::Error, Option<TcpStream>),
}

/// What becomes of a connection no thread can be started for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum IfNoThread {
    /// Kept, to be answered: a descriptor more for each connection while it is set up.
    Answer,
    /// Closed unanswered.
    Close,
}

/// Lets a new connection in if fewer than `max` of `count` are taken: takes a slot, and
/// starts `serve` with the connection and the slot on a setup thread named `name`, kept in
/// `threads`. The slot is given back when `serve` drops it.
pub(crate) fn admit(
    stream: TcpStream,
    (count, max): (&Arc<AtomicUsize>, usize),
    threads: &ThreadSet,
    name: String,
    if_no_thread: IfNoThread,
    serve: impl FnOnce(TcpStream, Slot) + Send + 'static,
) -> std::result::Result<(), NotAdmitted> {
    let Some(slot) = Slot::try_take(count, max) else {
        return Err(NotAdmitted::Full(stream));
    };
    let reply_to = match if_no_thread {
        IfNoThread::Answer => stream.try_clone().ok(),
        IfNoThread::Close => None,
    };
    threads
        .spawn_sized(name, SETUP_STACK, move || serve(stream, slot))
        .map_err(|e| NotAdmitted::NoThread(e, reply_to))
}

/// Writes a whole answer to a connection turned away, best effort: the socket's send buffer
/// is empty, so this does not block.
pub(crate) fn turn_away(stream: &TcpStream, answer: &[u8]) {
    let _ = stream.set_nonblocking(true);
    let _ = (&*stream).write_all(answer);
}

/// The most bytes discarded while lingering.
const MAX_LINGER_BYTES: usize = 1024 * 1024;

/// Ends a connection without a reset: stops writing, then reads and discards what the peer
/// still sends until it closes, for at most `grace` (and [`MAX_LINGER_BYTES`]). Closing a
/// socket with unread input resets it, and the reset can destroy the last answer on its way
/// out.
pub(crate) fn linger(socket: &mut TcpStream, grace: Duration) {
    let _ = socket.shutdown(Shutdown::Write);
    let deadline = Instant::now() + grace;
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < MAX_LINGER_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || socket.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match socket.read(&mut sink) {
            Ok(0) => return,
            Ok(n) => drained += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted || is_timeout(&e) => {}
            Err(_) => return,
        }
    }
}
