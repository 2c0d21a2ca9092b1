//! The protocol's vocabulary: the NCCO, call events, the socket's text messages, the audio
//! format, signatures and tokens, the call id, the socket's limits.

pub mod audio;
pub mod auth;
pub mod call_id;
pub mod events;
pub mod limits;
pub mod messages;
pub mod ncco;
