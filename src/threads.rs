//! The threads the server starts, and the counted slots that bound how many run at once.

use std::{
    collections::HashSet,
    io,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    thread::{self, JoinHandle},
};

/// Stack for per-connection threads: they hold a socket and a few KiB of buffers, so the
/// default 2 MiB of address space each is waste when thousands of calls run.
pub(crate) const CONNECTION_STACK: usize = 256 * 1024;

/// Puts the calling thread under `SCHED_RR` at `priority` (1 to 99): it then runs as soon
/// as it is woken, ahead of every thread under the fair scheduler.
pub(crate) fn make_realtime(priority: u8) -> io::Result<()> {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, RealtimeThreadSchedulePolicy,
        ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
    };
    let value = ThreadPriorityValue::try_from(priority)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Crossplatform(value),
        ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::RoundRobin),
    )
    .map_err(io_error)
}

/// Puts the calling thread under `SCHED_IDLE`: on a shared core it runs in the time the
/// other threads leave (its share beside a busy thread is a fifth of a nice-19 thread's),
/// and a thread that wakes takes the core from it at once, where a nice-19 thread would
/// first finish its slice. Lowering one's own priority needs no privilege.
pub(crate) fn make_background() -> io::Result<()> {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadPriority, ThreadSchedulePolicy,
    };
    set_thread_priority_and_policy(
        thread_native_id(),
        // SCHED_IDLE has a single priority, 0, which is the crate's minimum for it.
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    )
    .map_err(io_error)
}

fn io_error(e: thread_priority::Error) -> io::Error {
    match e {
        thread_priority::Error::OS(code) => io::Error::from_raw_os_error(code),
        other => io::Error::other(other.to_string()),
    }
}

/// Threads that must all be joined before shutdown returns.
#[derive(Default)]
pub(crate) struct ThreadSet {
    handles: Mutex<Vec<JoinHandle<()>>>,
}

impl ThreadSet {
    /// Starts `f` on a named thread and keeps its handle; finished threads are forgotten here
    /// so the set stays as large as what runs.
    pub(crate) fn spawn(&self, name: String, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
        let handle = thread::Builder::new()
            .name(name)
            .stack_size(CONNECTION_STACK)
            .spawn(f)?;
        let mut handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
        handles.retain(|h| !h.is_finished());
        handles.push(handle);
        Ok(())
    }

    /// Waits for every thread started so far (and those they start meanwhile).
    pub(crate) fn join_all(&self) {
        loop {
            let drained: Vec<_> = {
                let mut handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
                handles.drain(..).collect()
            };
            if drained.is_empty() {
                return;
            }
            for handle in drained {
                // A thread that panicked has already been logged by the panic hook.
                let _ = handle.join();
            }
        }
    }
}

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

    #[test]
    fn join_all_waits_for_every_thread() {
        let set = ThreadSet::default();
        let done = Arc::new(AtomicUsize::new(0));
        for i in 0..4 {
            let done = Arc::clone(&done);
            set.spawn(format!("t{i}"), move || {
                thread::sleep(std::time::Duration::from_millis(20));
                done.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        }
        set.join_all();
        assert_eq!(done.load(Ordering::SeqCst), 4);
    }
}
