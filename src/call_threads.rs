//! The pool of threads that run calls' audio, kept between calls.
//!
//! Why kept: the locks a call thread shares with setup. Off-CPU stacks of the webhooks
//! thread at 2,000 calls showed waits of 0.4-0.6 s on glibc's allocator lock, held by a
//! call thread waiting for the core behind two thousand others. A thread's exit takes the
//! C library's stack-cache and arena locks that every new thread takes too, so a call
//! thread that ended with its call, low on the core, would make setup wait behind the
//! calls. (An arena for each thread, `GLIBC_TUNABLES=glibc.malloc.arena_max=4096`, also
//! removes the wait, at several MiB more at the peak, so the server does not set it.)

use std::{
    io,
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc, Arc, Mutex,
    },
};

#[cfg(doc)]
use crate::scheduling::Role;
use crate::threads::{rename_own, ThreadSet, TICK};

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

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
}
