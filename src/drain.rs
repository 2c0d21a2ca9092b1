//! The drain: how an instance leaves service without cutting a call. Once it begins, the
//! instance says it is not ready, refuses new calls (so the caller's platform or the
//! balancer goes to another instance) and lets the calls it holds run to their end.
//!
//! One kind of call is new only in appearance: one whose NCCO this instance handed out
//! just before. Vonage plays the greeting first and opens the socket after it, so the
//! caller was promised this socket seconds before it comes. Each NCCO handed out is
//! therefore remembered for [`Config::drain_grace`](crate::Config::drain_grace), and its
//! handshake is accepted during a drain while the promise holds. Only call setup reads
//! this state; a frame's path never does.

use std::{
    collections::VecDeque,
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use crate::protocol::call_id::CallId;

/// An NCCO handed out: its call's socket is expected until `until`.
struct Promise {
    id: CallId,
    until: Instant,
}

/// Whether the server drains, and the sockets it has promised.
pub(crate) struct Drain {
    /// When the drain began; unset while the server serves.
    began: OnceLock<Instant>,
    /// Promises in the order they were made, so the oldest expire from the front.
    promises: Mutex<VecDeque<Promise>>,
    /// How long a promise holds.
    grace: Duration,
    /// The most promises kept: at it the oldest is forgotten, so a flood of answer requests
    /// cannot grow memory without bound. Its socket is then refused during a drain only.
    max_promises: usize,
}

impl Drain {
    /// A server that serves; promises hold for `grace`, at most `max_promises` of them.
    pub(crate) fn new(grace: Duration, max_promises: usize) -> Drain {
        Drain {
            began: OnceLock::new(),
            promises: Mutex::default(),
            grace,
            max_promises: max_promises.max(1),
        }
    }

    /// Begins the drain; `false` when it had begun already.
    pub(crate) fn begin(&self) -> bool {
        self.began.set(Instant::now()).is_ok()
    }

    pub(crate) fn draining(&self) -> bool {
        self.began.get().is_some()
    }

    /// Remembers that the NCCO for `id` was handed out now.
    pub(crate) fn promise(&self, id: &CallId) {
        let now = Instant::now();
        let mut promises = self.lock();
        expire(&mut promises, now);
        if promises.len() >= self.max_promises {
            promises.pop_front();
        }
        promises.push_back(Promise {
            id: id.clone(),
            until: now + self.grace,
        });
    }

    /// Whether a handshake for `id` may become a call: always while serving; while
    /// draining, only when this instance promised it the socket and the promise holds.
    pub(crate) fn admits(&self, id: Option<&CallId>) -> bool {
        if !self.draining() {
            return true;
        }
        let Some(id) = id else { return false };
        let now = Instant::now();
        let mut promises = self.lock();
        expire(&mut promises, now);
        promises.iter().any(|p| p.id == *id)
    }

    /// Forgets the promise to `id`, whose call is now up (and counted among the calls).
    pub(crate) fn redeem(&self, id: &CallId) {
        let mut promises = self.lock();
        if let Some(at) = promises.iter().position(|p| p.id == *id) {
            promises.remove(at);
        }
    }

    /// Promised sockets that may still come.
    pub(crate) fn promised(&self) -> usize {
        let mut promises = self.lock();
        expire(&mut promises, Instant::now());
        promises.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Promise>> {
        self.promises.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Drops the promises that no longer hold, all at the front.
fn expire(promises: &mut VecDeque<Promise>, now: Instant) {
    while promises.front().is_some_and(|p| p.until <= now) {
        promises.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> CallId {
        CallId::parse(s).unwrap()
    }

    #[test]
    fn every_handshake_is_admitted_while_serving() {
        let drain = Drain::new(Duration::from_secs(10), 10);
        assert!(drain.admits(None));
        assert!(drain.admits(Some(&id("never-promised"))));
    }

    #[test]
    fn a_drain_admits_only_promised_sockets_and_only_once() {
        let drain = Drain::new(Duration::from_secs(10), 10);
        drain.promise(&id("a"));
        assert!(drain.begin());
        assert!(!drain.begin(), "a drain begins once");
        assert!(drain.admits(Some(&id("a"))));
        assert!(!drain.admits(Some(&id("b"))));
        assert!(!drain.admits(None));
        drain.redeem(&id("a"));
        assert!(!drain.admits(Some(&id("a"))));
        assert_eq!(drain.promised(), 0);
    }

    #[test]
    fn a_promise_expires_after_the_grace() {
        let drain = Drain::new(Duration::from_millis(30), 10);
        drain.promise(&id("a"));
        drain.begin();
        assert_eq!(drain.promised(), 1);
        std::thread::sleep(Duration::from_millis(40));
        assert!(!drain.admits(Some(&id("a"))));
        assert_eq!(drain.promised(), 0);
    }

    #[test]
    fn promises_are_bounded_and_the_oldest_goes_first() {
        let drain = Drain::new(Duration::from_secs(10), 2);
        for name in ["a", "b", "c"] {
            drain.promise(&id(name));
        }
        drain.begin();
        assert_eq!(drain.promised(), 2);
        assert!(!drain.admits(Some(&id("a"))));
        assert!(drain.admits(Some(&id("c"))));
    }
}
