//! Serves a load's live counters in Prometheus' text format on `--metrics-addr`, so that
//! one Prometheus scraping every generator sees the whole of a sharded load while it runs.
//! A load is scraped every few seconds by one or two clients: one thread answering one
//! connection at a time is enough, and keeps the server's HTTP stack out of the emulator.

use std::{
    fmt::Write as _,
    io::{self, Read, Write},
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::Duration,
};

use super::{
    live::{Counters, Totals},
    shard::Shard,
};

/// How long a scraper may take to send its request and to take the answer: a slow one
/// holds up the next, never the load.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// The most of a request read: its request line is all that is looked at.
const MAX_REQUEST: usize = 8 * 1024;

/// Prometheus' text exposition format, version 0.0.4.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the exporter shows: the load's counters, and which load and shard they are of.
pub(crate) struct Source {
    pub(crate) shard: Shard,
    /// The calls this shard dials.
    pub(crate) planned: u64,
    pub(crate) counters: Vec<Arc<Counters>>,
}

/// The running exporter; [`Exporter::stop`] ends its thread.
pub(crate) struct Exporter {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<()>,
}

impl Exporter {
    /// Listens on `addr` and serves `GET /metrics` from `source` until stopped.
    pub(crate) fn start(addr: SocketAddr, source: Source) -> io::Result<Exporter> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if flag.load(Ordering::Acquire) {
                        return;
                    }
                    // A client that fails is the client's loss; the next is served.
                    if let Ok(stream) = stream {
                        let _ = answer(stream, &source);
                    }
                }
            })?;
        Ok(Exporter { addr, stop, thread })
    }

    /// Stops serving: the flag is raised, and a connection of its own wakes the thread
    /// blocked in `accept` to see it.
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::Release);
        let wake = match self.addr {
            SocketAddr::V4(a) if a.ip().is_unspecified() => {
                SocketAddr::from((Ipv4Addr::LOCALHOST, a.port()))
            }
            SocketAddr::V6(a) if a.ip().is_unspecified() => {
                SocketAddr::from((Ipv6Addr::LOCALHOST, a.port()))
            }
            other => other,
        };
        if TcpStream::connect_timeout(&wake, CLIENT_TIMEOUT).is_ok() {
            let _ = self.thread.join();
        }
    }
}

/// Reads one request and answers it: the counters for `GET /metrics`, 404 for any other
/// path, 405 for any other method. The connection is closed after.
fn answer(mut stream: TcpStream, source: &Source) -> io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let head = read_head(&mut stream)?;
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", render(source)),
        (_, "/metrics") => ("405 Method Not Allowed", "GET only\n".to_owned()),
        _ => ("404 Not Found", "the counters are at /metrics\n".to_owned()),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// The request's head, up to its blank line or [`MAX_REQUEST`] bytes.
fn read_head(stream: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// The counters in Prometheus' text format, each labelled with the shard.
pub(crate) fn render(source: &Source) -> String {
    let t = Totals::of(source.counters.iter().map(Arc::as_ref));
    let f = t.frames;
    let metrics: [(&str, &str, &str, u64); 10] = [
        (
            "calls_planned",
            "gauge",
            "Calls this generator dials in all.",
            source.planned,
        ),
        (
            "calls_dialed_total",
            "counter",
            "Calls whose dialing began.",
            t.calls_dialed,
        ),
        (
            "calls_connected_total",
            "counter",
            "Calls whose socket opened.",
            t.calls_connected,
        ),
        (
            "calls_failed_total",
            "counter",
            "Calls that failed, in setup or while streaming.",
            t.calls_failed,
        ),
        (
            "calls_streaming",
            "gauge",
            "Calls whose socket is open now.",
            t.calls_streaming(),
        ),
        ("frames_sent_total", "counter", "Audio frames sent.", f.sent),
        (
            "frames_echoed_total",
            "counter",
            "Frames echoed byte-identical and in order.",
            f.echoed,
        ),
        (
            "frames_lost_total",
            "counter",
            "Frames that never came back.",
            f.lost,
        ),
        (
            "frames_corrupted_total",
            "counter",
            "Frames that came back different.",
            f.corrupted,
        ),
        (
            "frames_late_total",
            "counter",
            "Frames the generator sent 5 ms or more after their schedule.",
            f.late,
        ),
    ];
    let mut text = String::new();
    for (name, kind, help, value) in metrics {
        let name = format!("vonage_echo_load_{name}");
        let _ = writeln!(text, "# HELP {name} {help}");
        let _ = writeln!(text, "# TYPE {name} {kind}");
        let _ = writeln!(text, "{name}{{shard=\"{}\"}} {value}", source.shard);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counters_render_as_prometheus_text_labelled_with_the_shard() {
        let counters = Arc::new(Counters::default());
        Counters::bump(&counters.calls_connected);
        Counters::bump(&counters.frames_sent);
        let source = Source {
            shard: "2/3".parse().unwrap(),
            planned: 7,
            counters: vec![counters],
        };
        let text = render(&source);
        assert!(text.contains("# TYPE vonage_echo_load_frames_sent_total counter\n"));
        assert!(text.contains("vonage_echo_load_frames_sent_total{shard=\"2/3\"} 1\n"));
        assert!(text.contains("vonage_echo_load_calls_streaming{shard=\"2/3\"} 1\n"));
        assert!(text.contains("vonage_echo_load_calls_planned{shard=\"2/3\"} 7\n"));
        // Every sample line is a name, its label and a number.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<u64>().is_ok(), "{line}");
        }
    }
}
