//! Codec identification from SDP `a=rtpmap` or the RFC 3551 static payload-type table.

/// A codec chosen from the call's SDP per payload type (rtpmap encoding name + clock
/// rate + channels), else the static table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// ITU-T G.711 µ-law, 8 kHz.
    Pcmu,
    /// ITU-T G.711 A-law, 8 kHz.
    Pcma,
    /// ITU-T G.722 at 64 kbit/s: 16 kHz audio, RTP clock 8000 (RFC 3551 §4.5.2).
    G722,
    /// Linear 16-bit PCM in network byte order at any rate and channel count.
    L16 {
        /// Sample rate = RTP clock rate.
        rate: u32,
        /// Interleaved channels per frame.
        channels: u16,
    },
    /// Opus (RFC 7587): decoded at 48 kHz.
    Opus {
        /// Channel count announced in the rtpmap.
        channels: u16,
    },
    /// RFC 4733 telephone-event (DTMF): reported, never rendered.
    TelephoneEvent,
    /// RFC 3389 comfort noise: rendered as silence.
    ComfortNoise,
    /// Anything else: rendered as silence with a warning.
    Unknown,
}

impl Codec {
    /// RTP timestamp clock rate, when the codec fixes it.
    pub fn clock_rate(&self) -> Option<u32> {
        match self {
            Codec::Pcmu | Codec::Pcma | Codec::G722 => Some(8000),
            Codec::L16 { rate, .. } => Some(*rate),
            Codec::Opus { .. } => Some(48_000),
            Codec::TelephoneEvent | Codec::ComfortNoise | Codec::Unknown => None,
        }
    }

    /// Sample rate of the decoded audio, when the codec produces audio.
    pub fn natural_rate(&self) -> Option<u32> {
        match self {
            Codec::Pcmu | Codec::Pcma => Some(8000),
            Codec::G722 => Some(16_000),
            Codec::L16 { rate, .. } => Some(*rate),
            Codec::Opus { .. } => Some(48_000),
            Codec::TelephoneEvent | Codec::ComfortNoise | Codec::Unknown => None,
        }
    }

    /// Short display name.
    pub fn name(&self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::L16 { .. } => "L16",
            Codec::Opus { .. } => "opus",
            Codec::TelephoneEvent => "telephone-event",
            Codec::ComfortNoise => "CN",
            Codec::Unknown => "unknown",
        }
    }
}

/// Highest sample rate accepted for L16 (anything above is treated as unknown).
const MAX_L16_RATE: u32 = 384_000;

/// The codec for `payload_type`: from its rtpmap (encoding name case-insensitive, clock
/// rate, optional channel count) when there is one, else from the RFC 3551 static table.
pub fn codec_for(payload_type: u8, rtpmap: Option<(&str, u32, Option<u16>)>) -> Codec {
    let Some((encoding, clock, channels)) = rtpmap else {
        return static_codec(payload_type);
    };
    let channels = channels.unwrap_or(1).max(1);
    let is = |name: &str| encoding.trim().eq_ignore_ascii_case(name);
    if is("PCMU") {
        Codec::Pcmu
    } else if is("PCMA") {
        Codec::Pcma
    } else if is("G722") {
        Codec::G722
    } else if is("L16") {
        if (1000..=MAX_L16_RATE).contains(&clock) {
            Codec::L16 {
                rate: clock,
                channels,
            }
        } else {
            Codec::Unknown
        }
    } else if is("opus") {
        Codec::Opus { channels }
    } else if is("telephone-event") {
        Codec::TelephoneEvent
    } else if is("CN") {
        Codec::ComfortNoise
    } else {
        Codec::Unknown
    }
}

/// RFC 3551 static payload types this crate can render.
fn static_codec(payload_type: u8) -> Codec {
    match payload_type {
        0 => Codec::Pcmu,
        8 => Codec::Pcma,
        9 => Codec::G722,
        10 => Codec::L16 {
            rate: 44_100,
            channels: 2,
        },
        11 => Codec::L16 {
            rate: 44_100,
            channels: 1,
        },
        13 => Codec::ComfortNoise,
        _ => Codec::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_table_without_rtpmap() {
        assert_eq!(codec_for(0, None), Codec::Pcmu);
        assert_eq!(codec_for(8, None), Codec::Pcma);
        assert_eq!(codec_for(9, None), Codec::G722);
        assert_eq!(
            codec_for(10, None),
            Codec::L16 {
                rate: 44_100,
                channels: 2
            }
        );
        assert_eq!(codec_for(13, None), Codec::ComfortNoise);
        assert_eq!(codec_for(96, None), Codec::Unknown);
        assert_eq!(codec_for(101, None), Codec::Unknown);
    }

    #[test]
    fn rtpmap_wins_over_static_table_case_insensitively() {
        assert_eq!(codec_for(8, Some(("pcmu", 8000, None))), Codec::Pcmu);
        assert_eq!(
            codec_for(101, Some(("Telephone-Event", 8000, None))),
            Codec::TelephoneEvent
        );
        assert_eq!(
            codec_for(111, Some(("OPUS", 48_000, Some(2)))),
            Codec::Opus { channels: 2 }
        );
        assert_eq!(
            codec_for(97, Some(("L16", 16_000, None))),
            Codec::L16 {
                rate: 16_000,
                channels: 1
            }
        );
        assert_eq!(codec_for(98, Some(("speex", 16_000, None))), Codec::Unknown);
        assert_eq!(codec_for(99, Some(("L16", 0, None))), Codec::Unknown);
    }

    #[test]
    fn g722_clock_is_8000_but_audio_is_16k() {
        assert_eq!(Codec::G722.clock_rate(), Some(8000));
        assert_eq!(Codec::G722.natural_rate(), Some(16_000));
        assert_eq!(Codec::TelephoneEvent.natural_rate(), None);
    }
}
