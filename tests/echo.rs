//! The WebSocket: a call played as Vonage plays it, echoed frame by frame, and the ways a
//! call ends.

mod support;

use std::{io::Write, net::TcpStream, time::Duration};

use support::*;
use tungstenite::Message;
use vonage_echo::sim::call::{self, CallOptions};

fn frame(k: u32) -> Vec<u8> {
    (0..640u32)
        .map(|i| (k.wrapping_mul(31).wrapping_add(i * 7) % 251) as u8)
        .collect()
}

#[test]
fn every_frame_comes_back_byte_identical_and_in_order() {
    let server = server();
    let mut ws = open_call(&server, "echo-1");
    // Keep a few frames in flight, as real time would, without waiting 10 s for it.
    let mut received = 0u32;
    for k in 0..500u32 {
        ws.send(Message::binary(frame(k))).unwrap();
        if k >= 8 {
            assert_eq!(
                next_data(&mut ws),
                Message::binary(frame(received)),
                "frame {received}"
            );
            received += 1;
        }
    }
    while received < 500 {
        assert_eq!(
            next_data(&mut ws),
            Message::binary(frame(received)),
            "frame {received}"
        );
        received += 1;
    }
    ws.close(None).unwrap();
    assert!(matches!(next_data(&mut ws), Message::Close(_)));
}

#[test]
fn a_message_larger_than_the_call_s_frames_comes_back_whole() {
    let server = server();
    let mut ws = open_call(&server, "echo-large");
    // The first frame sets how much the call reads at a time; a later, larger message
    // takes more reads and still comes back as one.
    ws.send(Message::binary(frame(0))).unwrap();
    assert_eq!(next_data(&mut ws), Message::binary(frame(0)));
    let large: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(large.clone())).unwrap();
    ws.send(Message::binary(frame(1))).unwrap();
    assert_eq!(next_data(&mut ws), Message::binary(large));
    assert_eq!(next_data(&mut ws), Message::binary(frame(1)));
}

#[test]
fn dtmf_and_other_text_are_echoed() {
    let server = server();
    let mut ws = open_call(&server, "echo-2");
    for text in [
        r#"{"event":"websocket:dtmf","digit":"5","duration":260}"#,
        r#"{"event":"websocket:future-event","x":[1,2]}"#,
        "not json at all",
    ] {
        ws.send(Message::text(text)).unwrap();
        assert_eq!(next_data(&mut ws), Message::text(text));
    }
    ws.send(Message::binary(frame(1))).unwrap();
    assert_eq!(
        next_data(&mut ws),
        Message::binary(frame(1)),
        "audio after text still echoes"
    );
}

#[test]
fn simulated_call_with_dtmf_passes() {
    let server = server();
    let report = call::run(
        &CallOptions::new(answer_url(&server))
            .duration(Duration::from_secs(1))
            .dtmf("12#"),
    )
    .unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.sent, 50);
    assert_eq!(report.echoed, 50);
    assert_eq!(report.texts, (4, 4), "connected and three keys");
    assert_eq!(report.server_close, Some(1000));
}

#[test]
fn fifty_concurrent_calls_all_echo() {
    let server = server();
    let report = vonage_echo::sim::load::run(
        &vonage_echo::sim::load::LoadOptions::new(answer_url(&server), 50, Duration::from_secs(2))
            .ramp(500.0),
    )
    .unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.connected, 50);
    assert_eq!(report.frames_sent, 50 * 100);
    assert_eq!(report.frames_echoed, 50 * 100);
}

#[test]
fn wrong_socket_path_is_refused_with_404() {
    let server = server();
    let refused = try_ws_connect(&format!("ws://{}/elsewhere", server.ws_addr()), None);
    assert_eq!(refused_status(refused), 404);
}

#[test]
fn oversized_message_closes_with_1009() {
    let server = start(config().max_message_bytes(4096));
    let mut ws = open_call(&server, "big");
    ws.send(Message::binary(vec![0u8; 5000])).unwrap();
    assert_eq!(close_code(&mut ws), 1009);
}

#[test]
fn invalid_utf8_text_closes_with_1007() {
    let server = server();
    let mut ws = call_socket(&server, "utf");
    // A masked text frame whose payload is not UTF-8, written by hand.
    let payload = [0xffu8, 0xfe];
    let mut raw = vec![0x81, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    raw.extend_from_slice(&payload);
    ws.get_mut().write_all(&raw).unwrap();
    assert_eq!(close_code(&mut ws), 1007);
}

#[test]
fn unmasked_client_frame_closes_with_1002() {
    let server = server();
    let mut ws = call_socket(&server, "proto");
    ws.get_mut().write_all(&[0x82, 0x02, 1, 2]).unwrap();
    assert_eq!(close_code(&mut ws), 1002);
}

#[test]
fn a_peer_vanishing_mid_frame_leaves_other_calls_untouched() {
    let server = server();
    let mut steady = open_call(&server, "steady");
    let mut vanisher = call_socket(&server, "vanisher");
    eventually("two calls", || server.active_calls() == 2);
    // Half a frame: a binary header promising 640 bytes, then 100 of them, then gone.
    let mut partial = vec![0x82, 0xfe, 0x02, 0x80, 1, 2, 3, 4];
    partial.extend_from_slice(&[7u8; 100]);
    vanisher.get_mut().write_all(&partial).unwrap();
    vanisher
        .get_mut()
        .shutdown(std::net::Shutdown::Both)
        .unwrap();
    drop(vanisher);
    for k in 0..50 {
        steady.send(Message::binary(frame(k))).unwrap();
        assert_eq!(next_data(&mut steady), Message::binary(frame(k)));
    }
    eventually("the vanished call to end", || server.active_calls() == 1);
}

#[test]
fn shutdown_closes_active_calls_with_1001() {
    let server = server();
    let mut ws = open_call(&server, "bye");
    let stopper = std::thread::spawn(move || server.shutdown());
    assert_eq!(close_code(&mut ws), 1001);
    stopper.join().unwrap();
}

#[test]
fn shutdown_joins_and_frees_the_ports() {
    let server = server();
    let (http, ws) = (server.http_addr(), server.ws_addr());
    server.shutdown();
    assert!(TcpStream::connect(http).is_err(), "webhooks port closed");
    assert!(TcpStream::connect(ws).is_err(), "socket port closed");
}

#[test]
fn many_servers_start_and_stop_in_one_process() {
    for _ in 0..5 {
        let server = server();
        let _ = open_call(&server, "again");
        drop(server);
    }
}

#[test]
fn shutdown_closes_a_call_that_keeps_streaming_with_1001() {
    let server = server();
    let mut ws = open_call(&server, "talker");
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        let started = std::time::Instant::now();
        server.shutdown();
        started.elapsed()
    });
    let mut code = None;
    for k in 0..500 {
        if ws.send(Message::binary(frame(k))).is_err() {
            break;
        }
        match ws.read() {
            Ok(Message::Close(f)) => {
                code = f.map(|f| u16::from(f.code));
                break;
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break,
        }
    }
    assert_eq!(code, Some(1001));
    assert!(
        stopper.join().unwrap() < Duration::from_secs(3),
        "shutdown did not wait for the caller"
    );
}

#[test]
fn a_frame_trickled_byte_by_byte_does_not_hold_up_shutdown() {
    let server = server();
    let mut ws = open_call(&server, "trickler");
    let stream = ws.get_mut();
    stream
        .write_all(&[0x82, 0xfe, 0x02, 0x80, 1, 2, 3, 4])
        .unwrap();
    let trickle = stream.try_clone().unwrap();
    let dripping = std::thread::spawn(move || {
        let mut trickle = trickle;
        for _ in 0..40 {
            if trickle.write_all(&[9]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let started = std::time::Instant::now();
    server.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        started.elapsed()
    );
    let _ = dripping.join();
}

#[test]
fn a_second_socket_for_a_live_call_is_refused_with_409() {
    let server = server();
    let endpoint = endpoint(&server, "uuid=twice");
    let (uri, auth) = (
        endpoint["uri"].as_str().unwrap(),
        endpoint["authorization"]["value"].as_str(),
    );
    let _first = ws_connect(uri, auth);
    assert_eq!(refused_status(try_ws_connect(uri, auth)), 409);
}

#[test]
fn a_request_that_is_not_a_websocket_handshake_is_400() {
    let server = server();
    let answer = raw_http(server.ws_addr(), b"GET /socket HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(answer.status, 400);
    assert!(answer.json()["error"]
        .as_str()
        .unwrap()
        .contains("not a WebSocket handshake"));
}

/// Whether the system lets this process run a thread under `SCHED_RR` at `priority`,
/// asked on a scratch thread so that no other thread keeps it.
fn system_allows_realtime(priority: u8) -> bool {
    use thread_priority::*;
    std::thread::spawn(move || {
        set_thread_priority_and_policy(
            thread_native_id(),
            ThreadPriority::Crossplatform(priority.try_into().unwrap()),
            ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::RoundRobin),
        )
        .is_ok()
    })
    .join()
    .unwrap()
}

#[test]
fn call_threads_run_realtime_below_setup_when_asked_and_nothing_else_does() {
    const SCHED_RR: u32 = 2;
    let config = config().realtime_priority(Some(7));
    if !system_allows_realtime(8) {
        let refused = vonage_echo::Server::start(config)
            .err()
            .expect("start is refused");
        assert!(
            refused.to_string().contains("--realtime-priority"),
            "{refused}"
        );
        return;
    }
    let server = start(config);
    let mut ws = open_call(&server, "realtime-probe");
    echo_one_frame(&mut ws);
    let threads = settled_on(|threads| {
        scheduling_of(threads, "call-realtime-p").map(|t| (t.1, t.2)) == Some((SCHED_RR, 7))
    });
    let realtime: Vec<_> = threads
        .into_iter()
        // SCHED_FIFO and SCHED_RR; other tests here run threads under SCHED_IDLE.
        .filter(|(_, policy, ..)| matches!(*policy, 1 | 2))
        .map(|(name, policy, priority, _)| (name, policy, priority))
        .collect();
    // Thread names are cut to 15 bytes: "call-" and the uuid's first 10.
    let calls: Vec<_> = realtime
        .iter()
        .filter(|(n, ..)| n.starts_with("call-"))
        .collect();
    assert_eq!(calls, [&("call-realtime-p".to_owned(), SCHED_RR, 7)]);
    let setup: Vec<_> = realtime
        .iter()
        .filter(|(n, ..)| !n.starts_with("call-"))
        .collect();
    for name in ["http-accept", "ws-accept", "webhooks"] {
        assert!(
            setup.iter().any(|(n, ..)| n == name),
            "{name} is not real-time: {realtime:?}"
        );
    }
    // Only the server's setup threads (its webhooks and tiny_http's threads among them)
    // run above the calls; nothing else is real-time.
    for (name, policy, priority) in setup {
        assert!(
            ["http-", "ws-accept", "webhooks"]
                .iter()
                .any(|p| name.starts_with(p)),
            "{name} is real-time"
        );
        assert_eq!((*policy, *priority), (SCHED_RR, 8), "{name}");
    }
}

#[test]
fn a_call_thread_runs_under_sched_idle_once_its_first_frame_is_echoed() {
    const SCHED_OTHER: u32 = 0;
    const SCHED_IDLE: u32 = 5;
    let server = start(config().audio_priority(vonage_echo::config::AudioPriority::Idle));
    let mut ws = open_call(&server, "idle-probe");
    // Names are cut to 15 bytes.
    let policy = |threads: &[Scheduling]| scheduling_of(threads, "call-idle-probe").map(|t| t.1);
    let before = settled_on(|threads| policy(threads).is_some());
    assert_eq!(
        policy(&before),
        Some(SCHED_OTHER),
        "set up at setup's place"
    );
    echo_one_frame(&mut ws);
    let after = settled_on(|threads| policy(threads) == Some(SCHED_IDLE));
    assert_eq!(policy(&after), Some(SCHED_IDLE), "{after:?}");
}

#[test]
fn call_threads_run_ten_nice_steps_below_setup_by_default() {
    let server = start(config());
    let mut ws = open_call(&server, "nice-probe");
    echo_one_frame(&mut ws);
    let steps_below = |threads: &[Scheduling]| {
        let call = scheduling_of(threads, "call-nice-probe")?;
        let setup = scheduling_of(threads, "ws-accept")?;
        Some(call.3 - setup.3)
    };
    let threads = settled_on(|threads| steps_below(threads) == Some(10));
    assert_eq!(steps_below(&threads), Some(10), "{threads:?}");
}

/// A thread's name, policy, real-time priority and nice value.
type Scheduling = (String, u32, u32, i32);

fn scheduling_of<'a>(threads: &'a [Scheduling], name: &str) -> Option<&'a Scheduling> {
    threads.iter().find(|(n, ..)| n == name)
}

/// This process's threads once `done` holds of them, or as they are after 10 s. A call
/// thread names itself after the client has heard the handshake's 101, and takes the
/// audio's place after it has sent the first echo, so either is seen a moment later.
fn settled_on(done: impl Fn(&[Scheduling]) -> bool) -> Vec<Scheduling> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let threads = thread_scheduling();
        if done(&threads) || std::time::Instant::now() >= deadline {
            return threads;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends one frame and waits for its echo: once it is back, the call has settled.
fn echo_one_frame(ws: &mut tungstenite::WebSocket<std::net::TcpStream>) {
    let frame = Message::binary(vec![7u8; 640]);
    ws.send(frame.clone()).unwrap();
    assert_eq!(next_data(ws), frame);
}
