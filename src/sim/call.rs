//! One call, played as Vonage plays it, with a verdict on the echo.

use std::{
    fmt,
    path::PathBuf,
    sync::{mpsc, Arc},
    time::{Duration, Instant},
};

use serde_json::{json, Map};
use tungstenite::Bytes;

use super::{
    dial,
    engine::{self, Outcome, Plan, Source},
    percentile, post_event, Dial,
};
use crate::{
    error::{Error, Result},
    protocol::audio::AudioFormat,
    protocol::call_id::CallId,
    protocol::messages::is_dtmf_digit,
};

/// How long a call streams, unless [`CallOptions::duration`] says otherwise.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(5);

/// What one simulated call does.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CallOptions {
    /// Where the call is placed.
    pub dial: Dial,
    /// How long audio streams (a tone). With [`CallOptions::wav`] the file's length is used.
    pub duration: Duration,
    /// A mono 16-bit WAV file at the call's rate to stream instead of a tone.
    pub wav: Option<PathBuf>,
    /// Keys pressed during the call, spread evenly over it (`0`-`9`, `*`, `#`).
    pub dtmf: String,
    /// Where to write what the call hears, as a WAV file.
    pub record: Option<PathBuf>,
}

impl CallOptions {
    /// A 5-second call to `answer_url` with a tone.
    pub fn new(answer_url: impl Into<String>) -> CallOptions {
        CallOptions {
            dial: Dial::new(answer_url),
            duration: DEFAULT_DURATION,
            wav: None,
            dtmf: String::new(),
            record: None,
        }
    }

    /// Sets [`CallOptions::dial`].
    pub fn dial(mut self, dial: Dial) -> Self {
        self.dial = dial;
        self
    }

    /// Sets [`CallOptions::duration`].
    pub fn duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }

    /// Sets [`CallOptions::wav`].
    pub fn wav(mut self, path: Option<PathBuf>) -> Self {
        self.wav = path;
        self
    }

    /// Sets [`CallOptions::dtmf`].
    pub fn dtmf(mut self, digits: impl Into<String>) -> Self {
        self.dtmf = digits.into();
        self
    }

    /// Sets [`CallOptions::record`].
    pub fn record(mut self, path: Option<PathBuf>) -> Self {
        self.record = path;
        self
    }
}

/// What a call saw.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CallReport {
    /// The call's uuid.
    pub id: CallId,
    /// The audio format the NCCO asked for.
    pub format: AudioFormat,
    /// Where the socket was opened (the NCCO's uri unless overridden).
    pub socket_uri: String,
    /// What the NCCO's talk actions said.
    pub talks: Vec<String>,
    /// Audio frames sent.
    pub sent: u64,
    /// Frames echoed back byte-identical and in order.
    pub echoed: u64,
    /// Frames sent that never came back.
    pub lost: u64,
    /// Frames that came back different (or of the wrong size).
    pub corrupted: u64,
    /// Frames the simulator itself sent late (5 ms or more after schedule).
    pub late: u64,
    /// Text messages sent (`websocket:connected`, DTMF) and echoed unchanged.
    pub texts: (u64, u64),
    /// Round-trip median.
    pub rtt_p50: Duration,
    /// Round-trip 99th percentile.
    pub rtt_p99: Duration,
    /// Longest round trip.
    pub rtt_max: Duration,
    /// The close code the server answered with.
    pub server_close: Option<u16>,
    /// What failed, if anything did.
    pub error: Option<String>,
}

impl CallReport {
    /// Whether every frame and text came back intact and nothing failed.
    pub fn passed(&self) -> bool {
        self.error.is_none()
            && self.lost == 0
            && self.corrupted == 0
            && self.echoed == self.sent
            && self.texts.0 == self.texts.1
    }
}

impl fmt::Display for CallReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "call {} ({})", self.id, self.format)?;
        writeln!(f, "  socket: {}", self.socket_uri)?;
        for talk in &self.talks {
            writeln!(f, "  talk: {talk}")?;
        }
        writeln!(
            f,
            "  frames: {} sent, {} echoed, {} lost, {} corrupted, {} sent late",
            self.sent, self.echoed, self.lost, self.corrupted, self.late
        )?;
        writeln!(f, "  texts: {} sent, {} echoed", self.texts.0, self.texts.1)?;
        writeln!(
            f,
            "  round trip: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms(self.rtt_p50),
            ms(self.rtt_p99),
            ms(self.rtt_max)
        )?;
        if let Some(code) = self.server_close {
            writeln!(f, "  closed: server answered {code}")?;
        }
        match &self.error {
            Some(e) => write!(f, "  FAILED: {e}"),
            None if self.passed() => write!(f, "  PASSED"),
            None => write!(f, "  FAILED: the echo was not faithful"),
        }
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Plays one call and reports on its echo. An `Err` means the call never streamed (bad
/// NCCO, refused handshake, ...); a report can still fail (see [`CallReport::passed`]).
pub fn run(options: &CallOptions) -> Result<CallReport> {
    if let Some(bad) = options.dtmf.chars().find(|c| !is_dtmf_digit(*c)) {
        return Err(Error::config(
            "--dtmf",
            format!("{bad:?} is not a key (0-9, *, #)"),
        ));
    }
    let agent = options.dial.agent()?;
    let event_url = options.dial.event_target()?;
    let mut post = |base: &serde_json::Value, status: &'static str| match &event_url {
        Some(url) => post_event(&agent, &options.dial, url, base, status, Map::new()),
        None => Ok(()),
    };
    let dialed = dial(&options.dial, &agent, &mut post)?;
    let format = dialed.format;
    let (source, frames) = match &options.wav {
        Some(path) => {
            let frames = read_wav(path, format)?;
            let n = frames.len() as u64;
            (Source::Frames(Arc::new(frames)), n)
        }
        None => (
            Source::Tone { stamp: false },
            (options.duration.as_millis() / 20).max(1) as u64,
        ),
    };
    let length = crate::protocol::audio::FRAME_DURATION * frames as u32;
    let keys: Vec<char> = options.dtmf.chars().collect();
    let dtmf = keys
        .iter()
        .enumerate()
        .map(|(i, &d)| (length * (i as u32 + 1) / (keys.len() as u32 + 1), d))
        .collect();
    let recorder = match &options.record {
        Some(path) => Some(
            hound::WavWriter::create(path, wav_spec(format)).map_err(|e| Error::Wav {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?,
        ),
        None => None,
    };
    let id = dialed.id.clone();
    let talks = dialed.talks.clone();
    let socket_uri = dialed.socket_uri.clone();
    let answered_at = dialed.answered_at;
    let base = json!({"uuid": id.as_str(), "conversation_uuid": dialed.conversation,
                      "from": options.dial.from, "to": options.dial.to, "direction": "inbound"});

    let (tx, rx) = mpsc::channel();
    let _ = tx.send(Plan {
        dialed,
        frames,
        source,
        dtmf,
        recorder,
        phase: Duration::ZERO,
    });
    drop(tx);
    let mut outcome = Outcome::default();
    engine::run(Instant::now(), rx, |o| outcome = o).map_err(|e| Error::io("streaming", e))?;

    let mut error = outcome.error.take();
    if let Some(e) = outcome.recorder_error.take() {
        error.get_or_insert(format!("recording: {e}"));
    }
    if let Some(url) = &event_url {
        let mut extra = Map::new();
        extra.insert(
            "duration".into(),
            answered_at.elapsed().as_secs().to_string().into(),
        );
        if let Err(e) = post_event(&agent, &options.dial, url, &base, "completed", extra) {
            error.get_or_insert(e.to_string());
        }
    }
    let mut rtts: Vec<u32> = outcome.rtts.iter().map(|&(_, rtt)| rtt).collect();
    rtts.sort_unstable();
    Ok(CallReport {
        id,
        format,
        socket_uri,
        talks,
        sent: outcome.sent,
        echoed: outcome.echoed,
        lost: outcome.lost,
        corrupted: outcome.corrupted,
        late: outcome.late,
        texts: (outcome.texts_sent, outcome.texts_echoed),
        rtt_p50: percentile(&rtts, 50.0),
        rtt_p99: percentile(&rtts, 99.0),
        rtt_max: percentile(&rtts, 100.0),
        server_close: outcome.server_close,
        error,
    })
}

/// The WAV format of a call's audio.
pub fn wav_spec(format: AudioFormat) -> hound::WavSpec {
    hound::WavSpec {
        channels: 1,
        sample_rate: format.rate(),
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

/// Reads a WAV file into 20 ms frames at `format`, the last padded with silence. Anything
/// but mono 16-bit PCM at the call's rate is refused: resampling is not the simulator's job.
pub fn read_wav(path: &std::path::Path, format: AudioFormat) -> Result<Vec<Bytes>> {
    let wav_error = |reason: String| Error::Wav {
        path: path.display().to_string(),
        reason,
    };
    let reader = hound::WavReader::open(path).map_err(|e| wav_error(e.to_string()))?;
    let spec = reader.spec();
    if spec.channels != 1
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        return Err(wav_error(format!(
            "{} channel(s), {}-bit {:?}: only mono 16-bit integer PCM is streamed",
            spec.channels, spec.bits_per_sample, spec.sample_format
        )));
    }
    if spec.sample_rate != format.rate() {
        return Err(wav_error(format!(
            "{} Hz, but the call is {} Hz; convert it first (e.g. sox in.wav -r {} out.wav)",
            spec.sample_rate,
            format.rate(),
            format.rate()
        )));
    }
    let mut bytes = Vec::new();
    for sample in reader.into_samples::<i16>() {
        bytes.extend_from_slice(&sample.map_err(|e| wav_error(e.to_string()))?.to_le_bytes());
    }
    if bytes.is_empty() {
        return Err(wav_error("holds no audio".into()));
    }
    let frame = format.frame_bytes();
    bytes.resize(bytes.len().div_ceil(frame) * frame, 0);
    Ok(bytes.chunks(frame).map(Bytes::copy_from_slice).collect())
}
