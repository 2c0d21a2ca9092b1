//! What the server has done, for `GET /metrics` in Prometheus' text format. The echo path
//! only adds to atomics (no lock); the webhook path, a few requests per call, may lock.

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Mutex,
    },
    time::Duration,
};

use crate::protocol::events::CallStatus;

mod process;

/// The routes webhook requests are counted under: a fixed set, whatever clients ask for.
pub(crate) const ROUTES: [&str; 6] = ["answer", "events", "health", "ready", "metrics", "other"];

/// Upper bounds, in seconds, of the webhook-latency histogram's buckets: an answer is
/// expected in milliseconds, and Vonage gives up on it after seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// One route's latency histogram: lock-free, as the calls' counters are.
#[derive(Default)]
struct Latency {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// Close codes counted one by one; any other lands in `other`.
const CLOSE_CODES: [u16; 9] = [1000, 1001, 1002, 1005, 1006, 1007, 1009, 1011, 1013];

/// The reasons a handshake is refused or dropped, as the metrics label them: the labels of
/// the socket listener's refusals (`ws::refusal`), in the order they are rendered.
pub(crate) const REFUSALS: [&str; 10] = [
    "path",
    "bad_uuid",
    "unauthorized",
    "capacity",
    "duplicate",
    "shutting_down",
    "draining",
    "too_many_pending",
    "timeout",
    "malformed",
];

/// Upper bounds, in seconds, of the call-duration histogram's buckets.
const DURATION_BUCKETS: [f64; 10] = [
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// The server's counters.
/// A metric family's `HELP` and `TYPE` lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// What the server is doing now, read when the metrics are rendered.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct State {
    pub(crate) active_calls: usize,
    pub(crate) draining: bool,
}

/// The gauges of the server's state that are not counted here, and the build.
fn render_state(out: &mut String, state: State) {
    family(
        out,
        "vonage_echo_build_info",
        "gauge",
        "Always 1; the version built is its label.",
    );
    let _ = writeln!(
        out,
        "vonage_echo_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    family(
        out,
        "vonage_echo_draining",
        "gauge",
        "1 while the server drains (takes no new calls), else 0.",
    );
    let _ = writeln!(out, "vonage_echo_draining {}", u8::from(state.draining));
}

#[derive(Default)]
pub(crate) struct Metrics {
    calls_total: AtomicU64,
    calls_ended: [AtomicU64; CLOSE_CODES.len() + 1],
    refused: [AtomicU64; REFUSALS.len()],
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    texts_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    dtmf_digits: AtomicU64,
    duration_buckets: [AtomicU64; DURATION_BUCKETS.len()],
    duration_count: AtomicU64,
    duration_sum_ms: AtomicU64,
    webhooks: Mutex<BTreeMap<(&'static str, u16), u64>>,
    latency: [Latency; ROUTES.len()],
    events: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub(crate) fn call_started(&self) {
        self.calls_total.fetch_add(1, Relaxed);
    }

    pub(crate) fn call_ended(&self, close_code: u16, lasted: Duration) {
        let slot = CLOSE_CODES
            .iter()
            .position(|&c| c == close_code)
            .unwrap_or(CLOSE_CODES.len());
        self.calls_ended[slot].fetch_add(1, Relaxed);
        let secs = lasted.as_secs_f64();
        for (bound, count) in DURATION_BUCKETS.iter().zip(&self.duration_buckets) {
            if secs <= *bound {
                count.fetch_add(1, Relaxed);
            }
        }
        self.duration_count.fetch_add(1, Relaxed);
        self.duration_sum_ms
            .fetch_add(lasted.as_millis() as u64, Relaxed);
    }

    /// Counts a handshake refused or dropped for `reason`, one of [`REFUSALS`].
    pub(crate) fn refused(&self, reason: &str) {
        if let Some(slot) = REFUSALS.iter().position(|&r| r == reason) {
            self.refused[slot].fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn frame_in(&self, bytes: usize) {
        self.frames_in.fetch_add(1, Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn frame_out(&self, bytes: usize) {
        self.frames_out.fetch_add(1, Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn text_out(&self) {
        self.texts_out.fetch_add(1, Relaxed);
    }

    pub(crate) fn dtmf(&self) {
        self.dtmf_digits.fetch_add(1, Relaxed);
    }

    pub(crate) fn webhook(&self, route: &'static str, status: u16) {
        let mut map = self.webhooks.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((route, status)).or_default() += 1;
    }

    /// Adds how long a webhook request on `route` (one of [`ROUTES`]) took to answer.
    pub(crate) fn webhook_latency(&self, route: &str, took: Duration) {
        let slot = ROUTES
            .iter()
            .position(|&r| r == route)
            .unwrap_or(ROUTES.len() - 1);
        let latency = &self.latency[slot];
        let secs = took.as_secs_f64();
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&latency.buckets) {
            if secs <= *bound {
                count.fetch_add(1, Relaxed);
            }
        }
        latency.count.fetch_add(1, Relaxed);
        latency
            .sum_micros
            .fetch_add(took.as_micros() as u64, Relaxed);
    }

    /// Counts an event by status; statuses Vonage does not document share one label, so a
    /// sender cannot grow the set without bound.
    pub(crate) fn event(&self, status: Option<&CallStatus>) {
        let label = match status {
            None => "none",
            Some(CallStatus::Other(_)) => "other",
            Some(known) => CallStatus::DOCUMENTED
                .iter()
                .find(|s| **s == known.name())
                .copied()
                .unwrap_or("other"),
        };
        let mut map = self.events.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(label).or_default() += 1;
    }

    /// The exposition, `# HELP` and `# TYPE` before each family.
    pub(crate) fn render(&self, state: State) -> String {
        let mut out = String::with_capacity(4096);
        render_state(&mut out, state);
        self.render_calls(&mut out, state.active_calls);
        self.render_counters(&mut out);
        self.render_webhooks(&mut out);
        self.render_latency(&mut out);
        self.render_durations(&mut out);
        process::render(&mut out);
        out
    }

    /// Calls up, admitted and ended, and handshakes refused.
    fn render_calls(&self, out: &mut String, active_calls: usize) {
        family(
            out,
            "vonage_echo_calls_active",
            "gauge",
            "Calls connected now.",
        );
        let _ = writeln!(out, "vonage_echo_calls_active {active_calls}");
        family(
            out,
            "vonage_echo_calls_total",
            "counter",
            "Calls admitted since start.",
        );
        let _ = writeln!(
            out,
            "vonage_echo_calls_total {}",
            self.calls_total.load(Relaxed)
        );
        family(
            out,
            "vonage_echo_calls_ended_total",
            "counter",
            "Calls ended, by WebSocket close code (1006: lost without a close).",
        );
        for (i, count) in self.calls_ended.iter().enumerate() {
            let code = CLOSE_CODES
                .get(i)
                .map_or("other".to_owned(), u16::to_string);
            let _ = writeln!(
                out,
                "vonage_echo_calls_ended_total{{code=\"{code}\"}} {}",
                count.load(Relaxed)
            );
        }
        family(
            out,
            "vonage_echo_handshakes_refused_total",
            "counter",
            "WebSocket handshakes refused or dropped, by reason.",
        );
        for (reason, count) in REFUSALS.iter().zip(&self.refused) {
            let _ = writeln!(
                out,
                "vonage_echo_handshakes_refused_total{{reason=\"{}\"}} {}",
                reason,
                count.load(Relaxed)
            );
        }
    }

    /// The counters of one value each: frames, texts, bytes, keys.
    fn render_counters(&self, out: &mut String) {
        for (name, help, value) in [
            (
                "vonage_echo_frames_in_total",
                "Binary audio messages received.",
                &self.frames_in,
            ),
            (
                "vonage_echo_frames_out_total",
                "Binary audio messages echoed back.",
                &self.frames_out,
            ),
            (
                "vonage_echo_texts_out_total",
                "Text messages echoed back.",
                &self.texts_out,
            ),
            (
                "vonage_echo_bytes_in_total",
                "Bytes of audio received.",
                &self.bytes_in,
            ),
            (
                "vonage_echo_bytes_out_total",
                "Bytes of audio echoed back.",
                &self.bytes_out,
            ),
            (
                "vonage_echo_dtmf_digits_total",
                "DTMF keys reported on sockets.",
                &self.dtmf_digits,
            ),
        ] {
            family(out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", value.load(Relaxed));
        }
    }

    /// Webhook requests by route and status, and call events by status.
    fn render_webhooks(&self, out: &mut String) {
        family(
            out,
            "vonage_echo_webhook_requests_total",
            "counter",
            "Webhook requests, by route and status.",
        );
        for ((route, status), count) in self
            .webhooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(out, "vonage_echo_webhook_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}");
        }
        family(
            out,
            "vonage_echo_call_events_total",
            "counter",
            "Event webhook requests, by call status.",
        );
        for (status, count) in self.events.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "vonage_echo_call_events_total{{status=\"{status}\"}} {count}"
            );
        }
    }

    /// The histogram of webhook latency, by route: from the request read whole to its
    /// answer written, the private hop to the webhooks included.
    fn render_latency(&self, out: &mut String) {
        let name = "vonage_echo_webhook_duration_seconds";
        family(
            out,
            name,
            "histogram",
            "How long webhook requests took to answer once read, by route.",
        );
        for (route, latency) in ROUTES.iter().zip(&self.latency) {
            for (bound, count) in LATENCY_BUCKETS.iter().zip(&latency.buckets) {
                let _ = writeln!(
                    out,
                    "{name}_bucket{{route=\"{route}\",le=\"{bound}\"}} {}",
                    count.load(Relaxed)
                );
            }
            let total = latency.count.load(Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{route=\"{route}\",le=\"+Inf\"}} {total}"
            );
            let _ = writeln!(
                out,
                "{name}_sum{{route=\"{route}\"}} {}",
                latency.sum_micros.load(Relaxed) as f64 / 1e6
            );
            let _ = writeln!(out, "{name}_count{{route=\"{route}\"}} {total}");
        }
    }

    /// The histogram of call durations.
    fn render_durations(&self, out: &mut String) {
        family(
            out,
            "vonage_echo_call_duration_seconds",
            "histogram",
            "How long calls lasted.",
        );
        for (bound, count) in DURATION_BUCKETS.iter().zip(&self.duration_buckets) {
            let _ = writeln!(
                out,
                "vonage_echo_call_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                count.load(Relaxed)
            );
        }
        let total = self.duration_count.load(Relaxed);
        let _ = writeln!(
            out,
            "vonage_echo_call_duration_seconds_bucket{{le=\"+Inf\"}} {total}"
        );
        let _ = writeln!(
            out,
            "vonage_echo_call_duration_seconds_sum {}",
            self.duration_sum_ms.load(Relaxed) as f64 / 1000.0
        );
        let _ = writeln!(out, "vonage_echo_call_duration_seconds_count {total}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_help_and_type() {
        let m = Metrics::default();
        m.webhook("answer", 200);
        m.event(Some(&CallStatus::Completed));
        let text = m.render(State::default());
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{name} has no TYPE"
            );
            assert!(
                text.contains(&format!("# HELP {family} ")),
                "{name} has no HELP"
            );
        }
    }

    #[test]
    fn durations_fill_cumulative_buckets() {
        let m = Metrics::default();
        m.call_ended(1000, Duration::from_secs(7));
        let text = m.render(State::default());
        assert!(text.contains("vonage_echo_call_duration_seconds_bucket{le=\"5\"} 0"));
        assert!(text.contains("vonage_echo_call_duration_seconds_bucket{le=\"10\"} 1"));
        assert!(text.contains("vonage_echo_call_duration_seconds_bucket{le=\"+Inf\"} 1"));
        assert!(text.contains("vonage_echo_calls_ended_total{code=\"1000\"} 1"));
    }

    #[test]
    fn webhook_latency_fills_its_route_s_cumulative_buckets() {
        let m = Metrics::default();
        m.webhook_latency("answer", Duration::from_millis(3));
        m.webhook_latency("no such route", Duration::from_millis(3));
        let text = m.render(State::default());
        let name = "vonage_echo_webhook_duration_seconds";
        assert!(text.contains(&format!(
            "{name}_bucket{{route=\"answer\",le=\"0.0025\"}} 0"
        )));
        assert!(text.contains(&format!("{name}_bucket{{route=\"answer\",le=\"0.005\"}} 1")));
        assert!(text.contains(&format!("{name}_count{{route=\"answer\"}} 1")));
        assert!(text.contains(&format!("{name}_count{{route=\"other\"}} 1")));
        assert!(text.contains(&format!("{name}_sum{{route=\"answer\"}} 0.003")));
    }

    #[test]
    fn the_build_and_the_process_are_described() {
        let text = Metrics::default().render(State::default());
        let version = env!("CARGO_PKG_VERSION");
        assert!(text.contains(&format!(
            "vonage_echo_build_info{{version=\"{version}\"}} 1"
        )));
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(text.contains(&format!("\n{name} ")), "{name} missing");
        }
    }

    #[test]
    fn unknown_event_statuses_share_one_label() {
        let m = Metrics::default();
        m.event(Some(&CallStatus::Other("a".into())));
        m.event(Some(&CallStatus::Other("b".into())));
        assert!(m
            .render(State::default())
            .contains("vonage_echo_call_events_total{status=\"other\"} 2"));
    }
}
