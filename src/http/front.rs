//! [`Front`]: one server's webhooks, from its public listener to the tiny_http behind it.
//! Each server has its own; nothing of it is shared with another server of the process.

use std::{
    net::{SocketAddr, TcpListener},
    sync::Arc,
    thread::JoinHandle,
};

use crate::{
    error::Result,
    http::{gate::Gate, host::Host, upstream::Upstream},
    listen,
    shared::Shared,
};

/// One server's webhooks: the front door's accept thread and connections
/// ([`Gate`]), its connections to tiny_http, and the tiny_http host with its restarts and
/// its thread ([`Host`]).
pub(crate) struct Front {
    addr: SocketAddr,
    gate: Arc<Gate>,
    host: Host,
    accept: JoinHandle<()>,
}

impl Front {
    /// Starts tiny_http on a private socket, then accepts on `listener` (bound at `addr`)
    /// for `shared`'s server.
    pub(crate) fn start(
        listener: TcpListener,
        addr: SocketAddr,
        shared: &Arc<Shared>,
    ) -> Result<Front> {
        let host = Host::start(shared)?;
        let timeout = shared.config.http_request_timeout;
        let upstream = Upstream::new(host.socket(), timeout, host.restarts());
        let gate = Arc::new(Gate::new(Arc::clone(shared), upstream));
        let g = Arc::clone(&gate);
        let accept =
            listen::spawn_accept_thread("http-accept", shared, move || g.accept_loop(listener))?;
        Ok(Front {
            addr,
            gate,
            host,
            accept,
        })
    }

    /// Stops, once the server is stopping: ends the accept loop, waits for every
    /// connection's thread, closes the connections to tiny_http and stops the host. Every
    /// thread of the front has ended when it returns; tiny_http's own threads are left to
    /// end on their own (see [`Host`]).
    pub(crate) fn stop(mut self) {
        listen::wake(self.addr);
        let _ = self.accept.join();
        self.gate.close();
        self.host.stop();
    }
}
