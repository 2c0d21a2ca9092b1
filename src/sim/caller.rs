//! What the caller does, laid out on the call's clock: a frame of audio for every 20 ms
//! tick until the caller hangs up, and the keys pressed on the way. Built from a tone, a
//! WAV file or silence with keys spread evenly (`call`'s flags), or from a scenario.

use std::{path::Path, time::Duration};

use tungstenite::Bytes;

use super::{
    script::{Scenario, Step},
    turns::{rest_of, speech_turns, Cue, TurnPlan},
};
use crate::{
    error::{Error, Result},
    protocol::audio::{AudioFormat, FRAME_DURATION},
};

/// How long one key of a scenario's `press` takes (Vonage reports a key 260 ms long).
pub const KEY_TICKS: u64 = 15;

/// The duration a `websocket:dtmf` event reports for a key.
pub const KEY_MS: u64 = 260;

/// What the caller streams when nothing else is said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Voice {
    /// A 440 Hz tone.
    #[default]
    Tone,
    /// Silent frames, as a caller who listens.
    Silence,
}

/// The caller's side of a call, tick by tick.
#[derive(Debug, Clone, Default)]
pub(crate) struct Caller {
    /// The frame sent at each tick; the caller hangs up after the last.
    pub(crate) frames: Vec<Bytes>,
    /// Keys, by the tick they are pressed at.
    pub(crate) keys: Vec<(u64, char)>,
    /// Each scenario step's first tick and the tick after its last.
    pub(crate) steps: Vec<(u64, u64)>,
    /// The turns the caller takes, whose replies are timed.
    pub(crate) turns: Vec<TurnPlan>,
}

impl Caller {
    /// `voice` (or `wav`) for `duration`, with `keys` spread evenly over the call.
    pub(crate) fn plain(
        format: AudioFormat,
        voice: Voice,
        wav: Option<&Path>,
        duration: Duration,
        keys: &str,
    ) -> Result<Caller> {
        let frames = match wav {
            Some(path) => read_wav(path, format)?,
            None => {
                let ticks = (duration.as_millis() / FRAME_DURATION.as_millis()).max(1) as u64;
                voice_frames(format, voice, ticks)
            }
        };
        let ticks = frames.len() as u64;
        let count = keys.chars().count() as u64;
        let keys: Vec<(u64, char)> = keys
            .chars()
            .enumerate()
            .map(|(i, key)| (ticks * (i as u64 + 1) / (count + 1), key))
            .collect();
        let what = if wav.is_some() { "speech" } else { "tone" };
        let mut turns = speech_turns(&frames, what);
        turns.extend(keys.iter().map(|&(at, key)| TurnPlan {
            what: format!("press {key}"),
            start: Cue::Key(at),
            end: Cue::Key(at),
        }));
        Ok(Caller {
            frames,
            keys,
            steps: vec![(0, ticks)],
            turns,
        })
    }

    /// The caller of a scenario, up to its `hangup` or its last step.
    pub(crate) fn scripted(format: AudioFormat, scenario: &Scenario) -> Result<Caller> {
        let mut caller = Caller::default();
        for step in &scenario.steps {
            let start = caller.frames.len() as u64;
            match step {
                Step::Say(path) => caller.frames.extend(read_wav(path, format)?),
                Step::Tone(d) => caller
                    .frames
                    .extend(voice_frames(format, Voice::Tone, ticks(*d))),
                Step::Silence(d) => {
                    caller
                        .frames
                        .extend(voice_frames(format, Voice::Silence, ticks(*d)))
                }
                Step::Press(keys) => {
                    for (i, key) in keys.chars().enumerate() {
                        caller.keys.push((start + i as u64 * KEY_TICKS, key));
                    }
                    let n = keys.chars().count() as u64 * KEY_TICKS;
                    caller
                        .frames
                        .extend(voice_frames(format, Voice::Silence, n));
                }
                Step::Hangup => {}
            }
            let end = caller.frames.len() as u64;
            caller.turns.extend(step_turn(step, start, end));
            caller.steps.push((start, end));
        }
        Ok(caller)
    }
}

impl Caller {
    /// What is left to say after the first `ticks` frames: the caller goes on there in the
    /// call's next socket leg.
    pub(crate) fn rest(&self, ticks: u64) -> Caller {
        let from = (ticks as usize).min(self.frames.len());
        let shift = from as u64;
        Caller {
            frames: self.frames[from..].to_vec(),
            keys: self
                .keys
                .iter()
                .filter(|(at, _)| *at >= shift)
                .map(|(at, key)| (at - shift, *key))
                .collect(),
            steps: self
                .steps
                .iter()
                .filter(|(_, end)| *end > shift)
                .map(|(start, end)| (start.saturating_sub(shift), end - shift))
                .collect(),
            turns: rest_of(&self.turns, shift),
        }
    }
}

/// The turn a scenario's step takes, from frame `start` to before `end`: a `say`, a
/// `tone` or a `press` asks for an answer; a `silence` listens.
fn step_turn(step: &Step, start: u64, end: u64) -> Option<TurnPlan> {
    let (what, first, last) = match step {
        Step::Say(path) => {
            let name = path.file_name().unwrap_or(path.as_os_str());
            let what = format!("say {}", name.to_string_lossy());
            (what, Cue::Frame(start), Cue::Frame(end.checked_sub(1)?))
        }
        Step::Tone(d) => (
            format!("tone {}ms", d.as_millis()),
            Cue::Frame(start),
            Cue::Frame(end.checked_sub(1)?),
        ),
        Step::Press(keys) => {
            let presses = keys.chars().count() as u64;
            let last = start + presses.checked_sub(1)? * KEY_TICKS;
            (format!("press {keys}"), Cue::Key(start), Cue::Key(last))
        }
        Step::Silence(_) | Step::Hangup => return None,
    };
    Some(TurnPlan {
        what,
        start: first,
        end: last,
    })
}

/// Whole ticks in `d`, rounded up.
fn ticks(d: Duration) -> u64 {
    d.as_micros().div_ceil(FRAME_DURATION.as_micros()) as u64
}

/// `ticks` frames of `voice`.
fn voice_frames(format: AudioFormat, voice: Voice, ticks: u64) -> Vec<Bytes> {
    let cycle = match voice {
        Voice::Tone => tone(format),
        Voice::Silence => vec![Bytes::from(vec![0u8; format.frame_bytes()])],
    };
    (0..ticks as usize)
        .map(|k| cycle[k % cycle.len()].clone())
        .collect()
}

/// One 20 ms frame of a 440 Hz tone at `format`, for each phase the tone repeats in.
pub(crate) fn tone(format: AudioFormat) -> Vec<Bytes> {
    // 440 Hz over 20 ms is 8.8 cycles: the phase repeats every 5 frames at every rate.
    let n = format.samples_per_frame();
    (0..5)
        .map(|k| {
            let mut frame = Vec::with_capacity(n * 2);
            for i in 0..n {
                let t = (k * n + i) as f64 / f64::from(format.rate());
                let sample = (f64::sin(2.0 * std::f64::consts::PI * 440.0 * t) * 8000.0) as i16;
                frame.extend_from_slice(&sample.to_le_bytes());
            }
            Bytes::from(frame)
        })
        .collect()
}

/// The WAV format of one channel of a call's audio.
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
pub fn read_wav(path: &Path, format: AudioFormat) -> Result<Vec<Bytes>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::script::Scenario;

    #[test]
    fn keys_are_spread_evenly_over_a_plain_call() {
        let caller = Caller::plain(
            AudioFormat::L16Rate8000,
            Voice::Tone,
            None,
            Duration::from_secs(3),
            "12",
        )
        .unwrap();
        assert_eq!(caller.frames.len(), 150);
        assert_eq!(caller.keys, [(50, '1'), (100, '2')]);
    }

    #[test]
    fn a_scenario_lays_its_steps_end_to_end() {
        let scenario =
            Scenario::parse("tone 100ms\npress 12\nsilence 1s\nhangup", Path::new(".")).unwrap();
        let caller = Caller::scripted(AudioFormat::L16Rate16000, &scenario).unwrap();
        assert_eq!(caller.steps, [(0, 5), (5, 35), (35, 85), (85, 85)]);
        assert_eq!(caller.keys, [(5, '1'), (20, '2')]);
        assert_eq!(caller.frames.len(), 85);
        assert!(
            caller.frames[40].iter().all(|b| *b == 0),
            "silence is silent"
        );
        assert_eq!(caller.frames[0].len(), 640);
    }
}
