//! A load's calls judged as `call` judges one: each call's socket is a `Session` (the
//! caller's audio and keys, the playback buffer, every rule, turn timing), and one `mio`
//! poll loop drives them all, so a load of voice-bot calls needs no thread per call. The
//! echo-only streaming of `engine` stays as it is, lean, for measuring an echo server.
//!
//! # What judging costs
//!
//! Against this project's echo server as the application that keeps up (release build,
//! server on core 0, generator on core 1, 500 calls of 20 s, 500,000 frames, three runs
//! each; generator CPU from `/usr/bin/time`): echo-only `load` took 16.9 s of CPU (16.7 to
//! 17.4), 34 µs a frame, with 0.74 % of frames late (0.57 to 0.98); judged with a scenario
//! of ten turns, 13.2 s (12.7 to 13.9), 26 µs a frame, 0.57 % late (0.39 to 7.2, the last
//! on a busy moment of the shared machine): judging costs no more than echo checking. At
//! 2,000 calls that machine's generator core is saturated either way (93 % of frames late,
//! echo-only too): 2,000 calls on one core with under 1 % of frames late was not reached
//! there.
//!
//! ```sh
//! taskset -c 0 ./target/release/vonage-echo --max-calls 3000 --max-pending-handshakes 3000 &
//! taskset -c 1 ./target/release/vonage-echo load --answer-url http://127.0.0.1:3000/webhooks/answer \
//!   --talk-rate 0 --calls 500 --ramp 200 --duration 20 --json                       # echo-only
//! taskset -c 1 ./target/release/vonage-echo load --answer-url http://127.0.0.1:3000/webhooks/answer \
//!   --talk-rate 0 --calls 500 --ramp 200 --expect protocol --script turns.scenario --json  # judged
//! ```
//!
//! where `turns.scenario` is `tone 1s` and `silence 1s`, ten times.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap, HashMap},
    io::{self, ErrorKind},
    os::fd::AsRawFd,
    sync::mpsc,
    time::{Duration, Instant},
};

use mio::{unix::SourceFd, Events, Interest, Poll, Token};

use super::{
    arrival::Schedule,
    call::{caller_of, CallOptions},
    caller::Caller,
    engine::{Judgement, Outcome, Plan},
    histogram::Histogram,
    session::Session,
    stats::Percentiles,
};
use crate::protocol::{audio::AudioFormat, call_id::CallId};

/// The longest the loop sleeps before it looks for new calls again.
const TICK: Duration = Duration::from_millis(1);

/// The most reply and barge-in times kept of one call: its caller's turns are bounded by
/// its script, but a load should not keep a long WAV's every pause.
const MAX_TIMES: usize = 1_000;

/// A call streaming, and when its loop entry is due.
struct Streaming {
    session: Session,
    id: CallId,
    caller: Caller,
    started: Instant,
    /// The wake time its timer entry was queued with; other entries for it are stale.
    queued_at: Instant,
}

/// Streams and judges every call the dialers hand over, until they are all done; each
/// ends in `on_done`.
pub(crate) fn run(
    plans: mpsc::Receiver<Plan>,
    options: &CallOptions,
    mut on_done: impl FnMut(Outcome),
) -> io::Result<()> {
    let mut judged = Loop {
        poll: Poll::new()?,
        calls: Vec::new(),
        free: Vec::new(),
        timers: BinaryHeap::new(),
        callers: HashMap::new(),
        admitted: 0,
        options,
    };
    let mut events = Events::with_capacity(1024);
    let mut open = true;
    loop {
        while open {
            match plans.try_recv() {
                Ok(plan) => judged.admit(plan, &mut on_done),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => open = false,
            }
        }
        if !open && judged.calls.iter().all(Option::is_none) {
            return Ok(());
        }
        judged.wake_due(&mut on_done);
        let wait = judged
            .timers
            .peek()
            .map_or(TICK, |Reverse((at, _))| {
                at.saturating_duration_since(Instant::now())
            })
            .min(if open { TICK } else { Duration::from_secs(1) });
        match judged.poll.poll(&mut events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        for event in &events {
            let idx = event.token().0;
            if let Some(call) = judged.calls.get_mut(idx).and_then(Option::as_mut) {
                call.session.on_readable();
            }
            judged.settle(idx, &mut on_done);
        }
    }
}

/// The judged load's poll loop: its calls by token, the tokens free for new ones, and
/// each call's next wake-up.
struct Loop<'a> {
    poll: Poll,
    calls: Vec<Option<Streaming>>,
    free: Vec<usize>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    callers: HashMap<AudioFormat, Caller>,
    /// Calls admitted so far: the arrival schedule's call number.
    admitted: u64,
    options: &'a CallOptions,
}

impl Loop<'_> {
    /// Takes a dialed call into the loop, or reports it failed when it cannot stream.
    fn admit(&mut self, plan: Plan, on_done: &mut impl FnMut(Outcome)) {
        let caller = match caller_for(&mut self.callers, self.options, plan.dialed.format) {
            Ok(caller) => caller,
            Err(e) => return on_done(failed(plan.dialed.id.clone(), e.to_string())),
        };
        let schedule = Schedule::new(
            self.options.arrival,
            self.admitted,
            caller.frames.len() as u64,
        );
        self.admitted += 1;
        let idx = self.free.pop().unwrap_or_else(|| {
            self.calls.push(None);
            self.calls.len() - 1
        });
        match start(&self.poll, idx, plan, caller, schedule, self.options) {
            Ok(call) => {
                self.timers.push(Reverse((call.queued_at, idx)));
                self.calls[idx] = Some(call);
            }
            Err((id, e)) => {
                self.free.push(idx);
                on_done(failed(id, format!("cannot stream: {e}")));
            }
        }
    }

    /// Wakes every call whose time has come.
    fn wake_due(&mut self, on_done: &mut impl FnMut(Outcome)) {
        let now = Instant::now();
        while let Some(&Reverse((at, idx))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if let Some(call) = self.calls[idx].as_mut().filter(|c| c.queued_at == at) {
                call.session.on_wake();
                while call.session.wants_read() {
                    call.session.on_readable();
                }
            }
            self.settle(idx, on_done);
        }
    }

    /// After a call was woken or read: ends it if its socket is done, else queues its next
    /// wake when it moved earlier or the last one was used.
    fn settle(&mut self, idx: usize, on_done: &mut impl FnMut(Outcome)) {
        let Some(call) = self.calls.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        if call.session.is_done() {
            let Some(call) = self.calls[idx].take() else {
                return;
            };
            let fd = super::setup::tcp(call.session.socket()).as_raw_fd();
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
            self.free.push(idx);
            on_done(judge(call, self.options));
            return;
        }
        let due = call.session.wake_at();
        if due != call.queued_at && (due < call.queued_at || call.queued_at <= Instant::now()) {
            call.queued_at = due;
            self.timers.push(Reverse((due, idx)));
        }
    }
}

/// The caller of the calls of `format`, made once (a script's WAV files are read once).
fn caller_for(
    callers: &mut HashMap<AudioFormat, Caller>,
    options: &CallOptions,
    format: AudioFormat,
) -> crate::error::Result<Caller> {
    if let Some(caller) = callers.get(&format) {
        return Ok(caller.clone());
    }
    let caller = caller_of(options, format)?;
    callers.insert(format, caller.clone());
    Ok(caller)
}

/// Registers the call's socket with the loop and starts its session.
fn start(
    poll: &Poll,
    idx: usize,
    plan: Plan,
    caller: Caller,
    schedule: Schedule,
    options: &CallOptions,
) -> Result<Streaming, (CallId, io::Error)> {
    let id = plan.dialed.id.clone();
    let socket = super::setup::tcp(plan.dialed.ws.get_ref());
    let fd = socket.as_raw_fd();
    socket
        .set_nonblocking(true)
        .and_then(|()| {
            poll.registry().register(
                &mut SourceFd(&fd),
                Token(idx),
                Interest::READABLE | Interest::WRITABLE,
            )
        })
        .map_err(|e| (id.clone(), e))?;
    let session = Session::driven(
        plan.dialed,
        caller.clone(),
        schedule,
        options.expect,
        options.buffer_frames,
    );
    Ok(Streaming {
        queued_at: session.wake_at(),
        session,
        id,
        caller,
        started: Instant::now(),
    })
}

/// A call that could not stream.
fn failed(id: CallId, error: String) -> Outcome {
    Outcome {
        id: Some(id),
        error: Some(error),
        ..Outcome::default()
    }
}

/// The call's outcome, judged as `call` judges it.
fn judge(call: Streaming, options: &CallOptions) -> Outcome {
    let streamed = call.started.elapsed();
    let played = call.session.end();
    let t = &played.tally;
    let (sent, late, max_late, server_close) = (t.sent, t.late, t.max_tick_late, t.app_close);
    let report = super::call::judge_streamed(
        call.id.clone(),
        options.expect,
        options.script.as_ref(),
        &call.caller,
        played,
    );
    let mut broken: Vec<(String, String)> = Vec::new();
    for fault in &report.faults {
        let rule = fault.check.to_string();
        if !broken.iter().any(|(r, _)| *r == rule) {
            broken.push((rule, fault.text.clone()));
        }
    }
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let judgement = Judgement {
        passed: report.passed(),
        broken,
        replies: report
            .turns
            .iter()
            .filter_map(|t| t.reply)
            .map(micros)
            .take(MAX_TIMES)
            .collect(),
        turns: report.turns.len() as u64,
        clears: report
            .barge_ins
            .iter()
            .filter_map(|b| b.clear)
            .map(micros)
            .take(MAX_TIMES)
            .collect(),
        barge_ins: report.barge_ins.len() as u64,
    };
    Outcome {
        id: Some(call.id),
        sent,
        late,
        max_late,
        server_close,
        streamed,
        judged: Some(Box::new(judgement)),
        ..Outcome::default()
    }
}

/// How a load's calls were judged, summed: per rule the calls that broke it, with one
/// example, and the application's times over every turn.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[non_exhaustive]
pub struct JudgedLoad {
    /// Calls judged (every call that streamed).
    pub calls: u64,
    /// Calls that broke no rule.
    pub passed: u64,
    /// Per rule broken: how many calls broke it, and one of their faults.
    pub rules: BTreeMap<String, RuleBreaches>,
    /// The caller's turns, over every call.
    pub turns: u64,
    /// Turns answered: the reply histogram's count.
    pub answered: u64,
    /// Barge-ins, over every call.
    pub barge_ins: u64,
    /// Reply latency over every answered turn, in ms.
    pub reply: Percentiles,
    /// Time to the application's clear over every barge-in that got one, in ms.
    pub barge_in_clear: Percentiles,
}

/// The calls that broke one rule.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[non_exhaustive]
pub struct RuleBreaches {
    /// How many.
    pub calls: u64,
    /// The first fault seen, as an example.
    pub example: String,
}

impl JudgedLoad {
    /// The share of calls judged that passed, in percent (100 with none judged).
    pub fn pass_rate(&self) -> f64 {
        if self.calls == 0 {
            return 100.0;
        }
        self.passed as f64 * 100.0 / self.calls as f64
    }
}

/// Sums the judgements of `outcomes` (those a judged load streamed), with the histograms of
/// reply and clear times; `None` when no call was judged.
pub(crate) fn sum(outcomes: &[Outcome]) -> Option<(JudgedLoad, Histogram, Histogram)> {
    let mut load = JudgedLoad::default();
    let (mut replies, mut clears) = (Histogram::new(), Histogram::new());
    let mut any = false;
    for judgement in outcomes.iter().filter_map(|o| o.judged.as_deref()) {
        any = true;
        load.calls += 1;
        load.passed += u64::from(judgement.passed);
        for (rule, text) in &judgement.broken {
            let breaches = load.rules.entry(rule.clone()).or_default();
            breaches.calls += 1;
            if breaches.example.is_empty() {
                breaches.example = text.clone();
            }
        }
        load.turns += judgement.turns;
        load.barge_ins += judgement.barge_ins;
        judgement.replies.iter().for_each(|r| replies.record(*r));
        judgement.clears.iter().for_each(|c| clears.record(*c));
    }
    load.answered = replies.count();
    load.reply = Percentiles::of_histogram(&replies);
    load.barge_in_clear = Percentiles::of_histogram(&clears);
    any.then_some((load, replies, clears))
}
