//! The gate's side of the private socket to tiny_http: connections kept open between
//! requests, so that a webhook costs no connect and tiny_http no new thread.

use std::{
    io::{self, Read, Write},
    os::unix::net::UnixStream,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Condvar, Mutex, MutexGuard,
    },
    time::{Duration, Instant},
};

use crate::threads::TICK;

/// The most connections open to tiny_http at once: one request is handled at a time, so
/// more would only add tiny_http threads.
const MAX_OPEN: usize = 16;

/// Held while a new connection to tiny_http carries its first exchange, so that new
/// connections arrive one at a time, each once the one before has a thread. tiny_http
/// 0.12's thread pool counts a thread as idle until it has woken and taken a connection: a
/// second connection that comes meanwhile is queued with no thread to take it, and waits
/// until a connection a thread serves is closed. Kept connections are closed seldom, so
/// the request on it would go unanswered for the whole timeout (10 s), at any load. A
/// connection that has carried an answer has a thread of its own. One turn for the process,
/// as its servers share one tiny_http; waited for no longer than the request may take.
static OPENING: Turn = Turn::new();

/// A turn that one thread at a time holds.
struct Turn {
    taken: Mutex<bool>,
    given_back: Condvar,
}

impl Turn {
    const fn new() -> Turn {
        Turn {
            taken: Mutex::new(false),
            given_back: Condvar::new(),
        }
    }

    /// Waits for the turn until `deadline`.
    fn take(&'static self, deadline: Instant) -> io::Result<TurnHeld> {
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        while *taken {
            taken = wait_before(&self.given_back, taken, deadline).ok_or_else(|| {
                timed_out("no connection to the webhooks could be opened in time")
            })?;
        }
        *taken = true;
        Ok(TurnHeld(self))
    }
}

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

/// The turn, given back when dropped (also on unwind).
struct TurnHeld(&'static Turn);

impl Drop for TurnHeld {
    fn drop(&mut self) {
        *self.0.taken.lock().unwrap_or_else(|e| e.into_inner()) = false;
        self.0.given_back.notify_one();
    }
}

/// The largest answer the webhooks give (an NCCO is a few hundred bytes).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// How many times tiny_http has been started again on the private socket (see
/// `Webhooks::serve`). A connection opened before a restart reaches an instance whose
/// requests nobody reads any more: tiny_http's thread for it still takes requests, into a
/// queue that went with the instance. Such a connection is not used again, and a request
/// waiting on one is sent again to the new instance.
pub(crate) struct Restarts(AtomicU64);

impl Restarts {
    /// No restart yet.
    pub(crate) const fn new() -> Restarts {
        Restarts(AtomicU64::new(0))
    }

    /// Counts a restart, once the new instance listens.
    pub(crate) fn note(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }

    fn count(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

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
    /// here, where a connection freed meanwhile reaches it first (see [`OPENING`]).
    opening: bool,
}

/// The private socket's clients.
pub(crate) struct Upstream {
    path: PathBuf,
    timeout: Duration,
    restarts: &'static Restarts,
    pool: Mutex<Pool>,
    freed: Condvar,
}

impl Upstream {
    /// Clients of the tiny_http listening at `path`, each request answered within `timeout`;
    /// `restarts` counts the times tiny_http has been started again there.
    pub(crate) fn new(path: PathBuf, timeout: Duration, restarts: &'static Restarts) -> Upstream {
        Upstream {
            path,
            timeout,
            restarts,
            pool: Mutex::default(),
            freed: Condvar::new(),
        }
    }

    /// Hands `request` (head and body) to tiny_http and returns its whole answer. A kept
    /// connection that tiny_http has dropped meanwhile, or whose instance has been replaced,
    /// is replaced once, before any of its answer has arrived, so no request is handled
    /// twice.
    pub(crate) fn forward(&self, request: &[u8], head_only: bool) -> io::Result<Vec<u8>> {
        let deadline = Instant::now() + self.timeout;
        let taken = self.take(deadline)?;
        // Dropped last, once the connection opened here is back in the pool (or forgotten),
        // so that a request waiting for it finds it there.
        let _opening = taken.is_none().then(|| Opening(self));
        let (conn, result) = match taken {
            Some(mut kept) => match self.exchange(&mut kept, request, head_only, deadline) {
                Err(Exchange::NoAnswer(_)) => {
                    drop(kept);
                    self.open_and_exchange(request, head_only, deadline)?
                }
                result => (kept, result),
            },
            None => self.open_and_exchange(request, head_only, deadline)?,
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

    /// A free connection, or `None` when a new one may be opened (it is counted as open
    /// and opening from now on); otherwise waits for one to be freed or for the one being
    /// opened to have answered. At most [`MAX_OPEN`] are open.
    fn take(&self, deadline: Instant) -> io::Result<Option<Conn>> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let instance = self.restarts.count();
        let before = pool.free.len();
        pool.free.retain(|conn| conn.instance == instance);
        pool.open = pool.open.saturating_sub(before - pool.free.len());
        loop {
            if let Some(conn) = pool.free.pop() {
                return Ok(Some(conn));
            }
            if pool.open < MAX_OPEN && !pool.opening {
                pool.open += 1;
                pool.opening = true;
                return Ok(None);
            }
            pool = wait_before(&self.freed, pool, deadline)
                .ok_or_else(|| timed_out("no connection to the webhooks came free"))?;
        }
    }

    /// Opens a connection (already counted as open) and carries its first exchange, one
    /// such at a time in the process (see [`OPENING`]).
    fn open_and_exchange(
        &self,
        request: &[u8],
        head_only: bool,
        deadline: Instant,
    ) -> io::Result<(Conn, Exchanged)> {
        let _turn = OPENING.take(deadline).inspect_err(|_| self.forget())?;
        let mut conn = self.connect()?;
        let result = self.exchange(&mut conn, request, head_only, deadline);
        Ok((conn, result))
    }

    fn connect(&self) -> io::Result<Conn> {
        // Counted before connecting: an instance started meanwhile makes the connection
        // look older than it is, which costs a retry, never a lost request.
        let instance = self.restarts.count();
        let connected = UnixStream::connect(&self.path).and_then(|stream| {
            // Reads wait a tick at a time, so that a restart is seen while waiting.
            stream.set_read_timeout(Some(TICK.min(self.timeout)))?;
            stream.set_write_timeout(Some(self.timeout))?;
            Ok(Conn { stream, instance })
        });
        if connected.is_err() {
            self.forget();
        }
        connected
    }

    /// Sends the request and reads one whole answer by `deadline`; says whether the
    /// connection can carry another. A connection whose instance has been replaced has its
    /// request refused as never read, once a last read has found no answer: the instance
    /// answered whatever it read before it stopped, so an answer it gave is already there.
    fn exchange(
        &self,
        conn: &mut Conn,
        request: &[u8],
        head_only: bool,
        deadline: Instant,
    ) -> Exchanged {
        let mut replaced_seen = false;
        let mut waited = || {
            if Instant::now() >= deadline {
                return Wait::TimedOut;
            }
            if self.restarts.count() == conn.instance {
                return Wait::Again;
            }
            if std::mem::replace(&mut replaced_seen, true) {
                Wait::Replaced
            } else {
                Wait::Again
            }
        };
        exchange(&mut conn.stream, request, head_only, &mut waited)
    }

    fn give_back(&self, conn: Conn) {
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

/// The pool's opening, which [`Upstream::take`] let a request make: ended when dropped, also
/// on unwind, so the pool can open again.
struct Opening<'a>(&'a Upstream);

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        self.0
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .opening = false;
        self.0.freed.notify_all();
    }
}

/// One exchange's outcome: the whole answer and whether the connection can carry another.
type Exchanged = Result<(Vec<u8>, bool), Exchange>;

/// What to do when a read has waited a tick for the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Read again.
    Again,
    /// The deadline has passed.
    TimedOut,
    /// The instance the connection reached has been replaced, and nothing of the answer
    /// has come since: the request was never read.
    Replaced,
}

/// How one exchange failed.
enum Exchange {
    /// Nothing of an answer came: the request may be sent again on another connection.
    NoAnswer(io::Error),
    /// The answer broke off or was not HTTP.
    Broken(io::Error),
}

/// Sends the request and reads one whole answer; says whether the connection can carry
/// another. `waited` decides after each read that timed out.
fn exchange(
    conn: &mut UnixStream,
    request: &[u8],
    head_only: bool,
    waited: &mut impl FnMut() -> Wait,
) -> Exchanged {
    conn.write_all(request).map_err(Exchange::NoAnswer)?;
    let mut answer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let mut framing = None;
    loop {
        if framing.is_none() {
            framing = answer_framing(&answer, head_only).map_err(Exchange::Broken)?;
        }
        if let Some((end, reusable)) = framing {
            if answer.len() >= end {
                // Anything past the answer would be out of step with the next request.
                let reusable = reusable && answer.len() == end;
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
            Err(e) if is_timeout(&e) => match (waited(), answer.is_empty()) {
                (Wait::Again, _) | (Wait::Replaced, false) => {}
                (Wait::TimedOut, _) => {
                    return Err(Exchange::Broken(timed_out(
                        "the webhooks did not answer in time",
                    )))
                }
                (Wait::Replaced, true) => {
                    return Err(Exchange::NoAnswer(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the webhooks were started again before reading the request",
                    )))
                }
            },
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

/// Whether a read ended on its timeout (`WouldBlock` on Unix, `TimedOut` elsewhere).
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn invalid(reason: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{os::unix::net::UnixListener, sync::mpsc, thread};

    static TURN: Turn = Turn::new();

    const REQUEST: &[u8] = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]";
    const NEW_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nnew";

    /// A listener standing where tiny_http listens, in a directory of its own.
    struct Listening {
        dir: PathBuf,
        listener: Option<UnixListener>,
    }

    impl Listening {
        fn new(name: &str) -> Listening {
            let dir = std::env::temp_dir().join(format!(
                "vonage-echo-upstream-{name}-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir(&dir).unwrap();
            let listener = UnixListener::bind(dir.join("s")).unwrap();
            Listening {
                dir,
                listener: Some(listener),
            }
        }

        fn upstream(&self, restarts: &'static Restarts) -> Upstream {
            Upstream::new(self.dir.join("s"), Duration::from_secs(3), restarts)
        }
    }

    impl Drop for Listening {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
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

    #[test]
    fn a_connection_kept_from_before_a_restart_is_closed_not_used() {
        static RESTARTS: Restarts = Restarts::new();
        let mut listening = Listening::new("kept");
        let listener = listening.listener.take().unwrap();
        let tiny = thread::spawn(move || {
            let (mut first, _) = listener.accept().unwrap();
            read_head(&mut first);
            first.write_all(ANSWER).unwrap();
            let (mut second, _) = listener.accept().unwrap();
            read_head(&mut second);
            second.write_all(NEW_ANSWER).unwrap();
            let mut after = Vec::new();
            first.read_to_end(&mut after).unwrap();
            after
        });
        let upstream = listening.upstream(&RESTARTS);
        assert_eq!(upstream.forward(REQUEST, false).unwrap(), ANSWER);
        RESTARTS.note();
        assert_eq!(upstream.forward(REQUEST, false).unwrap(), NEW_ANSWER);
        let after = tiny.join().unwrap();
        assert!(after.is_empty(), "the old connection carried {after:?}");
    }

    #[test]
    fn a_request_left_unread_by_a_replaced_instance_is_sent_to_the_new_one_at_once() {
        static RESTARTS: Restarts = Restarts::new();
        let mut listening = Listening::new("unread");
        let listener = listening.listener.take().unwrap();
        let (unread_tx, unread_rx) = mpsc::channel();
        let tiny = thread::spawn(move || {
            let (mut first, _) = listener.accept().unwrap();
            read_head(&mut first);
            first.write_all(ANSWER).unwrap();
            // The instance stops reading: this request stays in its queue, unanswered.
            read_head(&mut first);
            unread_tx.send(()).unwrap();
            let (mut second, _) = listener.accept().unwrap();
            read_head(&mut second);
            second.write_all(NEW_ANSWER).unwrap();
            first
        });
        let restarter = thread::spawn(move || {
            unread_rx.recv().unwrap();
            RESTARTS.note();
        });
        let upstream = listening.upstream(&RESTARTS);
        assert_eq!(upstream.forward(REQUEST, false).unwrap(), ANSWER);
        let sent = Instant::now();
        assert_eq!(upstream.forward(REQUEST, false).unwrap(), NEW_ANSWER);
        assert!(
            sent.elapsed() < Duration::from_secs(2),
            "answered after {:?}, the request timeout is 3 s",
            sent.elapsed()
        );
        restarter.join().unwrap();
        drop(tiny.join().unwrap());
    }

    #[test]
    fn a_turn_is_held_by_one_until_dropped_and_waited_for_until_a_deadline() {
        let held = TURN.take(Instant::now()).unwrap();
        let soon = Instant::now() + Duration::from_millis(50);
        let refused = TURN.take(soon).err().expect("the turn is held");
        assert_eq!(refused.kind(), io::ErrorKind::TimedOut);
        assert!(Instant::now() >= soon, "waited until the deadline");
        drop(held);
        assert!(TURN.take(Instant::now()).is_ok(), "given back when dropped");
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
