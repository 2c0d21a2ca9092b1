//! The gate's side of the private socket to tiny_http: connections kept open between
//! requests, so that a webhook costs no connect and tiny_http no new thread.

use std::{
    io::{self, Read, Write},
    os::unix::net::UnixStream,
    path::PathBuf,
    sync::{Condvar, Mutex},
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
/// the request on it went unanswered for the whole timeout (10 s), at any load. A
/// connection that has carried an answer has a thread of its own. One lock for the process,
/// as its servers share one tiny_http.
static OPENING: Mutex<()> = Mutex::new(());

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
        let (conn, result) = match self.take()? {
            Some(mut kept) => match exchange(&mut kept, request, head_only) {
                Err(Exchange::NoAnswer(_)) => {
                    drop(kept);
                    self.open_and_exchange(request, head_only)?
                }
                result => (kept, result),
            },
            None => {
                let opened = self.open_and_exchange(request, head_only);
                self.done_opening();
                opened?
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

    /// A free connection, or `None` when a new one may be opened (it is counted as open
    /// and opening from now on); otherwise waits for one to be freed or for the one being
    /// opened to have answered. At most [`MAX_OPEN`] are open.
    fn take(&self) -> io::Result<Option<UnixStream>> {
        let deadline = Instant::now() + self.timeout;
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
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no connection to the webhooks came free",
                ));
            }
            pool = self
                .freed
                .wait_timeout(pool, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Opens a connection (already counted as open) and carries its first exchange, one
    /// such at a time in the process (see [`OPENING`]).
    fn open_and_exchange(
        &self,
        request: &[u8],
        head_only: bool,
    ) -> io::Result<(UnixStream, Exchanged)> {
        let _opening = OPENING.lock().unwrap_or_else(|e| e.into_inner());
        let mut conn = self.connect()?;
        let result = exchange(&mut conn, request, head_only);
        Ok((conn, result))
    }

    /// The connection [`Upstream::take`] let open has answered, or failed.
    fn done_opening(&self) {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).opening = false;
        self.freed.notify_all();
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
