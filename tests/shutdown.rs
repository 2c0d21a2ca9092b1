//! What `Server::shutdown` promises of threads: it returns once every thread the server
//! started has ended, and tiny_http's own threads, which cannot be joined (tiny_http keeps
//! no handle to them), end on their own within tiny_http's idle timeout of 5 s; and it
//! leaves no private directory behind. In a test binary of its own, each test taking its
//! turn, so no other test's threads or directories come and go meanwhile.

mod support;

use std::{
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use support::*;

/// One test at a time: each watches what the whole process holds.
fn turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// The private directories of this process's servers in the temporary directory.
fn private_dirs() -> Vec<String> {
    let prefix = format!("vonage-echo-{}-", std::process::id());
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(&prefix))
        .collect()
}

/// The threads of this process, by name.
fn thread_names() -> Vec<String> {
    thread_scheduling()
        .into_iter()
        .map(|(name, ..)| name)
        .collect()
}

/// The names in `after` that are not in `before`, each counted as often as it is new.
fn new_threads(before: &[String], after: &[String]) -> Vec<String> {
    let mut left = before.to_vec();
    after
        .iter()
        .filter(|name| match left.iter().position(|b| b == *name) {
            Some(at) => {
                left.swap_remove(at);
                false
            }
            None => true,
        })
        .cloned()
        .collect()
}

#[test]
fn shutdown_joins_the_server_s_threads_and_tiny_http_s_end_on_their_own() {
    let _turn = turn();
    // tiny_http's threads of a server the other test stopped end first, so that none of
    // them stands in for one of this server's.
    let until = Instant::now() + Duration::from_secs(30);
    while thread_names().iter().any(|n| n == "webhooks") && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = thread_names();

    let server = server();
    let _ws = open_call(&server, "shutdown-probe");
    let answer = http(server.http_addr(), "GET", "/health", "", "");
    assert_eq!(answer.status, 200);
    server.shutdown();

    let after = thread_names();
    for prefix in ["call-", "ws-", "http-"] {
        assert!(
            !after.iter().any(|n| n.starts_with(prefix)),
            "a {prefix} thread outlived shutdown: {after:?}"
        );
    }
    // tiny_http's threads take the name of the thread that started it, the host's. The
    // other test's own thread (named for it, "shutdown_…") may have started meanwhile,
    // waiting for its turn: it is not the server's.
    let new: Vec<String> = new_threads(&before, &after)
        .into_iter()
        .filter(|name| !name.starts_with("shutdown_"))
        .collect();
    assert!(
        new.iter().all(|name| name == "webhooks"),
        "threads of the server's that outlived shutdown: {new:?}"
    );
    // Its idle timeout is 5 s; a busy machine may take longer to run them to their end.
    let until = Instant::now() + Duration::from_secs(30);
    let mut left = new;
    while !left.is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
        left = new_threads(&before, &thread_names())
            .into_iter()
            .filter(|name| !name.starts_with("shutdown_"))
            .collect();
    }
    assert!(left.is_empty(), "tiny_http's threads did not end: {left:?}");
}

#[test]
fn shutdown_removes_the_private_directory_of_the_server_s_webhooks() {
    let _turn = turn();
    assert!(private_dirs().is_empty(), "{:?}", private_dirs());
    let server = server();
    assert_eq!(private_dirs().len(), 1, "{:?}", private_dirs());
    server.shutdown();
    assert!(private_dirs().is_empty(), "left: {:?}", private_dirs());
}
