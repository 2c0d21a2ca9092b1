//! Vonage's playback buffer: the application's audio is queued as it arrives and played to
//! the caller one 20 ms frame per tick of a monotonic clock. What does not fit is dropped;
//! `clear` empties it; a `notify` is answered once the audio queued before it has played.

use std::collections::VecDeque;

use serde_json::Value;
use tungstenite::Bytes;

/// Frames Vonage holds for playback (about 61 s), as its current tutorial gives it.
pub const DEFAULT_BUFFER_FRAMES: usize = 3072;

/// The longest gap, in 20 ms ticks, between two played frames that counts as an underrun:
/// audio that arrived a little late, mid-prompt. A longer silence is a pause between
/// prompts, not a gap in one.
pub const MAX_UNDERRUN_TICKS: u32 = 5;

/// The most notifies waiting at once. Each holds its payload until its audio has played
/// (up to a minute); an application that sends them faster would grow the emulator
/// without bound. What Vonage does with so many is not documented.
pub const MAX_PENDING_NOTIFIES: usize = 1024;

/// Whether a tick is played when it is due, or late because the emulator fell behind its
/// clock. The application's frames may then be in the socket unread, or not sent yet
/// because the caller's frames they answer left late: silence at a late tick, or right
/// after one (the frame for it was due while the emulator was behind), is the emulator's
/// doing, not a gap the application left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timing {
    OnTime,
    Late,
}

/// Empty ticks since the last frame played, and whether one of them, or the tick that
/// played that frame, was late.
#[derive(Debug, Clone, Copy)]
struct Gap {
    ticks: u32,
    late: bool,
}

/// The buffer and its counts. One tick is 20 ms of the caller's time.
#[derive(Debug)]
pub(crate) struct Playback {
    capacity: usize,
    queue: VecDeque<Bytes>,
    /// Frames ever accepted into the queue.
    queued: u64,
    /// Frames that have left it: played to the end, or cleared.
    finished: u64,
    /// Whether a frame is playing during the current tick.
    playing: bool,
    /// Notifies waiting for `finished` to reach their mark.
    notifies: VecDeque<(u64, Value)>,
    /// The silence since the last frame played, while a prompt may still go on.
    gap: Option<Gap>,
    pub(crate) played: u64,
    pub(crate) dropped: u64,
    pub(crate) cleared: u64,
    /// Frames thrown away by clears.
    pub(crate) thrown: u64,
    pub(crate) underruns: u64,
    /// Gaps that would be underruns but for a late tick in them: not counted against the
    /// application.
    pub(crate) excused: u64,
    /// Notifies not kept, past [`MAX_PENDING_NOTIFIES`].
    pub(crate) ignored_notifies: u64,
}

impl Playback {
    /// An empty buffer of `capacity` frames.
    pub(crate) fn new(capacity: usize) -> Playback {
        Playback {
            capacity,
            queue: VecDeque::new(),
            queued: 0,
            finished: 0,
            playing: false,
            notifies: VecDeque::new(),
            gap: None,
            played: 0,
            dropped: 0,
            cleared: 0,
            thrown: 0,
            underruns: 0,
            excused: 0,
            ignored_notifies: 0,
        }
    }

    /// The buffer's size in frames.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Queues a frame from the application; `false` if the buffer was full and it was
    /// dropped.
    pub(crate) fn push(&mut self, frame: Bytes) -> bool {
        if self.queue.len() >= self.capacity {
            self.dropped += 1;
            return false;
        }
        self.queue.push_back(frame);
        self.queued += 1;
        true
    }

    /// Empties the buffer, and stops the frame playing, at once (barge-in). Returns how
    /// many frames were thrown away.
    pub(crate) fn clear(&mut self) -> usize {
        let thrown = self.queue.len();
        self.finished += thrown as u64 + u64::from(self.playing);
        self.queue.clear();
        self.playing = false;
        // Silence after a clear is the application's choice, not a gap.
        self.gap = None;
        self.cleared += 1;
        self.thrown += thrown as u64;
        thrown
    }

    /// Asks for `payload` back once every frame queued so far has played (or been cleared).
    pub(crate) fn notify(&mut self, payload: Value) {
        if self.notifies.len() >= MAX_PENDING_NOTIFIES {
            self.ignored_notifies += 1;
            return;
        }
        self.notifies.push_back((self.queued, payload));
    }

    /// Whether a frame is playing during the current tick.
    pub(crate) fn is_playing(&self) -> bool {
        self.playing
    }

    /// Frames queued and not yet played.
    pub(crate) fn queued_now(&self) -> usize {
        self.queue.len()
    }

    /// Notifies still waiting for their audio to play.
    pub(crate) fn pending_notifies(&self) -> usize {
        self.notifies.len()
    }

    /// The payloads whose audio has all played, in the order they were asked for.
    pub(crate) fn due_notifies(&mut self) -> Vec<Value> {
        let mut due = Vec::new();
        while self
            .notifies
            .front()
            .is_some_and(|(mark, _)| *mark <= self.finished)
        {
            if let Some((_, payload)) = self.notifies.pop_front() {
                due.push(payload);
            }
        }
        due
    }

    /// Moves playback on by one tick: the frame that played during the last tick has
    /// finished, and the next one (if any) starts. Returns what the caller hears now.
    pub(crate) fn tick(&mut self, timing: Timing) -> Option<Bytes> {
        if std::mem::take(&mut self.playing) {
            self.finished += 1;
        }
        match self.queue.pop_front() {
            Some(frame) => {
                self.end_gap(timing);
                self.playing = true;
                self.played += 1;
                Some(frame)
            }
            None => {
                self.gap = self
                    .gap
                    .map(|g| Gap {
                        ticks: g.ticks + 1,
                        late: g.late || timing == Timing::Late,
                    })
                    .filter(|g| g.ticks <= MAX_UNDERRUN_TICKS);
                None
            }
        }
    }

    /// A frame plays at a tick of `timing`: a short gap before it was an underrun, or
    /// excused if a tick of it, or the tick before it, was late.
    fn end_gap(&mut self, timing: Timing) {
        match self.gap {
            Some(Gap { ticks: 0, .. }) | None => {}
            Some(Gap { late: true, .. }) => self.excused += 1,
            Some(Gap { late: false, .. }) => self.underruns += 1,
        }
        self.gap = Some(Gap {
            ticks: 0,
            late: timing == Timing::Late,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Bytes {
        Bytes::from_static(&[1; 640])
    }

    #[test]
    fn frames_play_one_a_tick_in_order() {
        let mut playback = Playback::new(8);
        playback.push(Bytes::from_static(&[1]));
        playback.push(Bytes::from_static(&[2]));
        assert_eq!(playback.tick(Timing::OnTime).as_deref(), Some(&[1][..]));
        assert_eq!(playback.tick(Timing::OnTime).as_deref(), Some(&[2][..]));
        assert_eq!(playback.tick(Timing::OnTime), None);
        assert_eq!(playback.played, 2);
    }

    #[test]
    fn frames_past_the_capacity_are_dropped_and_counted() {
        let mut playback = Playback::new(3);
        let kept = (0..5).filter(|_| playback.push(frame())).count();
        assert_eq!((kept, playback.dropped), (3, 2));
        playback.tick(Timing::OnTime);
        assert!(playback.push(frame()), "a played frame makes room");
    }

    #[test]
    fn clear_empties_the_buffer_at_once() {
        let mut playback = Playback::new(8);
        for _ in 0..4 {
            playback.push(frame());
        }
        playback.tick(Timing::OnTime);
        assert_eq!(playback.clear(), 3);
        assert_eq!(playback.tick(Timing::OnTime), None);
        assert_eq!(playback.cleared, 1);
    }

    #[test]
    fn a_notify_is_due_when_the_audio_before_it_has_played() {
        let mut playback = Playback::new(8);
        playback.push(frame());
        playback.push(frame());
        playback.notify(Value::from("done"));
        playback.push(frame());
        assert!(playback.due_notifies().is_empty());
        playback.tick(Timing::OnTime); // first frame plays
        playback.tick(Timing::OnTime); // second plays
        assert!(playback.due_notifies().is_empty(), "still playing");
        playback.tick(Timing::OnTime); // second has finished
        assert_eq!(playback.due_notifies(), [Value::from("done")]);
    }

    #[test]
    fn every_frame_received_is_played_dropped_thrown_or_still_queued() {
        let mut playback = Playback::new(4);
        for _ in 0..6 {
            playback.push(frame());
        }
        playback.tick(Timing::OnTime);
        playback.clear();
        playback.push(frame());
        playback.push(frame());
        playback.tick(Timing::OnTime);
        let accounted =
            playback.played + playback.dropped + playback.thrown + playback.queued_now() as u64;
        assert_eq!(accounted, 8);
    }

    #[test]
    fn notifies_past_the_limit_are_counted_not_kept() {
        let mut playback = Playback::new(4);
        playback.push(frame());
        for _ in 0..MAX_PENDING_NOTIFIES + 3 {
            playback.notify(Value::Null);
        }
        assert_eq!(playback.pending_notifies(), MAX_PENDING_NOTIFIES);
        assert_eq!(playback.ignored_notifies, 3);
    }

    #[test]
    fn a_notify_with_nothing_queued_is_due_at_once() {
        let mut playback = Playback::new(8);
        playback.notify(Value::Null);
        assert_eq!(playback.due_notifies().len(), 1);
    }

    #[test]
    fn a_clear_releases_the_notifies_of_the_audio_it_threw_away() {
        let mut playback = Playback::new(8);
        playback.push(frame());
        playback.push(frame());
        playback.notify(Value::from(1));
        playback.tick(Timing::OnTime);
        playback.clear();
        assert_eq!(playback.due_notifies().len(), 1);
    }

    #[test]
    fn a_short_gap_mid_prompt_is_an_underrun() {
        let mut playback = Playback::new(8);
        playback.push(frame());
        playback.tick(Timing::OnTime);
        playback.tick(Timing::OnTime); // nothing came in time
        playback.push(frame());
        playback.tick(Timing::OnTime);
        assert_eq!(playback.underruns, 1);
    }

    #[test]
    fn a_pause_between_prompts_is_not_an_underrun() {
        let mut playback = Playback::new(8);
        playback.push(frame());
        playback.tick(Timing::OnTime);
        for _ in 0..=MAX_UNDERRUN_TICKS {
            playback.tick(Timing::OnTime);
        }
        playback.push(frame());
        playback.tick(Timing::OnTime);
        assert_eq!(playback.underruns, 0);
    }

    #[test]
    fn silence_after_a_clear_is_not_an_underrun() {
        let mut playback = Playback::new(8);
        playback.push(frame());
        playback.tick(Timing::OnTime);
        playback.clear();
        playback.tick(Timing::OnTime);
        playback.push(frame());
        playback.tick(Timing::OnTime);
        assert_eq!(playback.underruns, 0);
    }

    #[test]
    fn a_gap_at_a_late_tick_is_excused_not_an_underrun() {
        let mut playback = Playback::new(8);
        playback.push(frame());
        playback.tick(Timing::OnTime);
        playback.tick(Timing::Late); // the emulator fell behind: nothing read yet
        playback.push(frame());
        playback.tick(Timing::Late);
        assert_eq!((playback.underruns, playback.excused), (0, 1));
    }

    #[test]
    fn a_gap_of_on_time_ticks_is_an_underrun_though_the_frame_after_it_plays_late() {
        let mut playback = Playback::new(8);
        playback.push(frame());
        playback.tick(Timing::OnTime);
        playback.tick(Timing::OnTime);
        playback.push(frame());
        playback.tick(Timing::Late);
        assert_eq!((playback.underruns, playback.excused), (1, 0));
    }

    #[test]
    fn a_gap_right_after_a_late_tick_is_excused() {
        let mut playback = Playback::new(8);
        playback.push(frame());
        playback.tick(Timing::Late); // the caller's frame, and the reading, came late
        playback.tick(Timing::OnTime); // so the answer to it was not there yet
        playback.push(frame());
        playback.tick(Timing::OnTime);
        assert_eq!((playback.underruns, playback.excused), (0, 1));
    }

    #[test]
    fn a_gap_after_the_emulator_caught_up_is_an_underrun_again() {
        let mut playback = Playback::new(8);
        playback.push(frame());
        playback.push(frame());
        playback.tick(Timing::Late);
        playback.tick(Timing::OnTime);
        playback.tick(Timing::OnTime);
        playback.push(frame());
        playback.tick(Timing::OnTime);
        assert_eq!((playback.underruns, playback.excused), (1, 0));
    }
}
