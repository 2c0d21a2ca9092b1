//! The gate's side of the private socket to tiny_http: connections kept open between
//! requests, so that a webhook costs no connect and tiny_http no new thread.

use std::{
    io::{self, Read, Write},
    os::unix::net::UnixStream,
    path::PathBuf,
    sync::{Condvar, Mutex, MutexGuard},
    time::{Duration, Instant},
};

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

/// Open connections to tiny_http, and the ones free for the next request.
#[derive(Default)]
struct Pool {
    free: Vec<UnixStream>,
    open: usize,
    /// A new connection is carrying its first exchange: the next new one waits for it,
    /// here, where a connection freed meanwhile reaches it first (see [`OPENING`]).
    opening: bool,
}

/// The private socket's clients.
pub(crate) struct Upstream {
    path: PathBuf,
    timeout: Duration,
    pool: Mutex<Pool>,
    freed: Condvar,
}

impl Upstream {
    /// Clients of the tiny_http listening at `path`, each request answered within `timeout`.
    pub(crate) fn new(path: PathBuf, timeout: Duration) -> Upstream {
        Upstream {
            path,
            timeout,
            pool: Mutex::default(),
            freed: Condvar::new(),
        }
    }

    /// Hands `request` (head and body) to tiny_http and returns its whole answer. A kept
    /// connection that tiny_http has dropped meanwhile is replaced once, before any of its
    /// answer has arrived, so no request is handled twice.
    pub(crate) fn forward(&self, request: &[u8], head_only: bool) -> io::Result<Vec<u8>> {
        let deadline = Instant::now() + self.timeout;
        let taken = self.take(deadline)?;
        // Dropped last, once the connection opened here is back in the pool (or forgotten),
        // so that a request waiting for it finds it there.
        let _opening = taken.is_none().then(|| Opening(self));
        let (conn, result) = match taken {
            Some(mut kept) => match exchange(&mut kept, request, head_only) {
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
    fn take(&self, deadline: Instant) -> io::Result<Option<UnixStream>> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
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
    ) -> io::Result<(UnixStream, Exchanged)> {
        let _turn = OPENING.take(deadline).inspect_err(|_| self.forget())?;
        let mut conn = self.connect()?;
        let result = exchange(&mut conn, request, head_only);
        Ok((conn, result))
    }

    fn connect(&self) -> io::Result<UnixStream> {
        let connected = UnixStream::connect(&self.path).and_then(|conn| {
            conn.set_read_timeout(Some(self.timeout))?;
            conn.set_write_timeout(Some(self.timeout))?;
            Ok(conn)
        });
        if connected.is_err() {
            self.forget();
        }
        connected
    }

    fn give_back(&self, conn: UnixStream) {
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

/// How one exchange failed.
enum Exchange {
    /// Nothing of an answer came: the request may be sent again on another connection.
    NoAnswer(io::Error),
    /// The answer broke off or was not HTTP.
    Broken(io::Error),
}

/// Sends the request and reads one whole answer; says whether the connection can carry
/// another.
fn exchange(conn: &mut UnixStream, request: &[u8], head_only: bool) -> Exchanged {
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
            Err(e) if answer.is_empty() && e.kind() != io::ErrorKind::WouldBlock => {
                return Err(Exchange::NoAnswer(e))
            }
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

    static TURN: Turn = Turn::new();

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
