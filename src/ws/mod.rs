//! The socket's path: the WebSocket listener and its handshake, each call's echo loop, its
//! socket and its recording.

pub mod call;
pub(crate) mod refusal;
pub mod socket;
pub(crate) mod stream;
