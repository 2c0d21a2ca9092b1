//! A call's socket as tungstenite sees it. Echoes are held back until the call's thread is
//! about to wait for more audio, then leave in one write: one frame in, one write out when
//! the server keeps up, and one write for several frames when it falls behind, so a loaded
//! server spends less per frame exactly when it needs to.
//!
//! Input is read ahead into a buffer of the call's own and handed to tungstenite one frame
//! at a time. tungstenite reserves room for a frame's whole payload once it has read the
//! frame's header, even when the payload is already in its buffer, so a read that brought
//! more than one frame grew its buffer (from 2 to 4 KiB at 16 kHz): an allocation under the
//! allocator's lock, made by a call thread that already runs below call setup, which a
//! setup thread wanting the same lock then waited behind thousands of calls for (answers of
//! 0.3 to 1.8 s at 2,000 calls, in about one run in four). A model of tungstenite's buffer
//! arithmetic found the growth in most calls that fell behind and none when a read takes at
//! most one frame, at each of the three rates. The read-ahead buffer is allocated before
//! the call goes below setup, and held echoes have a buffer that never grows.

use std::{
    io::{self, ErrorKind, Read, Write},
    net::TcpStream,
    time::Instant,
};

/// The most output held back: three 20 ms frames at 16 kHz. It is allocated once and never
/// grows, so a thread that fell behind keeps no larger buffer when it has caught up (at
/// 2,000 calls that is megabytes).
const MAX_HELD: usize = 2048;

/// Input read ahead of tungstenite once the call's frame size is known: three 20 ms
/// frames at 16 kHz, so a thread that fell behind still takes several frames in one read and
/// sends their echoes in one write, while tungstenite is handed one frame at a time (see
/// [`CallStream::limit_reads`]). Allocated once, before the call takes the audio's place.
const INBOX_BYTES: usize = 2048;

/// Bytes read in a row by reads that filled the buffer, before the thread yields the core.
/// A read that fills it means more input is waiting: a caller far ahead of real time, or a
/// core so busy that frames queue. Under a real-time policy (`--realtime-priority`) the
/// thread would otherwise keep the core from every other call for as long as the flood
/// lasts. Under the fair scheduler the yields keep each call's turn short when every call
/// has frames queued, so that a thread preempted while holding a lock that call setup
/// needs (the allocator's) comes round again soon. Counted in bytes, not reads, so the
/// size of the read buffer does not change how often a thread yields.
const FULL_BYTES_BEFORE_YIELD: usize = 16 * 1024;

/// A TCP stream whose writes are deferred until the next read (see the module docs).
#[derive(Debug)]
pub struct CallStream {
    socket: TcpStream,
    held: Vec<u8>,
    defer: bool,
    yield_at: Option<Instant>,
    full_bytes: usize,
    read_ahead: Option<ReadAhead>,
}

/// Input read from the socket ahead of tungstenite, handed over `limit` bytes at most a read.
#[derive(Debug)]
struct ReadAhead {
    buf: Box<[u8]>,
    len: usize,
    at: usize,
    limit: usize,
}

impl ReadAhead {
    fn is_drained(&self) -> bool {
        self.at == self.len
    }

    /// Hands `out` what was read ahead, at most the limit.
    fn take(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.limit).min(self.len - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        n
    }
}

impl CallStream {
    /// Wraps `socket`; writes go straight through until [`CallStream::defer_writes`].
    pub fn new(socket: TcpStream) -> CallStream {
        CallStream {
            socket,
            held: Vec::new(),
            defer: false,
            yield_at: None,
            full_bytes: 0,
            read_ahead: None,
        }
    }

    /// The first read of the socket at or after `at` answers `WouldBlock` instead (input
    /// already read ahead is handed over first: taking it cannot block). tungstenite
    /// reads on while a frame trickles in byte by byte; this hands control back to the
    /// thread (to see a shutdown, a deadline, a silent call) however the peer paces its bytes.
    /// tungstenite keeps a partly read frame across `WouldBlock`.
    pub fn yield_at(&mut self, at: Instant) {
        self.yield_at = Some(at);
    }

    /// From now on, a read returns at most `bytes`: the call's frame, header included. The
    /// socket itself is read ahead, up to [`INBOX_BYTES`] at a time.
    ///
    /// tungstenite reserves room for a frame's whole payload once it has read the frame's
    /// header, even when the payload is already in its buffer; after a read that brought
    /// more than one frame, that reservation can grow the buffer (from 2 to 4 KiB at 16 kHz).
    /// The growth is an allocation, made under one of the allocator's locks by a call
    /// thread that has already taken the audio's place below call setup; preempted there
    /// by a setup thread that wants the same lock, it holds up every answer webhook until
    /// its turn comes round among 2,000 calls. Reads of one frame at most keep the buffer
    /// at the size the first frame gave it, at any of Vonage's rates.
    pub fn limit_reads(&mut self, bytes: usize) {
        let limit = bytes.max(1);
        match &mut self.read_ahead {
            Some(ahead) => ahead.limit = limit,
            None => {
                self.read_ahead = Some(ReadAhead {
                    buf: vec![0; INBOX_BYTES].into_boxed_slice(),
                    len: 0,
                    at: 0,
                    limit,
                })
            }
        }
    }

    /// Another handle to the socket, to write on it once this stream is gone.
    pub fn try_clone_socket(&self) -> io::Result<TcpStream> {
        self.socket.try_clone()
    }

    /// From now on, hold writes until the next read (the handshake is done).
    pub fn defer_writes(&mut self) {
        self.defer = true;
    }

    /// Writes what is held. A write timeout means the caller stopped reading; it is reported
    /// as such, not as the `WouldBlock` a read timeout gives.
    pub fn send_held(&mut self) -> io::Result<()> {
        let mut sent = 0;
        let result = loop {
            if sent == self.held.len() {
                break Ok(());
            }
            match self.socket.write(&self.held[sent..]) {
                Ok(0) => break Err(io::Error::from(ErrorKind::WriteZero)),
                Ok(n) => sent += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break Err(io::Error::other(
                        "the caller stopped reading (write timed out)",
                    ))
                }
                Err(e) => break Err(e),
            }
        };
        self.held.drain(..sent);
        result
    }
}

impl CallStream {
    /// Sends what is held, stops writing, and reads and discards what the peer still sends
    /// until it closes or `grace` passes: after a broken frame the WebSocket parser cannot
    /// be trusted with more input, yet closing with unread input would reset the connection
    /// and lose the close frame on its way out.
    pub fn finish_raw(&mut self, grace: std::time::Duration) {
        let _ = self.send_held();
        let _ = self.socket.shutdown(std::net::Shutdown::Write);
        let deadline = std::time::Instant::now() + grace;
        let mut sink = [0u8; 4096];
        while std::time::Instant::now() < deadline {
            match self.socket.read(&mut sink) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(_) => return,
            }
        }
    }
}

/// Reads `socket` into `buf`, yielding the core once `full_bytes` read by full reads in a
/// row reach [`FULL_BYTES_BEFORE_YIELD`].
fn read_socket(
    socket: &mut TcpStream,
    full_bytes: &mut usize,
    buf: &mut [u8],
) -> io::Result<usize> {
    loop {
        // A signal interrupts a read with a timeout even under SA_RESTART: read again.
        match socket.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Ok(n) if n == buf.len() && n > 0 => {
                *full_bytes += n;
                if *full_bytes >= FULL_BYTES_BEFORE_YIELD {
                    *full_bytes = 0;
                    std::thread::yield_now();
                }
                return Ok(n);
            }
            other => {
                *full_bytes = 0;
                return other;
            }
        }
    }
}

impl Read for CallStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Input already here: what is held waits for the thread's next wait.
        if let Some(ahead) = self.read_ahead.as_mut().filter(|a| !a.is_drained()) {
            return Ok(ahead.take(buf));
        }
        self.send_held()?;
        if self.yield_at.is_some_and(|at| Instant::now() >= at) {
            self.yield_at = None;
            return Err(ErrorKind::WouldBlock.into());
        }
        let Some(ahead) = self.read_ahead.as_mut() else {
            return read_socket(&mut self.socket, &mut self.full_bytes, buf);
        };
        ahead.len = read_socket(&mut self.socket, &mut self.full_bytes, &mut ahead.buf)?;
        ahead.at = 0;
        Ok(ahead.take(buf))
    }
}

impl Write for CallStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.defer {
            return self.socket.write(buf);
        }
        // What is held never outgrows MAX_HELD: it leaves first.
        if self.held.len() + buf.len() > MAX_HELD {
            self.send_held()?;
        }
        if buf.len() >= MAX_HELD {
            return self.socket.write(buf);
        }
        if self.held.capacity() == 0 {
            self.held.reserve_exact(MAX_HELD);
        }
        self.held.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.defer {
            Ok(())
        } else {
            self.send_held()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn pair() -> (CallStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        // No test waits for ever: a read that times out fails its test.
        for socket in [&server, &client] {
            socket
                .set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
        }
        (CallStream::new(server), client)
    }

    #[test]
    fn a_limited_read_takes_no_more_than_its_limit_and_leaves_the_rest() {
        let (mut stream, mut peer) = pair();
        let sent: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
        peer.write_all(&sent).unwrap();
        // Everything sent is waiting before the first read.
        while stream.socket.peek(&mut [0u8; 2000]).unwrap() < 2000 {}
        stream.limit_reads(648);
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        for (room, want) in [(4096, 648), (100, 100), (4096, 648), (4096, 604)] {
            assert_eq!(stream.read(&mut buf[..room]).unwrap(), want);
            got.extend_from_slice(&buf[..want]);
        }
        assert_eq!(got, sent, "in order, nothing lost or repeated");
        // The socket was read once, ahead: the rest came from what that read brought.
        assert_eq!(stream.read_ahead.as_ref().map(|a| a.len), Some(2000));
    }

    #[test]
    fn echoes_of_frames_read_ahead_leave_together_once_the_thread_would_wait() {
        let (mut stream, mut peer) = pair();
        stream.defer_writes();
        stream.limit_reads(648);
        peer.write_all(&[7u8; 3 * 648]).unwrap();
        while stream.socket.peek(&mut [0u8; 3 * 648]).unwrap() < 3 * 648 {}
        let mut buf = [0u8; 4096];
        for echo in [b"a", b"b", b"c"] {
            assert_eq!(stream.read(&mut buf).unwrap(), 648);
            stream.write_all(echo).unwrap();
        }
        // The second and third frames came from what was read ahead: nothing left yet.
        peer.set_nonblocking(true).unwrap();
        let mut got = [0u8; 16];
        assert_eq!(
            peer.read(&mut got).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        peer.set_nonblocking(false).unwrap();
        peer.write_all(b"x").unwrap();
        assert_eq!(stream.read(&mut buf).unwrap(), 1);
        peer.read_exact(&mut got[..3]).unwrap();
        assert_eq!(&got[..3], b"abc");
    }

    #[test]
    fn input_read_ahead_is_handed_over_before_a_yield_and_the_yield_comes_after() {
        let (mut stream, mut peer) = pair();
        stream.limit_reads(648);
        peer.write_all(&[7u8; 2 * 648]).unwrap();
        while stream.socket.peek(&mut [0u8; 2 * 648]).unwrap() < 2 * 648 {}
        let mut buf = [0u8; 4096];
        assert_eq!(stream.read(&mut buf).unwrap(), 648);
        stream.yield_at(Instant::now());
        assert_eq!(stream.read(&mut buf).unwrap(), 648);
        assert_eq!(
            stream.read(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
    }

    #[test]
    fn deferred_writes_leave_on_the_next_read() {
        let (mut stream, mut peer) = pair();
        stream.defer_writes();
        stream.write_all(b"one").unwrap();
        stream.write_all(b"two").unwrap();
        stream.flush().unwrap();
        peer.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(
            peer.read(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock,
            "held back"
        );
        peer.write_all(b"x").unwrap();
        assert_eq!(stream.read(&mut buf).unwrap(), 1);
        peer.set_nonblocking(false).unwrap();
        let mut got = [0u8; 6];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"onetwo");
    }

    #[test]
    fn writes_go_straight_through_until_deferred() {
        let (mut stream, mut peer) = pair();
        stream.write_all(b"now").unwrap();
        let mut got = [0u8; 3];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"now");
    }

    #[test]
    fn a_read_past_its_yield_time_hands_control_back() {
        let (mut stream, mut peer) = pair();
        peer.write_all(b"data").unwrap();
        stream.yield_at(Instant::now());
        let mut buf = [0u8; 8];
        assert_eq!(
            stream.read(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        assert_eq!(stream.read(&mut buf).unwrap(), 4, "the next read reads");
    }

    #[test]
    fn held_output_leaves_before_it_outgrows_its_buffer() {
        let (mut stream, mut peer) = pair();
        stream.defer_writes();
        let frame = [1u8; 650];
        for _ in 0..10 {
            stream.write_all(&frame).unwrap();
            assert!(stream.held.len() <= MAX_HELD);
        }
        assert_eq!(
            stream.held.capacity(),
            MAX_HELD,
            "allocated once, never grown"
        );
        // Nine frames have left without a read: all but what three frames' room holds.
        let mut got = vec![0u8; 650 * 9];
        peer.read_exact(&mut got).unwrap();
    }
}
