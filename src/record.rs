//! Call recordings: with a record directory, each call's inbound audio goes to
//! `<uuid>.wav` as it arrives (never held in memory), and each of its events is appended to
//! `<uuid>.events.jsonl`, so one folder holds the whole story of a call. A failing disk
//! stops a recording, never a call.

use std::{
    fs::{File, OpenOptions},
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use crate::{audio::AudioFormat, call::CallId};

/// How many frames between header updates, so a file cut short by a crash still opens:
/// one second of audio.
const HEADER_EVERY: u32 = 50;

/// One call's audio being written to disk.
pub(crate) struct Recording {
    writer: hound::WavWriter<BufWriter<File>>,
    path: PathBuf,
    frames: u32,
}

impl Recording {
    /// Starts `<dir>/<id>.wav`; a failure is logged and there is no recording.
    pub(crate) fn start(dir: &Path, id: &CallId, format: AudioFormat) -> Option<Recording> {
        let path = dir.join(format!("{id}.wav"));
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: format.rate(),
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        match hound::WavWriter::create(&path, spec) {
            Ok(writer) => Some(Recording {
                writer,
                path,
                frames: 0,
            }),
            Err(e) => {
                log::error!(
                    "call {id}: not recorded: cannot create {}: {e}",
                    path.display()
                );
                None
            }
        }
    }

    /// Appends one frame of 16-bit little-endian samples. An error ends the recording
    /// (the caller drops it); the file keeps what was written.
    pub(crate) fn write(&mut self, audio: &[u8]) -> Result<(), String> {
        let mut samples = self.writer.get_i16_writer(audio.len() as u32 / 2);
        for pair in audio.chunks_exact(2) {
            samples.write_sample(i16::from_le_bytes([pair[0], pair[1]]));
        }
        samples.flush().map_err(|e| self.failed(&e))?;
        self.frames += 1;
        if self.frames % HEADER_EVERY == 0 {
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
