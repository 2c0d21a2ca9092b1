//! A report to look at: one self-contained HTML page (`--html FILE`) with the latency
//! histograms and, for a call, its timeline; for a load, its calls and lateness over time.
//! Everything is inline (CSS, SVG drawn here, a few lines of script), so the page opens
//! from a CI artifact or a mail attachment with no network.

use std::{fmt::Write as _, time::Duration};

use super::{
    histogram::Histogram,
    judged::JudgedLoad,
    load::LoadReport,
    progress::LoadSecond,
    report::escape,
    report::CallReport,
    stats::ms,
    turns::{BargeIn, Turn},
};

/// A chart's width and a bar chart's height, in CSS pixels.
const WIDTH: f64 = 960.0;
const CHART_HEIGHT: f64 = 150.0;

/// Bars of a histogram.
const BINS: usize = 40;

/// A timeline lane's height.
const LANE: f64 = 26.0;

/// The width given to a timeline's lane names.
const LABELS: f64 = 170.0;

/// The page's look: readable in light and dark, printable.
const STYLE: &str = r#"
:root { color-scheme: light dark; --fg: #1d2330; --muted: #667; --bg: #fff; --card: #f5f6f8;
  --caller: #2f6fde; --app: #1f9d6b; --mark: #d9480f; --note: #8e44ad; --ncco: #999; --bad: #c92a2a; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e8ee; --muted: #9aa; --bg: #14161b; --card: #1d2027; } }
body { font: 14px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); margin: 2em auto; max-width: 1000px; padding: 0 1em; }
h1 { font-size: 1.4em; margin-bottom: .2em; } h2 { font-size: 1.1em; margin-top: 2em; }
.verdict { font-weight: 600; } .passed { color: var(--app); } .failed { color: var(--bad); }
.figures { display: flex; flex-wrap: wrap; gap: .6em; margin: 1em 0; }
.figure { background: var(--card); border-radius: 6px; padding: .5em .8em; min-width: 9em; }
.figure b { display: block; font-size: 1.3em; } .figure span { color: var(--muted); font-size: .85em; }
figure { margin: 1em 0; background: var(--card); border-radius: 6px; padding: .6em; }
figcaption { font-weight: 600; margin-bottom: .3em; } figcaption span { font-weight: 400; color: var(--muted); }
svg { display: block; width: 100%; height: auto; } svg text { fill: var(--fg); font-size: 11px; }
.axis { stroke: var(--muted); stroke-width: .5; } .bar { fill: var(--caller); } .bar:hover { opacity: .7; }
.caller { fill: var(--caller); } .app { fill: var(--app); } .mark { fill: var(--mark); }
.note { fill: var(--note); } .ncco { fill: var(--ncco); } .up { fill: none; stroke: var(--caller); stroke-width: 1.5; }
.late { fill: var(--mark); }
table { border-collapse: collapse; width: 100%; } td, th { text-align: left; padding: .2em .5em; border-bottom: 1px solid var(--card); }
li.fault { color: var(--bad); } footer { color: var(--muted); margin-top: 2em; font-size: .85em; }
"#;

/// Checks that every chart was drawn, and says so in the footer: a page that opens blank
/// somewhere says where.
const SCRIPT: &str = r#"
(function () {
  var charts = document.querySelectorAll("figure svg");
  var empty = Array.prototype.filter.call(charts, function (svg) { return svg.childElementCount === 0; });
  document.getElementById("drawn").textContent =
    charts.length + " chart(s) drawn" + (empty.length ? ", " + empty.length + " empty" : "");
  document.body.setAttribute("data-rendered", empty.length ? "partly" : "yes");
})();
"#;

/// The page of one call: its verdict, its figures, its timeline, its latency histograms,
/// its turns and barge-ins, its events.
pub fn call_page(report: &CallReport) -> String {
    let mut body = String::new();
    let verdict = if report.passed() {
        "<span class=\"verdict passed\">PASSED</span>".to_owned()
    } else {
        format!(
            "<span class=\"verdict failed\">FAILED: {} fault(s)</span>",
            report.faults.len()
        )
    };
    let _ = write!(
        body,
        "<h1>vonage-echo call {}</h1><p>{verdict} &middot; {}</p>",
        escape(report.id.as_str()),
        escape(&report.socket_uri)
    );
    body.push_str(&call_figures(report));
    body.push_str(&findings(report));
    body.push_str("<h2>Timeline</h2>");
    body.push_str(&call_timeline(report));
    body.push_str("<h2>Latencies</h2>");
    let replies: Vec<f64> = report
        .turns
        .iter()
        .filter_map(|t| t.reply)
        .map(ms)
        .collect();
    let clears: Vec<f64> = report
        .barge_ins
        .iter()
        .filter_map(|b| b.clear)
        .map(ms)
        .collect();
    let rtts: Vec<f64> = report
        .round_trips
        .iter()
        .map(|us| f64::from(*us) / 1000.0)
        .collect();
    body.push_str(&histogram(
        "Reply",
        "from the end of each caller's turn to its answer heard",
        &bins(&replies),
    ));
    body.push_str(&histogram(
        "Barge-in",
        "from the caller's interruption to the application's clear",
        &bins(&clears),
    ));
    body.push_str(&histogram(
        "Round trip",
        "of each echoed frame",
        &bins(&rtts),
    ));
    body.push_str(&turn_table(&report.turns, &report.barge_ins));
    body.push_str(&event_table(report));
    page(&format!("vonage-echo call {}", report.id.as_str()), &body)
}

/// The page of a load: its verdict, its figures, calls up and frames late over time, and
/// its latency histograms.
pub fn load_page(report: &LoadReport) -> String {
    let mut body = load_summary(report);
    body.push_str("<h2>Over time</h2>");
    body.push_str(&over_time(&report.over_time));
    body.push_str("<h2>Latencies</h2>");
    let h = &report.histograms;
    for (name, what, histogram) in [
        (
            "Answer webhook",
            "from request to whole answer",
            &h.answer_webhook,
        ),
        (
            "Socket handshake",
            "from TCP connect to the 101",
            &h.handshake,
        ),
        ("Round trip", "of each echoed frame", &h.round_trip),
    ] {
        body.push_str(&histogram_of(name, what, histogram));
    }
    if let Some(judged) = &report.judged {
        body.push_str(&histogram_of(
            "Reply",
            "from the end of each caller's turn to its answer heard",
            &h.reply,
        ));
        body.push_str(&histogram_of(
            "Barge-in",
            "from the caller's interruption to the application's clear",
            &h.barge_in_clear,
        ));
        body.push_str(&rules(judged));
    }
    page("vonage-echo load", &body)
}

/// The load's heading: its verdict, its counts, and why calls failed.
fn load_summary(report: &LoadReport) -> String {
    let mut body = String::new();
    let verdict = if report.passed() {
        "<span class=\"verdict passed\">PASSED</span>"
    } else {
        "<span class=\"verdict failed\">FAILED</span>"
    };
    let _ = write!(
        body,
        "<h1>vonage-echo load</h1><p>{verdict} &middot; {}</p>",
        escape(&report.arrival.to_string())
    );
    body.push_str(&figures(&[
        (report.attempted.to_string(), "calls dialed"),
        (report.connected.to_string(), "connected"),
        (report.failed_calls().to_string(), "failed"),
        (report.frames_sent.to_string(), "frames sent"),
        (report.frames_late.to_string(), "frames sent late"),
        (format!("{:.1} s", report.elapsed_seconds), "elapsed"),
    ]));
    if !report.failed.is_empty() {
        body.push_str("<ul>");
        for (reason, n) in &report.failed {
            let _ = write!(body, "<li class=\"fault\">{n} x {}</li>", escape(reason));
        }
        body.push_str("</ul>");
    }
    body
}

/// A judged load's rules: how many calls passed, and each rule broken with an example.
fn rules(judged: &JudgedLoad) -> String {
    let mut body = String::from("<h2>Rules</h2><ul>");
    let _ = write!(
        body,
        "<li>{} of {} calls passed</li>",
        judged.passed, judged.calls
    );
    for (rule, b) in &judged.rules {
        let _ = write!(
            body,
            "<li class=\"fault\">{}: {} calls, e.g. {}</li>",
            escape(rule),
            b.calls,
            escape(&b.example)
        );
    }
    body.push_str("</ul>");
    body
}

/// A histogram of microseconds, drawn in equal bars of ms up to its largest value, with
/// its percentiles in the caption.
pub(crate) fn histogram_of(name: &str, what: &str, h: &Histogram) -> String {
    let what = if h.count() == 0 {
        what.to_owned()
    } else {
        let p = |q: f64| h.percentile(q) as f64 / 1000.0;
        format!(
            "{what}; p50 {:.1}, p90 {:.1}, p99 {:.1}, max {:.1} ms",
            p(50.0),
            p(90.0),
            p(99.0),
            h.max() as f64 / 1000.0
        )
    };
    let top = h.max() as f64 / 1000.0;
    let width = (top / BINS as f64).max(0.001);
    let mut bins: Bins = (0..BINS)
        .map(|i| (i as f64 * width, (i + 1) as f64 * width, 0))
        .collect();
    if h.count() == 0 {
        bins.clear();
    }
    for (low, n) in h.buckets() {
        let i = ((low as f64 / 1000.0 / width) as usize).min(BINS - 1);
        if let Some(bin) = bins.get_mut(i) {
            bin.2 += n;
        }
    }
    histogram(name, &what, &bins)
}

/// Calls up each second (a line) over frames late each second (bars).
fn over_time(seconds: &[LoadSecond]) -> String {
    let height = 160.0;
    let mut svg = String::new();
    let last = seconds.last().map_or(1, |s| s.second.max(1)) as f64;
    let most_up = seconds.iter().map(|s| s.calls_up).max().unwrap_or(0).max(1) as f64;
    let late: Vec<u64> = seconds
        .iter()
        .scan(0, |before, s| {
            let new = s.frames_late.saturating_sub(*before);
            *before = s.frames_late;
            Some(new)
        })
        .collect();
    let most_late = late.iter().copied().max().unwrap_or(0).max(1) as f64;
    let x = |second: f64| 40.0 + second / last * (WIDTH - 60.0);
    let base = height - 20.0;
    for (s, n) in seconds.iter().zip(&late).filter(|(_, n)| **n > 0) {
        let h = *n as f64 / most_late * 40.0;
        let _ = write!(
            svg,
            "<rect class=\"late\" x=\"{:.1}\" y=\"{:.1}\" width=\"4\" height=\"{h:.1}\"><title>{} s: {n} frames late</title></rect>",
            x(s.second as f64) - 2.0,
            base - h,
            s.second
        );
    }
    let points: Vec<String> = seconds
        .iter()
        .map(|s| {
            format!(
                "{:.1},{:.1}",
                x(s.second as f64),
                base - s.calls_up as f64 / most_up * (base - 10.0)
            )
        })
        .collect();
    if !points.is_empty() {
        let _ = write!(
            svg,
            "<polyline class=\"up\" points=\"{}\"/>",
            points.join(" ")
        );
    }
    let _ = write!(
        svg,
        "<line class=\"axis\" x1=\"40\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\"/>\
         <text x=\"40\" y=\"{}\">0 s</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{last:.0} s</text>\
         <text x=\"36\" y=\"16\" text-anchor=\"end\">{most_up:.0}</text>",
        WIDTH - 20.0,
        base + 14.0,
        WIDTH - 20.0,
        base + 14.0,
    );
    format!(
        "<figure><figcaption>Calls up <span>(line) and frames sent late, of the calls ended \
         each second (bars)</span></figcaption><svg viewBox=\"0 0 {WIDTH} {height}\" role=\"img\">{svg}</svg></figure>"
    )
}

/// The whole page around `body`.
pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>{body}\
         <footer>vonage-echo {} &middot; <span id=\"drawn\"></span></footer>\
         <script>{SCRIPT}</script></body></html>\n",
        escape(title),
        env!("CARGO_PKG_VERSION")
    )
}

/// A row of headline figures.
pub(crate) fn figures(items: &[(String, &str)]) -> String {
    let mut out = String::from("<div class=\"figures\">");
    for (value, label) in items {
        let _ = write!(
            out,
            "<div class=\"figure\"><b>{}</b><span>{}</span></div>",
            escape(value),
            escape(label)
        );
    }
    out.push_str("</div>");
    out
}

fn call_figures(report: &CallReport) -> String {
    let or_dash = |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{:.1} ms", ms(d)));
    let mut replies: Vec<Duration> = report.turns.iter().filter_map(|t| t.reply).collect();
    replies.sort_unstable();
    figures(&[
        (or_dash(report.answer_time), "answer webhook"),
        (or_dash(report.handshake_time), "socket handshake"),
        (
            or_dash(report.first_audio),
            "first audio after the socket opened",
        ),
        (
            format!("{} / {}", replies.len(), report.turns.len()),
            "turns answered",
        ),
        (
            or_dash(replies.get(replies.len().saturating_sub(1) / 2).copied()),
            "reply, median",
        ),
        (report.barge_ins.len().to_string(), "barge-ins"),
        (
            format!("{} / {}", report.played_frames, report.received_frames),
            "frames played / received",
        ),
        (report.underruns.to_string(), "underruns"),
    ])
}

fn findings(report: &CallReport) -> String {
    if report.faults.is_empty() && report.warnings.is_empty() {
        return String::new();
    }
    let mut out = String::from("<ul>");
    for fault in &report.faults {
        let _ = write!(
            out,
            "<li class=\"fault\">FAULT: {}</li>",
            escape(&fault.to_string())
        );
    }
    for warning in &report.warnings {
        let _ = write!(out, "<li>warning: {}</li>", escape(&warning.to_string()));
    }
    out.push_str("</ul>");
    out
}

/// A histogram's bars: (from ms, to ms, count).
pub(crate) type Bins = Vec<(f64, f64, u64)>;

/// Samples in ms, in [`BINS`] equal bars from 0 to the largest.
pub(crate) fn bins(samples: &[f64]) -> Bins {
    let top = samples.iter().copied().fold(0.0_f64, f64::max);
    if samples.is_empty() {
        return Vec::new();
    }
    let width = (top / BINS as f64).max(0.001);
    let mut counts = vec![0u64; BINS];
    for s in samples {
        let i = ((s / width) as usize).min(BINS - 1);
        counts[i] += 1;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, n)| (i as f64 * width, (i + 1) as f64 * width, n))
        .collect()
}

/// A bar chart of `bins`, each bar's exact range and count in its tooltip.
pub(crate) fn histogram(name: &str, what: &str, bins: &Bins) -> String {
    let total: u64 = bins.iter().map(|b| b.2).sum();
    let mut svg = String::new();
    if total > 0 {
        let top = bins.iter().map(|b| b.2).max().unwrap_or(1).max(1) as f64;
        let (lo, hi) = (bins[0].0, bins[bins.len() - 1].1.max(bins[0].0 + 0.001));
        let x = |v: f64| 40.0 + (v - lo) / (hi - lo) * (WIDTH - 60.0);
        let base = CHART_HEIGHT - 20.0;
        for (from, to, n) in bins.iter().filter(|b| b.2 > 0) {
            let h = (*n as f64 / top) * (base - 10.0);
            let _ = write!(
                svg,
                "<rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\"><title>{from:.1}-{to:.1} ms: {n}</title></rect>",
                x(*from),
                base - h,
                (x(*to) - x(*from) - 1.0).max(1.0)
            );
        }
        let _ = write!(
            svg,
            "<line class=\"axis\" x1=\"40\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\"/>\
             <text x=\"40\" y=\"{}\">{lo:.1} ms</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{hi:.1} ms</text>\
             <text x=\"36\" y=\"16\" text-anchor=\"end\">{}</text>",
            WIDTH - 20.0,
            base + 14.0,
            WIDTH - 20.0,
            base + 14.0,
            top as u64
        );
    } else {
        svg.push_str("<text x=\"40\" y=\"20\">none measured</text>");
    }
    let height = if total > 0 { CHART_HEIGHT } else { 30.0 };
    format!(
        "<figure><figcaption>{} <span>{} &middot; {total} measured</span></figcaption>\
         <svg viewBox=\"0 0 {WIDTH} {height}\" role=\"img\">{svg}</svg></figure>",
        escape(name),
        escape(what)
    )
}

/// One lane of a timeline: spans and marks, in ms of the call.
struct Lane {
    name: &'static str,
    class: &'static str,
    spans: Vec<(f64, f64, String)>,
    marks: Vec<(f64, String)>,
}

impl Lane {
    /// A lane of things that last: each from, to (ms) and its words.
    fn of_spans(name: &'static str, class: &'static str, spans: Vec<(f64, f64, String)>) -> Lane {
        Lane {
            name,
            class,
            spans,
            marks: Vec::new(),
        }
    }

    /// A lane of moments: each at (ms) and its words.
    fn of_marks(name: &'static str, class: &'static str, marks: Vec<(f64, String)>) -> Lane {
        Lane {
            name,
            class,
            spans: Vec::new(),
            marks,
        }
    }
}

/// The call in time: the NCCO's actions, the caller's turns and keys, the application's
/// audio as heard, its clears and notifies, the barge-ins.
fn call_timeline(report: &CallReport) -> String {
    let t = &report.timeline;
    let opened = t.socket_opened.map_or(0.0, ms);
    let at = |d: Duration| opened + ms(d);
    let ncco = report
        .ncco_actions
        .iter()
        .map(|a| (ms(a.start), ms(a.end), format!("{}: {}", a.action, a.note)))
        .collect();
    let moments = |times: &[Duration], what: &str| {
        times
            .iter()
            .map(|d| (at(*d), format!("{what} at {:.0} ms", ms(*d))))
            .collect()
    };
    let (keys, speech): (Vec<&Turn>, Vec<&Turn>) = report
        .turns
        .iter()
        .partition(|t| t.what.starts_with("press"));
    let lanes = vec![
        Lane::of_spans("NCCO actions", "ncco", ncco),
        Lane::of_spans(
            "caller speaks",
            "caller",
            speech
                .iter()
                .map(|t| {
                    (
                        at(t.started),
                        at(t.ended).max(at(t.started) + 20.0),
                        t.what.clone(),
                    )
                })
                .collect(),
        ),
        Lane::of_marks(
            "caller presses",
            "caller",
            keys.iter()
                .map(|t| (at(t.started), t.what.clone()))
                .collect(),
        ),
        Lane::of_spans(
            "application heard",
            "app",
            t.heard
                .iter()
                .map(|(s, e)| (at(*s), at(*e), format!("{:.0}-{:.0} ms", ms(*s), ms(*e))))
                .collect(),
        ),
        Lane::of_marks("clear", "mark", moments(&t.clears, "clear")),
        Lane::of_marks("notify", "note", moments(&t.notifies, "notify")),
        Lane::of_marks(
            "barge-in",
            "mark",
            report
                .barge_ins
                .iter()
                .map(|b| (at(b.at), barge_in_note(b)))
                .collect(),
        ),
    ];
    timeline(&lanes)
}

fn barge_in_note(b: &BargeIn) -> String {
    let or =
        |d: Option<Duration>, none: &str| d.map_or(none.to_owned(), |d| format!("{:.0} ms", ms(d)));
    format!(
        "{}: clear {}, stopped {}",
        b.what,
        or(b.clear, "never"),
        or(b.stopped, "never")
    )
}

/// The lanes drawn one under another on a common axis of ms.
fn timeline(lanes: &[Lane]) -> String {
    let end = lanes
        .iter()
        .flat_map(|l| {
            l.spans
                .iter()
                .map(|s| s.1)
                .chain(l.marks.iter().map(|m| m.0))
        })
        .fold(1.0_f64, f64::max);
    let x = |v: f64| LABELS + v / end * (WIDTH - LABELS - 10.0);
    let height = LANE * lanes.len() as f64 + 24.0;
    let mut svg = String::new();
    for (i, lane) in lanes.iter().enumerate() {
        draw_lane(&mut svg, lane, i as f64 * LANE, &x);
    }
    let base = LANE * lanes.len() as f64 + 4.0;
    let _ = write!(
        svg,
        "<line class=\"axis\" x1=\"{LABELS}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\"/>\
         <text x=\"{LABELS}\" y=\"{}\">0 s</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.2} s</text>",
        WIDTH - 10.0,
        base + 14.0,
        WIDTH - 10.0,
        base + 14.0,
        end / 1000.0
    );
    format!(
        "<figure><figcaption>The call <span>from its start; hover for details</span></figcaption>\
         <svg viewBox=\"0 0 {WIDTH} {height}\" role=\"img\">{svg}</svg></figure>"
    )
}

/// One lane of the timeline at height `y`: its name, its bars and its marks, `x` placing
/// a time (ms) across the chart.
fn draw_lane(svg: &mut String, lane: &Lane, y: f64, x: &dyn Fn(f64) -> f64) {
    let _ = write!(
        svg,
        "<text x=\"0\" y=\"{:.1}\">{}</text>",
        y + 16.0,
        lane.name
    );
    for (from, to, title) in &lane.spans {
        let _ = write!(
            svg,
            "<rect class=\"{}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"16\"><title>{}</title></rect>",
            lane.class,
            x(*from),
            y + 4.0,
            (x(*to) - x(*from)).max(1.5),
            escape(title)
        );
        // The NCCO's actions are named on their bars, where there is room.
        let name = title.split(':').next().unwrap_or("");
        if lane.class == "ncco" && x(*to) - x(*from) > 8.0 * name.len() as f64 {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" style=\"fill:#fff\">{}</text>",
                x(*from) + 4.0,
                y + 16.0,
                escape(name)
            );
        }
    }
    for (at, title) in &lane.marks {
        let _ = write!(
            svg,
            "<rect class=\"{}\" x=\"{:.1}\" y=\"{:.1}\" width=\"3\" height=\"20\"><title>{}</title></rect>",
            lane.class,
            x(*at) - 1.0,
            y + 2.0,
            escape(title)
        );
    }
}

fn turn_table(turns: &[Turn], barge_ins: &[BargeIn]) -> String {
    if turns.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<h2>Turns</h2><table><tr><th>#</th><th>caller</th><th>ended</th><th>reply</th><th>barge-in</th></tr>",
    );
    for (i, turn) in turns.iter().enumerate().take(1000) {
        let reply = turn
            .reply
            .map_or("none".to_owned(), |d| format!("{:.1} ms", ms(d)));
        let barge_in = barge_ins
            .iter()
            .find(|b| b.turn == i)
            .map_or(String::new(), barge_in_note);
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{:.2} s</td><td>{reply}</td><td>{}</td></tr>",
            i + 1,
            escape(&turn.what),
            turn.ended.as_secs_f64(),
            escape(&barge_in)
        );
    }
    out.push_str("</table>");
    out
}

fn event_table(report: &CallReport) -> String {
    if report.events.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<h2>Events</h2><table><tr><th>status</th><th>leg</th><th>to</th><th>answer</th></tr>",
    );
    for e in &report.events {
        let answer = match (e.http_status, &e.error) {
            (Some(code), _) => code.to_string(),
            (None, Some(error)) => error.clone(),
            (None, None) => "-".to_owned(),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td></tr>",
            escape(&e.status),
            e.leg.name(),
            e.target.method.name(),
            escape(&e.target.url),
            escape(&answer)
        );
    }
    out.push_str("</table>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_falls_in_a_bin_and_the_largest_in_the_last() {
        let bins = bins(&[0.0, 1.0, 2.0, 40.0]);
        assert_eq!(bins.len(), BINS);
        assert_eq!(bins.iter().map(|b| b.2).sum::<u64>(), 4);
        assert_eq!(bins[BINS - 1].2, 1);
    }

    #[test]
    fn text_from_the_application_cannot_write_markup() {
        let chart = histogram("<script>", "a & b", &Vec::new());
        assert!(
            !chart.contains("<script>") && chart.contains("&lt;script&gt;"),
            "{chart}"
        );
    }
}
