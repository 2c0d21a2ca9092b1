//! The binary's logger: lines on standard error (standard output carries only what a
//! command reports), as text or one JSON object a line, filtered by level and by module,
//! written by a thread of their own.
//! At `info` a call logs one line when it ends, and a refused handshake one line with its
//! peer and reason; `RUST_LOG` takes `level` and `module=level` directives.
//!
//! Threads that log never wait on the output: a line is formatted where it is logged, its
//! time taken then, and queued, and one writer thread prints the queue. A call thread runs
//! below call setup on the core; were it to hold the output's lock when the core is full,
//! every thread of call setup that logs would wait behind all the calls for it. The queue
//! is bounded: when the output cannot keep up, lines are dropped and counted, and the
//! count is logged.

use std::{
    io::Write,
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc::{self, Receiver, SyncSender, TrySendError},
    },
    thread,
    time::Duration,
};

use log::{
    kv::{Key, Value, VisitSource},
    Level, LevelFilter, Log, Metadata, Record,
};

/// Lines that may wait for the writer.
const QUEUED_LINES: usize = 8192;

/// How long `flush` waits for the writer to print what was queued before it.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// How often the writer looks for queued lines. It polls rather than sleeps on the queue:
/// a logging thread would otherwise wake it under a lock of the queue's, and a call thread
/// that held that lock while it waited for the core would stall setup's threads that log.
const POLL: Duration = Duration::from_millis(10);

/// How a line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// `2026-12-03T13:01:08.123Z INFO  [target] message`, for people.
    #[default]
    Text,
    /// `{"time":…,"level":…,"target":…,"message":…,"call":…}`, for log shippers; `call` is
    /// there when the line is about one call.
    Json,
}

/// Which lines are logged: a level for all, and levels for modules (`RUST_LOG`'s
/// `module=level` directives); the longest module that holds a line's target decides.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    default: LevelFilter,
    modules: Vec<(String, LevelFilter)>,
}

impl Filter {
    /// `default` for every module.
    pub fn new(default: LevelFilter) -> Filter {
        Filter {
            default,
            modules: Vec::new(),
        }
    }

    /// Reads `RUST_LOG`'s directives, comma-separated: `level`, `module=level`, or
    /// `module` (everything from it). A bare level becomes the default unless `flag` (the
    /// command's own level flag) is given. What it cannot honour (a `/regex` filter, a
    /// level it does not know) is refused with the reason.
    pub fn parse(spec: &str, flag: Option<LevelFilter>) -> Result<Filter, String> {
        if spec.contains('/') {
            return Err(format!(
                "RUST_LOG={spec:?}: text filters (/...) are not supported; use module=level"
            ));
        }
        let mut bare = None;
        let mut modules = Vec::new();
        for directive in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            match directive.split_once('=') {
                Some((module, level)) => {
                    let level = level.trim().parse().map_err(|_| {
                        format!("RUST_LOG={spec:?}: {level:?} is not error, warn, info, debug, trace or off")
                    })?;
                    modules.push((module.trim().to_owned(), level));
                }
                None => match directive.parse::<LevelFilter>() {
                    Ok(level) => bare = Some(level),
                    Err(_) => modules.push((directive.to_owned(), LevelFilter::Trace)),
                },
            }
        }
        Ok(Filter {
            default: flag.or(bare).unwrap_or(LevelFilter::Info),
            modules,
        })
    }

    /// The level lines from `target` are logged at.
    fn level_for(&self, target: &str) -> LevelFilter {
        self.modules
            .iter()
            .filter(|(module, _)| {
                target == module
                    || target
                        .strip_prefix(module.as_str())
                        .is_some_and(|rest| rest.starts_with("::"))
            })
            .max_by_key(|(module, _)| module.len())
            .map_or(self.default, |(_, level)| *level)
    }

    /// The most verbose level any module is logged at.
    fn max_level(&self) -> LevelFilter {
        self.modules
            .iter()
            .map(|(_, level)| *level)
            .fold(self.default, Ord::max)
    }
}

enum Queued {
    Line(String),
    Flush(mpsc::Sender<()>),
}

struct QueuedLogger {
    filter: Filter,
    format: Format,
    queue: SyncSender<Queued>,
    dropped: AtomicU64,
}

/// Logs through `filter` in `format` from now on, to standard error.
pub fn init(filter: Filter, format: Format) {
    let (queue, lines) = mpsc::sync_channel(QUEUED_LINES);
    let writer = thread::Builder::new()
        .name("log".into())
        .spawn(move || write_lines(&lines));
    let max = filter.max_level();
    let logger = QueuedLogger {
        filter,
        format,
        queue,
        dropped: AtomicU64::new(0),
    };
    if writer.is_err() {
        // No thread for it: log in place rather than not at all.
        let direct = DirectLogger(logger);
        if log::set_boxed_logger(Box::new(direct)).is_ok() {
            log::set_max_level(max);
        }
        return;
    }
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max);
    }
}

fn write_lines(lines: &Receiver<Queued>) {
    loop {
        match lines.try_recv() {
            Ok(Queued::Line(line)) => {
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            Ok(Queued::Flush(done)) => {
                let _ = std::io::stderr().flush();
                let _ = done.send(());
            }
            Err(mpsc::TryRecvError::Empty) => thread::sleep(POLL),
            Err(mpsc::TryRecvError::Disconnected) => return,
        }
    }
}

impl Log for QueuedLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.filter.level_for(metadata.target())
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let note = format!("{dropped} log lines dropped: the output did not keep up");
            let line = Line::now(Level::Warn, module_path!(), note, None);
            self.queue_line(line.render(self.format));
        }
        self.queue_line(Line::of(record).render(self.format));
    }

    fn flush(&self) {
        let (done, flushed) = mpsc::channel();
        if self.queue.send(Queued::Flush(done)).is_ok() {
            let _ = flushed.recv_timeout(FLUSH_WAIT);
        }
    }
}

impl QueuedLogger {
    fn queue_line(&self, line: String) {
        match self.queue.try_send(Queued::Line(line)) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The logger when no writer thread could be started: each line written where it is
/// logged.
struct DirectLogger(QueuedLogger);

impl Log for DirectLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            let line = Line::of(record).render(self.0.format);
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// One line's parts, its time taken when it was logged.
struct Line {
    time: time::OffsetDateTime,
    level: Level,
    target: String,
    message: String,
    /// The call the line is about: the record's `call` key.
    call: Option<String>,
}

impl Line {
    fn now(level: Level, target: &str, message: String, call: Option<String>) -> Line {
        Line {
            time: time::OffsetDateTime::now_utc(),
            level,
            target: target.to_owned(),
            message,
            call,
        }
    }

    fn of(record: &Record) -> Line {
        let mut call = CallKey(None);
        let _ = record.key_values().visit(&mut call);
        Line::now(
            record.level(),
            record.target(),
            record.args().to_string(),
            call.0,
        )
    }

    /// The line as written, newline included.
    fn render(&self, format: Format) -> String {
        let time = timestamp(self.time);
        match format {
            Format::Text => format!(
                "{time} {:<5} [{}] {}\n",
                self.level, self.target, self.message
            ),
            Format::Json => {
                let mut object = serde_json::json!({
                    "time": time,
                    "level": self.level.as_str(),
                    "target": self.target,
                    "message": self.message,
                });
                if let Some(call) = &self.call {
                    object["call"] = call.as_str().into();
                }
                format!("{object}\n")
            }
        }
    }
}

/// Finds the `call` key among a record's key-values.
struct CallKey(Option<String>);

impl<'kvs> VisitSource<'kvs> for CallKey {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        if key.as_str() == "call" {
            self.0 = Some(value.to_string());
        }
        Ok(())
    }
}

/// RFC 3339 in UTC, to the millisecond: `2026-12-03T13:01:08.123Z`.
fn timestamp(t: time::OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_directive_overrides_the_default_for_that_module_only() {
        let filter = Filter::parse("warn,vonage_echo::ws=debug", None).unwrap();
        assert_eq!(
            filter.level_for("vonage_echo::ws::call"),
            LevelFilter::Debug
        );
        assert_eq!(filter.level_for("vonage_echo::ws"), LevelFilter::Debug);
        assert_eq!(filter.level_for("vonage_echo::wsx"), LevelFilter::Warn);
        assert_eq!(filter.level_for("vonage_echo::http"), LevelFilter::Warn);
        assert_eq!(filter.max_level(), LevelFilter::Debug);
    }

    #[test]
    fn the_longest_module_decides() {
        let filter = Filter::parse("vonage_echo=debug,vonage_echo::http=error", None).unwrap();
        assert_eq!(
            filter.level_for("vonage_echo::http::gate"),
            LevelFilter::Error
        );
        assert_eq!(filter.level_for("vonage_echo::server"), LevelFilter::Debug);
        assert_eq!(filter.level_for("tiny_http"), LevelFilter::Info);
    }

    #[test]
    fn the_level_flag_wins_over_a_bare_level() {
        let filter = Filter::parse("debug,tiny_http=off", Some(LevelFilter::Warn)).unwrap();
        assert_eq!(filter.level_for("vonage_echo"), LevelFilter::Warn);
        assert_eq!(filter.level_for("tiny_http"), LevelFilter::Off);
    }

    #[test]
    fn a_bare_module_means_everything_from_it() {
        let filter = Filter::parse("vonage_echo", None).unwrap();
        assert_eq!(filter.level_for("vonage_echo::ws"), LevelFilter::Trace);
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_with_the_reason() {
        let regex = Filter::parse("info/call", None).unwrap_err();
        assert!(regex.contains("not supported"), "{regex}");
        let level = Filter::parse("vonage_echo=loud", None).unwrap_err();
        assert!(level.contains("\"loud\""), "{level}");
    }

    #[test]
    fn a_json_line_is_one_object_with_the_call_when_there_is_one() {
        let line = Line::now(
            Level::Info,
            "vonage_echo::ws::call",
            "call a ended \"well\"".into(),
            Some("a".into()),
        );
        let text = line.render(Format::Json);
        assert!(text.ends_with('\n') && text.lines().count() == 1);
        let object: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(object["level"], "INFO");
        assert_eq!(object["target"], "vonage_echo::ws::call");
        assert_eq!(object["message"], "call a ended \"well\"");
        assert_eq!(object["call"], "a");
        assert!(object["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn a_line_keeps_the_time_it_was_logged_at_however_late_it_is_written() {
        let record = Record::builder()
            .level(Level::Info)
            .target("t")
            .args(format_args!("m"))
            .build();
        let line = Line::of(&record);
        let logged = timestamp(line.time);
        std::thread::sleep(Duration::from_millis(20));
        assert!(line.render(Format::Text).starts_with(&logged));
        assert!(line.time <= time::OffsetDateTime::now_utc() - Duration::from_millis(20));
    }

    #[test]
    fn a_text_line_starts_with_its_time_and_level() {
        let line = Line::now(Level::Warn, "t", "m".into(), None);
        let text = line.render(Format::Text);
        assert!(text.contains("Z WARN  [t] m\n"), "{text}");
        assert_eq!(text.find('T'), Some(10), "{text}");
    }
}
