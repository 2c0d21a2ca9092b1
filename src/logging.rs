//! The binary's logger: simple_logger's lines, written by a thread of their own.
//!
//! Threads that log never wait on the output: a line is formatted where it is logged and
//! queued, and one writer thread prints the queue. A call thread runs below call setup on
//! the core; were it to hold the output's lock when the core is full, every thread of call
//! setup that logs would wait behind all the calls for it. The queue is bounded: when the
//! output cannot keep up, lines are dropped and counted, and the count is logged.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc::{self, Receiver, SyncSender, TrySendError},
    },
    thread,
    time::Duration,
};

use log::{LevelFilter, Log, Metadata, Record};
use simple_logger::SimpleLogger;

/// Lines that may wait for the writer.
const QUEUED_LINES: usize = 8192;

/// How long `flush` waits for the writer to print what was queued before it.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

enum Queued {
    Line {
        level: log::Level,
        target: String,
        text: String,
    },
    Flush(mpsc::Sender<()>),
}

struct QueuedLogger {
    level: LevelFilter,
    queue: SyncSender<Queued>,
    dropped: AtomicU64,
}

/// Logs at `level` from now on, with UTC timestamps (local ones panic in multi-threaded
/// processes).
pub fn init(level: LevelFilter) {
    let inner = SimpleLogger::new().with_level(level).with_utc_timestamps();
    let (queue, lines) = mpsc::sync_channel(QUEUED_LINES);
    let writer = thread::Builder::new()
        .name("log".into())
        .spawn(move || write_lines(&inner, &lines));
    if writer.is_err() {
        // No thread for it: log in place rather than not at all.
        let _ = SimpleLogger::new()
            .with_level(level)
            .with_utc_timestamps()
            .init();
        return;
    }
    let logger = QueuedLogger {
        level,
        queue,
        dropped: AtomicU64::new(0),
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(level);
    }
}

/// How often the writer looks for queued lines. It polls rather than sleeps on the queue:
/// a logging thread would otherwise wake it under a lock of the queue's, and a call thread
/// that held that lock while it waited for the core would stall setup's threads that log.
const POLL: Duration = Duration::from_millis(10);

fn write_lines(inner: &SimpleLogger, lines: &Receiver<Queued>) {
    loop {
        let queued = match lines.try_recv() {
            Ok(queued) => queued,
            Err(mpsc::TryRecvError::Empty) => {
                thread::sleep(POLL);
                continue;
            }
            Err(mpsc::TryRecvError::Disconnected) => return,
        };
        match queued {
            Queued::Line {
                level,
                target,
                text,
            } => inner.log(
                &Record::builder()
                    .level(level)
                    .target(&target)
                    .args(format_args!("{text}"))
                    .build(),
            ),
            Queued::Flush(done) => {
                inner.flush();
                let _ = done.send(());
            }
        }
    }
}

impl Log for QueuedLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let note = format!("{dropped} log lines dropped: the output did not keep up");
            self.queue_line(log::Level::Warn, module_path!(), note);
        }
        self.queue_line(record.level(), record.target(), record.args().to_string());
    }

    fn flush(&self) {
        let (done, flushed) = mpsc::channel();
        if self.queue.send(Queued::Flush(done)).is_ok() {
            let _ = flushed.recv_timeout(FLUSH_WAIT);
        }
    }
}

impl QueuedLogger {
    fn queue_line(&self, level: log::Level, target: &str, text: String) {
        let line = Queued::Line {
            level,
            target: target.to_owned(),
            text,
        };
        match self.queue.try_send(line) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
