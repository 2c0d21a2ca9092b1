//! The accept loop both listeners share: on a thread of call setup's, accept until the
//! server stops, and back off when `accept()` fails (out of file descriptors, most often)
//! so the loop neither spins nor gives up for good, as tiny_http's own loop would.

use std::{
    io,
    net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream},
    sync::Arc,
    thread::{self, JoinHandle},
    time::Duration,
};

use crate::{
    error::{Error, Result},
    scheduling::{self, Role},
    shared::Shared,
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
