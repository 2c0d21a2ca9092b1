//! The gate's side of the private socket to tiny_http: connections kept open between
//! requests, so that a webhook costs no connect and tiny_http no new thread.
//!
//! New connections are opened one at a time, each once the one before has carried its
//! first exchange. tiny_http 0.12's thread pool counts a thread as idle until it has woken
//! and taken a connection: a second connection that comes meanwhile is queued with no
//! thread to take it, and waits until a connection a thread serves is closed. Kept
//! connections are closed seldom, so the request on it would go unanswered for the whole
//! timeout (10 s), at any load. A connection that has carried an answer has a thread of its
//! own. Each front has its own tiny_http, so the pool of its connections is the one place
//! that keeps that order. `tests/front_door.rs` opens 32 connections at once on four new
//! servers: before the order was kept, 3 to 10 of them were answered 503.

use std::{
    io::{self, Read, Write},
    os::unix::net::UnixStream,
    path::PathBuf,
    sync::{Arc, Condvar, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use crate::{error::is_timeout, http::host::Restarts, threads::TICK};

/// The most connections open to tiny_http at once: one request is handled at a time, so
/// more would only add tiny_http threads.
const MAX_OPEN: usize = 16;

/// Waits on `condvar` with `guard` until woken or `deadline`; `None` once it has passed.
fn wait_before<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    deadline: Instant,
) -> Option<MutexGuard<'a, T>> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return None;
    }
    let (guard, _) = condvar
        .wait_timeout(guard, left)
        .unwrap_or_else(|e| e.into_inner());
    Some(guard)
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what)
}

/// The largest answer the webhooks give (an NCCO is a few hundred bytes).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// A connection to tiny_http, and the instance it reached, as a count of restarts.
struct Conn {
    stream: UnixStream,
    instance: u64,
}

/// Open connections to tiny_http, and the ones free for the next request.
#[derive(Default)]
struct Pool {
    free: Vec<Conn>,
    open: usize,
    /// A new connection is carrying its first exchange: the next new one waits for it,
    /// here, where a connection freed meanwhile reaches it first (see the module's doc).
    opening: bool,
}

/// What [`Upstream::take`] found for a request.
enum Taken<'a> {
    /// A kept connection.
    Kept(Conn),
    /// The pool's opening, to open a new connection (already counted as open).
    New(Opening<'a>),
}

/// The private socket's clients.
pub(crate) struct Upstream {
    path: PathBuf,
    timeout: Duration,
    restarts: Arc<Restarts>,
    pool: Mutex<Pool>,
    /// Notified when a connection is freed or forgotten, or an opening ends.
    freed: Condvar,
    /// Notified when an opening ends.
    opened: Condvar,
}

impl Upstream {
    /// Clients of the tiny_http listening at `path`, each request answered within `timeout`;
    /// `restarts` counts the times tiny_http has been started again there.
    pub(crate) fn new(path: PathBuf, timeout: Duration, restarts: Arc<Restarts>) -> Upstream {
        Upstream {
            path,
            timeout,
            restarts,
            pool: Mutex::default(),
            freed: Condvar::new(),
            opened: Condvar::new(),
        }
    }

    /// Hands `request` (head and body) to tiny_http and returns its whole answer. A kept
    /// connection that tiny_http has dropped meanwhile, or whose instance has been replaced,
    /// is replaced once, before any of its answer has arrived, so no request is handled
    /// twice.
    pub(crate) fn forward(&self, request: &[u8], head_only: bool) -> io::Result<Vec<u8>> {
        let deadline = Instant::now() + self.timeout;
        // Dropped last, once the connection opened here is back in the pool (or forgotten),
        // so that a request waiting for it finds it there.
        let _opening;
        let (conn, result) = match self.take(deadline)? {
            Taken::Kept(mut kept) => match self.exchange(&mut kept, request, head_only, deadline) {
                Err(Exchange::NoAnswer(_)) => {
                    drop(kept);
                    _opening = self
                        .begin_opening(deadline)
                        .inspect_err(|_| self.forget())?;
                    self.open_and_exchange(request, head_only, deadline)?
                }
                result => (kept, result),
            },
            Taken::New(new) => {
                _opening = new;
                self.open_and_exchange(request, head_only, deadline)?
            }
        };
        match result {
            Ok((answer, reusable)) => {
                if reusable {
                    self.give_back(conn);
                } else {
                    self.forget();
                }
                Ok(answer)
            }
            Err(Exchange::NoAnswer(e) | Exchange::Broken(e)) => {
                self.forget();
                Err(e)
            }
        }
    }

    /// A free connection, or the pool's opening when a new one may be opened (it is
    /// counted as open from now on); otherwise waits for one to be freed or for the one
    /// being opened to have answered. At most [`MAX_OPEN`] are open.
    fn take(&self, deadline: Instant) -> io::Result<Taken<'_>> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            while let Some(conn) = pool.free.pop() {
                if conn.instance == self.restarts.count() {
                    return Ok(Taken::Kept(conn));
                }
                pool.open = pool.open.saturating_sub(1);
            }
            if pool.open < MAX_OPEN && !pool.opening {
                pool.open += 1;
                pool.opening = true;
                return Ok(Taken::New(Opening(self)));
            }
            pool = wait_before(&self.freed, pool, deadline)
                .ok_or_else(|| timed_out("no connection to the webhooks came free"))?;
        }
    }

    /// The pool's opening, for a request whose kept connection went unanswered and which
    /// opens a new one in its place: waits, until `deadline`, for the one being opened to
    /// have answered.
    fn begin_opening(&self, deadline: Instant) -> io::Result<Opening<'_>> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        while pool.opening {
            pool = wait_before(&self.opened, pool, deadline).ok_or_else(|| {
                timed_out("no connection to the webhooks could be opened in time")
            })?;
        }
        pool.opening = true;
        Ok(Opening(self))
    }

    /// Opens a connection (already counted as open, the pool's opening held) and carries
    /// its first exchange.
    fn open_and_exchange(
        &self,
        request: &[u8],
        head_only: bool,
        deadline: Instant,
    ) -> io::Result<(Conn, Exchanged)> {
        let mut conn = self.connect()?;
        let result = self.exchange(&mut conn, request, head_only, deadline);
        Ok((conn, result))
    }

    /// Connects (the connection is already counted as open; forgotten again on failure),
    /// tagged with the instance it reached.
    fn connect(&self) -> io::Result<Conn> {
        let connected = self.connect_tagged().and_then(|conn| {
            conn.stream.set_read_timeout(Some(self.tick()))?;
            conn.stream.set_write_timeout(Some(self.timeout))?;
            Ok(conn)
        });
        if connected.is_err() {
            self.forget();
        }
        connected
    }

    /// Connects, counting restarts before and after: a connection made while a restart
    /// was counted may have reached either instance, so it is made again.
    fn connect_tagged(&self) -> io::Result<Conn> {
        loop {
            let instance = self.restarts.count();
            let stream = UnixStream::connect(&self.path)?;
            if self.restarts.count() == instance {
                return Ok(Conn { stream, instance });
            }
        }
    }

    /// Sends the request and reads one whole answer by `deadline`; says whether the
    /// connection can carry another.
    fn exchange(
        &self,
        conn: &mut Conn,
        request: &[u8],
        head_only: bool,
        deadline: Instant,
    ) -> Exchanged {
        let replaced = || self.restarts.count() != conn.instance;
        let wait = Wait {
            deadline,
            tick: self.tick(),
            replaced: &replaced,
        };
        exchange(&mut conn.stream, request, head_only, wait)
    }

    /// How long one read waits before the exchange looks up: a restart is seen while
    /// waiting.
    fn tick(&self) -> Duration {
        TICK.min(self.timeout)
    }

    /// Keeps a connection that has carried its answer for the next request, unless its
    /// instance has been replaced meanwhile.
    fn give_back(&self, conn: Conn) {
        if conn.instance != self.restarts.count() {
            return self.forget();
        }
        self.pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .free
            .push(conn);
        self.freed.notify_one();
    }

    /// Counts a connection as closed.
    fn forget(&self) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.open = pool.open.saturating_sub(1);
        drop(pool);
        self.freed.notify_one();
    }

    /// Closes the free connections, so that tiny_http's threads serving them end.
    pub(crate) fn close_all(&self) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.open -= pool.free.len().min(pool.open);
        pool.free.clear();
    }
}

/// The pool's opening, which one request at a time holds to open a new connection: ended
/// when dropped, also on unwind, so the pool can open again.
struct Opening<'a>(&'a Upstream);

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        self.0
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .opening = false;
        self.0.freed.notify_all();
        self.0.opened.notify_all();
    }
}

/// One exchange's outcome: the whole answer and whether the connection can carry another.
type Exchanged = Result<(Vec<u8>, bool), Exchange>;

/// How an exchange waits for its answer.
struct Wait<'a> {
    /// When the answer is given up for.
    deadline: Instant,
    /// The connection's read timeout: how long a read waits before the exchange looks up.
    tick: Duration,
    /// Whether the instance the connection reached has been replaced.
    replaced: &'a dyn Fn() -> bool,
}

/// How one exchange failed.
enum Exchange {
    /// Nothing of an answer came: the request may be sent again on another connection.
    NoAnswer(io::Error),
    /// The answer broke off or was not HTTP.
    Broken(io::Error),
}

/// Sends the request and reads one whole answer by `wait.deadline`; says whether the
/// connection can carry another. Once the instance has been replaced, and a last read has
/// brought nothing, the request is refused as never read: the instance answered what it
/// read before it stopped, so an answer it gave is already here.
fn exchange(conn: &mut UnixStream, request: &[u8], head_only: bool, wait: Wait) -> Exchanged {
    conn.write_all(request).map_err(Exchange::NoAnswer)?;
    let mut answer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let mut framing = None;
    let (mut last_read, mut shortened) = (false, false);
    loop {
        if framing.is_none() {
            framing = answer_framing(&answer, head_only).map_err(Exchange::Broken)?;
        }
        if let Some((end, reusable)) = framing {
            if answer.len() >= end {
                // Anything past the answer would be out of step with the next request.
                let mut reusable = reusable && answer.len() == end;
                if reusable && shortened {
                    // The next exchange waits a tick at a time again.
                    reusable = conn.set_read_timeout(Some(wait.tick)).is_ok();
                }
                return Ok((answer, reusable));
            }
        }
        if answer.len() > MAX_ANSWER_BYTES {
            return Err(Exchange::Broken(invalid("the answer is too large")));
        }
        match conn.read(&mut chunk) {
            Ok(0) if answer.is_empty() => {
                return Err(Exchange::NoAnswer(io::ErrorKind::UnexpectedEof.into()))
            }
            Ok(0) => return Err(Exchange::Broken(invalid("the answer broke off"))),
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {
                let left = wait.deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let e = timed_out("the webhooks did not answer in time");
                    return Err(Exchange::Broken(e));
                }
                if answer.is_empty() && (wait.replaced)() {
                    if last_read {
                        return Err(Exchange::NoAnswer(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            "the webhooks were started again before reading the request",
                        )));
                    }
                    last_read = true;
                }
                if left < wait.tick {
                    conn.set_read_timeout(Some(left))
                        .map_err(Exchange::Broken)?;
                    shortened = true;
                }
            }
            Err(e) if answer.is_empty() => return Err(Exchange::NoAnswer(e)),
            Err(e) => return Err(Exchange::Broken(e)),
        }
    }
}

/// Where the answer ends, and whether tiny_http keeps the connection, once its head is
/// whole. tiny_http frames every answer of the webhooks with `Content-Length`.
fn answer_framing(answer: &[u8], head_only: bool) -> io::Result<Option<(usize, bool)>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(answer) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(invalid(&format!("no HTTP answer: {e}"))),
    };
    let header = |name: &str| {
        parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    if header("transfer-encoding").is_some() {
        return Err(invalid("the answer is chunked"));
    }
    let body = match (head_only, parsed.code) {
        (true, _) | (_, Some(204 | 304)) => 0,
        _ => header("content-length")
            .and_then(|l| l.parse::<usize>().ok())
            .ok_or_else(|| invalid("the answer has no Content-Length"))?,
    };
    let reusable = header("connection").is_none_or(|c| !c.contains("close"));
    Ok(Some((head_len + body, reusable)))
}

fn invalid(reason: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{os::unix::net::UnixListener, thread};

    const REQUEST: &[u8] = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]";
    const NEW_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nnew";

    /// The directory of a listener standing where tiny_http listens, removed when dropped.
    struct Listening {
        dir: PathBuf,
    }

    impl Listening {
        fn new(name: &str) -> (Listening, UnixListener) {
            let dir = std::env::temp_dir().join(format!(
                "vonage-echo-upstream-{name}-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir(&dir).unwrap();
            let listener = UnixListener::bind(dir.join("s")).unwrap();
            listener.set_nonblocking(true).unwrap();
            (Listening { dir }, listener)
        }
    }

    impl Drop for Listening {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// An upstream whose stand-in for tiny_http has answered one request, on the connection
    /// the upstream now keeps; `then` plays the stand-in on, with its listener and that
    /// connection.
    fn after_one_answer<T: Send + 'static>(
        name: &str,
        restarts: &Arc<Restarts>,
        then: impl FnOnce(UnixListener, UnixStream) -> T + Send + 'static,
    ) -> (Listening, Upstream, thread::JoinHandle<T>) {
        let (listening, listener) = Listening::new(name);
        let tiny = thread::spawn(move || {
            let mut first = accept(&listener);
            read_head(&mut first);
            first.write_all(ANSWER).unwrap();
            then(listener, first)
        });
        let restarts = Arc::clone(restarts);
        let upstream = Upstream::new(listening.dir.join("s"), Duration::from_secs(3), restarts);
        assert_eq!(upstream.forward(REQUEST, false).unwrap(), ANSWER);
        (listening, upstream, tiny)
    }

    /// The next connection within `within`, its reads giving up after 5 s; `None` if none
    /// came.
    fn accept_within(listener: &UnixListener, within: Duration) -> Option<UnixStream> {
        let until = Instant::now() + within;
        while Instant::now() < until {
            match listener.accept() {
                Ok((conn, _)) => {
                    conn.set_nonblocking(false).unwrap();
                    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    return Some(conn);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
        None
    }

    fn accept(listener: &UnixListener) -> UnixStream {
        accept_within(listener, Duration::from_secs(5)).expect("a connection within 5 s")
    }

    /// Reads one request head (the tests' requests have no body).
    fn read_head(conn: &mut UnixStream) {
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(conn.read(&mut byte).unwrap(), 1, "the request broke off");
            head.push(byte[0]);
        }
        assert_eq!(head, REQUEST);
    }

    fn open_count(upstream: &Upstream) -> usize {
        upstream.pool.lock().unwrap().open
    }

    #[test]
    fn a_connection_kept_from_before_a_restart_is_closed_not_used() {
        let restarts = Arc::new(Restarts::new());
        let (_dir, upstream, tiny) = after_one_answer("kept", &restarts, |listener, mut first| {
            let mut second = accept(&listener);
            read_head(&mut second);
            second.write_all(NEW_ANSWER).unwrap();
            let mut after = Vec::new();
            first.read_to_end(&mut after).unwrap();
            after
        });
        restarts.note();
        assert_eq!(upstream.forward(REQUEST, false).unwrap(), NEW_ANSWER);
        let after = tiny.join().unwrap();
        assert!(after.is_empty(), "the old connection carried {after:?}");
        assert_eq!(open_count(&upstream), 1, "only the new connection is open");
    }

    #[test]
    fn a_request_left_unread_by_a_replaced_instance_is_sent_to_the_new_one_at_once() {
        let restarts = Arc::new(Restarts::new());
        let noted = Arc::clone(&restarts);
        let (_dir, upstream, tiny) =
            after_one_answer("unread", &restarts, move |listener, mut first| {
                // The instance stops reading: this request stays in its queue, unanswered.
                read_head(&mut first);
                noted.note();
                let mut second = accept(&listener);
                read_head(&mut second);
                second.write_all(NEW_ANSWER).unwrap();
                first
            });
        let sent = Instant::now();
        assert_eq!(upstream.forward(REQUEST, false).unwrap(), NEW_ANSWER);
        assert!(
            sent.elapsed() < Duration::from_secs(2),
            "answered after {:?}, the request timeout is 3 s",
            sent.elapsed()
        );
        drop(tiny.join().unwrap());
        assert_eq!(open_count(&upstream), 1, "only the new connection is open");
    }

    #[test]
    fn an_answer_a_replaced_instance_gave_is_taken_and_its_request_not_sent_again() {
        let restarts = Arc::new(Restarts::new());
        let noted = Arc::clone(&restarts);
        let (_dir, upstream, tiny) =
            after_one_answer("answered", &restarts, move |listener, mut first| {
                read_head(&mut first);
                // Slower than a tick, so the gate has waited once before the answer comes;
                // the restart is counted only after the answer, as the host does.
                thread::sleep(TICK + Duration::from_millis(100));
                first.write_all(NEW_ANSWER).unwrap();
                noted.note();
                accept_within(&listener, Duration::from_millis(500)).is_some()
            });
        assert_eq!(upstream.forward(REQUEST, false).unwrap(), NEW_ANSWER);
        assert!(!tiny.join().unwrap(), "the request was sent again");
    }

    #[test]
    fn one_connection_is_opened_at_a_time_and_the_next_waits_until_its_deadline() {
        let upstream = Upstream::new("unused".into(), TICK, Arc::new(Restarts::new()));
        let held = upstream.begin_opening(Instant::now()).unwrap();
        let soon = Instant::now() + Duration::from_millis(50);
        let refused = upstream
            .begin_opening(soon)
            .err()
            .expect("the opening is held");
        assert_eq!(refused.kind(), io::ErrorKind::TimedOut);
        assert!(Instant::now() >= soon, "waited until the deadline");
        drop(held);
        assert!(
            upstream.begin_opening(Instant::now()).is_ok(),
            "given back when dropped"
        );
    }

    #[test]
    fn an_answer_ends_after_its_content_length() {
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]";
        assert_eq!(
            answer_framing(answer, false).unwrap(),
            Some((answer.len(), true))
        );
        assert_eq!(answer_framing(&answer[..10], false).unwrap(), None);
    }

    #[test]
    fn a_head_answer_has_no_body_and_close_ends_the_connection() {
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n";
        assert_eq!(
            answer_framing(answer, true).unwrap(),
            Some((answer.len(), false))
        );
    }

    #[test]
    fn an_answer_without_a_length_is_refused() {
        assert!(answer_framing(b"HTTP/1.1 200 OK\r\n\r\n", false).is_err());
    }
}
