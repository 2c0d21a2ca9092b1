//! The emulator plays the whole call as Vonage does: the answer webhook asked again and
//! then its fallback, every event with Vonage's fields and where Vonage sends it, the NCCO
//! run in order, and an NCCO's public URLs pointed at the local application. One mock
//! application per behaviour, over real sockets on 127.0.0.1.

mod support;

use std::{
    net::{TcpListener, TcpStream},
    time::Duration,
};

use serde_json::Value;
use support::app::{drain, start_mock, Plan, Request};
use tungstenite::{Message, WebSocket};
use vonage_echo::sim::{
    call::{self, CallOptions, CallReport},
    findings::Check,
    load::{self, LoadOptions},
    urls::Origin,
    Dial, Expect, Voice,
};

/// A call that judges Vonage's rules only, caller silent, talks spoken at 100 characters a
/// second so that a test does not wait long on them.
fn protocol_call(answer_url: &str, duration: Duration) -> CallOptions {
    CallOptions::new(answer_url)
        .dial(Dial::new(answer_url).talk_rate(100.0))
        .expect(Expect::Protocol)
        .voice(Voice::Silence)
        .duration(duration)
}

/// An NCCO that connects to `uri` at 8 kHz, its connect given `fields` (each with a leading
/// comma), followed by `after` (actions, each with a leading comma).
fn ncco(uri: &str, fields: &str, after: &str) -> String {
    format!(
        r#"[{{"action":"connect"{fields},"endpoint":[{{"type":"websocket","uri":"{uri}","content-type":"audio/l16;rate=8000","headers":{{"caller":"x"}}}}]}}{after}]"#
    )
}

/// A socket that listens until the caller hangs up.
fn listens(mut ws: WebSocket<TcpStream>) {
    drain(&mut ws);
}

/// A socket that closes itself 200 ms after it opens.
fn closes_soon(mut ws: WebSocket<TcpStream>) {
    let _ = ws.read();
    std::thread::sleep(Duration::from_millis(200));
    let _ = ws.close(None);
    drain(&mut ws);
}

fn warned(report: &CallReport, check: Check, words: &[&str]) -> bool {
    report
        .warnings
        .iter()
        .any(|f| f.check == check && words.iter().all(|w| f.text.contains(w)))
}

fn faulted(report: &CallReport, check: Check, words: &[&str]) -> bool {
    report
        .faults
        .iter()
        .any(|f| f.check == check && words.iter().all(|w| f.text.contains(w)))
}

/// The statuses of the requests that went to `path`.
fn statuses_at(requests: &[Request], path: &str) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.target.starts_with(path))
        .filter_map(|r| r.fields["status"].as_str().map(str::to_owned))
        .collect()
}

fn action_names(report: &CallReport) -> Vec<String> {
    report
        .ncco_actions
        .iter()
        .map(|a| a.action.clone())
        .collect()
}

#[test]
fn a_busy_answer_url_is_asked_twice_then_the_fallback_gives_the_ncco() {
    let mut plan = Plan::new(|uri, _| ncco(uri, "", ""));
    plan.answer_failures = vec![503, 503];
    let app = start_mock(plan, listens);
    let options = protocol_call(&app.answer_url, Duration::from_millis(300));
    let options = options.clone().dial(
        options
            .dial
            .fallback_answer_url(Some(app.fallback_url.clone())),
    );
    let report = call::run(&options).unwrap();
    assert!(report.passed(), "{report}");
    let statuses: Vec<Option<u16>> = report.answer_attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(503), Some(503), Some(200)], "{report}");
    assert!(report.answer_attempts[2].fallback, "{report}");
    assert_eq!(
        report
            .warnings
            .iter()
            .filter(|w| w.check == Check::AnswerWebhook)
            .count(),
        2,
        "a warning for each attempt that failed before one gave the NCCO: {report}"
    );
    let asked = app.answers();
    let fallback = &asked[2].fields;
    assert!(asked[2].target.starts_with("/fallback?"), "{asked:?}");
    assert!(
        fallback["reason"].as_str().unwrap().contains("503"),
        "{fallback}"
    );
    let original: Value =
        serde_json::from_str(fallback["original_request"].as_str().unwrap()).unwrap();
    assert_eq!(original["url"], app.answer_url.as_str());
    assert_eq!(original["type"], "answer");
    assert_eq!(fallback["uuid"], asked[0].fields["uuid"], "the same call");
}

#[test]
fn a_status_asked_again_once_is_a_warning_and_the_call_goes_on() {
    let mut plan = Plan::new(|uri, _| ncco(uri, "", ""));
    plan.answer_failures = vec![429];
    let app = start_mock(plan, listens);
    let report = call::run(&protocol_call(&app.answer_url, Duration::from_millis(300))).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.answer_attempts.len(), 2, "{report}");
    assert!(warned(&report, Check::AnswerWebhook, &["429"]), "{report}");
    assert!(report.sent > 0, "{report}");
}

#[test]
fn an_answer_url_that_refuses_connections_is_left_for_the_fallback() {
    let app = start_mock(Plan::new(|uri, _| ncco(uri, "", "")), listens);
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/webhooks/answer", listener.local_addr().unwrap())
    };
    let options = protocol_call(&closed, Duration::from_millis(300));
    let options = options.clone().dial(
        options
            .dial
            .fallback_answer_url(Some(app.fallback_url.clone())),
    );
    let report = call::run(&options).unwrap();
    assert!(report.passed(), "{report}");
    let errors: Vec<Option<&str>> = report
        .answer_attempts
        .iter()
        .map(|a| a.error.as_deref())
        .collect();
    assert_eq!(
        errors,
        [Some("connection refused"), Some("connection refused"), None],
        "{report}"
    );
}

#[test]
fn a_status_vonage_does_not_retry_fails_the_call_at_once() {
    let mut plan = Plan::new(|uri, _| ncco(uri, "", ""));
    plan.answer_failures = vec![404];
    let app = start_mock(plan, listens);
    let report = call::run(&protocol_call(&app.answer_url, Duration::from_millis(300))).unwrap();
    assert!(
        faulted(&report, Check::AnswerWebhook, &["answered 404"]),
        "{report}"
    );
    assert_eq!(report.answer_attempts.len(), 1, "{report}");
    assert_eq!(report.sent, 0, "{report}");
}

#[test]
fn an_event_webhook_that_answers_404_is_a_warning_and_the_call_goes_on() {
    let mut plan = Plan::new(|uri, _| ncco(uri, "", ""));
    plan.event_status = 404;
    let app = start_mock(plan, listens);
    let report = call::run(&protocol_call(&app.answer_url, Duration::from_millis(400))).unwrap();
    assert!(report.passed(), "{report}");
    assert!(report.sent >= 20, "the call streamed: {report}");
    assert!(
        warned(
            &report,
            Check::Events,
            &["/webhooks/events", "answered 404", "\"started\""]
        ),
        "{report}"
    );
    let completed = report
        .events
        .iter()
        .find(|d| d.status == "completed")
        .unwrap();
    assert_eq!(completed.http_status, Some(404), "{report}");
}

#[test]
fn every_call_event_carries_vonages_fields() {
    let app = start_mock(Plan::new(|uri, _| ncco(uri, "", "")), listens);
    let report = call::run(&protocol_call(&app.answer_url, Duration::from_millis(300))).unwrap();
    assert!(report.passed(), "{report}");
    let events = app.events();
    let call_events: Vec<&Value> = events
        .iter()
        .map(|e| &e.fields)
        .filter(|f| f["direction"] == "inbound")
        .collect();
    let statuses: Vec<&str> = call_events
        .iter()
        .map(|f| f["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["started", "ringing", "answered", "completed"]);
    for event in &call_events {
        for field in [
            "from",
            "to",
            "uuid",
            "conversation_uuid",
            "status",
            "direction",
            "timestamp",
        ] {
            assert!(event[field].is_string(), "{field} in {event}");
        }
        assert_eq!(event["headers"], serde_json::json!({}), "{event}");
        let stamp = event["timestamp"].as_str().unwrap();
        assert_eq!(stamp.len(), 24, "milliseconds and Z: {stamp}");
        assert!(
            stamp.ends_with('Z') && stamp.as_bytes()[19] == b'.',
            "{stamp}"
        );
    }
    for field in ["start_time", "rate", "network"] {
        assert!(call_events[2][field].is_string(), "answered's {field}");
    }
    let completed = call_events[3];
    for field in [
        "start_time",
        "end_time",
        "duration",
        "rate",
        "price",
        "network",
    ] {
        assert!(
            completed[field].is_string(),
            "completed's {field}: {completed}"
        );
    }
    assert_eq!(completed["disconnected_by"], "user", "the caller hung up");
    let socket: Vec<&Value> = events
        .iter()
        .map(|e| &e.fields)
        .filter(|f| f["direction"] == "outbound")
        .collect();
    let statuses: Vec<&str> = socket
        .iter()
        .map(|f| f["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["started", "answered", "completed"]);
    for field in ["start_time", "rate", "network"] {
        assert!(
            socket[1][field].is_string(),
            "the socket leg's answered {field}"
        );
    }
    for field in ["start_time", "end_time", "duration", "price", "network"] {
        assert!(
            socket[2][field].is_string(),
            "the socket leg's completed {field}"
        );
    }
    assert_eq!(
        socket[2]["disconnected_by"], "platform",
        "the caller's hang-up ended the socket leg"
    );
    assert_eq!(socket[0]["headers"], serde_json::json!({"caller": "x"}));
}

#[test]
fn an_event_webhook_that_refuses_connections_is_a_warning_and_the_call_goes_on() {
    let app = start_mock(Plan::new(|uri, _| ncco(uri, "", "")), listens);
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/events", listener.local_addr().unwrap())
    };
    let options = protocol_call(&app.answer_url, Duration::from_millis(300));
    let options = options
        .clone()
        .dial(options.dial.event_url(Some(closed.clone())));
    let report = call::run(&options).unwrap();
    assert!(report.passed(), "{report}");
    assert!(report.sent > 0, "{report}");
    assert!(
        warned(&report, Check::Events, &[&closed, "connection refused"]),
        "{report}"
    );
    assert!(
        report
            .events
            .iter()
            .all(|d| d.http_status.is_none() && d.error.is_some()),
        "{report}"
    );
}

#[test]
fn a_socket_legs_event_url_that_answers_404_is_a_warning_of_its_own() {
    let mut plan = Plan::new(|uri, base| {
        ncco(
            uri,
            &format!(r#","eventUrl":["{base}/webhooks/events/leg"]"#),
            "",
        )
    });
    plan.event_status = 404;
    let app = start_mock(plan, listens);
    let report = call::run(&protocol_call(&app.answer_url, Duration::from_millis(300))).unwrap();
    assert!(report.passed(), "{report}");
    assert!(
        warned(
            &report,
            Check::SocketEvents,
            &["/webhooks/events/leg", "of the socket leg", "answered 404"]
        ),
        "{report}"
    );
    assert!(
        !report
            .warnings
            .iter()
            .any(|w| w.check == Check::SocketEvents && w.text.contains("of the call leg")),
        "the call's own events are warned of under the event webhook: {report}"
    );
}

#[test]
fn the_socket_legs_events_go_to_its_event_url_with_its_method() {
    let app = start_mock(
        Plan::new(|uri, base| {
            ncco(
                uri,
                &format!(r#","eventUrl":["{base}/leg"],"eventMethod":"GET""#),
                "",
            )
        }),
        listens,
    );
    let report = call::run(&protocol_call(&app.answer_url, Duration::from_millis(300))).unwrap();
    assert!(report.passed(), "{report}");
    let events = app.events();
    assert_eq!(
        statuses_at(&events, "/leg"),
        ["started", "answered", "completed"]
    );
    assert_eq!(
        statuses_at(&events, "/webhooks/events"),
        ["started", "ringing", "answered", "completed"]
    );
    let call_uuid = events[0].fields["uuid"].clone();
    for leg in events.iter().filter(|r| r.target.starts_with("/leg")) {
        assert_eq!(leg.method, "GET");
        let f = &leg.fields;
        assert_eq!(f["direction"], "outbound", "{f}");
        assert!(
            f["to"].as_str().unwrap().starts_with("ws://127.0.0.1:"),
            "{f}"
        );
        assert_ne!(f["uuid"], call_uuid, "a leg of its own: {f}");
        assert_eq!(
            f["conversation_uuid"],
            events[0].fields["conversation_uuid"]
        );
        assert_eq!(f["headers"], r#"{"caller":"x"}"#, "the NCCO's headers: {f}");
    }
    let legs: Vec<(&str, &str)> = report
        .events
        .iter()
        .map(|d| (d.leg.name(), d.target.method.name()))
        .collect();
    assert!(legs.contains(&("socket", "GET")), "{legs:?}");
    assert!(legs.contains(&("call", "POST")), "{legs:?}");
}

#[test]
fn a_talk_is_spoken_before_the_socket_opens() {
    // 30 characters at 100 a second: 300 ms.
    let app = start_mock(
        Plan::new(|uri, _| {
            ncco(uri, "", "").replacen(
                '[',
                r#"[{"action":"talk","text":"Thirty characters of greeting."},"#,
                1,
            )
        }),
        listens,
    );
    let report = call::run(&protocol_call(&app.answer_url, Duration::from_millis(200))).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(action_names(&report), ["talk", "connect"]);
    let talk = &report.ncco_actions[0];
    assert!(
        talk.end - talk.start >= Duration::from_millis(290),
        "{report}"
    );
    assert!(
        talk.note.contains("300 ms"),
        "the estimate is stated: {report}"
    );
    let answered = app.answers()[0].at;
    let (_, opened) = app.sockets.lock().unwrap()[0].clone();
    assert!(
        opened.duration_since(answered) >= Duration::from_millis(290),
        "the socket opened {:?} after the answer",
        opened.duration_since(answered)
    );
}

#[test]
fn a_talk_that_loops_for_ever_plays_until_the_caller_hangs_up() {
    let app = start_mock(
        Plan::new(|uri, _| {
            ncco(uri, "", "").replacen(
                '[',
                r#"[{"action":"talk","text":"Please hold","loop":0},"#,
                1,
            )
        }),
        listens,
    );
    let options = protocol_call(&app.answer_url, Duration::from_millis(200));
    let options = options
        .clone()
        .dial(options.dial.patience(Duration::from_millis(400)));
    let report = call::run(&options).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(
        action_names(&report),
        ["talk"],
        "connect is never reached: {report}"
    );
    let talk = &report.ncco_actions[0];
    assert!(
        talk.end - talk.start >= Duration::from_millis(390),
        "the caller listened 400 ms: {report}"
    );
    assert!(talk.note.contains("hung up"), "{report}");
    assert!(app.sockets.lock().unwrap().is_empty());
    let completed = app
        .events()
        .into_iter()
        .rfind(|e| e.fields["status"] == "completed");
    assert_eq!(completed.unwrap().fields["disconnected_by"], "user");
}

#[test]
fn the_actions_after_connect_run_once_the_application_closes_its_socket() {
    let app = start_mock(
        Plan::new(|uri, _| {
            ncco(
                uri,
                "",
                r#",{"action":"talk","text":"Goodbye"},{"action":"record"}"#,
            )
        }),
        closes_soon,
    );
    let report = call::run(&protocol_call(&app.answer_url, Duration::from_secs(3))).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(action_names(&report), ["connect", "talk", "record"]);
    assert!(report.ncco_actions[1].start >= report.ncco_actions[0].end);
    assert!(
        warned(&report, Check::NccoActions, &["record was reached"]),
        "{report}"
    );
    let completed = app
        .events()
        .into_iter()
        .rfind(|e| e.fields["status"] == "completed")
        .unwrap();
    assert_eq!(completed.fields["direction"], "inbound");
    assert_eq!(
        completed.fields["disconnected_by"], "platform",
        "the NCCO ran out"
    );
}

#[test]
fn a_synchronous_disconnected_answer_replaces_the_rest_of_the_ncco() {
    let mut plan = Plan::new(|uri, base| {
        ncco(
            uri,
            &format!(r#","eventType":"synchronous","eventUrl":["{base}/leg"]"#),
            r#",{"action":"talk","text":"Never said"}"#,
        )
    });
    plan.on_disconnected = Box::new(|_, _| r#"[{"action":"talk","text":"Said instead"}]"#.into());
    let app = start_mock(plan, closes_soon);
    let report = call::run(&protocol_call(&app.answer_url, Duration::from_secs(3))).unwrap();
    assert!(report.passed(), "{report}");
    let talks: Vec<&str> = report
        .ncco_actions
        .iter()
        .filter(|a| a.action == "talk")
        .map(|a| a.note.as_str())
        .collect();
    assert_eq!(talks.len(), 1, "{report}");
    assert!(talks[0].contains("Said instead"), "{report}");
    let leg = app.events();
    let leg: Vec<&Request> = leg
        .iter()
        .filter(|r| r.target.starts_with("/leg"))
        .collect();
    let statuses: Vec<&str> = leg
        .iter()
        .map(|r| r.fields["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["started", "answered", "disconnected", "completed"]
    );
    assert!(
        leg.iter()
            .all(|r| r.fields["uuid"] == leg[0].fields["uuid"]),
        "every event of the leg carries its one uuid: {leg:?}"
    );
}

#[test]
fn an_ncco_that_reconnects_whenever_its_socket_closes_is_stopped_and_named() {
    let again = |uri: &str, base: &str| {
        ncco(
            uri,
            &format!(r#","eventType":"synchronous","eventUrl":["{base}/leg"]"#),
            "",
        )
    };
    let mut plan = Plan::new(again);
    plan.on_disconnected = Box::new(again);
    let app = start_mock(plan, |mut ws: WebSocket<TcpStream>| {
        let _ = ws.close(None);
        drain(&mut ws);
    });
    let report = call::run(&protocol_call(&app.answer_url, Duration::from_secs(2))).unwrap();
    assert!(
        faulted(
            &report,
            Check::NccoActions,
            &["a connect 33 times", "hangs up"]
        ),
        "{report}"
    );
    let sockets = app.sockets.lock().unwrap().len();
    assert!(sockets <= 32, "{sockets} sockets opened");
}

#[test]
fn a_limit_ends_the_socket_leg_and_the_ncco_goes_on() {
    let app = start_mock(
        Plan::new(|uri, _| {
            ncco(
                uri,
                r#","limit":1"#,
                r#",{"action":"talk","text":"Time is up"}"#,
            )
        }),
        listens,
    );
    let report = call::run(&protocol_call(&app.answer_url, Duration::from_secs(4))).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(action_names(&report), ["connect", "talk"], "{report}");
    let connect = &report.ncco_actions[0];
    assert!(connect.note.contains("limit"), "{report}");
    let lasted = connect.end - connect.start;
    assert!(
        lasted >= Duration::from_secs(1) && lasted < Duration::from_secs(3),
        "{report}"
    );
    assert!(
        report.sent < 150,
        "the caller's 4 s were cut at 1 s: {report}"
    );
}

#[test]
fn a_socket_that_never_completes_its_handshake_is_given_up_at_the_connects_timeout() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("ws://{}/socket", silent.local_addr().unwrap());
    let ncco_text = ncco(
        &uri,
        r#","timeout":1"#,
        r#",{"action":"talk","text":"Sorry"}"#,
    );
    let app = start_mock(Plan::new(move |_, _| ncco_text.clone()), listens);
    let report = call::run(&protocol_call(&app.answer_url, Duration::from_millis(300))).unwrap();
    assert!(
        faulted(&report, Check::Handshake, &["timed out"]),
        "{report}"
    );
    let connect = &report.ncco_actions[0];
    assert!(
        connect.end - connect.start < Duration::from_secs(3),
        "{report}"
    );
    assert_eq!(action_names(&report), ["connect", "talk"], "{report}");
    let legs: Vec<String> = app
        .events()
        .iter()
        .filter(|e| e.fields["direction"] == "outbound")
        .map(|e| format!("{} {}", e.fields["status"], e.fields["detail"]))
        .collect();
    assert_eq!(legs, ["\"started\" null", "\"unanswered\" \"timeout\""]);
    drop(silent);
}

#[test]
fn a_malformed_ncco_posts_its_reason_and_ends_the_call() {
    let app = start_mock(Plan::new(|_, _| r#"[{"action":"dance"}]"#.into()), listens);
    let report = call::run(&protocol_call(&app.answer_url, Duration::from_millis(300))).unwrap();
    assert!(
        faulted(&report, Check::Ncco, &["unknown action"]),
        "{report}"
    );
    let events = app.events();
    let error = events
        .iter()
        .find(|e| e.fields.get("reason").is_some())
        .expect("an event with a reason");
    assert!(
        error.fields["reason"].as_str().unwrap().contains("dance"),
        "{:?}",
        error.fields
    );
    assert!(error.fields["conversation_uuid"].is_string());
    assert!(error.fields["timestamp"].is_string());
    assert_eq!(
        app.statuses(),
        ["started", "ringing", "completed"],
        "no socket, and the call ended"
    );
}

#[test]
fn ws_url_keeps_the_path_and_query_of_the_ncco_uri() {
    let app = start_mock(
        Plan::new(|_, _| ncco("wss://abc.example/media?callUuid=X", "", "")),
        listens,
    );
    let local = app.socket_origin.clone();
    let options = protocol_call(&app.answer_url, Duration::from_millis(200));
    let options = options
        .clone()
        .dial(options.dial.ws_url(Some(Origin::parse(&local).unwrap())));
    let report = call::run(&options).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.socket_uri, format!("{local}/media?callUuid=X"));
    assert_eq!(app.sockets.lock().unwrap()[0].0, "/media?callUuid=X");
}

#[test]
fn a_rewrite_points_every_url_on_a_public_origin_at_the_local_application() {
    // The mock's socket and webhooks listen on two ports: one public origin each.
    let app = start_mock(
        Plan::new(|_, _| {
            ncco(
                "wss://abc.example:8443/media?callUuid=X",
                r#","eventUrl":["https://abc.example/leg?callUuid=X"]"#,
                "",
            )
        }),
        listens,
    );
    let http = app.http.clone();
    let socket = app.socket_origin.replace("ws://", "http://");
    let rewrites = vec![
        format!("https://abc.example:8443={socket}")
            .parse()
            .unwrap(),
        format!("https://abc.example={http}").parse().unwrap(),
    ];
    let options = protocol_call(&app.answer_url, Duration::from_millis(200));
    let options = options.clone().dial(options.dial.rewrites(rewrites));
    let report = call::run(&options).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(app.sockets.lock().unwrap()[0].0, "/media?callUuid=X");
    let leg: Vec<String> = app
        .events()
        .iter()
        .filter(|r| r.target.starts_with("/leg?callUuid=X"))
        .map(|r| r.fields["status"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(leg, ["started", "answered", "completed"]);
    let events = app.events();
    let to = &events
        .iter()
        .find(|r| r.target.starts_with("/leg"))
        .unwrap()
        .fields["to"];
    assert_eq!(
        to, "wss://abc.example:8443/media?callUuid=X",
        "the leg's events name the uri as the NCCO wrote it"
    );
}

#[test]
fn the_json_report_shows_the_calls_course() {
    let mut plan = Plan::new(|uri, _| ncco(uri, r#","from":"NexmoTest""#, ""));
    plan.answer_failures = vec![503];
    let app = start_mock(plan, listens);
    let report = call::run(&protocol_call(&app.answer_url, Duration::from_millis(200))).unwrap();
    assert!(
        warned(&report, Check::CallerId, &["NexmoTest", "unknown"]),
        "{report}"
    );
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    let attempts = json["answer_attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["status"], 503);
    assert_eq!(attempts[1]["status"], 200);
    assert!(attempts
        .iter()
        .all(|a| a["url"].is_string() && a["ms"].is_number()));
    let events = json["events"].as_array().unwrap();
    assert!(events.len() >= 7, "{json}");
    for event in events {
        for field in ["status", "leg", "url", "method", "http_status"] {
            assert!(!event[field].is_null(), "{field} in {event}");
        }
    }
    let actions = json["ncco_actions"].as_array().unwrap();
    assert_eq!(actions[0]["action"], "connect");
    assert!(actions[0]["start_ms"].as_f64() <= actions[0]["end_ms"].as_f64());
    let junit = report.to_junit();
    for rule in ["caller id", "NCCO actions", "socket leg&apos;s events"] {
        assert!(
            junit.contains(&format!("name=\"{rule}\"")),
            "{rule}: {junit}"
        );
    }
    let text = report.to_string();
    assert!(text.contains("answer: GET"), "{text}");
    assert!(text.contains("socket leg events: started 200"), "{text}");
}

/// A socket that echoes every message, as the echo tutorials do.
fn echoes(mut ws: WebSocket<TcpStream>) {
    while let Ok(message) = ws.read() {
        if matches!(message, Message::Binary(_) | Message::Text(_)) && ws.send(message).is_err() {
            return;
        }
    }
}

#[test]
fn load_posts_both_legs_events_with_vonages_fields() {
    let app = start_mock(Plan::new(|uri, _| ncco(uri, "", "")), echoes);
    let options = LoadOptions::new(app.answer_url.clone(), 2, Duration::from_millis(500))
        .dial(Dial::new(app.answer_url.clone()).talk_rate(100.0));
    let report = load::run(&options).unwrap();
    assert!(report.passed(), "{report}");
    // The run returns once its posters have posted every event.
    let events = app.events();
    assert_eq!(events.len(), 14, "7 events a call: {:?}", app.statuses());
    for completed in events.iter().filter(|e| e.fields["status"] == "completed") {
        for field in [
            "start_time",
            "end_time",
            "duration",
            "price",
            "disconnected_by",
        ] {
            assert!(
                completed.fields[field].is_string(),
                "{field}: {:?}",
                completed.fields
            );
        }
    }
    assert!(report.event_failures.is_empty(), "{report}");
}
