//! `Server::shutdown` returns once every thread the server started has ended. In a test
//! binary of its own, so no other test's threads come and go meanwhile.

mod support;

use support::*;

/// The threads of this process, by name.
fn thread_names() -> Vec<String> {
    thread_scheduling()
        .into_iter()
        .map(|(name, ..)| name)
        .collect()
}

#[test]
fn shutdown_leaves_no_thread_the_server_started() {
    // The first server starts the webhooks every server of the process shares.
    drop(server());
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
    // Threads that came and stayed can only be the shared webhooks' (tiny_http starts a
    // worker when a connection finds none idle; they inherit the webhooks thread's name).
    let mut left = before.clone();
    let new: Vec<&String> = after
        .iter()
        .filter(|name| match left.iter().position(|b| b == *name) {
            Some(at) => {
                left.swap_remove(at);
                false
            }
            None => true,
        })
        .collect();
    assert!(
        new.iter().all(|name| *name == "webhooks"),
        "threads that outlived shutdown: {new:?}"
    );
}
