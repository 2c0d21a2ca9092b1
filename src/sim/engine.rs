//! Streams many simulated calls from one thread: a `mio` poll loop paces every call's
//! frames from a monotonic clock (frame k is due at t0 + 20k ms, and leaves then or with
//! its burst, as the call's `Schedule` says), checks each echo against what was sent, and
//! measures round trips.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, VecDeque},
    io::{self, ErrorKind},
    net::TcpStream,
    os::fd::AsRawFd,
    sync::{mpsc, Arc},
    time::{Duration, Instant},
};

use mio::{unix::SourceFd, Events, Interest, Poll, Token};
use tungstenite::{
    protocol::{frame::coding::CloseCode, CloseFrame, Role},
    stream::MaybeTlsStream,
    Bytes, Error as WsError, Message, WebSocket,
};

use super::{
    arrival::Schedule,
    live::{Counters, Frames},
    setup::Dialed,
};
use crate::{
    protocol::audio::{AudioFormat, FRAME_DURATION},
    protocol::call_id::CallId,
    protocol::limits::{websocket_config, DEFAULT_MAX_MESSAGE_BYTES},
};

/// A frame that leaves this much after its schedule counts as late: the generator's own
/// pacing miss, so a saturated generator shows itself.
pub(crate) const LATE: Duration = Duration::from_millis(5);

/// How long a call waits for the echo of its last frames, and for the close handshake.
const DRAIN: Duration = Duration::from_secs(3);

/// The most sockets read in one turn of the loop before due frames are sent again: a
/// server that falls behind answers in bursts, and reading a burst of a thousand echoes
/// would hold back every frame due meanwhile.
const READ_BATCH: usize = 128;

/// The longest the loop sleeps before it looks at its sockets again.
const TICK: Duration = Duration::from_millis(1);

/// How near a timer must be for the loop to poll again instead of sleeping.
const SPIN: Duration = Duration::from_micros(100);

/// One call to stream.
pub(crate) struct Plan {
    pub(crate) dialed: Dialed,
    pub(crate) frames: u64,
    /// When each frame leaves.
    pub(crate) schedule: Schedule,
    /// How long after arrival the first frame leaves. Independent calls are not in step; a
    /// load whose calls all send in the same millisecond measures bursts, not calls.
    pub(crate) phase: Duration,
}

/// The phase of the `n`th call of a load: spread evenly over a frame by the golden ratio,
/// so calls started at a steady rate do not send in lockstep.
pub(crate) fn phase(n: usize) -> Duration {
    const GOLDEN: f64 = 0.618_033_988_749_895;
    FRAME_DURATION.mul_f64((n as f64 * GOLDEN).fract())
}

/// What one streamed call saw.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) id: Option<CallId>,
    pub(crate) sent: u64,
    pub(crate) echoed: u64,
    pub(crate) lost: u64,
    pub(crate) corrupted: u64,
    pub(crate) late: u64,
    pub(crate) max_late: Duration,
    /// Round trips: when the frame left (ms after the run's epoch) and its round trip (us).
    pub(crate) rtts: Vec<(u32, u32)>,
    /// The close code the server sent, if it closed first or answered ours.
    pub(crate) server_close: Option<u16>,
    /// What went wrong, if anything did.
    pub(crate) error: Option<String>,
    pub(crate) streamed: Duration,
    /// How the call was judged, when a load judges its calls as `call` does.
    pub(crate) judged: Option<Box<Judgement>>,
}

impl Outcome {
    /// Its frame counts as they stand.
    fn frames(&self) -> Frames {
        Frames {
            sent: self.sent,
            echoed: self.echoed,
            lost: self.lost,
            corrupted: self.corrupted,
            late: self.late,
        }
    }
}

enum Phase {
    Streaming,
    /// Every frame sent; waiting for the last echoes until `wake_at`.
    Draining,
    /// Our close sent; waiting for the server's reply until `wake_at`.
    Closing,
}

/// A non-blocking socket that remembers a short read: the socket was empty then, so the
/// next read can answer `WouldBlock` without asking the kernel (edge-triggered readiness
/// reports any data that arrives later). One system call a frame saved, where the
/// generator spends most of its time.
struct Probe {
    socket: MaybeTlsStream<TcpStream>,
    drained: bool,
    /// The peer has closed or failed: every read asks the kernel from now on.
    ending: bool,
}

impl io::Read for Probe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if std::mem::take(&mut self.drained) && !self.ending {
            return Err(ErrorKind::WouldBlock.into());
        }
        let n = self.socket.read(buf)?;
        // Under TLS a short read says nothing of what the socket holds.
        let plain = matches!(self.socket, MaybeTlsStream::Plain(_));
        self.drained = plain && n > 0 && n < buf.len();
        Ok(n)
    }
}

impl io::Write for Probe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.socket.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.socket.flush()
    }
}

struct Leg {
    epoch: Instant,
    ws: WebSocket<Probe>,
    format: AudioFormat,
    t0: Instant,
    frames: u64,
    next: u64,
    schedule: Schedule,
    tone: Arc<Vec<Bytes>>,
    inflight: VecDeque<(Instant, Bytes)>,
    texts: VecDeque<String>,
    phase: Phase,
    wake_at: Instant,
    done: bool,
    out: Outcome,
}

/// Runs every plan that arrives on `plans` until the sender hangs up and every call ended.
/// `on_done` receives each call's outcome as it ends; `live` counts the frames as they go.
pub(crate) fn run(
    epoch: Instant,
    plans: mpsc::Receiver<Plan>,
    live: Arc<Counters>,
    mut on_done: impl FnMut(Outcome),
) -> io::Result<()> {
    let mut engine = Engine::new(epoch, live)?;
    let mut events = Events::with_capacity(READ_BATCH);
    let mut dialer_done = false;
    while !(dialer_done && engine.live == 0) {
        // Due frames go out first in each turn, and a turn reads at most READ_BATCH
        // sockets: pacing is what the generator promises, and a burst of echoes must not
        // delay it.
        engine.fire_due_timers(&mut on_done);
        match engine.poll.poll(&mut events, Some(engine.wait())) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => other?,
        }
        engine.read_ready(&events, &mut on_done);
        dialer_done = engine.admit(&plans, &mut on_done);
    }
    Ok(())
}

/// The poll loop's state: every call's leg, by its token, and the timers of their frames.
struct Engine {
    poll: Poll,
    epoch: Instant,
    legs: Vec<Option<Leg>>,
    free: Vec<usize>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    live: usize,
    tones: Vec<Arc<Vec<Bytes>>>,
    /// This loop's own frame counts, which only it writes.
    counters: Arc<Counters>,
}

impl Engine {
    fn new(epoch: Instant, counters: Arc<Counters>) -> io::Result<Engine> {
        Ok(Engine {
            poll: Poll::new()?,
            epoch,
            legs: Vec::new(),
            free: Vec::new(),
            timers: BinaryHeap::new(),
            live: 0,
            tones: AudioFormat::ALL
                .iter()
                .map(|f| Arc::new(super::caller::tone(*f)))
                .collect(),
            counters,
        })
    }

    /// Sends every frame (and key, and hang-up) that is due.
    fn fire_due_timers(&mut self, on_done: &mut impl FnMut(Outcome)) {
        let now = Instant::now();
        while let Some(&Reverse((at, idx))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(leg) = self.legs.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            if leg.wake_at != at {
                continue; // superseded
            }
            let before = leg.out.frames();
            leg.on_timer(now);
            self.counters.add_frames(before, leg.out.frames());
            if leg.finished() {
                self.finish(idx, on_done);
            } else {
                self.timers.push(Reverse((leg.wake_at, idx)));
            }
        }
    }

    /// Sleeps to the next timer (at most a tick) and returns the poll's timeout, so that the
    /// poll harvests readiness without blocking: the server's echoes then never have to wake this thread, which halves the
    /// cross-core wake-ups a frame costs both programs (on this 2-vCPU machine a
    /// cross-core wake-up costs tens of microseconds). A timer closer than SPIN is waited
    /// for by polling again rather than sleeping: with a thousand calls one is due every
    /// 20 us, and a sleep costs more than it saves. With fewer than 20 calls nothing is
    /// due for a tick or more: then the wait is in the poll itself, so an echo wakes
    /// this thread and its round trip is read when it lands, not a tick later (mio's
    /// timeouts are whole milliseconds, so a shorter wait cannot be a poll's).
    fn wait(&self) -> Duration {
        let wait = self
            .timers
            .peek()
            .map_or(TICK, |Reverse((at, _))| {
                at.saturating_duration_since(Instant::now())
            })
            .min(TICK);
        if wait >= TICK {
            TICK
        } else {
            if wait > SPIN {
                std::thread::sleep(wait);
            }
            Duration::ZERO
        }
    }

    /// Reads what every ready socket brings, and ends the calls that are done.
    fn read_ready(&mut self, events: &Events, on_done: &mut impl FnMut(Outcome)) {
        for event in events.iter() {
            let idx = event.token().0;
            let Some(leg) = self.legs.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            if event.is_writable() {
                let _ = leg.ws.flush();
            }
            if event.is_read_closed() || event.is_error() {
                // The end of the stream may have come with the last data: a short read then
                // does not mean there is nothing more to learn.
                leg.ws.get_mut().ending = true;
            }
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                let before = leg.out.frames();
                leg.on_readable();
                self.counters.add_frames(before, leg.out.frames());
            }
            if leg.finished() {
                self.finish(idx, on_done);
            }
        }
    }

    /// Starts streaming the plans the dialers have sent; says whether they have all hung up.
    fn admit(&mut self, plans: &mpsc::Receiver<Plan>, on_done: &mut impl FnMut(Outcome)) -> bool {
        loop {
            match plans.try_recv() {
                Ok(plan) => self.start(plan, on_done),
                Err(mpsc::TryRecvError::Empty) => return false,
                Err(mpsc::TryRecvError::Disconnected) => return true,
            }
        }
    }

    /// Ends call `idx`: out of the poll, its outcome handed on, its slot free again.
    fn finish(&mut self, idx: usize, on_done: &mut impl FnMut(Outcome)) {
        if let Some(mut leg) = self.legs[idx].take() {
            let fd = super::setup::tcp(&leg.ws.get_ref().socket).as_raw_fd();
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
            let before = leg.out.frames();
            leg.out.lost += leg.inflight.len() as u64;
            self.counters.add_frames(before, leg.out.frames());
            leg.out.streamed = leg.t0.elapsed();
            on_done(leg.out);
            self.free.push(idx);
            self.live -= 1;
        }
    }

    /// Registers a dialed call with the poll and schedules its first frame.
    fn start(&mut self, plan: Plan, on_done: &mut impl FnMut(Outcome)) {
        let idx = self.free.pop().unwrap_or_else(|| {
            self.legs.push(None);
            self.legs.len() - 1
        });
        let fd = super::setup::tcp(plan.dialed.ws.get_ref()).as_raw_fd();
        if let Err(e) = super::setup::tcp(plan.dialed.ws.get_ref())
            .set_nonblocking(true)
            .and_then(|()| {
                self.poll.registry().register(
                    &mut SourceFd(&fd),
                    Token(idx),
                    Interest::READABLE | Interest::WRITABLE,
                )
            })
        {
            on_done(Outcome {
                id: Some(plan.dialed.id.clone()),
                error: Some(format!("cannot stream: {e}")),
                ..Outcome::default()
            });
            self.free.push(idx);
            return;
        }
        let tone = Arc::clone(
            &self.tones[AudioFormat::ALL
                .iter()
                .position(|f| *f == plan.dialed.format)
                .unwrap_or(1)],
        );
        let leg = Leg::new(plan, tone, self.epoch);
        self.timers.push(Reverse((leg.wake_at, idx)));
        self.legs[idx] = Some(leg);
        self.live += 1;
    }
}

impl Leg {
    fn new(plan: Plan, tone: Arc<Vec<Bytes>>, epoch: Instant) -> Leg {
        let t0 = Instant::now() + plan.phase;
        let mut texts = VecDeque::new();
        texts.push_back(plan.dialed.connected.clone());
        let (id, format) = (plan.dialed.id.clone(), plan.dialed.format);
        // Nothing is buffered past the handshake: the server speaks only when spoken to.
        let probe = Probe {
            socket: plan.dialed.ws.into_inner(),
            drained: false,
            ending: false,
        };
        let config = websocket_config(DEFAULT_MAX_MESSAGE_BYTES);
        Leg {
            epoch,
            ws: WebSocket::from_raw_socket(probe, Role::Client, Some(config)),
            format,
            t0,
            frames: plan.frames,
            next: 0,
            schedule: plan.schedule,
            tone,
            inflight: VecDeque::new(),
            texts,
            phase: Phase::Streaming,
            wake_at: t0,
            done: false,
            out: Outcome {
                id: Some(id),
                ..Outcome::default()
            },
        }
    }

    fn finished(&self) -> bool {
        self.done
    }

    /// Ends the leg on the spot: the connection is dropped, as a failed call leg is.
    fn fail(&mut self, error: String) {
        if self.out.error.is_none() {
            self.out.error = Some(error);
        }
        self.done = true;
    }

    /// Frame `k` of a 440 Hz tone, its first four bytes carrying its number, so that a
    /// dropped or reordered frame can never match its neighbour.
    fn frame(&self, k: u64) -> Bytes {
        let mut frame = self.tone[(k % 5) as usize].to_vec();
        frame[..4].copy_from_slice(&(k as u32).to_le_bytes());
        Bytes::from(frame)
    }

    /// When frame `k` leaves: at its send tick, t0 + 20 ms a tick, from the monotonic
    /// clock, so pacing never drifts. Asked in frame order, as the schedule wants.
    fn due(&mut self, k: u64) -> Instant {
        self.t0 + FRAME_DURATION * self.schedule.send_tick(k) as u32
    }

    fn on_timer(&mut self, now: Instant) {
        match self.phase {
            Phase::Streaming => self.stream(now),
            Phase::Draining => self.close(),
            Phase::Closing => self.fail("the server did not answer the close frame".into()),
        }
    }

    /// Sends every frame that is due. A frame is late against when it was scheduled to
    /// leave, so a burst's early frames are not counted late.
    fn stream(&mut self, now: Instant) {
        while self.next < self.frames {
            let due = self.due(self.next);
            if due > now {
                break;
            }
            let frame = self.frame(self.next);
            let sent_at = Instant::now();
            let late = sent_at.saturating_duration_since(due);
            if late >= LATE {
                self.out.late += 1;
            }
            self.out.max_late = self.out.max_late.max(late);
            self.inflight.push_back((sent_at, frame.clone()));
            if let Err(e) = self.send(Message::Binary(frame)) {
                return self.fail(format!("sending frame {}: {e}", self.next));
            }
            self.next += 1;
            self.out.sent += 1;
        }
        if self.next < self.frames {
            self.wake_at = self.due(self.next);
        } else {
            let deadline = now + DRAIN;
            self.phase = Phase::Draining;
            self.wake_at = deadline;
            self.maybe_close();
        }
    }

    /// Writes a message; a full socket buffer is not an error (it drains when writable).
    fn send(&mut self, message: Message) -> Result<(), WsError> {
        match self.ws.send(message) {
            Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => Ok(()),
            other => other,
        }
    }

    fn maybe_close(&mut self) {
        if matches!(self.phase, Phase::Draining)
            && self.inflight.is_empty()
            && self.texts.is_empty()
        {
            self.close();
        }
    }

    /// Starts the closing handshake with 1000, as Vonage ends a call.
    fn close(&mut self) {
        let deadline = Instant::now() + DRAIN;
        self.phase = Phase::Closing;
        self.wake_at = deadline;
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        match self.ws.close(Some(frame)) {
            Ok(()) => {}
            Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => self.fail(format!("closing: {e}")),
        }
    }

    fn on_readable(&mut self) {
        loop {
            match self.ws.read() {
                Ok(Message::Binary(data)) => self.on_audio(data),
                // The echo of `websocket:connected`: the call may close once it is back.
                Ok(Message::Text(text)) => {
                    if self
                        .texts
                        .front()
                        .is_some_and(|t| t.as_str() == text.as_str())
                    {
                        self.texts.pop_front();
                    }
                }
                Ok(Message::Close(frame)) => {
                    self.out.server_close = Some(frame.map_or(1005, |f| u16::from(f.code)));
                }
                Ok(_) => {}
                Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => break,
                Err(WsError::ConnectionClosed) => {
                    if !matches!(self.phase, Phase::Closing) {
                        let why = match self.out.server_close {
                            Some(code) => format!("the server closed the call with {code}"),
                            None => "the server ended the call".into(),
                        };
                        self.fail(why);
                    }
                    self.done = true;
                    return;
                }
                Err(e) => return self.fail(format!("connection lost: {e}")),
            }
        }
        self.maybe_close();
    }

    fn on_audio(&mut self, data: Bytes) {
        let now = Instant::now();
        if data.len() != self.format.frame_bytes() {
            self.out.corrupted += 1;
            return;
        }
        match match_echo(&mut self.inflight, &data) {
            Echo::Back { lost, sent_at } => {
                self.out.lost += lost;
                let rtt = now.saturating_duration_since(sent_at);
                let left = sent_at.saturating_duration_since(self.epoch).as_millis();
                self.out.rtts.push((
                    u32::try_from(left).unwrap_or(u32::MAX),
                    u32::try_from(rtt.as_micros()).unwrap_or(u32::MAX),
                ));
                self.out.echoed += 1;
            }
            Echo::Corrupted => self.out.corrupted += 1,
        }
    }
}

/// What an echoed frame turned out to be.
pub(crate) enum Echo {
    /// A frame sent at `sent_at`, with `lost` frames before it that never came back.
    Back { lost: u64, sent_at: Instant },
    /// Not one of the frames in flight: the oldest of them is taken as corrupted.
    Corrupted,
}

/// Matches an echo against the frames in flight, oldest first, and takes what it settles
/// off the queue. Echoes come back in order: the first in flight should match; if a later
/// one does, the ones before it were lost.
pub(crate) fn match_echo(inflight: &mut VecDeque<(Instant, Bytes)>, echo: &[u8]) -> Echo {
    let matched = inflight
        .iter()
        .take(64)
        .position(|(_, sent)| sent.as_ref() == echo);
    let lost = matched.unwrap_or(0);
    inflight.drain(..lost);
    match (matched, inflight.pop_front()) {
        (Some(_), Some((sent_at, _))) => Echo::Back {
            lost: lost as u64,
            sent_at,
        },
        _ => Echo::Corrupted,
    }
}

/// How one call of a load was judged, in the few figures the load's report sums.
#[derive(Debug, Default)]
pub(crate) struct Judgement {
    /// Whether it broke no rule.
    pub(crate) passed: bool,
    /// Each rule it broke, with its first fault's words.
    pub(crate) broken: Vec<(String, String)>,
    /// Its turns' replies, in microseconds.
    pub(crate) replies: Vec<u64>,
    /// Its turns, answered or not.
    pub(crate) turns: u64,
    /// Its barge-ins' times to the application's clear, in microseconds.
    pub(crate) clears: Vec<u64>,
    /// Its barge-ins.
    pub(crate) barge_ins: u64,
}
