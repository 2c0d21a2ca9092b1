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

/// How far below call setup a call's audio runs under the fair scheduler, in nice steps.
/// A woken thread at nice 0 beside a thousand at nice 10 is picked about nine times sooner
/// than they are (its virtual deadline comes nine times sooner), so an answer webhook or a
/// handshake no longer waits behind every call's frame; the calls keep their shares among
/// themselves, and setup is a small, bounded part of the core (about 1.4 ms a call).
pub(crate) const AUDIO_NICE_STEPS: i32 = 10;

/// What a server thread does, which decides where it stands on the core: call setup
/// (webhooks, accepting, handshakes) ahead of audio, since a call not answered in time is
/// lost, while a frame delayed is only late.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Accept loops, the webhooks and the HTTP connections' threads, handshakes.
    Setup,
    /// A call's echo loop, once its handshake is done.
    Audio,
}

/// Puts the calling thread where `role` stands. Under the fair scheduler (no
/// `realtime`), setup keeps the process's nice value and audio runs
/// [`AUDIO_NICE_STEPS`] lower; lowering one's own priority needs no privilege. Under
/// `SCHED_RR` at `realtime`, audio runs at that priority and setup one above it.
/// Threads a setup thread starts (tiny_http's among them) inherit its place.
pub(crate) fn take_role(role: Role, realtime: Option<u8>, base_nice: i32) -> io::Result<()> {
    match (role, realtime) {
        (Role::Setup, None) => Ok(()),
        (Role::Audio, None) => set_own_nice((base_nice + AUDIO_NICE_STEPS).min(19)),
        (Role::Setup, Some(priority)) => make_realtime(setup_priority(priority)),
        (Role::Audio, Some(priority)) => make_realtime(priority),
    }
}

/// The real-time priority of setup when calls run at `audio`: one above, within 99.
pub(crate) fn setup_priority(audio: u8) -> u8 {
    audio.saturating_add(1).min(99)
}

/// The calling thread's nice value, as the kernel shows it (0 where it cannot be read).
pub(crate) fn own_nice() -> i32 {
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|stat| {
            // After the name come the fields from the 3rd (state) on; nice is the 19th.
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().nth(19 - 3)?.parse().ok()
        })
        .unwrap_or(0)
}

/// Sets the calling thread's nice value (on Linux, nice is per thread).
fn set_own_nice(nice: i32) -> io::Result<()> {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
    };
    // The crate takes a nice value only as its 0..=99 scale, which it maps onto nice 19
    // down to -20; pick the point of the scale that lands on `nice`.
    let on_scale = (0..=99u8)
        .find(|&p| (39.0 * (1.0 - f32::from(p) / 99.0)) as i32 - 20 == nice)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "nice out of range"))?;
    let value = ThreadPriorityValue::try_from(on_scale)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Crossplatform(value),
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other),
    )
    .map_err(io_error)
}

/// Names the calling thread (cut to 15 bytes, as the kernel keeps it): a connection's
/// thread is named for its peer when it starts and for its call once the handshake names
/// the call.
pub(crate) fn rename_own(name: &str) {
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let _ = std::fs::write("/proc/thread-self/comm", &name[..end]);
}

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
    fn audio_runs_ten_nice_steps_below_setup() {
        let (setup, audio) = thread::spawn(|| {
            let base = own_nice();
            take_role(Role::Setup, None, base).unwrap();
            let setup = own_nice();
            take_role(Role::Audio, None, base).unwrap();
            (setup - base, own_nice() - base)
        })
        .join()
        .unwrap();
        assert_eq!((setup, audio), (0, AUDIO_NICE_STEPS));
    }

    #[test]
    fn every_nice_value_from_the_process_s_down_is_reachable() {
        // Without privilege a thread can lower its priority, never raise it.
        let base = own_nice();
        for nice in base..=19 {
            let got = thread::spawn(move || set_own_nice(nice).map(|()| own_nice()))
                .join()
                .unwrap();
            assert_eq!(got.unwrap(), nice);
        }
    }

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
