//! The threads the server starts: named, with stacks sized for what they do, kept in sets
//! that shutdown joins; and the panic guard that keeps a bug to the call or request that met
//! it.

use std::{
    io,
    sync::Mutex,
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

/// Names the calling thread (cut to 15 bytes, as the kernel keeps it): a connection's
/// thread is named for its peer when it starts and for its call once the handshake names
/// the call.
pub(crate) fn rename_own(name: &str) {
    let _ = std::fs::write("/proc/thread-self/comm", crate::text::cut(name, 15));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    #[test]
    fn a_panic_becomes_its_message() {
        assert_eq!(guarded(|| 7), Ok(7));
        let caught = guarded(|| -> u8 { panic!("bad frame {}", 3) });
        assert_eq!(caught, Err("bad frame 3".to_owned()));
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
