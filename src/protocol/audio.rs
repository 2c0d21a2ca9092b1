//! The audio Vonage streams over the socket: 16-bit signed little-endian linear PCM, mono,
//! one 20 ms frame a message.

use std::{fmt, str::FromStr, time::Duration};

/// How long one frame of audio lasts: Vonage sends and expects exactly one frame a message.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);

/// One of the three linear PCM formats Vonage streams (`audio/l16;rate=N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AudioFormat {
    /// 8 kHz: what the telephone network actually carries; 320-byte frames.
    L16Rate8000,
    /// 16 kHz: the tutorial's default; 640-byte frames.
    #[default]
    L16Rate16000,
    /// 24 kHz: supported by the current SDKs; 960-byte frames.
    L16Rate24000,
}

impl AudioFormat {
    /// Every format, lowest rate first.
    pub const ALL: [AudioFormat; 3] = [
        AudioFormat::L16Rate8000,
        AudioFormat::L16Rate16000,
        AudioFormat::L16Rate24000,
    ];

    /// The format for a sample rate in hertz, if Vonage supports it.
    pub fn from_rate(rate: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.rate() == rate)
    }

    /// Samples per second.
    pub fn rate(self) -> u32 {
        match self {
            AudioFormat::L16Rate8000 => 8000,
            AudioFormat::L16Rate16000 => 16000,
            AudioFormat::L16Rate24000 => 24000,
        }
    }

    /// Samples in one 20 ms frame.
    pub fn samples_per_frame(self) -> usize {
        self.rate() as usize / 50
    }

    /// Bytes in one 20 ms frame: the exact size of every binary message.
    pub fn frame_bytes(self) -> usize {
        self.samples_per_frame() * 2
    }

    /// The NCCO's and `websocket:connected`'s `content-type` value.
    pub fn content_type(self) -> &'static str {
        match self {
            AudioFormat::L16Rate8000 => "audio/l16;rate=8000",
            AudioFormat::L16Rate16000 => "audio/l16;rate=16000",
            AudioFormat::L16Rate24000 => "audio/l16;rate=24000",
        }
    }
}

impl fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.content_type())
    }
}

/// A `content-type` that is not one of Vonage's three audio formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownFormat(pub String);

impl fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unsupported content-type {:?} (expected audio/l16;rate=8000, 16000 or 24000)",
            self.0
        )
    }
}

impl std::error::Error for UnknownFormat {}

impl FromStr for AudioFormat {
    type Err = UnknownFormat;

    /// Parses a content type the way a tolerant peer would: case-insensitive, with optional
    /// spaces around `;` (`audio/L16; rate=16000` is seen in the wild).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownFormat(s.to_owned());
        let (media, params) = s.split_once(';').ok_or_else(unknown)?;
        if !media.trim().eq_ignore_ascii_case("audio/l16") {
            return Err(unknown());
        }
        let (key, value) = params.split_once('=').ok_or_else(unknown)?;
        if !key.trim().eq_ignore_ascii_case("rate") {
            return Err(unknown());
        }
        let rate: u32 = value.trim().parse().map_err(|_| unknown())?;
        AudioFormat::from_rate(rate).ok_or_else(unknown)
    }
}

impl serde::Serialize for AudioFormat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.content_type())
    }
}

impl<'de> serde::Deserialize<'de> for AudioFormat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_sizes_are_twenty_milliseconds_of_16_bit_samples() {
        assert_eq!(AudioFormat::L16Rate8000.frame_bytes(), 320);
        assert_eq!(AudioFormat::L16Rate16000.frame_bytes(), 640);
        assert_eq!(AudioFormat::L16Rate24000.frame_bytes(), 960);
    }

    #[test]
    fn content_type_round_trips() {
        for f in AudioFormat::ALL {
            assert_eq!(f.content_type().parse::<AudioFormat>(), Ok(f));
        }
    }

    #[test]
    fn content_type_parsing_tolerates_case_and_spaces() {
        assert_eq!(
            "Audio/L16; rate=8000".parse::<AudioFormat>(),
            Ok(AudioFormat::L16Rate8000)
        );
    }

    #[test]
    fn unsupported_rates_and_codecs_are_refused() {
        for bad in [
            "audio/l16;rate=44100",
            "audio/pcmu;rate=8000",
            "audio/l16",
            "",
        ] {
            assert!(bad.parse::<AudioFormat>().is_err(), "{bad}");
        }
    }
}
