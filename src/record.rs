//! Call recordings: with a record directory, each call's inbound audio goes to
//! `<uuid>.wav` as it arrives (never held in memory), and each of its events is appended to
//! `<uuid>.events.jsonl`, so one folder holds the whole story of a call. A failing disk
//! stops a recording, never a call.

use std::{
    fs::{File, OpenOptions},
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use crate::{error::Error, protocol::audio::AudioFormat, protocol::call_id::CallId};

/// Makes `dir` ready for recordings before the server starts: created when missing, and
/// proved writable by writing a file there, so a bad path is refused at start, naming the
/// setting, rather than found on every call.
pub(crate) fn prepare_dir(dir: &Path) -> Result<(), Error> {
    let refused = |what: &str, e: std::io::Error| {
        Error::config("--record-dir", format!("{}: {what}: {e}", dir.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| refused("cannot create it", e))?;
    // A dot-name no call id can take (see CallId::parse).
    let probe = dir.join(format!(".vonage-echo-probe-{}", std::process::id()));
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
        .and_then(|mut file| file.write_all(b"probe"))
        .map_err(|e| refused("cannot write in it", e))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// How many frames between header updates, so a file cut short by a crash still opens:
/// one second of audio.
const HEADER_EVERY: u32 = 50;

/// A recording stops here: WAV sizes are 32-bit, and Vonage's longest call (2 h at
/// 24 kHz) is 346 MB.
const MAX_RECORDING_BYTES: u64 = 1 << 30;

/// One call's audio being written to disk.
pub(crate) struct Recording {
    writer: hound::WavWriter<BufWriter<File>>,
    path: PathBuf,
    frames: u32,
    bytes: u64,
}

impl Recording {
    /// Starts `<dir>/<id>.wav`, or `<id>.1.wav` and on when a recording of that call exists
    /// already (a reconnected call): nothing is overwritten. A failure is logged and there
    /// is no recording.
    pub(crate) fn start(dir: &Path, id: &CallId, format: AudioFormat) -> Option<Recording> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: format.rate(),
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut why = "100 recordings of it exist already".to_owned();
        for n in 0..100 {
            let name = if n == 0 {
                format!("{id}.wav")
            } else {
                format!("{id}.{n}.wav")
            };
            let path = dir.join(name);
            let opened = OpenOptions::new().write(true).create_new(true).open(&path);
            let file = match opened {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    why = format!("cannot create {}: {e}", path.display());
                    break;
                }
            };
            match hound::WavWriter::new(BufWriter::new(file), spec) {
                Ok(writer) => {
                    return Some(Recording {
                        writer,
                        path,
                        frames: 0,
                        bytes: 0,
                    })
                }
                Err(e) => {
                    why = format!("cannot write {}: {e}", path.display());
                    break;
                }
            }
        }
        log::error!(call = id.as_str(); "call {id}: not recorded: {why}");
        None
    }

    /// Appends one frame of 16-bit little-endian samples. An error ends the recording
    /// (the caller drops it); the file keeps what was written.
    pub(crate) fn write(&mut self, audio: &[u8]) -> Result<(), String> {
        self.bytes += audio.len() as u64;
        if self.bytes > MAX_RECORDING_BYTES {
            return Err(format!(
                "recording {} stopped at {MAX_RECORDING_BYTES} bytes",
                self.path.display()
            ));
        }
        let mut samples = self.writer.get_i16_writer(audio.len() as u32 / 2);
        for pair in audio.chunks_exact(2) {
            samples.write_sample(i16::from_le_bytes([pair[0], pair[1]]));
        }
        samples.flush().map_err(|e| self.failed(&e))?;
        self.frames += 1;
        if self.frames.is_multiple_of(HEADER_EVERY) {
            self.writer.flush().map_err(|e| self.failed(&e))?;
        }
        Ok(())
    }

    fn failed(&self, e: &hound::Error) -> String {
        format!("recording {} stopped: {e}", self.path.display())
    }

    /// Completes the file's header.
    pub(crate) fn finish(self) -> Result<PathBuf, String> {
        let path = self.path.clone();
        self.writer
            .finalize()
            .map(|()| path)
            .map_err(|e| format!("recording {} not finished: {e}", self.path.display()))
    }
}

/// Appends one event, as a JSON line, to `<dir>/<id>.events.jsonl`.
pub(crate) fn append_event(
    dir: &Path,
    id: &CallId,
    event: &serde_json::Value,
) -> std::io::Result<()> {
    let mut line = event.to_string();
    line.push('\n');
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{id}.events.jsonl")))?
        .write_all(line.as_bytes())
}
