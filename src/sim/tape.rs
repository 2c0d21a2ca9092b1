//! The call as a two-channel WAV file: left what the caller said, right what Vonage played
//! to the caller, one 20 ms frame of each per tick from the socket's opening, silence where
//! there was nothing. The two line up, so a reply's delay can be read off the file.

use std::{fs::File, io::BufWriter, path::Path};

use crate::{
    error::{Error, Result},
    protocol::audio::AudioFormat,
};

/// A recording being written.
pub(crate) struct Tape {
    writer: hound::WavWriter<BufWriter<File>>,
    samples_per_frame: usize,
    path: String,
}

impl Tape {
    /// Creates `path` for a call in `format`.
    pub(crate) fn create(path: &Path, format: AudioFormat) -> Result<Tape> {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: format.rate(),
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(path, spec).map_err(|e| Error::Wav {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Tape {
            writer,
            samples_per_frame: format.samples_per_frame(),
            path: path.display().to_string(),
        })
    }

    /// Writes one tick: what the caller said and what it heard (either may be nothing).
    pub(crate) fn tick(&mut self, said: Option<&[u8]>, heard: Option<&[u8]>) -> Result<()> {
        let sample = |frame: Option<&[u8]>, i: usize| {
            frame
                .and_then(|f| f.get(2 * i..2 * i + 2))
                .map_or(0, |b| i16::from_le_bytes([b[0], b[1]]))
        };
        for i in 0..self.samples_per_frame {
            for channel in [said, heard] {
                self.writer
                    .write_sample(sample(channel, i))
                    .map_err(|e| self.error(e))?;
            }
        }
        Ok(())
    }

    /// Completes the file's header.
    pub(crate) fn finish(self) -> Result<()> {
        let path = self.path;
        self.writer.finalize().map_err(|e| Error::Wav {
            path,
            reason: e.to_string(),
        })
    }

    fn error(&self, e: hound::Error) -> Error {
        Error::Wav {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }
}
