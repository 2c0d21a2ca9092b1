//! The socket's limits, sized for what Vonage sends: 20 ms frames of a few hundred bytes,
//! and text events of a few hundred more. Both ends of a call use them, the server's call
//! threads and the emulator's sockets alike.

use tungstenite::protocol::WebSocketConfig;

/// The largest message a call takes by default: 64 KiB, a hundred times a 24 kHz frame.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The WebSocket settings for a call: buffers sized for 20 ms frames (a few KiB, not
/// tungstenite's 128 KiB defaults) and `max_message_bytes` as the largest message. The
/// read buffer holds one 24 kHz frame and its header; tungstenite zeroes its spare room
/// before every read, and a larger one costs memory on every call (at 2,000 calls, 2 KiB
/// gave a peak RSS of 62 to 64 MiB, 1 KiB 55 to 56). A larger message is read whole all
/// the same.
pub fn websocket_config(max_message_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_write_buffer_size(max_message_bytes + 64 * 1024)
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes))
}
