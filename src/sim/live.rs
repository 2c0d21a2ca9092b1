//! A load's counters as it runs, for whoever watches it (`--metrics-addr`), where the
//! report comes only at the end. Each poll loop counts its frames in counters of its own,
//! which no other thread writes: a cache line two cores both write every frame would cost
//! the generator more than the counting. A reader sums them all.

use std::sync::atomic::{AtomicU64, Ordering};

/// One writer's counts: the dialers' calls, or one poll loop's frames.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) calls_dialed: AtomicU64,
    pub(crate) calls_connected: AtomicU64,
    pub(crate) calls_failed: AtomicU64,
    pub(crate) calls_ended: AtomicU64,
    pub(crate) frames_sent: AtomicU64,
    pub(crate) frames_echoed: AtomicU64,
    pub(crate) frames_lost: AtomicU64,
    pub(crate) frames_corrupted: AtomicU64,
    pub(crate) frames_late: AtomicU64,
}

/// A leg's frame counts at one moment, so that a poll loop can add what one step of the
/// leg changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Frames {
    pub(crate) sent: u64,
    pub(crate) echoed: u64,
    pub(crate) lost: u64,
    pub(crate) corrupted: u64,
    pub(crate) late: u64,
}

/// The sum of every writer's counts at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) calls_dialed: u64,
    pub(crate) calls_connected: u64,
    pub(crate) calls_failed: u64,
    pub(crate) calls_ended: u64,
    pub(crate) frames: Frames,
}

impl Counters {
    /// Counts one more of `counter`. Relaxed: each counter is a tally on its own, and a
    /// reader asks for no order between them.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds what a leg counted between `before` and `after`.
    pub(crate) fn add_frames(&self, before: Frames, after: Frames) {
        for (counter, was, is) in [
            (&self.frames_sent, before.sent, after.sent),
            (&self.frames_echoed, before.echoed, after.echoed),
            (&self.frames_lost, before.lost, after.lost),
            (&self.frames_corrupted, before.corrupted, after.corrupted),
            (&self.frames_late, before.late, after.late),
        ] {
            if is > was {
                counter.fetch_add(is - was, Ordering::Relaxed);
            }
        }
    }
}

impl Totals {
    /// The sum of `counters` as they stand.
    pub(crate) fn of<'a>(counters: impl IntoIterator<Item = &'a Counters>) -> Totals {
        let mut t = Totals::default();
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for c in counters {
            t.calls_dialed += read(&c.calls_dialed);
            t.calls_connected += read(&c.calls_connected);
            t.calls_failed += read(&c.calls_failed);
            t.calls_ended += read(&c.calls_ended);
            t.frames.sent += read(&c.frames_sent);
            t.frames.echoed += read(&c.frames_echoed);
            t.frames.lost += read(&c.frames_lost);
            t.frames.corrupted += read(&c.frames_corrupted);
            t.frames.late += read(&c.frames_late);
        }
        t
    }

    /// Calls whose socket is open and still streaming.
    pub(crate) fn calls_streaming(&self) -> u64 {
        self.calls_connected.saturating_sub(self.calls_ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_every_writer_s_counts() {
        let (a, b) = (Counters::default(), Counters::default());
        Counters::bump(&a.calls_connected);
        Counters::bump(&b.calls_connected);
        Counters::bump(&b.calls_ended);
        let sent = |sent| Frames {
            sent,
            ..Frames::default()
        };
        a.add_frames(sent(0), sent(3));
        b.add_frames(sent(3), sent(5));
        let totals = Totals::of([&a, &b]);
        assert_eq!(totals.frames.sent, 5);
        assert_eq!(totals.calls_streaming(), 1);
    }
}
