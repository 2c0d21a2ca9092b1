//! One call's socket, played as Vonage plays it. Every 20 ms tick of a monotonic clock the
//! caller's frames due by then go out (one a tick, or a burst of them, as the call's
//! `Arrival` says), and the playback buffer plays its next frame to the caller; between
//! ticks the application's messages are read and judged as they come:
//! audio of the wrong size ends the socket, audio is queued for playback (and compared
//! with what was sent, under `--expect echo`), `clear` and `notify` are answered.

use std::{
    collections::VecDeque,
    io::{self, ErrorKind},
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

use mio::{unix::SourceFd, Events, Interest, Poll, Token};

use serde_json::{json, Value};
use tungstenite::{
    protocol::{frame::coding::CloseCode, CloseFrame},
    Bytes, Error as WsError, Message,
};

use super::{
    arrival::{Arrival, Schedule},
    caller::{Caller, KEY_MS},
    engine::{match_echo, Echo},
    findings::{Check, Finding},
    playback::{Playback, Timing},
    progress::{self, Ticker},
    setup::Dialed,
    tape::Tape,
    turns::{is_speech, Timing as TurnTiming, Turns},
};
use crate::protocol::{audio::FRAME_DURATION, messages};

/// A frame that leaves this much after its tick counts as late, and a tick played this much
/// after it was due is late: the emulator's own miss.
const LATE: Duration = Duration::from_millis(5);

/// How long, under `--expect echo`, the caller waits for the last echoes before hanging up.
const DRAIN: Duration = Duration::from_secs(3);

/// How long the caller waits for the application to answer its close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// The most messages read in a row before the clock is looked at again: an application
/// that floods the socket does not hold back the caller's frames.
const READ_BATCH: usize = 64;

/// The most events of one kind kept for the scenario's expectations: an application that
/// sends a million commands does not grow the emulator without bound.
const MAX_OBSERVED: usize = 10_000;

/// What the call expects of the application's audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expect {
    /// The caller's audio and texts come back byte-identical and in order.
    #[default]
    Echo,
    /// Nothing about the audio's content; Vonage's rules only.
    Protocol,
}

/// When things happened, in ms from the socket's opening, for a scenario's expectations.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    /// Runs of ticks in which the caller heard speech: (first tick, tick after the last).
    pub(crate) speech: Vec<(u64, u64)>,
    /// When each `clear` arrived.
    pub(crate) clears: Vec<u64>,
    /// When each `notify` arrived.
    pub(crate) notifies: Vec<u64>,
}

/// What one socket saw.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) sent: u64,
    pub(crate) echoed: u64,
    pub(crate) lost: u64,
    pub(crate) corrupted: u64,
    pub(crate) late: u64,
    /// Ticks played 5 ms or more after they were due, and the worst of them.
    pub(crate) late_ticks: u64,
    pub(crate) max_tick_late: Duration,
    pub(crate) texts_sent: u64,
    pub(crate) texts_echoed: u64,
    /// Audio frames the application sent.
    pub(crate) received: u64,
    pub(crate) played: u64,
    pub(crate) dropped: u64,
    pub(crate) underruns: u64,
    /// Gaps at or right after late ticks, not counted as underruns.
    pub(crate) excused: u64,
    pub(crate) cleared: u64,
    /// Frames thrown away by clears, and still queued when the socket ended.
    pub(crate) thrown: u64,
    pub(crate) unplayed: u64,
    pub(crate) notified: u64,
    /// Round trips of echoed frames, in microseconds.
    pub(crate) rtts: Vec<u32>,
    /// The close code the application sent, if it sent one.
    pub(crate) app_close: Option<u16>,
    /// Whether the application closed the socket before the caller hung up.
    pub(crate) app_ended_first: bool,
    /// Whether the caller hung up (its audio ran out), which ends the call.
    pub(crate) caller_hung_up: bool,
    /// Whether Vonage ended the leg at its `limit`.
    pub(crate) limit_reached: bool,
    /// Whether Vonage dropped the connection for a frame of the wrong size.
    pub(crate) vonage_dropped: bool,
    /// When the application's close frame came, in ms from the socket's opening.
    pub(crate) app_closed_at: Option<u64>,
    /// Whether it came before the caller had said anything (see `Session::caller_has_spoken`).
    pub(crate) closed_before_caller_spoke: bool,
}

enum State {
    Streaming,
    /// Every frame sent; waiting for the last echoes.
    Draining {
        until: Instant,
    },
    /// The caller has hung up; waiting for the application's close frame.
    Closing {
        until: Instant,
    },
    Done,
}

/// Texts from the application that are not commands Vonage knows.
#[derive(Default)]
struct Strays {
    count: u64,
    first: Option<String>,
}

/// The socket of a call in progress.
pub(crate) struct Session {
    dialed: Dialed,
    expect: Expect,
    opened: Instant,
    caller: Caller,
    /// When each of the caller's frames goes out.
    schedule: Schedule,
    /// The caller's next frame to send.
    next_frame: u64,
    /// How many frames have been sent once the caller's first run of speech has ended;
    /// `None` for a caller who never speaks.
    first_speech_end: Option<u64>,
    keys_pressed: bool,
    tick: u64,
    state: State,
    playback: Playback,
    tape: Option<Tape>,
    inflight: VecDeque<(Instant, Bytes)>,
    texts: VecDeque<String>,
    tally: Tally,
    observed: Observed,
    findings: Vec<Finding>,
    strays: Strays,
    /// The caller's turns, and the application's answers to them, timed.
    turns: Turns,
    /// When the next progress line is due, if progress is shown.
    progress: Option<Ticker>,
    /// The socket is non-blocking and waited on here: a socket's read timeout is counted
    /// in the kernel's ticks (4 ms at 250 Hz), too coarse to pace 20 ms frames. `None`
    /// when a load's poll loop waits on it with many others (see [`Session::driven`]).
    poll: Option<Poll>,
    events: Events,
    /// Whether the socket may hold more than was read: read again before waiting.
    more: bool,
}

/// What a session leaves: its counts, what it observed, and what it found.
pub(crate) struct Played {
    pub(crate) tally: Tally,
    pub(crate) observed: Observed,
    pub(crate) findings: Vec<Finding>,
    /// The caller's turns and barge-ins, timed.
    pub(crate) timing: TurnTiming,
}

impl Session {
    /// A session on `dialed`'s socket, opened just now.
    pub(crate) fn new(
        dialed: Dialed,
        caller: Caller,
        arrival: Arrival,
        expect: Expect,
        buffer_frames: usize,
        tape: Option<Tape>,
    ) -> io::Result<Session> {
        let poll = Poll::new()?;
        let socket = super::setup::tcp(dialed.ws.get_ref());
        socket.set_nonblocking(true)?;
        poll.registry().register(
            &mut SourceFd(&socket.as_raw_fd()),
            Token(0),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        // One call: the stream of the seed's first call, as a load's first call plays it.
        let schedule = Schedule::new(arrival, 0, caller.frames.len() as u64);
        Ok(Session::build(
            dialed,
            caller,
            schedule,
            expect,
            buffer_frames,
            tape,
            Some(poll),
        ))
    }

    /// A session of a load's, which its poll loop drives: it waits on the socket (already
    /// non-blocking) and calls [`Session::on_wake`] at [`Session::wake_at`] and
    /// [`Session::on_readable`] when the socket is readable.
    pub(crate) fn driven(
        dialed: Dialed,
        caller: Caller,
        schedule: Schedule,
        expect: Expect,
        buffer_frames: usize,
    ) -> Session {
        Session::build(dialed, caller, schedule, expect, buffer_frames, None, None)
    }

    fn build(
        dialed: Dialed,
        caller: Caller,
        schedule: Schedule,
        expect: Expect,
        buffer_frames: usize,
        tape: Option<Tape>,
        poll: Option<Poll>,
    ) -> Session {
        let mut texts = VecDeque::new();
        if expect == Expect::Echo {
            texts.push_back(dialed.connected.clone());
        }
        // The first tick is now: the socket opened a moment ago, and what the caller says
        // starts with the session.
        let opened = Instant::now();
        Session {
            opened,
            turns: Turns::new(opened, caller.turns.clone()),
            progress: None,
            dialed,
            expect,
            schedule,
            next_frame: 0,
            first_speech_end: end_of_first_speech(&caller.frames),
            keys_pressed: false,
            caller,
            tick: 0,
            state: State::Streaming,
            playback: Playback::new(buffer_frames),
            tape,
            inflight: VecDeque::new(),
            texts,
            tally: Tally {
                texts_sent: 1,
                ..Tally::default()
            },
            observed: Observed::default(),
            findings: Vec::new(),
            strays: Strays::default(),
            poll,
            events: Events::with_capacity(4),
            // What arrived with the handshake may already be buffered.
            more: true,
        }
    }

    /// When the session must next be woken: its next tick, its `limit`, or the end of its
    /// wait for the close.
    pub(crate) fn wake_at(&self) -> Instant {
        self.next_deadline()
    }

    /// Plays what is due (a driven session's timer).
    pub(crate) fn on_wake(&mut self) {
        self.run_due_ticks();
    }

    /// Reads and judges what the socket holds, a batch at a time (a driven session's
    /// readiness); [`Session::wants_read`] says whether more may be left.
    pub(crate) fn on_readable(&mut self) {
        self.more = true;
        self.read_until(Instant::now() + Duration::from_millis(1));
    }

    /// Whether the socket may hold more than was read.
    pub(crate) fn wants_read(&self) -> bool {
        self.more && !self.is_done()
    }

    /// Whether the socket has ended.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The call's socket, for its loop to forget it by.
    pub(crate) fn socket(&self) -> &tungstenite::stream::MaybeTlsStream<std::net::TcpStream> {
        self.dialed.ws.get_ref()
    }

    /// What the session saw, once it is done.
    pub(crate) fn end(self) -> Played {
        self.finish()
    }

    /// Prints a progress line each second once the call has gone on a few seconds.
    pub(crate) fn with_progress(mut self, shown: bool) -> Session {
        self.progress = shown.then(|| Ticker::new(progress::CALL_QUIET));
        self
    }

    /// Plays the call to its end: the caller hangs up, or the application ends the socket.
    pub(crate) fn run(mut self) -> Played {
        while !matches!(self.state, State::Done) {
            self.run_due_ticks();
            if matches!(self.state, State::Done) {
                break;
            }
            self.read_until(self.next_deadline());
            self.show_progress();
        }
        self.finish()
    }

    /// A progress line, when one is due: the call's time, its frames, its turns.
    fn show_progress(&mut self) {
        let Some(ticker) = &mut self.progress else {
            return;
        };
        if !ticker.due(Instant::now()) {
            return;
        }
        let (turns, latest, barge_ins) = self.turns.so_far();
        let reply = latest.map_or("-".to_owned(), |d| format!("{:.1} ms", super::stats::ms(d)));
        progress::print(&format!(
            "call {:>4.0} s: {} frames sent, {} played to the caller, {} ticks late; {turns} turns, latest reply {reply}, {barge_ins} barge-ins",
            self.opened.elapsed().as_secs_f64(),
            self.tally.sent,
            self.playback.played,
            self.tally.late_ticks,
        ));
    }

    /// When tick `k` falls: k x 20 ms after the socket opened, so pacing never drifts.
    fn tick_at(&self, k: u64) -> Instant {
        self.opened + FRAME_DURATION * k as u32
    }

    fn now_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    fn next_deadline(&self) -> Instant {
        match self.state {
            State::Closing { until } => until,
            _ => self.tick_at(self.tick).min(self.dialed.ends_at),
        }
    }

    /// Runs every tick that is due, catching up if the emulator fell behind.
    fn run_due_ticks(&mut self) {
        let now = Instant::now();
        if now >= self.dialed.ends_at
            && matches!(self.state, State::Streaming | State::Draining { .. })
        {
            // The connect action's limit: Vonage ends the leg, whatever is going on.
            self.tally.limit_reached = true;
            self.hang_up();
        }
        if let State::Closing { until } = self.state {
            if now >= until {
                let why = if self.tally.app_ended_first {
                    "the application sent a close frame but did not end the connection"
                } else {
                    "the application did not answer the caller's close frame"
                };
                self.findings.push(Finding::fault(
                    Check::Socket,
                    format!("{why} within {CLOSE_WAIT:?}"),
                ));
                self.state = State::Done;
            }
            return;
        }
        while matches!(self.state, State::Streaming | State::Draining { .. })
            && self.tick_at(self.tick) <= now
        {
            // Behind by more than a tick: what the application sent meanwhile is read
            // first, or its late-read frames would look like gaps in playback.
            if self.tick_at(self.tick + 1) <= now {
                self.more = true;
                self.read_until(Instant::now() + Duration::from_millis(2));
            }
            if matches!(self.state, State::Streaming | State::Draining { .. }) {
                self.on_tick(now);
            }
        }
    }

    /// One tick: the caller's keys and frames, then what the caller hears.
    fn on_tick(&mut self, now: Instant) {
        let k = self.tick;
        self.tick += 1;
        let timing = self.tick_timing(k);
        let said = self.caller_speaks(k, now);
        let heard = self.playback.tick(timing);
        let speech = heard.as_ref().is_some_and(|f| is_speech(f));
        if speech {
            note_speech(&mut self.observed.speech, k);
        }
        self.turns.heard(self.tick_at(k), speech);
        for payload in self.playback.due_notifies() {
            self.send_notify(payload);
        }
        if let Some(tape) = &mut self.tape {
            if let Err(e) = tape.tick(said.as_deref(), heard.as_deref()) {
                self.findings
                    .push(Finding::fault(Check::Socket, format!("recording: {e}")));
                self.tape = None;
            }
        }
        self.after_caller(now);
    }

    /// Whether tick `k`, played now, is late: the emulator fell behind its clock (counted,
    /// with the worst lateness, for the report). Timed afresh: a tick caught up after
    /// reading is later than the turn that began the catching up.
    fn tick_timing(&mut self, k: u64) -> Timing {
        let behind = Instant::now().saturating_duration_since(self.tick_at(k));
        if behind < LATE {
            return Timing::OnTime;
        }
        self.tally.late_ticks += 1;
        self.tally.max_tick_late = self.tally.max_tick_late.max(behind);
        Timing::Late
    }

    /// Sends the caller's keys and frames due at tick `k`; returns what the caller says at
    /// `k` (its frame, whenever the arrival sends it), for the recording.
    fn caller_speaks(&mut self, k: u64, now: Instant) -> Option<Bytes> {
        if !matches!(self.state, State::Streaming) {
            return None;
        }
        self.press_due_keys(k);
        self.send_due_frames(k, now);
        self.caller.frames.get(k as usize).cloned()
    }

    fn press_due_keys(&mut self, k: u64) {
        while let Some(&(at, key)) = self.caller.keys.first() {
            if at > k {
                break;
            }
            self.caller.keys.remove(0);
            self.keys_pressed = true;
            let queued = self.playback.queued_now() > 0;
            self.turns.key_pressed(at, Instant::now(), queued);
            let text = messages::dtmf(key, KEY_MS);
            if self.expect == Expect::Echo {
                self.texts.push_back(text.clone());
            }
            self.tally.texts_sent += 1;
            self.send(Message::text(text), "a key press");
        }
    }

    /// Sends every frame whose send tick has come. A frame is late against when it was
    /// scheduled to be sent, so a burst's early frames are not counted late.
    fn send_due_frames(&mut self, k: u64, now: Instant) {
        while matches!(self.state, State::Streaming) {
            let Some(frame) = self.caller.frames.get(self.next_frame as usize).cloned() else {
                return;
            };
            let send_tick = self.schedule.send_tick(self.next_frame);
            if send_tick > k {
                return;
            }
            if now.saturating_duration_since(self.tick_at(send_tick)) >= LATE {
                self.tally.late += 1;
            }
            if self.expect == Expect::Echo {
                self.inflight.push_back((Instant::now(), frame.clone()));
            }
            self.next_frame += 1;
            self.tally.sent += 1;
            self.send(Message::Binary(frame), "audio");
            let queued = self.playback.queued_now() > 0;
            self.turns
                .frame_left(self.next_frame - 1, Instant::now(), queued);
        }
    }

    /// Whether the caller has said anything yet: its first turn has ended, with a key
    /// pressed or its first run of speech sent to the end. A silent caller never has.
    fn caller_has_spoken(&self) -> bool {
        self.keys_pressed
            || self
                .first_speech_end
                .is_some_and(|end| self.next_frame >= end)
    }

    /// After the caller's last frame: under `--expect echo` wait for the echoes, then hang up.
    fn after_caller(&mut self, now: Instant) {
        let done_speaking = self.next_frame as usize >= self.caller.frames.len();
        match self.state {
            State::Streaming if done_speaking => match self.expect {
                Expect::Echo => self.state = State::Draining { until: now + DRAIN },
                Expect::Protocol => {
                    self.tally.caller_hung_up = true;
                    self.hang_up();
                }
            },
            State::Draining { until }
                if now >= until || (self.inflight.is_empty() && self.texts.is_empty()) =>
            {
                self.tally.caller_hung_up = true;
                self.hang_up();
            }
            _ => {}
        }
    }

    /// The caller hangs up: Vonage closes the socket with 1000.
    fn hang_up(&mut self) {
        self.state = State::Closing {
            until: Instant::now() + CLOSE_WAIT,
        };
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        if let Err(e) = self.dialed.ws.close(Some(frame)) {
            if !is_timeout(&e) {
                self.state = State::Done;
            }
        }
    }

    /// Sends a message; a failure ends the socket, with a fault that says what was lost.
    fn send(&mut self, message: Message, what: &str) {
        if matches!(self.state, State::Done | State::Closing { .. }) {
            return;
        }
        // A full socket buffer keeps the message in tungstenite's, to go when it drains.
        if let Err(e) = self.dialed.ws.send(message).or_else(|e| match e {
            e if is_timeout(&e) => Ok(()),
            e => Err(e),
        }) {
            let why = match &e {
                WsError::WriteBufferFull(_) => {
                    "the application stopped reading, and what Vonage sends it piled up".to_owned()
                }
                other => other.to_string(),
            };
            self.findings.push(Finding::fault(
                Check::Socket,
                format!("sending {what} at {} ms: {why}", self.now_ms()),
            ));
            self.state = State::Done;
        }
    }

    fn send_notify(&mut self, payload: Value) {
        if matches!(self.state, State::Closing { .. } | State::Done) {
            return;
        }
        self.tally.notified += 1;
        let event = json!({"event": "websocket:notify", "payload": payload}).to_string();
        self.send(Message::text(event), "websocket:notify");
    }

    /// Waits for the application's messages until `deadline`, and reads and judges them.
    fn read_until(&mut self, deadline: Instant) {
        if !self.more {
            let Some(poll) = &mut self.poll else {
                // Driven: the load's loop waits, and calls again when there is something.
                return;
            };
            let wait = deadline.saturating_duration_since(Instant::now());
            match poll.poll(&mut self.events, Some(wait)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return self.on_broken(&WsError::Io(e)),
            }
            if self.events.is_empty() {
                return;
            }
        }
        // Readiness is edge-triggered: read until the socket is empty, unless the clock
        // calls first.
        self.more = false;
        for _ in 0..READ_BATCH {
            if matches!(self.state, State::Done) {
                return;
            }
            match self.dialed.ws.read() {
                Ok(Message::Binary(frame)) => self.on_audio(frame),
                Ok(Message::Text(text)) => self.on_text(text.as_str()),
                Ok(Message::Close(frame)) => {
                    self.on_close(frame.map_or(1005, |f| u16::from(f.code)))
                }
                Ok(_) => {}
                Err(e) if is_timeout(&e) => return self.flush(),
                Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => {
                    self.state = State::Done;
                    return;
                }
                Err(e) => return self.on_broken(&e),
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        self.more = true;
        self.flush();
    }

    /// Writes what a full socket buffer held back.
    fn flush(&mut self) {
        match self.dialed.ws.flush() {
            Err(e) if !is_timeout(&e) && !matches!(self.state, State::Done) => {
                self.findings.push(Finding::fault(
                    Check::Socket,
                    format!("writing at {} ms: {e}", self.now_ms()),
                ));
                self.state = State::Done;
            }
            _ => {}
        }
    }

    fn on_audio(&mut self, frame: Bytes) {
        if matches!(self.state, State::Closing { .. }) {
            return;
        }
        self.tally.received += 1;
        let size = self.dialed.format.frame_bytes();
        if frame.len() != size {
            self.findings.push(Finding::fault(
                Check::FrameSize,
                format!(
                    "audio message {} from the application is {} bytes, but a 20 ms frame of {} is {size}: \
                     Vonage stops listening and drops the connection",
                    self.tally.received,
                    frame.len(),
                    self.dialed.format.content_type()
                ),
            ));
            self.drop_connection();
            return;
        }
        if self.expect == Expect::Echo {
            self.count_echo(&frame);
        }
        let speech = is_speech(&frame);
        let busy = self.playback.is_playing() || self.playback.queued_now() > 0;
        if self.playback.push(frame) {
            let now = Instant::now();
            let heard_at = now + self.wait_to_be_heard(now);
            self.turns.audio(speech, busy, now, heard_at);
        }
    }

    /// How long the frame just queued waits before the caller hears it: the rest of the
    /// frame playing, and a frame's time for each queued ahead of it.
    fn wait_to_be_heard(&self, now: Instant) -> Duration {
        let playing = if self.playback.is_playing() {
            self.tick_at(self.tick).saturating_duration_since(now)
        } else {
            Duration::ZERO
        };
        let ahead = self.playback.queued_now().saturating_sub(1) as u32;
        playing + FRAME_DURATION * ahead
    }

    /// Vonage's answer to a frame of the wrong size: no close frame, the connection is gone.
    fn drop_connection(&mut self) {
        self.tally.vonage_dropped = true;
        let _ = super::setup::tcp(self.dialed.ws.get_ref()).shutdown(std::net::Shutdown::Both);
        self.state = State::Done;
    }

    /// Counts the echo of one of the caller's frames (`--expect echo`).
    fn count_echo(&mut self, frame: &Bytes) {
        match match_echo(&mut self.inflight, frame) {
            Echo::Back { lost, sent_at } => {
                self.tally.lost += lost;
                let rtt = sent_at.elapsed().as_micros();
                self.tally.rtts.push(u32::try_from(rtt).unwrap_or(u32::MAX));
                self.tally.echoed += 1;
            }
            Echo::Corrupted => self.tally.corrupted += 1,
        }
    }

    fn on_text(&mut self, text: &str) {
        if self.expect == Expect::Echo && self.texts.front().is_some_and(|t| t == text) {
            self.texts.pop_front();
            self.tally.texts_echoed += 1;
            return;
        }
        // Once the caller has hung up, nothing plays and nothing is answered.
        if matches!(self.state, State::Closing { .. } | State::Done) {
            return;
        }
        let command = serde_json::from_str::<Value>(text).ok();
        let action = command
            .as_ref()
            .and_then(|c| c.get("action"))
            .and_then(Value::as_str);
        let at = self.now_ms();
        match action {
            Some("clear") => {
                self.playback.clear();
                self.turns.cleared(Instant::now());
                keep(&mut self.observed.clears, at);
                self.send(
                    Message::text(r#"{"event":"websocket:cleared"}"#),
                    "websocket:cleared",
                );
                for payload in self.playback.due_notifies() {
                    self.send_notify(payload);
                }
            }
            Some("notify") => {
                let payload = command
                    .as_ref()
                    .and_then(|c| c.get("payload"))
                    .cloned()
                    .unwrap_or(Value::Null);
                keep(&mut self.observed.notifies, at);
                self.playback.notify(payload);
                for payload in self.playback.due_notifies() {
                    self.send_notify(payload);
                }
            }
            _ => {
                self.strays.count += 1;
                self.strays
                    .first
                    .get_or_insert_with(|| crate::text::cut(text, 120).to_owned());
            }
        }
    }

    fn on_close(&mut self, code: u16) {
        self.tally.app_close = Some(code);
        if !matches!(self.state, State::Closing { .. }) {
            self.tally.app_ended_first = true;
            self.tally.app_closed_at = Some(self.now_ms());
            self.tally.closed_before_caller_spoke = !self.caller_has_spoken();
            // tungstenite answers the close frame on the next read or write.
            self.state = State::Closing {
                until: Instant::now() + CLOSE_WAIT,
            };
        }
    }

    fn on_broken(&mut self, e: &WsError) {
        let when = if matches!(self.state, State::Closing { .. }) {
            "while closing"
        } else {
            "mid-call"
        };
        self.findings.push(Finding::fault(
            Check::Socket,
            format!("the connection broke {when}, at {} ms: {e}", self.now_ms()),
        ));
        self.state = State::Done;
    }

    /// The findings that can only be made once the socket has ended.
    fn finish(mut self) -> Played {
        self.tally.lost += self.inflight.len() as u64;
        self.tally.played = self.playback.played;
        self.tally.dropped = self.playback.dropped;
        self.tally.underruns = self.playback.underruns;
        self.tally.excused = self.playback.excused;
        self.tally.cleared = self.playback.cleared;
        self.tally.thrown = self.playback.thrown;
        self.tally.unplayed = self.playback.queued_now() as u64;
        self.judge_playback();
        self.judge_strays();
        if self.expect == Expect::Echo {
            self.judge_echo();
        }
        if let Some(tape) = self.tape.take() {
            if let Err(e) = tape.finish() {
                self.findings
                    .push(Finding::fault(Check::Socket, format!("recording: {e}")));
            }
        }
        Played {
            tally: self.tally,
            observed: self.observed,
            findings: self.findings,
            timing: self.turns.finish(Instant::now()),
        }
    }

    fn judge_playback(&mut self) {
        let t = &self.tally;
        if t.dropped > 0 {
            let capacity = self.playback.capacity();
            self.findings.push(Finding::fault(
                Check::Playback,
                format!(
                    "{} of {} frames from the application did not fit Vonage's playback buffer of {capacity} frames \
                     ({:.1} s) and were dropped: send audio at about one frame per 20 ms, not all at once",
                    t.dropped,
                    t.received,
                    capacity as f64 * 0.02
                ),
            ));
        }
        if t.underruns > 0 {
            self.findings.push(Finding::warning(
                Check::Playback,
                format!(
                    "{} gaps mid-prompt: a frame arrived after its turn to play, and the caller heard silence; \
                     pace from a monotonic clock, a little ahead of real time",
                    t.underruns
                ),
            ));
        }
        if self.playback.ignored_notifies > 0 {
            self.findings.push(Finding::warning(
                Check::Commands,
                format!(
                    "{} notify command(s) ignored: more than {} were waiting for their audio at once",
                    self.playback.ignored_notifies,
                    super::playback::MAX_PENDING_NOTIFIES
                ),
            ));
        }
        let pending = self.playback.pending_notifies();
        if pending > 0 {
            self.findings.push(Finding::warning(
                Check::Commands,
                format!("{pending} notify command(s) still waiting for their audio to play when the call ended"),
            ));
        }
    }

    fn judge_strays(&mut self) {
        if let Some(first) = &self.strays.first {
            self.findings.push(Finding::warning(
                Check::Commands,
                format!(
                    "{} text message(s) from the application are not a command Vonage knows \
                     ({{\"action\":\"clear\"}} or {{\"action\":\"notify\",...}}); Vonage ignores them. The first: {first:?}",
                    self.strays.count
                ),
            ));
        }
    }

    fn judge_echo(&mut self) {
        let t = &self.tally;
        if t.lost > 0 || t.corrupted > 0 || t.echoed != t.sent {
            self.findings.push(Finding::fault(
                Check::Echo,
                format!(
                    "{} of {} frames came back as sent ({} lost, {} different)",
                    t.echoed, t.sent, t.lost, t.corrupted
                ),
            ));
        }
        if t.texts_echoed != t.texts_sent {
            self.findings.push(Finding::fault(
                Check::Echo,
                format!(
                    "{} of {} texts came back as sent",
                    t.texts_echoed, t.texts_sent
                ),
            ));
        }
    }
}

/// Whether the socket's error is only its timeout running out.
fn is_timeout(e: &WsError) -> bool {
    matches!(e, WsError::Io(io) if crate::error::is_timeout(io))
}

/// How many of `frames` have been sent once their first run of speech has ended.
fn end_of_first_speech(frames: &[Bytes]) -> Option<u64> {
    let start = frames.iter().position(|f| is_speech(f))?;
    let run = frames[start..].iter().take_while(|f| is_speech(f)).count();
    Some((start + run) as u64)
}

/// Adds tick `k` to the runs of speech.
fn note_speech(runs: &mut Vec<(u64, u64)>, k: u64) {
    if let Some((_, end)) = runs.last_mut().filter(|(_, end)| *end == k) {
        *end = k + 1;
    } else if runs.len() < MAX_OBSERVED {
        runs.push((k, k + 1));
    }
}

fn keep(events: &mut Vec<u64>, at: u64) {
    if events.len() < MAX_OBSERVED {
        events.push(at);
    }
}
