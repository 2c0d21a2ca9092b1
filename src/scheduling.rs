//! Where each thread of the server stands on the core: call setup (accepting, webhooks,
//! handshakes) ahead of audio, since a call not answered in time is lost, while a frame
//! delayed is only late. Under the kernel's fair scheduler setup keeps the process's place
//! and audio runs below it (`SCHED_IDLE` or ten nice steps down, which needs no
//! privilege); under `SCHED_RR` audio runs at the priority asked for and setup one above.
//! Threads inherit their starter's place, so a setup thread's connections stand with it.
//!
//! Why so far below. A call's setup costs about 1.4 ms of CPU; what kept new calls waiting
//! on a full core was where setup stood. Ten nice steps are not enough: one webhooks thread
//! at nice 0 beside two thousand call threads at nice 10 weighs half a percent of the core,
//! and the answer webhook's p99 stayed in seconds. Under `SCHED_IDLE` the call threads run
//! in the time setup leaves, and a setup thread that wakes takes the core at once.
//!
//! Why real-time at all: the fair scheduler's tail. A raw thread-per-connection TCP echo
//! (`.ci/floor`) at 1,000 connections had a round-trip p99 of about 32 ms under the fair
//! scheduler and 0.15 ms under `SCHED_RR`, with its core a third idle: with a thousand
//! threads waking 50 times a second each, some woken threads waited tens of milliseconds
//! to run. A real-time thread runs when woken, and its switch is cheaper too. Only call
//! threads (and setup, one above) are made real-time; a caller sending faster than real
//! time makes its thread yield after a few full reads, and `SCHED_RR`'s slice bounds the
//! rest, so no call keeps the core from the others.

use std::io;

use crate::config::{AudioPriority, Config};

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

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
}
