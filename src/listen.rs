//! The accept loop both listeners share: accept until the server stops, and back off when
//! `accept()` fails (out of file descriptors, most often) so the loop neither spins nor
//! gives up for good, as tiny_http's own loop would.

use std::{
    io,
    net::{SocketAddr, TcpListener, TcpStream},
    thread,
    time::Duration,
};

use crate::shared::Shared;

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
