//! Turn timing: how long the application takes to answer each of the caller's turns, how
//! it behaves when the caller interrupts it, and how soon it speaks at all. A scenario's
//! expectations only bound these times; here they are measured.
//!
//! A turn is something the caller does that asks for an answer: a scenario's `say`, `tone`
//! or `press`, a stretch of speech in a `--wav` or of the tone, a key of `--dtmf`. It ends
//! when its last frame or key leaves for the application, timed then (not at its tick), so
//! a turn's end is what the application could see.
//!
//! The reply is the first audible frame of a stretch of the application's speech that
//! comes after the turn's end, timed when the caller hears it: its arrival, plus whatever
//! of the application's audio is ahead of it in the playback buffer. A frame that arrives
//! to an idle buffer is timed at its arrival, not at the 20 ms tick that plays it: the
//! phase of the emulator's ticks is its own, and timing the arrival keeps a measured
//! latency within a millisecond or two of the application's own delay. Speech that goes on
//! across the turn's end is talking over the caller, not a reply.
//!
//! A barge-in is a turn that begins while the caller hears the application: measured from
//! then are the application's `clear`, and the first tick at which the caller hears its
//! audio no longer (cleared, or run out); the talk-over is how long the two spoke at once.
//!
//! # How accurate
//!
//! A mock application answers 60 turns of one call after delays from 40 to 240 ms and
//! times itself; the emulator's measurement differs from its own by a p99 of 0.39 ms
//! (median of three runs, release build, on a 2-core machine shared with other work: 0.20,
//! 0.39 and 0.41 ms; p50 0.09 to 0.11 ms, worst 0.64 ms). Under a `load` of 500 such calls
//! (3,000 turns, the application in the same process), where only histograms are kept, the
//! measured percentiles (p1, p50, p90, p99) differ from the application's own by at most
//! 1.7 ms (four runs, 0.3 to 1.9 % of frames late). Both benchmarks assert their bound
//! (2 ms at p99 for one call, 5 ms for the load) and run as a step of `.ci/run`:
//!
//! ```sh
//! cargo test --release --test accuracy -- --ignored --nocapture --test-threads 1
//! ```

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

/// A played frame with a sample louder than this is speech, not silence (about -42 dBFS).
const SPEECH_LEVEL: u16 = 256;

/// Silence shorter than this inside the caller's speech (a pause between words) does not
/// end its turn: 300 ms, the pause most voice bots wait for before they take their turn.
pub(crate) const TURN_GAP_TICKS: usize = 15;

/// The most turns timed in one call: a caller's turns come from its own audio and keys, but
/// a long WAV of short bursts should not grow a report without bound.
const MAX_TURNS: usize = 10_000;

/// Whether a frame of 16-bit little-endian samples holds one louder than silence.
pub(crate) fn is_speech(frame: &[u8]) -> bool {
    frame
        .chunks_exact(2)
        .any(|b| i16::from_le_bytes([b[0], b[1]]).unsigned_abs() > SPEECH_LEVEL)
}

/// One turn of the caller's, and how soon the application answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Turn {
    /// What the caller did: `say question.wav`, `tone 1000ms`, `press 5`, `speech`.
    pub what: String,
    /// When the turn began (its first frame or key sent), from its socket's opening.
    pub started: Duration,
    /// When the turn ended (its last frame or key sent), from its socket's opening.
    pub ended: Duration,
    /// From the turn's end to when the caller heard the application's answer; `None`
    /// when none came before the caller's next turn began, or the call ended.
    pub reply: Option<Duration>,
}

/// A turn that began while the caller heard the application, and how the application
/// took being interrupted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BargeIn {
    /// The interrupting turn, an index into the report's turns.
    pub turn: usize,
    /// What the caller did.
    pub what: String,
    /// When it began, from its socket's opening.
    pub at: Duration,
    /// From then to the application's `clear`; `None` if none came before the caller's
    /// next turn.
    pub clear: Option<Duration>,
    /// From then to the first tick at which the caller heard the application no longer;
    /// `None` if it talked on to the caller's next turn or the call's end.
    pub stopped: Option<Duration>,
    /// How long the application and the caller spoke at once.
    pub talked_over: Duration,
}

/// What the turns of a call measured.
#[derive(Debug, Default)]
pub(crate) struct Timing {
    pub(crate) turns: Vec<Turn>,
    pub(crate) barge_ins: Vec<BargeIn>,
    /// From the socket's opening to the first of the application's speech the caller heard.
    pub(crate) first_audio: Option<Duration>,
}

/// When a turn begins or ends: as the caller's frame with this index leaves, or as the key
/// due at this tick is pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cue {
    Frame(u64),
    Key(u64),
}

impl Cue {
    /// The cue `shift` frames (and ticks) on, for the rest of a call in its next leg; one
    /// already past is now.
    fn shifted(self, shift: u64) -> Cue {
        match self {
            Cue::Frame(i) => Cue::Frame(i.saturating_sub(shift)),
            Cue::Key(k) => Cue::Key(k.saturating_sub(shift)),
        }
    }

    /// The frame index or tick the cue falls at.
    pub(crate) fn at_tick(self) -> u64 {
        match self {
            Cue::Frame(i) | Cue::Key(i) => i,
        }
    }
}

/// A turn the caller will take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TurnPlan {
    pub(crate) what: String,
    pub(crate) start: Cue,
    pub(crate) end: Cue,
}

/// The plans left once the first `shift` frames (and ticks) have been played: a turn
/// that had not ended goes on in the next leg.
pub(crate) fn rest_of(plans: &[TurnPlan], shift: u64) -> Vec<TurnPlan> {
    plans
        .iter()
        .filter(|p| p.end.at_tick() >= shift)
        .map(|p| TurnPlan {
            what: p.what.clone(),
            start: p.start.shifted(shift),
            end: p.end.shifted(shift),
        })
        .collect()
}

/// The turns in a stream of the caller's frames: each stretch of speech, pauses shorter
/// than [`TURN_GAP_TICKS`] inside it, named `what`.
pub(crate) fn speech_turns(frames: &[tungstenite::Bytes], what: &str) -> Vec<TurnPlan> {
    let mut plans: Vec<TurnPlan> = Vec::new();
    let mut last_speech: Option<usize> = None;
    for (i, frame) in frames.iter().enumerate() {
        if !is_speech(frame) {
            continue;
        }
        let goes_on = last_speech.is_some_and(|last| i - last <= TURN_GAP_TICKS);
        if let Some(plan) = plans.last_mut().filter(|_| goes_on) {
            plan.end = Cue::Frame(i as u64);
        } else if plans.len() < MAX_TURNS {
            plans.push(TurnPlan {
                what: what.to_owned(),
                start: Cue::Frame(i as u64),
                end: Cue::Frame(i as u64),
            });
        } else {
            break;
        }
        last_speech = Some(i);
    }
    plans
}

/// A barge-in being timed, its instants kept until the call ends.
#[derive(Debug)]
struct Interruption {
    turn: usize,
    at: Instant,
    clear: Option<Instant>,
    stopped: Option<Instant>,
}

/// Times a socket leg's turns as the session plays them.
#[derive(Debug)]
pub(crate) struct Turns {
    opened: Instant,
    plans: Vec<TurnPlan>,
    /// Turns in the order their cues come, on each cue's own axis: (cue, turn).
    frame_starts: VecDeque<(u64, usize)>,
    frame_ends: VecDeque<(u64, usize)>,
    key_starts: VecDeque<(u64, usize)>,
    key_ends: VecDeque<(u64, usize)>,
    started: Vec<Option<Instant>>,
    ended: Vec<Option<Instant>>,
    replies: Vec<Option<Duration>>,
    /// Turns that have ended and wait for their reply.
    awaiting: Vec<usize>,
    interruptions: Vec<Interruption>,
    /// Whether the last barge-in may still be updated (no turn has begun since).
    interruption_open: bool,
    first_audio: Option<Duration>,
    /// Whether the last frame the application queued was speech.
    speech_queued: bool,
    /// Whether the caller heard speech at the last tick.
    hearing: bool,
}

impl Turns {
    /// Timing for `plans`, on a socket opened at `opened`.
    pub(crate) fn new(opened: Instant, plans: Vec<TurnPlan>) -> Turns {
        let mut plans = plans;
        plans.truncate(MAX_TURNS);
        let queue = |f: &dyn Fn(&TurnPlan) -> Option<u64>| {
            let mut q: Vec<(u64, usize)> = plans
                .iter()
                .enumerate()
                .filter_map(|(i, p)| f(p).map(|c| (c, i)))
                .collect();
            q.sort_unstable();
            VecDeque::from(q)
        };
        let frame = |c: Cue| match c {
            Cue::Frame(i) => Some(i),
            Cue::Key(_) => None,
        };
        let key = |c: Cue| match c {
            Cue::Key(k) => Some(k),
            Cue::Frame(_) => None,
        };
        Turns {
            opened,
            frame_starts: queue(&|p| frame(p.start)),
            frame_ends: queue(&|p| frame(p.end)),
            key_starts: queue(&|p| key(p.start)),
            key_ends: queue(&|p| key(p.end)),
            started: vec![None; plans.len()],
            ended: vec![None; plans.len()],
            replies: vec![None; plans.len()],
            plans,
            awaiting: Vec::new(),
            interruptions: Vec::new(),
            interruption_open: false,
            first_audio: None,
            speech_queued: false,
            hearing: false,
        }
    }

    /// The caller's frame `index` has just left, at `now`; `queued` is whether the
    /// application's audio waits in the playback buffer.
    pub(crate) fn frame_left(&mut self, index: u64, now: Instant, queued: bool) {
        while let Some(turn) = take_due(&mut self.frame_starts, index) {
            self.begin(turn, now, queued);
        }
        while let Some(turn) = take_due(&mut self.frame_ends, index) {
            self.end(turn, now);
        }
    }

    /// The key due at tick `tick` has just been pressed, at `now`.
    pub(crate) fn key_pressed(&mut self, tick: u64, now: Instant, queued: bool) {
        while let Some(turn) = take_due(&mut self.key_starts, tick) {
            self.begin(turn, now, queued);
        }
        while let Some(turn) = take_due(&mut self.key_ends, tick) {
            self.end(turn, now);
        }
    }

    /// Whether the caller hears the application now: speech at the last tick, or speech
    /// waiting in the buffer.
    fn app_talking(&self, queued: bool) -> bool {
        self.hearing || (self.speech_queued && queued)
    }

    /// A turn has begun: those before it still waiting for a reply no longer do (the
    /// caller went on without one).
    fn begin(&mut self, turn: usize, now: Instant, queued: bool) {
        self.started[turn] = Some(now);
        self.awaiting.clear();
        self.interruption_open = false;
        if self.app_talking(queued) {
            self.interruptions.push(Interruption {
                turn,
                at: now,
                clear: None,
                stopped: None,
            });
            self.interruption_open = true;
        }
    }

    /// A turn has ended: it waits for its reply.
    fn end(&mut self, turn: usize, now: Instant) {
        self.ended[turn] = Some(now);
        self.awaiting.push(turn);
    }

    /// A frame of the application's audio was queued at `now` and will be heard at
    /// `heard_at`; `busy` is whether audio was playing or queued ahead of it.
    pub(crate) fn audio(&mut self, speech: bool, busy: bool, now: Instant, heard_at: Instant) {
        let starts = speech && !(self.speech_queued && busy);
        self.speech_queued = speech;
        if !starts {
            return;
        }
        self.first_audio
            .get_or_insert(heard_at.saturating_duration_since(self.opened));
        for turn in self.awaiting.drain(..) {
            if let Some(ended) = self.ended[turn].filter(|e| *e <= now) {
                self.replies[turn] = Some(heard_at.saturating_duration_since(ended));
            }
        }
    }

    /// The application's `clear` came at `now`: its audio stops at once.
    pub(crate) fn cleared(&mut self, now: Instant) {
        self.speech_queued = false;
        self.hearing = false;
        if let Some(open) = self.open_interruption() {
            open.clear.get_or_insert(now);
            open.stopped.get_or_insert(now);
        }
    }

    /// What the caller heard at the tick due at `due`: speech, or not.
    pub(crate) fn heard(&mut self, due: Instant, speech: bool) {
        self.hearing = speech;
        if speech {
            return;
        }
        if let Some(open) = self.open_interruption() {
            open.stopped.get_or_insert(due);
        }
    }

    fn open_interruption(&mut self) -> Option<&mut Interruption> {
        if !self.interruption_open {
            return None;
        }
        self.interruptions.last_mut()
    }

    /// So far: turns ended, the latest reply, and barge-ins, for a progress line.
    pub(crate) fn so_far(&self) -> (usize, Option<Duration>, usize) {
        let ended = self.ended.iter().filter(|e| e.is_some()).count();
        let latest = self
            .ended
            .iter()
            .zip(&self.replies)
            .filter_map(|(e, r)| e.and(*r))
            .next_back();
        (ended, latest, self.interruptions.len())
    }

    /// What was measured, once the socket ended at `end`. Only turns that ended are
    /// reported; barge-ins name theirs by its index among them.
    pub(crate) fn finish(self, end: Instant) -> Timing {
        let mut index = vec![None; self.plans.len()];
        let mut turns = Vec::new();
        for (i, plan) in self.plans.iter().enumerate() {
            let Some(ended) = self.ended[i] else { continue };
            index[i] = Some(turns.len());
            let started = self.started[i].unwrap_or(ended);
            turns.push(Turn {
                what: plan.what.clone(),
                started: started.saturating_duration_since(self.opened),
                ended: ended.saturating_duration_since(self.opened),
                reply: self.replies[i],
            });
        }
        let since =
            |at: Instant, then: Option<Instant>| then.map(|t| t.saturating_duration_since(at));
        let barge_ins = self
            .interruptions
            .iter()
            .filter_map(|b| {
                let turn = index[b.turn]?;
                let caller_done = self.ended[b.turn].unwrap_or(end);
                let overlap_end = b.stopped.unwrap_or(end).min(caller_done);
                Some(BargeIn {
                    turn,
                    what: self.plans[b.turn].what.clone(),
                    at: b.at.saturating_duration_since(self.opened),
                    clear: since(b.at, b.clear),
                    stopped: since(b.at, b.stopped),
                    talked_over: overlap_end.saturating_duration_since(b.at),
                })
            })
            .collect();
        Timing {
            turns,
            barge_ins,
            first_audio: self.first_audio,
        }
    }
}

/// The turn whose cue is `at`, or one already past, from the front of `queue`.
fn take_due(queue: &mut VecDeque<(u64, usize)>, at: u64) -> Option<usize> {
    if queue.front().is_some_and(|(cue, _)| *cue <= at) {
        return queue.pop_front().map(|(_, turn)| turn);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::Bytes;

    fn loud() -> Bytes {
        Bytes::from([0x10, 0x27].repeat(160))
    }

    fn quiet() -> Bytes {
        Bytes::from(vec![0u8; 320])
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn one_turn() -> Vec<TurnPlan> {
        vec![TurnPlan {
            what: "tone".into(),
            start: Cue::Frame(0),
            end: Cue::Frame(2),
        }]
    }

    #[test]
    fn pauses_between_words_stay_in_one_turn_and_a_long_one_ends_it() {
        let mut frames = vec![loud(); 3];
        frames.extend(vec![quiet(); TURN_GAP_TICKS - 1]);
        frames.push(loud());
        frames.extend(vec![quiet(); TURN_GAP_TICKS + 1]);
        frames.push(loud());
        let plans = speech_turns(&frames, "speech");
        let spans: Vec<(Cue, Cue)> = plans.iter().map(|p| (p.start, p.end)).collect();
        let second = (frames.len() - 1) as u64;
        assert_eq!(
            spans,
            [
                (Cue::Frame(0), Cue::Frame(TURN_GAP_TICKS as u64 + 2)),
                (Cue::Frame(second), Cue::Frame(second))
            ]
        );
    }

    #[test]
    fn the_reply_is_timed_from_the_turns_last_frame_to_when_it_is_heard() {
        let t0 = Instant::now();
        let mut turns = Turns::new(t0, one_turn());
        for i in 0..3 {
            turns.frame_left(i, t0 + ms(20 * i), false);
        }
        let arrived = t0 + ms(40 + 312);
        turns.audio(true, false, arrived, arrived);
        let timing = turns.finish(arrived);
        assert_eq!(timing.turns[0].reply, Some(ms(312)));
        assert_eq!(timing.first_audio, Some(ms(352)));
    }

    #[test]
    fn speech_that_goes_on_across_the_turns_end_is_not_its_reply() {
        let t0 = Instant::now();
        let mut turns = Turns::new(t0, one_turn());
        turns.audio(true, false, t0, t0);
        for i in 0..3 {
            turns.frame_left(i, t0 + ms(20 * i), true);
        }
        turns.audio(true, true, t0 + ms(60), t0 + ms(80));
        let timing = turns.finish(t0 + ms(100));
        assert_eq!(timing.turns[0].reply, None);
    }

    #[test]
    fn a_turn_over_the_applications_audio_is_a_barge_in_timed_to_its_clear() {
        let t0 = Instant::now();
        let mut turns = Turns::new(t0, one_turn());
        turns.audio(true, false, t0, t0);
        turns.heard(t0, true);
        turns.frame_left(0, t0 + ms(100), true);
        turns.cleared(t0 + ms(145));
        turns.frame_left(2, t0 + ms(200), false);
        let timing = turns.finish(t0 + ms(300));
        let barge_in = &timing.barge_ins[0];
        assert_eq!(
            (barge_in.clear, barge_in.stopped, barge_in.talked_over),
            (Some(ms(45)), Some(ms(45)), ms(45))
        );
    }

    #[test]
    fn an_application_that_talks_on_talks_over_the_whole_turn() {
        let t0 = Instant::now();
        let mut turns = Turns::new(t0, one_turn());
        turns.heard(t0, true);
        turns.frame_left(0, t0 + ms(20), true);
        turns.frame_left(2, t0 + ms(60), true);
        let timing = turns.finish(t0 + ms(500));
        let barge_in = &timing.barge_ins[0];
        assert_eq!(
            (barge_in.clear, barge_in.stopped, barge_in.talked_over),
            (None, None, ms(40))
        );
    }

    #[test]
    fn a_turn_the_caller_follows_with_another_before_any_reply_is_unanswered() {
        let t0 = Instant::now();
        let plans = vec![
            TurnPlan {
                what: "press 1".into(),
                start: Cue::Key(0),
                end: Cue::Key(0),
            },
            TurnPlan {
                what: "press 2".into(),
                start: Cue::Key(15),
                end: Cue::Key(15),
            },
        ];
        let mut turns = Turns::new(t0, plans);
        turns.key_pressed(0, t0, false);
        turns.key_pressed(15, t0 + ms(300), false);
        turns.audio(true, false, t0 + ms(500), t0 + ms(500));
        let timing = turns.finish(t0 + ms(600));
        let replies: Vec<_> = timing.turns.iter().map(|t| t.reply).collect();
        assert_eq!(replies, [None, Some(ms(200))]);
    }
}
