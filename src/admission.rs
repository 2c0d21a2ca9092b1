//! Admission: the counted slots that bound what runs at once (calls, pending handshakes,
//! HTTP connections), and the set of live call ids that lets one socket in per call. Each
//! is held as a value that gives its place back when dropped, also on unwind, so no path
//! out of a call or a connection can leak a count.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

/// One unit of a bounded count (a call, a pending handshake, an HTTP connection): taken
/// only while the count is below its maximum, given back when dropped, also on unwind.
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// Takes a slot if fewer than `max` are taken.
    pub(crate) fn try_take(count: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(Arc::clone(count)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A call id in the set of live calls, taken out again when dropped, also on unwind: one
/// socket per call, so a second socket for a live uuid cannot interleave with the first
/// (in its recording, say).
pub(crate) struct Registered {
    live: Arc<Mutex<HashSet<String>>>,
    id: String,
}

impl Registered {
    /// Registers `id` unless it is live already.
    pub(crate) fn try_register(live: &Arc<Mutex<HashSet<String>>>, id: &str) -> Option<Registered> {
        let inserted = live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned());
        inserted.then(|| Registered {
            live: Arc::clone(live),
            id: id.to_owned(),
        })
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_stop_at_the_maximum_and_come_back_when_dropped() {
        let count = Arc::new(AtomicUsize::new(0));
        let a = Slot::try_take(&count, 2).unwrap();
        let _b = Slot::try_take(&count, 2).unwrap();
        assert!(Slot::try_take(&count, 2).is_none());
        drop(a);
        assert!(Slot::try_take(&count, 2).is_some());
    }

    #[test]
    fn an_id_registers_once_until_dropped() {
        let live = Arc::default();
        let first = Registered::try_register(&live, "a").unwrap();
        assert!(Registered::try_register(&live, "a").is_none());
        assert!(Registered::try_register(&live, "b").is_some());
        drop(first);
        assert!(Registered::try_register(&live, "a").is_some());
    }
}
