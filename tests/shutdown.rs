//! What `Server::shutdown` promises of threads: it returns once every thread the server
//! started has ended, and tiny_http's own threads, which cannot be joined (tiny_http keeps
//! no handle to them), end on their own within tiny_http's idle timeout of 5 s. In a test
//! binary of its own, so no other test's threads come and go meanwhile.

mod support;

use std::time::{Duration, Instant};

use support::*;

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
    // tiny_http's threads take the name of the thread that started it, the host's.
    let new = new_threads(&before, &after);
    assert!(
        new.iter().all(|name| name == "webhooks"),
        "threads of the server's that outlived shutdown: {new:?}"
    );
    // Its idle timeout is 5 s; a busy machine may take longer to run them to their end.
    let until = Instant::now() + Duration::from_secs(30);
    let mut left = new;
    while !left.is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
        left = new_threads(&before, &thread_names());
    }
    assert!(left.is_empty(), "tiny_http's threads did not end: {left:?}");
}
