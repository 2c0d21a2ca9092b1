//! The threads the server starts, and the counted slots that bound how many run at once.

use crate::config::{AudioPriority, Config};

use std::{
    collections::HashSet,
    io,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        mpsc, Arc, Mutex,
    },
    thread::{self, JoinHandle},
    time::Duration,
};

/// How often blocked threads look up from their sockets to see whether the server stops.
/// Calls in progress never wait on it: audio arrives every 20 ms.
pub(crate) const TICK: Duration = Duration::from_millis(200);

/// Stack for per-connection threads: they hold a socket and a few KiB of buffers, so the
/// default 2 MiB of address space each is waste when thousands of calls run.
pub(crate) const CONNECTION_STACK: usize = 256 * 1024;

/// Stack for threads that parse requests and handshakes (the HTTP connections', the
/// handshakes'): smaller than a call's, so that the C library, which keeps the stacks of
/// ended threads for new ones of a size they fit, never hands a call a stack that a
/// handshake has already touched (a call would hold its pages for its whole life).
pub(crate) const SETUP_STACK: usize = 128 * 1024;

/// How far below call setup a call's audio runs with [`AudioPriority::Nice`], in nice
/// steps: a woken thread at nice 0 beside a thousand at nice 10 is picked about nine times
/// sooner than they are, but with the core full it still gets only its weight's share.
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
/// `realtime`), setup keeps the process's place and audio runs below it as `audio` says
/// (lowering one's own priority needs no privilege). Under `SCHED_RR` at `realtime`, audio
/// runs at that priority and setup one above it. Threads a setup thread starts (tiny_http's
/// among them) inherit its place.
pub(crate) fn take_role(role: Role, config: &Config, base_nice: i32) -> io::Result<()> {
    match (role, config.realtime_priority, config.audio_priority) {
        (Role::Setup, None, _) => Ok(()),
        (Role::Audio, None, AudioPriority::Idle) => make_background(),
        (Role::Audio, None, AudioPriority::Nice) => {
            set_own_nice((base_nice + AUDIO_NICE_STEPS).min(19))
        }
        (Role::Setup, Some(priority), _) => make_realtime(setup_priority(priority)),
        (Role::Audio, Some(priority), _) => make_realtime(priority),
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
    let _ = std::fs::write("/proc/thread-self/comm", crate::text::cut(name, 15));
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
        self.spawn_sized(name, CONNECTION_STACK, f)
    }

    /// As [`ThreadSet::spawn`], with a stack of `stack` bytes.
    pub(crate) fn spawn_sized(
        &self,
        name: String,
        stack: usize,
        f: impl FnOnce() + Send + 'static,
    ) -> io::Result<()> {
        let handle = thread::Builder::new()
            .name(name)
            .stack_size(stack)
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

/// Runs `f`, turning a panic into its message, so a bug met by one call or one request ends
/// that call (with 1011) or that request only, and the server carries on.
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into())
    })
}

/// A call's echo, handed to a call thread.
pub(crate) type CallJob = Box<dyn FnOnce() + Send>;

/// The threads that run calls' audio, kept between calls: one call at a time each, and a
/// thread that has run a call waits for the next. A call's thread runs below call setup
/// ([`Role::Audio`]); were it to end with its call, its exit would take locks of the C
/// library's (its stack cache, the allocator's) that every new thread of setup takes too,
/// and a thread low on the core that holds one while the core is full makes setup wait
/// behind every call. So only idle threads end, after [`CALL_THREAD_IDLE`] without a call
/// (when calls have become fewer, the core is no longer full), or when the server stops.
#[derive(Default)]
pub(crate) struct CallThreads {
    /// How to hand a call to each idle thread, by the thread's number; the last to go idle
    /// is the first to be handed a call.
    idle: Arc<IdleCallThreads>,
    numbers: AtomicU64,
    threads: ThreadSet,
}

/// Idle call threads, by number, each with the way to hand it a call.
type IdleCallThreads = Mutex<Vec<(u64, mpsc::SyncSender<CallJob>)>>;

/// How long a call thread waits for its next call before it ends.
pub(crate) const CALL_THREAD_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

impl CallThreads {
    /// Runs `job` on an idle call thread, or on a new one (named `name`) when none is
    /// idle. `stopping` tells idle threads to end.
    pub(crate) fn run(
        &self,
        name: String,
        job: CallJob,
        stopping: Arc<dyn Fn() -> bool + Send + Sync>,
    ) -> io::Result<()> {
        let claimed = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let job = match claimed {
            // A thread leaves the list before it ends, so it is there to take the job; a
            // job it cannot take all the same runs on a new thread.
            Some((_, thread)) => match thread.send(job) {
                Ok(()) => return Ok(()),
                Err(mpsc::SendError(job)) => job,
            },
            None => job,
        };
        let idle = Arc::clone(&self.idle);
        let number = self.numbers.fetch_add(1, Ordering::Relaxed);
        self.threads.spawn(name, move || {
            job();
            serve_calls(number, &idle, &*stopping);
        })
    }

    /// Waits for every call thread, once the server stops.
    pub(crate) fn join_all(&self) {
        self.threads.join_all();
    }
}

/// A call thread's life after its first call: waits for the next, runs it, and so on,
/// until it has waited [`CALL_THREAD_IDLE`] unclaimed or the server stops.
fn serve_calls(number: u64, idle: &IdleCallThreads, stopping: &dyn Fn() -> bool) {
    let (handle, calls) = mpsc::sync_channel(1);
    loop {
        rename_own("call-idle");
        idle.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((number, handle.clone()));
        let mut waited = std::time::Duration::ZERO;
        let job = loop {
            let tick = TICK;
            match calls.recv_timeout(tick) {
                Ok(job) => break job,
                Err(mpsc::RecvTimeoutError::Timeout) => waited += tick,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            if stopping() || waited >= CALL_THREAD_IDLE {
                let mut threads = idle.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(at) = threads.iter().position(|(n, _)| *n == number) {
                    threads.swap_remove(at);
                    return;
                }
                // Claimed meanwhile: its call is on its way.
            }
        };
        job();
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
    fn niced_audio_runs_ten_nice_steps_below_setup() {
        let config = Config::default().audio_priority(AudioPriority::Nice);
        let (setup, audio) = thread::spawn(move || {
            let base = own_nice();
            take_role(Role::Setup, &config, base).unwrap();
            let setup = own_nice();
            take_role(Role::Audio, &config, base).unwrap();
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
    fn a_call_thread_runs_the_next_call_and_ends_when_the_server_stops() {
        let calls = CallThreads::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let stopping: Arc<dyn Fn() -> bool + Send + Sync> =
            Arc::new(move || flag.load(Ordering::SeqCst));
        let (ran, ran_on) = mpsc::channel();
        let mut threads = Vec::new();
        for _ in 0..2 {
            let ran = ran.clone();
            let job: CallJob = Box::new(move || ran.send(thread::current().id()).unwrap());
            calls
                .run("call-t".into(), job, Arc::clone(&stopping))
                .unwrap();
            threads.push(ran_on.recv().unwrap());
            // The thread goes idle once its call is done.
            while calls.idle.lock().unwrap().is_empty() {
                thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        assert_eq!(
            threads[0], threads[1],
            "the second call ran on the first's thread"
        );
        stop.store(true, Ordering::SeqCst);
        calls.join_all();
        assert!(calls.idle.lock().unwrap().is_empty());
    }

    #[test]
    fn a_panic_becomes_its_message() {
        assert_eq!(guarded(|| 7), Ok(7));
        let caught = guarded(|| -> u8 { panic!("bad frame {}", 3) });
        assert_eq!(caught, Err("bad frame 3".to_owned()));
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
