//! One call's thread: the echo loop, its counters, and its summary line.

use std::{
    fmt,
    net::SocketAddr,
    time::{Duration, Instant},
};

use tungstenite::{
    error::{CapacityError, ProtocolError},
    protocol::{frame::coding::CloseCode, CloseFrame},
    Error as WsError, Message, WebSocket,
};

pub use crate::protocol::call_id::{CallId, MAX_CALL_ID_LEN};

use crate::{
    admission::{Registered, Slot},
    error::is_timeout,
    protocol::audio::AudioFormat,
    protocol::messages::{self, SocketEvent},
    record::Recording,
    scheduling::{self, Role},
    shared::Shared,
    threads::{self, TICK},
    ws::stream::CallStream,
};

/// What a call holds until it ends: its place under `--max-calls`, and its uuid among the
/// live ones.
pub(crate) struct CallGuards {
    _slot: Slot,
    _registered: Option<Registered>,
}

impl CallGuards {
    /// What an admitted call holds.
    pub(crate) fn new(slot: Slot, registered: Option<Registered>) -> CallGuards {
        CallGuards {
            _slot: slot,
            _registered: registered,
        }
    }
}

/// How many DTMF keys a call's summary keeps.
const MAX_DTMF_KEPT: usize = 256;

/// How long the server waits for the caller's answer to its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What one call did, for its summary line.
#[derive(Default)]
struct Tally {
    /// The format `websocket:connected` announced.
    format: Option<AudioFormat>,
    /// The inbound audio on its way to disk, with a record directory.
    recording: Option<Recording>,
    frames_in: u64,
    bytes_in: u64,
    frames_out: u64,
    bytes_out: u64,
    texts_in: u64,
    dtmf: String,
}

/// How a call ended.
#[derive(Debug)]
enum End {
    /// The caller sent a close frame (with its code, if any).
    CallerClosed(Option<u16>),
    /// The server closed with this code and reason.
    ServerClosed(CloseCode, String),
    /// The connection ended without a closing handshake.
    Vanished(String),
}

impl End {
    /// The close code the call ended with, as the metrics count it.
    fn code(&self) -> u16 {
        match self {
            End::CallerClosed(code) => code.unwrap_or(1005),
            End::ServerClosed(code, _) => u16::from(*code),
            End::Vanished(_) => 1006,
        }
    }
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::CallerClosed(Some(code)) => write!(f, "closed by the caller with {code}"),
            End::CallerClosed(None) => write!(f, "closed by the caller without a code (1005)"),
            End::ServerClosed(code, reason) => {
                write!(
                    f,
                    "closed by the server with {} ({reason})",
                    u16::from(*code)
                )
            }
            End::Vanished(why) => write!(f, "connection lost (1006): {why}"),
        }
    }
}

/// Runs one call to its end and logs its summary. A panic ends this call only.
pub(crate) fn run(
    mut ws: WebSocket<CallStream>,
    id: CallId,
    peer: SocketAddr,
    guards: CallGuards,
    shared: &Shared,
) {
    let _guards = guards;
    let started = Instant::now();
    shared.metrics.call_started();
    log::debug!(call = id.as_str(); "call {id} socket open from {peer}");
    let mut tally = Tally::default();
    let outcome = threads::guarded(|| echo(&mut ws, &id, shared, &mut tally));
    let end = outcome.unwrap_or_else(|what| {
        log::error!(call = id.as_str(); "call {id}: panicked: {what}; ending this call only");
        let _ = ws.close(Some(close_frame(CloseCode::Error, "internal error")));
        ws.get_mut().finish_raw(CLOSE_GRACE);
        End::ServerClosed(CloseCode::Error, "internal error".into())
    });
    // The last thing tungstenite wrote (the reply to the caller's close) may still be held.
    let _ = ws.get_mut().send_held();
    shared.metrics.call_ended(end.code(), started.elapsed());
    let recorded = tally
        .recording
        .take()
        .and_then(|recording| match recording.finish() {
            Ok(path) => Some(path),
            Err(e) => {
                log::error!(call = id.as_str(); "call {id}: {e}");
                None
            }
        });
    summarize(
        &id,
        peer,
        started.elapsed(),
        &tally,
        recorded.as_deref(),
        &end,
    );
}

/// The call's one line at INFO: who, how long, what went each way, how it ended.
fn summarize(
    id: &CallId,
    peer: SocketAddr,
    lasted: Duration,
    tally: &Tally,
    recorded: Option<&std::path::Path>,
    end: &End,
) {
    let format = tally
        .format
        .map_or("no websocket:connected".into(), |f| f.to_string());
    let recorded = recorded.map_or(String::new(), |p| format!(", recorded to {}", p.display()));
    log::info!(
        call = id.as_str();
        "call {id} from {peer} ended after {:.1}s ({format}): in {} frames / {} bytes, out {} frames / {} bytes, {} texts, dtmf {:?}{recorded}; {end}",
        lasted.as_secs_f64(),
        tally.frames_in,
        tally.bytes_in,
        tally.frames_out,
        tally.bytes_out,
        tally.texts_in,
        tally.dtmf,
    );
}

/// The echo loop: every data message goes straight back, unchanged and in order.
fn echo(ws: &mut WebSocket<CallStream>, id: &CallId, shared: &Shared, tally: &mut Tally) -> End {
    let config = &shared.config;
    let mut first = true;
    // Whether the thread has taken the audio's place (after the first frame's echo).
    let mut settled = false;
    let mut last_heard = Instant::now();
    let mut pinged_at: Option<Instant> = None;
    loop {
        // Checked every turn: a call that streams audio never reaches the silence branch.
        if shared.stopping() {
            return close(ws, CloseCode::Away, "server shutting down");
        }
        ws.get_mut().yield_at(Instant::now() + TICK);
        let message = match ws.read() {
            Ok(message) => message,
            Err(WsError::Io(e)) if is_timeout(&e) => {
                // A tick without a whole message: look up from the socket.
                if let Some(end) = mind_silence(ws, id, config, last_heard, &mut pinged_at) {
                    return end;
                }
                continue;
            }
            Err(e) => return ended_by(ws, e),
        };
        last_heard = Instant::now();
        pinged_at = None;
        let sent = match message {
            Message::Binary(audio) => {
                if first {
                    log::warn!(call = id.as_str(); "call {id}: first message is audio, not websocket:connected");
                    first = false;
                }
                take_audio(ws, &audio, id, tally, shared);
                let len = audio.len() as u64;
                ws.send(Message::Binary(audio)).map(|()| Some(len))
            }
            Message::Text(text) => {
                tally.texts_in += 1;
                observe(&text, first, id, tally, shared);
                first = false;
                ws.send(Message::Text(text)).map(|()| None)
            }
            Message::Close(frame) => return closed_by_caller(ws, frame),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        };
        match sent {
            Ok(len) => count_sent(len, &mut settled, id, tally, shared),
            Err(WsError::Io(e)) if is_timeout(&e) => {
                return End::Vanished(format!(
                    "the caller stopped reading ({:?} write timeout)",
                    config.write_timeout
                ));
            }
            Err(e) => return ended_by(ws, e),
        }
    }
}

/// A frame of the caller's audio has come in: counted, recorded, and, when it is the
/// first, the size the socket reads in from now on.
fn take_audio(
    ws: &mut WebSocket<CallStream>,
    audio: &[u8],
    id: &CallId,
    tally: &mut Tally,
    shared: &Shared,
) {
    if tally.frames_in == 0 {
        // Never below Vonage's smallest frame: a peer's tiny first message must not make
        // every later frame take dozens of reads.
        let smallest = AudioFormat::L16Rate8000.frame_bytes();
        ws.get_mut()
            .limit_reads(client_frame_len(audio.len().max(smallest)));
    }
    tally.frames_in += 1;
    tally.bytes_in += audio.len() as u64;
    shared.metrics.frame_in(audio.len());
    record(audio, id, tally, shared);
}

/// A message has gone back: audio (`Some` of its length) counts as a frame and its bytes,
/// and the first settles the thread in the audio's place; a text counts as a text.
fn count_sent(
    audio: Option<u64>,
    settled: &mut bool,
    id: &CallId,
    tally: &mut Tally,
    shared: &Shared,
) {
    let Some(len) = audio else {
        shared.metrics.text_out();
        return;
    };
    tally.frames_out += 1;
    tally.bytes_out += len;
    shared.metrics.frame_out(len as usize);
    if !*settled {
        *settled = true;
        settle(id, shared);
    }
}

/// The bytes a client's frame of `payload` bytes takes on the wire: two bytes, the length's
/// extension (RFC 6455 5.2), the mask's four, the payload.
fn client_frame_len(payload: usize) -> usize {
    let extension = match payload {
        0..=125 => 0,
        126..=65535 => 2,
        _ => 8,
    };
    2 + extension + 4 + payload
}

/// Takes the audio's place on the core, below call setup, once the call's first frame has
/// been echoed. What a call allocates at its start (its first message parsed, its buffers
/// grown, its log lines) is then behind it: the allocator's locks are shared with setup's
/// threads, and a call thread that held one while it waited for the core would make them
/// wait behind every call.
fn settle(id: &CallId, shared: &Shared) {
    // Server::start checked that the system allows it; a refusal now only costs this
    // call its place.
    if let Err(e) = scheduling::take_role(Role::Audio, &shared.config, shared.base_nice) {
        log::warn!(call = id.as_str(); "call {id}: keeps the setup threads' priority: {e}");
    }
}

/// Pings a call silent for `idle_ping_after`, and ends one whose ping went unanswered
/// for `idle_close_after`.
fn mind_silence(
    ws: &mut WebSocket<CallStream>,
    id: &CallId,
    config: &crate::config::Config,
    last_heard: Instant,
    pinged_at: &mut Option<Instant>,
) -> Option<End> {
    match *pinged_at {
        None if last_heard.elapsed() >= config.idle_ping_after => {
            log::info!(
                call = id.as_str();
                "call {id}: silent for {:?}; pinging",
                config.idle_ping_after
            );
            if let Err(e) = ws.send(Message::Ping(Default::default())) {
                return Some(End::Vanished(format!("ping failed: {e}")));
            }
            *pinged_at = Some(Instant::now());
            None
        }
        Some(at) if at.elapsed() >= config.idle_close_after => {
            Some(close(ws, CloseCode::Normal, "silent call, ping unanswered"))
        }
        _ => None,
    }
}

/// The caller sent a close frame: tungstenite has queued the reply, and the next read
/// sends it and ends the call.
fn closed_by_caller(ws: &mut WebSocket<CallStream>, frame: Option<CloseFrame>) -> End {
    let code = frame.map(|f| u16::from(f.code));
    loop {
        match ws.read() {
            Err(WsError::Io(e)) if is_timeout(&e) => {}
            Err(_) => return End::CallerClosed(code),
            Ok(_) => {}
        }
    }
}

/// Writes inbound audio to the call's recording, starting it with the first frame.
fn record(audio: &[u8], id: &CallId, tally: &mut Tally, shared: &Shared) {
    let Some(dir) = &shared.config.record_dir else {
        return;
    };
    if tally.frames_in == 1 {
        let format = tally.format.unwrap_or(shared.config.audio);
        tally.recording = Recording::start(dir, id, format);
    }
    if let Some(recording) = &mut tally.recording {
        if let Err(e) = recording.write(audio) {
            log::error!(call = id.as_str(); "call {id}: {e}; the call goes on");
            tally.recording = None;
        }
    }
}

/// Logs what a text message says.
fn observe(text: &str, first: bool, id: &CallId, tally: &mut Tally, shared: &Shared) {
    let event = messages::parse(text);
    if first && !matches!(event, SocketEvent::Connected { .. }) {
        log::warn!(call = id.as_str(); "call {id}: first message is not websocket:connected: {text:.200}");
    }
    match event {
        SocketEvent::Connected {
            format,
            content_type,
            headers,
        } => {
            tally.format = format;
            log::debug!(
                call = id.as_str();
                "call {id} connected: content-type {}, headers {}",
                content_type.as_deref().unwrap_or("(none)"),
                serde_json::Value::Object(headers)
            );
            if format != Some(shared.config.audio) {
                log::warn!(
                    call = id.as_str();
                    "call {id}: content-type {:?} differs from the configured {}",
                    content_type,
                    shared.config.audio
                );
            }
        }
        SocketEvent::Dtmf { digit, duration_ms } => {
            // The summary keeps the first keys; a flood of them cannot grow it.
            if tally.dtmf.len() < MAX_DTMF_KEPT {
                tally.dtmf.push(digit);
            }
            shared.metrics.dtmf();
            log::debug!(
                call = id.as_str();
                "call {id} dtmf {digit} ({} ms)",
                duration_ms.map_or("?".into(), |d| d.to_string())
            );
        }
        other => log::debug!(call = id.as_str(); "call {id} text event: {other:?}"),
    }
}

/// Ends the call after a read or write error, with the close code RFC 6455 gives it.
fn ended_by(ws: &mut WebSocket<CallStream>, e: WsError) -> End {
    let (code, reason) = match e {
        WsError::ConnectionClosed | WsError::AlreadyClosed => return End::CallerClosed(None),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            return End::Vanished("closed without a closing handshake".into())
        }
        WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => (
            CloseCode::Size,
            format!("message of {size} bytes exceeds {max_size}"),
        ),
        WsError::Utf8(_) => (CloseCode::Invalid, "text message is not UTF-8".into()),
        WsError::Protocol(p) => (CloseCode::Protocol, p.to_string()),
        other => return End::Vanished(other.to_string()),
    };
    // The parser has seen bad input: send the close frame, but read no further frames.
    let _ = ws.close(Some(close_frame(code, &reason)));
    ws.get_mut().finish_raw(CLOSE_GRACE);
    End::ServerClosed(code, reason)
}

fn close_frame(code: CloseCode, reason: &str) -> CloseFrame {
    CloseFrame {
        code,
        // Control frames carry at most 123 bytes of reason.
        reason: crate::text::cut(reason, 123).to_owned().into(),
    }
}

/// Sends a close frame and waits briefly for the caller's reply, so the closing handshake
/// completes when the caller is well.
fn close(ws: &mut WebSocket<CallStream>, code: CloseCode, reason: &str) -> End {
    let end = End::ServerClosed(code, reason.to_owned());
    if ws.close(Some(close_frame(code, reason))).is_err() {
        return end;
    }
    let deadline = Instant::now() + CLOSE_GRACE;
    while Instant::now() < deadline {
        match ws.read() {
            Ok(_) => {}
            Err(WsError::Io(e)) if is_timeout(&e) => {}
            Err(_) => break,
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_frame_s_length_counts_its_length_extension_and_mask() {
        assert_eq!(client_frame_len(125), 131);
        assert_eq!(client_frame_len(640), 648);
        assert_eq!(client_frame_len(65536), 65550);
    }

    #[test]
    fn close_reasons_fit_a_control_frame() {
        let frame = close_frame(CloseCode::Normal, &"é".repeat(100));
        assert!(frame.reason.len() <= 123);
    }
}
