//! Streaming WAV rendering of the two directions of a call.
//!
//! # Timeline
//! Each direction (channel) keeps its own sample timeline at its *channel rate* (the
//! natural rate of the first audio codec seen on it). A packet's place on that timeline
//! comes from its RTP timestamp relative to an *anchor* that ties the stream's timestamps
//! to capture time:
//! - the first audio packet, a new SSRC or a new clock rate anchors the stream at the
//!   packet's capture time;
//! - later packets land where their timestamp says, so losses leave silence of exactly
//!   the right length, reordered packets land in place and (already dropped) duplicates
//!   cannot double;
//! - a packet whose sequence number is behind the newest one seen was delayed or
//!   reordered: it always lands where its timestamp says;
//! - a newest packet that arrives more than one packet time (at least 20 ms) *earlier*
//!   than its timestamp predicts, or 1 s or more later, re-anchors at once (timestamp
//!   jump, hold without timestamp advance);
//! - a newest packet more than one packet time late is held; if the following packets
//!   stay late too (3 packets over at least 60 ms, or 8 packets) the stream is re-anchored
//!   by the smallest lateness seen (timestamp jump back, clock drift), otherwise the held
//!   packets were merely delayed and land in place.
//!
//! So both directions stay aligned to capture time, and to each other, within one packet
//! time. The output timeline starts at `start_us` (default: the call start) and ends at
//! the end of the last audio placed (clamped to `end_us`).
//!
//! # Streaming
//! Audio is written once capture time has moved 2 s past it, so memory holds about two
//! seconds per channel whatever the call length. A packet arriving after its slot was
//! written is dropped with a warning.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Seek, Write};

use crate::codec::{codec_for, Codec};
use crate::g711;
use crate::g722::G722Decoder;
use crate::resample::{linear_block, Resampler, Timeline};

/// Audio is final (written) once capture time is this far past it.
const COMMIT_LAG_US: i64 = 2_000_000;
/// Extra margin for the resampler's look-ahead.
const COMMIT_MARGIN_US: i64 = 50_000;
/// Write in blocks of at least this many frames while streaming.
const COMMIT_CHUNK: i64 = 4096;
/// Largest block written at once.
const MAX_WRITE_BLOCK: i64 = 65_536;
/// A packet this late (or later) re-anchors without waiting for confirmation.
const IMMEDIATE_JUMP_US: i64 = 1_000_000;
/// Smallest tolerance for timing disagreement between timestamp and capture time.
const MIN_TOLERANCE_US: i64 = 20_000;
/// Late packets needed (and capture time they must span) to confirm a timestamp jump.
const SUSPECT_MIN_PACKETS: usize = 3;
const SUSPECT_MIN_SPAN_US: i64 = 60_000;
const SUSPECT_MAX_PACKETS: usize = 8;
/// Audio placed further than this beyond the newest capture time is dropped.
const MAX_AHEAD_US: i64 = 30_000_000;
/// Audio placed further than this before the newest capture time is late.
const MAX_BEHIND_US: i64 = 10_000_000;
/// Sequence-number window used to detect duplicates.
const SEQ_WINDOW: i64 = 1024;
/// A sequence jump larger than this starts a new sequence track.
const SEQ_RESTART: i64 = 3000;
/// Positions are kept within ±2^42 samples and rates below 2^19 so that products of
/// the two cannot overflow an i64.
const POS_LIMIT: i64 = 1 << 42;
const TIME_LIMIT_US: i64 = 1 << 40;
const MIN_RATE: u32 = 1000;
const MAX_RATE: u32 = 384_000;
/// Capture time that must pass between two checks for audio ready to be written.
const COMMIT_CHECK_US: i64 = 50_000;
/// Largest Opus frame: 120 ms at 48 kHz.
const OPUS_MAX_SAMPLES: usize = 5760;
/// WAV data is limited to 4 GiB; stay below with room for the header.
const WAV_MAX_DATA_BYTES: u64 = u32::MAX as u64 - 4096;

/// A direction of the call, rendered as one output channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Channel {
    /// Caller → callee (uac), left channel.
    Left,
    /// Callee → caller (uas), right channel.
    Right,
}

impl Channel {
    fn index(self) -> usize {
        match self {
            Channel::Left => 0,
            Channel::Right => 1,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Channel::Left => "left channel (caller to callee)",
            Channel::Right => "right channel (callee to caller)",
        }
    }

    const ALL: [Channel; 2] = [Channel::Left, Channel::Right];
}

/// One RTP packet of one direction, in capture order.
#[derive(Clone, Copy, Debug)]
pub struct RtpPacket<'a> {
    /// Capture time, µs since the Unix epoch.
    pub capture_us: i64,
    /// RTP sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// RTP synchronisation source.
    pub ssrc: u32,
    /// RTP payload type.
    pub payload_type: u8,
    /// RTP marker bit.
    pub marker: bool,
    /// RTP payload (after header, CSRCs, extension and padding).
    pub payload: &'a [u8],
}

/// What to render.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// First capture time rendered (absolute, µs); default: the call start.
    pub start_us: Option<i64>,
    /// Capture time where rendering stops (absolute, µs, exclusive); default: the end of
    /// the last audio.
    pub end_us: Option<i64>,
    /// Mix both directions into one channel instead of stereo.
    pub mono: bool,
    /// Output sample rate (kept within 1000..=384000 Hz); default: the natural rate of
    /// the highest-rate codec in use.
    pub rate: Option<u32>,
}

/// A DTMF digit received as RFC 4733 telephone-event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dtmf {
    /// Direction that sent it.
    pub channel: Channel,
    /// `0`-`9`, `*`, `#`, `A`-`D`.
    pub digit: char,
    /// Capture time of the event's first packet (absolute, µs).
    pub start_us: i64,
    /// Event duration from its last (end) packet.
    pub duration_ms: u32,
}

/// Summary of a finished rendering.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RenderReport {
    /// Sample frames written (samples per channel).
    pub samples_written: u64,
    /// Output sample rate.
    pub rate: u32,
    /// Output channels (1 or 2).
    pub channels: u16,
    /// DTMF digits in the rendered range, by start time.
    pub dtmf: Vec<Dtmf>,
    /// Problems met (unknown codecs, corrupt payloads, late packets), one line each.
    pub warnings: Vec<String>,
    /// Packets missing by sequence number, rendered as silence.
    pub lost_packets_filled: u64,
    /// Duplicate packets (same SSRC and sequence number) ignored.
    pub duplicates_dropped: u64,
}

/// Kinds of warning, counted and reported once each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Warn {
    UnknownPayload(Channel, u8),
    Corrupt(Channel, &'static str),
    RateConverted(Channel, u32, u32),
    Late(Channel),
    TooFarAhead(Channel),
    DecoderInit(Channel),
    Truncated,
}

#[derive(Debug, Default)]
struct Warnings(BTreeMap<Warn, u64>);

impl Warnings {
    fn add(&mut self, w: Warn) {
        *self.0.entry(w).or_insert(0) += 1;
    }

    fn lines(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(w, n)| match w {
                Warn::UnknownPayload(c, pt) => format!(
                    "{}: {n} packet(s) with payload type {pt} of unknown codec rendered as silence",
                    c.label()
                ),
                Warn::Corrupt(c, codec) => format!(
                    "{}: {n} corrupt {codec} payload(s) rendered as silence",
                    c.label()
                ),
                Warn::RateConverted(c, from, to) => format!(
                    "{}: {n} packet(s) at {from} Hz converted to the channel's {to} Hz",
                    c.label()
                ),
                Warn::Late(c) => format!(
                    "{}: {n} packet(s) arrived after their audio was written and were dropped",
                    c.label()
                ),
                Warn::TooFarAhead(c) => format!(
                    "{}: {n} packet(s) placed far beyond capture time were dropped",
                    c.label()
                ),
                Warn::DecoderInit(c) => {
                    format!("{}: decoder could not be created {n} time(s)", c.label())
                }
                Warn::Truncated => "output truncated at the 4 GiB WAV size limit".to_string(),
            })
            .collect()
    }
}

/// Capture time → timeline position at `rate`, relative to `origin_us`.
fn time_to_pos(us: i64, origin_us: i64, rate: u32) -> i64 {
    // |Δt| ≤ 2^40 µs (12 days) and rate < 2^19 keep the product below 2^59.
    let dt = us
        .saturating_sub(origin_us)
        .clamp(-TIME_LIMIT_US, TIME_LIMIT_US);
    (dt * i64::from(rate)).div_euclid(1_000_000)
}

/// Rescales a position between rates, rounding up.
fn rescale_ceil(pos: i64, from: u32, to: u32) -> i64 {
    let num = pos.clamp(-POS_LIMIT, POS_LIMIT) * i64::from(to);
    -((-num).div_euclid(i64::from(from.max(1))))
}

/// Rescales a position between rates, rounding down.
fn rescale_floor(pos: i64, from: u32, to: u32) -> i64 {
    let num = pos.clamp(-POS_LIMIT, POS_LIMIT) * i64::from(to);
    num.div_euclid(i64::from(from.max(1)))
}

/// Keeps a rate or clock in the range the position arithmetic is sized for.
fn sane_rate(rate: u32) -> u32 {
    rate.clamp(MIN_RATE, MAX_RATE)
}

/// Ties an SSRC's RTP timestamps to the channel timeline.
#[derive(Clone, Copy, Debug)]
struct Anchor {
    ssrc: u32,
    clock: u32,
    last_ts: u32,
    /// Unwrapped timestamp of the last packet, relative to the anchoring packet.
    ext: i64,
    /// Timeline position of `ext == 0`.
    offset: i64,
}

impl Anchor {
    fn pos(&self, ext: i64, rate: u32) -> i64 {
        let p = rescale_floor(ext, self.clock, rate);
        p.saturating_add(self.offset).clamp(-POS_LIMIT, POS_LIMIT)
    }
}

/// Sequence tracking of one SSRC: duplicates and losses.
#[derive(Clone, Debug)]
struct SeqTrack {
    ssrc: u32,
    hi: i64,
    lo: i64,
    distinct: u64,
    seen: [u64; (SEQ_WINDOW / 64) as usize],
}

enum SeqResult {
    /// First copy; `ahead` when it is the newest sequence number so far.
    New {
        ahead: bool,
    },
    Duplicate,
    Restart,
}

impl SeqTrack {
    fn new(ssrc: u32, seq: u16) -> Self {
        let mut t = SeqTrack {
            ssrc,
            hi: i64::from(seq),
            lo: i64::from(seq),
            distinct: 1,
            seen: [0; (SEQ_WINDOW / 64) as usize],
        };
        t.set(i64::from(seq), true);
        t
    }

    fn slot(ext: i64) -> (usize, u64) {
        let i = ext.rem_euclid(SEQ_WINDOW);
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    fn set(&mut self, ext: i64, on: bool) {
        let (w, bit) = Self::slot(ext);
        if let Some(word) = self.seen.get_mut(w) {
            if on {
                *word |= bit;
            } else {
                *word &= !bit;
            }
        }
    }

    fn is_set(&self, ext: i64) -> bool {
        let (w, bit) = Self::slot(ext);
        self.seen.get(w).is_some_and(|word| word & bit != 0)
    }

    fn lost(&self) -> u64 {
        let expected = self.hi - self.lo + 1;
        u64::try_from(expected)
            .unwrap_or(0)
            .saturating_sub(self.distinct)
    }

    fn observe(&mut self, seq: u16) -> SeqResult {
        let delta = i64::from(seq.wrapping_sub(self.hi as u16) as i16);
        let ext = self.hi + delta;
        if delta > 0 {
            if delta > SEQ_RESTART {
                return SeqResult::Restart;
            }
            if delta >= SEQ_WINDOW {
                self.seen = [0; (SEQ_WINDOW / 64) as usize];
            } else {
                for p in self.hi + 1..ext {
                    self.set(p, false);
                }
            }
            self.hi = ext;
            self.set(ext, true);
            self.distinct += 1;
            SeqResult::New { ahead: true }
        } else if -delta >= SEQ_WINDOW {
            if -delta > SEQ_RESTART {
                return SeqResult::Restart;
            }
            self.lo = self.lo.min(ext);
            self.distinct += 1;
            SeqResult::New { ahead: false }
        } else if self.is_set(ext) {
            SeqResult::Duplicate
        } else {
            self.set(ext, true);
            self.lo = self.lo.min(ext);
            self.distinct += 1;
            SeqResult::New { ahead: false }
        }
    }
}

/// A telephone-event in progress.
#[derive(Clone, Copy, Debug)]
struct DtmfEvent {
    ssrc: u32,
    ts: u32,
    event: u8,
    start_us: i64,
    duration: u16,
    reported: bool,
}

/// An audio packet held while a timestamp jump is being confirmed.
#[derive(Clone, Debug)]
struct Held {
    capture_us: i64,
    ssrc: u32,
    codec: Codec,
    payload: Vec<u8>,
    ext: i64,
    lateness: i64,
}

/// Shared, read-only facts a channel needs to place audio.
#[derive(Clone, Copy, Debug)]
struct Frame {
    origin_us: i64,
    end_us: Option<i64>,
    latest_us: i64,
}

/// Everything known about one direction.
#[derive(Default)]
struct ChannelState {
    map: Vec<(u8, Codec)>,
    /// Channel timeline rate, fixed by the first audio packet.
    rate: Option<u32>,
    timeline: Timeline,
    /// End of the audio placed so far (channel positions, ≥ 0).
    hi: i64,
    /// Positions below this were already written out: later writes there are late.
    consumed: i64,
    anchor: Option<Anchor>,
    seq: Option<SeqTrack>,
    held: Vec<Held>,
    /// Duration of the last audio packet, in channel samples.
    last_duration: i64,
    g722: Option<(u32, G722Decoder)>,
    opus: Option<(u32, opus::Decoder)>,
    dtmf_event: Option<DtmfEvent>,
    lost: u64,
    duplicates: u64,
    resampler: Option<Resampler>,
    decoded: Vec<i16>,
    converted: Vec<i16>,
}

impl ChannelState {
    fn codec(&self, pt: u8) -> Codec {
        self.map
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, c)| *c)
            .unwrap_or_else(|| codec_for(pt, None))
    }

    /// Tolerated disagreement between timestamp and capture time, in channel samples.
    fn tolerance(&self, rate: u32) -> i64 {
        let floor = time_to_pos(MIN_TOLERANCE_US, 0, rate);
        self.last_duration.max(floor)
    }

    /// Sequence bookkeeping for an audio (or comfort-noise) packet: `None` for a
    /// duplicate, else whether the packet is the newest of its stream so far (a packet
    /// behind it was delayed or reordered and never re-anchors).
    fn track_seq(&mut self, pkt: &RtpPacket<'_>) -> Option<bool> {
        match &mut self.seq {
            Some(t) if t.ssrc == pkt.ssrc => match t.observe(pkt.seq) {
                SeqResult::New { ahead } => Some(ahead),
                SeqResult::Duplicate => {
                    self.duplicates += 1;
                    None
                }
                SeqResult::Restart => {
                    self.lost += t.lost();
                    *t = SeqTrack::new(pkt.ssrc, pkt.seq);
                    Some(true)
                }
            },
            slot => {
                if let Some(old) = slot.take() {
                    self.lost += old.lost();
                }
                *slot = Some(SeqTrack::new(pkt.ssrc, pkt.seq));
                Some(true)
            }
        }
    }

    fn finish_seq(&mut self) {
        if let Some(t) = self.seq.take() {
            self.lost += t.lost();
        }
    }

    /// Places (or holds) one audio packet.
    fn on_audio(
        &mut self,
        ch: Channel,
        frame: Frame,
        pkt: &RtpPacket<'_>,
        codec: Codec,
        ahead: bool,
        warn: &mut Warnings,
    ) {
        let rate = *self
            .rate
            .get_or_insert(sane_rate(codec.natural_rate().unwrap_or(8000)));
        let clock = sane_rate(
            codec
                .clock_rate()
                .or(self.anchor.map(|a| a.clock))
                .unwrap_or(8000),
        );
        let cap_pos = time_to_pos(pkt.capture_us, frame.origin_us, rate);
        let tol = self.tolerance(rate);
        let big = time_to_pos(IMMEDIATE_JUMP_US, 0, rate);

        let anchor = match self.anchor.as_mut() {
            Some(a) if a.ssrc == pkt.ssrc && a.clock == clock => a,
            _ => {
                self.resolve_held(ch, frame, warn, None);
                self.reanchor(pkt, clock, cap_pos);
                self.place(ch, frame, codec, pkt.ssrc, pkt.payload, cap_pos, warn);
                return;
            }
        };
        let step = i64::from(pkt.timestamp.wrapping_sub(anchor.last_ts) as i32);
        anchor.ext = anchor.ext.saturating_add(step);
        anchor.last_ts = pkt.timestamp;
        let ext = anchor.ext;
        let predicted = anchor.pos(ext, rate);
        let lateness = cap_pos.saturating_sub(predicted);

        if !ahead {
            // Delayed or reordered: it belongs where its timestamp says.
            if self.held.is_empty() {
                self.place(ch, frame, codec, pkt.ssrc, pkt.payload, predicted, warn);
            } else {
                // Wait for the held packets' verdict; it does not vote.
                self.held.push(Held {
                    capture_us: pkt.capture_us,
                    ssrc: pkt.ssrc,
                    codec,
                    payload: pkt.payload.to_vec(),
                    ext,
                    lateness: i64::MAX,
                });
            }
        } else if lateness < -tol || lateness >= big {
            self.resolve_held(ch, frame, warn, None);
            self.reanchor(pkt, clock, cap_pos);
            self.place(ch, frame, codec, pkt.ssrc, pkt.payload, cap_pos, warn);
        } else if lateness > tol {
            self.held.push(Held {
                capture_us: pkt.capture_us,
                ssrc: pkt.ssrc,
                codec,
                payload: pkt.payload.to_vec(),
                ext,
                lateness,
            });
            let span = self
                .held
                .first()
                .map_or(0, |h| pkt.capture_us.saturating_sub(h.capture_us));
            if (self.held.len() >= SUSPECT_MIN_PACKETS && span >= SUSPECT_MIN_SPAN_US)
                || self.held.len() >= SUSPECT_MAX_PACKETS
            {
                self.resolve_held(ch, frame, warn, Some(tol));
            }
        } else {
            // On time: any held packets were only delayed.
            self.resolve_held(ch, frame, warn, None);
            self.place(ch, frame, codec, pkt.ssrc, pkt.payload, predicted, warn);
        }
    }

    fn reanchor(&mut self, pkt: &RtpPacket<'_>, clock: u32, cap_pos: i64) {
        self.anchor = Some(Anchor {
            ssrc: pkt.ssrc,
            clock,
            last_ts: pkt.timestamp,
            ext: 0,
            offset: cap_pos,
        });
    }

    /// Places held packets. With `confirm = Some(tol)`, a jump is accepted (the anchor
    /// moves by the smallest lateness) when every held packet is later than `tol`.
    fn resolve_held(
        &mut self,
        ch: Channel,
        frame: Frame,
        warn: &mut Warnings,
        confirm: Option<i64>,
    ) {
        if self.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.held);
        let Some(rate) = self.rate else { return };
        if let (Some(tol), Some(anchor)) = (confirm, self.anchor.as_mut()) {
            let min_late = held.iter().map(|h| h.lateness).min().unwrap_or(0);
            if min_late > tol {
                anchor.offset = anchor.offset.saturating_add(min_late);
            }
        }
        for h in held {
            let Some(anchor) = self.anchor else { break };
            let pos = anchor.pos(h.ext, rate);
            self.place(ch, frame, h.codec, h.ssrc, &h.payload, pos, warn);
        }
    }

    /// Decodes a packet and writes it at channel position `pos`.
    #[allow(clippy::too_many_arguments)]
    fn place(
        &mut self,
        ch: Channel,
        frame: Frame,
        codec: Codec,
        ssrc: u32,
        payload: &[u8],
        pos: i64,
        warn: &mut Warnings,
    ) {
        let Some(rate) = self.rate else { return };
        let mut decoded = std::mem::take(&mut self.decoded);
        let mut converted = std::mem::take(&mut self.converted);
        decoded.clear();
        converted.clear();
        let natural = self.decode(ch, codec, ssrc, payload, &mut decoded, warn);
        let mut use_converted = false;
        if let Some(r) = natural {
            if r != rate && !decoded.is_empty() {
                warn.add(Warn::RateConverted(ch, r, rate));
                linear_block(&decoded, r, rate, &mut converted);
                use_converted = true;
            }
        }
        let audio: &[i16] = if use_converted { &converted } else { &decoded };

        let n = if audio.is_empty() {
            // Silence of one packet time for undecodable packets.
            if natural.is_none() {
                self.last_duration
                    .max(time_to_pos(MIN_TOLERANCE_US, 0, rate))
            } else {
                0
            }
        } else {
            audio.len() as i64
        };
        if !audio.is_empty() {
            self.last_duration = n;
        }
        let end_limit = frame
            .end_us
            .map_or(i64::MAX, |e| time_to_pos(e, frame.origin_us, rate));
        let ahead_limit = time_to_pos(
            frame.latest_us.saturating_add(MAX_AHEAD_US),
            frame.origin_us,
            rate,
        );
        // Audio this far behind the newest capture time would have been written already.
        let floor = self.consumed.max(time_to_pos(
            frame.latest_us.saturating_sub(MAX_BEHIND_US),
            frame.origin_us,
            rate,
        ));
        let stop = pos.saturating_add(n).min(end_limit);
        if stop > ahead_limit {
            warn.add(Warn::TooFarAhead(ch));
        } else if stop > 0 {
            let start = pos.max(0);
            if start < floor {
                warn.add(Warn::Late(ch));
            }
            let from = start.max(floor);
            if from < stop && !audio.is_empty() {
                let a = usize::try_from(from - pos).unwrap_or(0);
                let b = usize::try_from(stop - pos).unwrap_or(0);
                if let Some(slice) = audio.get(a..b) {
                    self.timeline.write(from, slice);
                }
            }
            self.hi = self.hi.max(stop);
        }
        self.decoded = decoded;
        self.converted = converted;
    }

    /// Decodes `payload` into `out`; returns the decoded sample rate, or `None` when
    /// the packet carries no renderable audio.
    fn decode(
        &mut self,
        ch: Channel,
        codec: Codec,
        ssrc: u32,
        payload: &[u8],
        out: &mut Vec<i16>,
        warn: &mut Warnings,
    ) -> Option<u32> {
        match codec {
            Codec::Pcma => {
                g711::decode_alaw(payload, out);
                Some(8000)
            }
            Codec::Pcmu => {
                g711::decode_ulaw(payload, out);
                Some(8000)
            }
            Codec::G722 => {
                let dec = match &mut self.g722 {
                    Some((s, d)) if *s == ssrc => d,
                    slot => &mut slot.insert((ssrc, G722Decoder::new())).1,
                };
                dec.decode(payload, out);
                Some(16_000)
            }
            Codec::L16 { rate, channels } => {
                let channels = usize::from(channels.max(1));
                let frame_bytes = 2 * channels;
                let chunks = payload.chunks_exact(frame_bytes);
                if !chunks.remainder().is_empty() {
                    warn.add(Warn::Corrupt(ch, "L16"));
                }
                for f in chunks {
                    let sum: i32 = f
                        .chunks_exact(2)
                        .map(|b| match b {
                            [hi, lo] => i32::from(i16::from_be_bytes([*hi, *lo])),
                            _ => 0,
                        })
                        .sum();
                    out.push((sum / channels as i32) as i16);
                }
                Some(sane_rate(rate))
            }
            Codec::Opus { .. } => {
                let fresh = !matches!(&self.opus, Some((s, _)) if *s == ssrc);
                if fresh {
                    match opus::Decoder::new(48_000, opus::Channels::Mono) {
                        Ok(d) => self.opus = Some((ssrc, d)),
                        Err(_) => {
                            warn.add(Warn::DecoderInit(ch));
                            self.opus = None;
                            return None;
                        }
                    }
                }
                let (_, dec) = self.opus.as_mut()?;
                if payload.is_empty() {
                    warn.add(Warn::Corrupt(ch, "opus"));
                    return None;
                }
                out.resize(OPUS_MAX_SAMPLES, 0);
                match dec.decode(payload, out, false) {
                    Ok(n) => {
                        out.truncate(n.min(OPUS_MAX_SAMPLES));
                        Some(48_000)
                    }
                    Err(_) => {
                        out.clear();
                        warn.add(Warn::Corrupt(ch, "opus"));
                        // Keep the silence as long as the packet says it is.
                        if let Ok(n) = opus::packet::get_nb_samples(payload, 48_000) {
                            out.resize(n.min(OPUS_MAX_SAMPLES), 0);
                            return Some(48_000);
                        }
                        None
                    }
                }
            }
            Codec::Unknown => None,
            Codec::TelephoneEvent | Codec::ComfortNoise => None,
        }
    }

    /// RFC 4733 telephone-event bookkeeping.
    fn on_dtmf(
        &mut self,
        ch: Channel,
        pkt: &RtpPacket<'_>,
        found: &mut Vec<Dtmf>,
        warn: &mut Warnings,
    ) {
        let (event, end, duration) = match pkt.payload {
            [e, flags, d0, d1, ..] => (*e, flags & 0x80 != 0, u16::from_be_bytes([*d0, *d1])),
            _ => {
                warn.add(Warn::Corrupt(ch, "telephone-event"));
                return;
            }
        };
        let clock = self.anchor.map_or(8000, |a| a.clock);
        match &mut self.dtmf_event {
            Some(ev) if ev.ssrc == pkt.ssrc && ev.ts == pkt.timestamp => {
                ev.duration = ev.duration.max(duration);
                if end && !ev.reported {
                    ev.reported = true;
                    report_dtmf(ch, ev, clock, found);
                }
            }
            slot => {
                if let Some(old) = slot.take() {
                    if !old.reported {
                        report_dtmf(ch, &old, clock, found);
                    }
                }
                let mut ev = DtmfEvent {
                    ssrc: pkt.ssrc,
                    ts: pkt.timestamp,
                    event,
                    start_us: pkt.capture_us,
                    duration,
                    reported: false,
                };
                if end {
                    ev.reported = true;
                    report_dtmf(ch, &ev, clock, found);
                }
                *slot = Some(ev);
            }
        }
    }

    fn finish_dtmf(&mut self, ch: Channel, found: &mut Vec<Dtmf>) {
        let clock = self.anchor.map_or(8000, |a| a.clock);
        if let Some(ev) = self.dtmf_event.take() {
            if !ev.reported {
                report_dtmf(ch, &ev, clock, found);
            }
        }
    }
}

fn report_dtmf(ch: Channel, ev: &DtmfEvent, clock: u32, found: &mut Vec<Dtmf>) {
    let digit = match ev.event {
        0..=9 => char::from(b'0' + ev.event),
        10 => '*',
        11 => '#',
        12..=15 => char::from(b'A' + ev.event - 12),
        _ => return,
    };
    let duration_ms = (u64::from(ev.duration) * 1000 / u64::from(clock.max(1))) as u32;
    found.push(Dtmf {
        channel: ch,
        digit,
        start_us: ev.start_us,
        duration_ms,
    });
}

enum Sink<W: Write + Seek> {
    Pending(W),
    Writing(hound::WavWriter<BufWriter<W>>),
    Failed,
}

fn hound_to_io(e: hound::Error) -> io::Error {
    match e {
        hound::Error::IoError(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

/// Streaming renderer: packets of both directions are fed in capture order; audio is
/// written to the WAV as soon as it is final, so memory stays bounded (a few seconds of
/// audio per channel, whatever the call length).
pub struct WavRenderer<W: Write + Seek> {
    sink: Sink<W>,
    error: Option<io::Error>,
    opts: RenderOptions,
    origin_us: i64,
    latest_us: Option<i64>,
    first_audio_us: Option<i64>,
    out_rate: Option<u32>,
    /// Capture time at which streaming output is looked at next.
    next_check_us: i64,
    channels: [ChannelState; 2],
    written: i64,
    max_frames: i64,
    dtmf: Vec<Dtmf>,
    warnings: Warnings,
    mix: Vec<i16>,
    block: [Vec<i16>; 2],
}

impl<W: Write + Seek> WavRenderer<W> {
    /// A renderer writing to `out`; the timeline starts at `opts.start_us`, else at
    /// `call_start_us` (absolute capture times, µs).
    pub fn new(out: W, opts: RenderOptions, call_start_us: i64) -> Self {
        let origin_us = opts.start_us.unwrap_or(call_start_us);
        let out_channels: u64 = if opts.mono { 1 } else { 2 };
        WavRenderer {
            sink: Sink::Pending(out),
            error: None,
            origin_us,
            latest_us: None,
            first_audio_us: None,
            out_rate: opts.rate.map(sane_rate),
            next_check_us: i64::MIN,
            opts,
            channels: Default::default(),
            written: 0,
            max_frames: (WAV_MAX_DATA_BYTES / (2 * out_channels)) as i64,
            dtmf: Vec::new(),
            warnings: Warnings::default(),
            mix: Vec::new(),
            block: [Vec::new(), Vec::new()],
        }
    }

    /// Payload-type → codec map of one direction, from its SDP. Payload types not in the
    /// map use the RFC 3551 static table.
    pub fn set_codec_map(&mut self, channel: Channel, map: Vec<(u8, Codec)>) {
        if let Some(c) = self.channels.get_mut(channel.index()) {
            c.map = map;
        }
    }

    fn frame(&self) -> Frame {
        Frame {
            origin_us: self.origin_us,
            end_us: self.opts.end_us,
            latest_us: self.latest_us.unwrap_or(self.origin_us),
        }
    }

    /// Feeds one packet of `channel`. Never fails: problems are counted and reported
    /// by [`finish`](Self::finish).
    pub fn push(&mut self, channel: Channel, pkt: &RtpPacket<'_>) {
        if self.error.is_some() {
            return;
        }
        let latest = self
            .latest_us
            .map_or(pkt.capture_us, |l| l.max(pkt.capture_us));
        self.latest_us = Some(latest);
        let frame = self.frame();
        let Some(ch) = self.channels.get_mut(channel.index()) else {
            return;
        };
        let codec = ch.codec(pkt.payload_type);
        match codec {
            Codec::TelephoneEvent => {
                // Shares the audio's sequence space when it shares its SSRC.
                if let Some(t) = ch.seq.as_mut().filter(|t| t.ssrc == pkt.ssrc) {
                    let _ = t.observe(pkt.seq);
                }
                ch.on_dtmf(channel, pkt, &mut self.dtmf, &mut self.warnings);
            }
            Codec::ComfortNoise => {
                ch.track_seq(pkt);
            }
            _ => {
                let Some(ahead) = ch.track_seq(pkt) else {
                    return;
                };
                if codec == Codec::Unknown {
                    self.warnings
                        .add(Warn::UnknownPayload(channel, pkt.payload_type));
                }
                self.first_audio_us.get_or_insert(pkt.capture_us);
                ch.on_audio(channel, frame, pkt, codec, ahead, &mut self.warnings);
            }
        }
        self.commit(false);
    }

    /// Output rate to use, once known.
    fn decide_rate(&mut self) -> u32 {
        if let Some(r) = self.out_rate {
            return r;
        }
        let r = self
            .channels
            .iter()
            .filter_map(|c| c.rate)
            .max()
            .unwrap_or(8000);
        self.out_rate = Some(r);
        r
    }

    /// Opens the WAV writer (once the output rate is known).
    fn open(&mut self, rate: u32) {
        let sink = std::mem::replace(&mut self.sink, Sink::Failed);
        self.sink = match sink {
            Sink::Pending(w) => {
                let spec = hound::WavSpec {
                    channels: if self.opts.mono { 1 } else { 2 },
                    sample_rate: rate,
                    bits_per_sample: 16,
                    sample_format: hound::SampleFormat::Int,
                };
                match hound::WavWriter::new(BufWriter::new(w), spec) {
                    Ok(w) => Sink::Writing(w),
                    Err(e) => {
                        self.error = Some(hound_to_io(e));
                        Sink::Failed
                    }
                }
            }
            other => other,
        };
    }

    /// End of the placed audio, in output frames.
    fn timeline_end(&self, out_rate: u32) -> i64 {
        self.channels
            .iter()
            .filter_map(|c| c.rate.map(|r| rescale_ceil(c.hi, r, out_rate)))
            .max()
            .unwrap_or(0)
            .max(0)
    }

    /// Writes out audio that is final (all of it when `last`).
    fn commit(&mut self, last: bool) {
        if self.error.is_some() {
            return;
        }
        if !last {
            let latest = self.latest_us.unwrap_or(i64::MIN);
            if latest < self.next_check_us {
                return;
            }
            self.next_check_us = latest.saturating_add(COMMIT_CHECK_US);
        }
        let ready = match (self.first_audio_us, self.latest_us) {
            (Some(first), Some(latest)) => latest.saturating_sub(COMMIT_LAG_US) >= first,
            _ => false,
        };
        if !last && !ready {
            return;
        }
        let rate = self.decide_rate();
        if matches!(self.sink, Sink::Pending(_)) {
            self.open(rate);
        }
        for c in &mut self.channels {
            if let (Some(r), None) = (c.rate, &c.resampler) {
                let rs = Resampler::new(r, rate);
                // Output already written covers this much of the new channel.
                let used = rescale_ceil(self.written, rate, r).saturating_add(rs.half_taps());
                c.consumed = c.consumed.max(used);
                c.resampler = Some(rs);
            }
        }
        let mut target = self.timeline_end(rate);
        if !last {
            let horizon = self
                .latest_us
                .unwrap_or(self.origin_us)
                .saturating_sub(COMMIT_LAG_US + COMMIT_MARGIN_US);
            target = target.min(time_to_pos(horizon, self.origin_us, rate));
        }
        if let Some(end) = self.opts.end_us {
            target = target.min(time_to_pos(end, self.origin_us, rate));
        }
        if target > self.max_frames {
            if last {
                self.warnings.add(Warn::Truncated);
            }
            target = self.max_frames;
        }
        if target <= self.written || (!last && target - self.written < COMMIT_CHUNK) {
            return;
        }
        while self.written < target && self.error.is_none() {
            let count = (target - self.written).min(MAX_WRITE_BLOCK);
            self.write_block(count as usize, rate);
        }
    }

    fn write_block(&mut self, count: usize, out_rate: u32) {
        let n0 = self.written;
        for (c, block) in self.channels.iter().zip(self.block.iter_mut()) {
            block.clear();
            match &c.resampler {
                Some(r) => r.render(&c.timeline, n0, count, block),
                None => block.resize(count, 0),
            }
            block.resize(count, 0);
        }
        let [left, right] = &self.block;
        self.mix.clear();
        if self.opts.mono {
            self.mix
                .extend(left.iter().zip(right).map(|(&l, &r)| l.saturating_add(r)));
        } else {
            self.mix.reserve(2 * count);
            for (&l, &r) in left.iter().zip(right) {
                self.mix.push(l);
                self.mix.push(r);
            }
        }
        if let Sink::Writing(w) = &mut self.sink {
            let mut sw = w.get_i16_writer(self.mix.len() as u32);
            for &s in &self.mix {
                sw.write_sample(s);
            }
            if let Err(e) = sw.flush() {
                self.error = Some(hound_to_io(e));
                return;
            }
        }
        self.written = n0 + count as i64;
        // Release input that no later output depends on.
        for c in &mut self.channels {
            if let (Some(r), Some(rs)) = (c.rate, &c.resampler) {
                let half = rs.half_taps();
                let next_in = rs.input_floor(self.written);
                c.timeline.trim_before(next_in - half);
                let used = rescale_ceil(self.written, out_rate, r).saturating_add(half);
                c.consumed = c.consumed.max(used);
            }
        }
    }

    /// Places everything still pending, writes the rest of the timeline and completes the
    /// WAV header.
    pub fn finish(mut self) -> io::Result<RenderReport> {
        let frame = self.frame();
        for ch in Channel::ALL {
            let Some(c) = self.channels.get_mut(ch.index()) else {
                continue;
            };
            // Too few packets followed to call it a jump: treat as delay.
            c.resolve_held(ch, frame, &mut self.warnings, None);
            c.finish_dtmf(ch, &mut self.dtmf);
            c.finish_seq();
        }
        self.commit(true);
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let rate = self.decide_rate();
        let sink = std::mem::replace(&mut self.sink, Sink::Failed);
        match sink {
            Sink::Writing(w) => w.finalize().map_err(hound_to_io)?,
            Sink::Pending(_) | Sink::Failed => {
                return Err(io::Error::other("wav writer was not opened"));
            }
        }
        let (start, end) = (self.origin_us, self.opts.end_us);
        let mut dtmf: Vec<Dtmf> = self
            .dtmf
            .into_iter()
            .filter(|d| d.start_us >= start && end.is_none_or(|e| d.start_us < e))
            .collect();
        dtmf.sort_by_key(|d| d.start_us);
        Ok(RenderReport {
            samples_written: u64::try_from(self.written).unwrap_or(0),
            rate,
            channels: if self.opts.mono { 1 } else { 2 },
            dtmf,
            warnings: self.warnings.lines(),
            lost_packets_filled: self.channels.iter().map(|c| c.lost).sum(),
            duplicates_dropped: self.channels.iter().map(|c| c.duplicates).sum(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    const T0: i64 = 1_000_000_000_000;
    const SSRC: u32 = 0xABCD_0001;

    struct Out {
        report: RenderReport,
        spec: hound::WavSpec,
        ch: Vec<Vec<i16>>,
    }

    fn run(opts: RenderOptions, feed: impl FnOnce(&mut WavRenderer<Cursor<&mut Vec<u8>>>)) -> Out {
        let mut buf = Vec::new();
        let mut r = WavRenderer::new(Cursor::new(&mut buf), opts, T0);
        feed(&mut r);
        let report = r.finish().unwrap();
        let reader = hound::WavReader::new(Cursor::new(&buf)).unwrap();
        let spec = reader.spec();
        let n = usize::from(spec.channels);
        let all: Vec<i16> = reader.into_samples::<i16>().map(Result::unwrap).collect();
        let mut ch = vec![Vec::new(); n];
        for (i, s) in all.into_iter().enumerate() {
            ch[i % n].push(s);
        }
        assert_eq!(ch[0].len() as u64, report.samples_written);
        Out { report, spec, ch }
    }

    /// 20 ms PCMA packet `k` of a regular stream: every byte is `fill`.
    fn pcma(k: i64) -> Vec<u8> {
        vec![0xD5 ^ (k as u8 & 0x0F); 160]
    }

    fn pkt<'a>(k: i64, capture_us: i64, payload: &'a [u8]) -> RtpPacket<'a> {
        RtpPacket {
            capture_us,
            seq: 100u16.wrapping_add(k as u16),
            timestamp: 9000u32.wrapping_add(160 * k as u32),
            ssrc: SSRC,
            payload_type: 8,
            marker: false,
            payload,
        }
    }

    fn decoded(k: i64) -> Vec<i16> {
        let mut v = Vec::new();
        g711::decode_alaw(&pcma(k), &mut v);
        v
    }

    /// Pushes packets `ks` (in that order) of a regular stream starting 1 s into the call.
    fn push_regular(r: &mut WavRenderer<Cursor<&mut Vec<u8>>>, ch: Channel, ks: &[i64]) {
        for &k in ks {
            let payload = pcma(k);
            r.push(ch, &pkt(k, T0 + 1_000_000 + 20_000 * k, &payload));
        }
    }

    fn slot(k: i64) -> std::ops::Range<usize> {
        let s = (8000 + 160 * k) as usize;
        s..s + 160
    }

    #[test]
    fn lost_packets_become_silence_of_the_right_length() {
        let ks: Vec<i64> = (0..200).filter(|k| ![50, 51, 120].contains(k)).collect();
        let out = run(RenderOptions::default(), |r| {
            push_regular(r, Channel::Left, &ks)
        });
        assert_eq!(out.ch[0].len(), slot(199).end);
        for k in 0..200 {
            let s = &out.ch[0][slot(k)];
            if ks.contains(&k) {
                assert_eq!(s, decoded(k).as_slice(), "packet {k}");
            } else {
                assert!(s.iter().all(|&x| x == 0), "lost {k}");
            }
        }
        assert_eq!(out.report.lost_packets_filled, 3);
        assert!(
            out.ch[0][..8000].iter().all(|&x| x == 0),
            "leading silence from call start"
        );
    }

    #[test]
    fn duplicates_are_dropped_and_counted() {
        let out = run(RenderOptions::default(), |r| {
            push_regular(r, Channel::Left, &[0, 1, 2, 2, 3, 1, 4]);
        });
        assert_eq!(out.report.duplicates_dropped, 2);
        assert_eq!(out.report.lost_packets_filled, 0);
        for k in 0..5 {
            assert_eq!(&out.ch[0][slot(k)], decoded(k).as_slice());
        }
    }

    #[test]
    fn reordered_packets_land_in_place() {
        let out = run(RenderOptions::default(), |r| {
            for k in [0, 1, 3, 2, 4, 6, 5, 7] {
                let payload = pcma(k);
                // Delivered in this order, each 20 ms after the previous.
                let order = [0, 1, 3, 2, 4, 6, 5, 7]
                    .iter()
                    .position(|&x| x == k)
                    .unwrap() as i64;
                r.push(
                    Channel::Left,
                    &pkt(k, T0 + 1_000_000 + 20_000 * order, &payload),
                );
            }
        });
        for k in 0..8 {
            assert_eq!(&out.ch[0][slot(k)], decoded(k).as_slice(), "packet {k}");
        }
        assert_eq!(out.ch[0].len(), slot(7).end);
    }

    #[test]
    fn ssrc_change_reanchors_to_capture_time() {
        let out = run(RenderOptions::default(), |r| {
            push_regular(r, Channel::Left, &[0, 1, 2]);
            // A new SSRC with an unrelated timestamp, 500 ms later.
            let payload = pcma(9);
            r.push(
                Channel::Left,
                &RtpPacket {
                    ssrc: 77,
                    timestamp: 123_456,
                    seq: 9,
                    ..pkt(0, T0 + 1_500_000, &payload)
                },
            );
        });
        let at = 12_000; // 1.5 s at 8 kHz
        assert_eq!(&out.ch[0][at..at + 160], decoded(9).as_slice());
        assert!(out.ch[0][slot(2).end..at].iter().all(|&x| x == 0));
        assert_eq!(out.ch[0].len(), at + 160);
    }

    #[test]
    fn timestamp_jump_forward_reanchors() {
        let out = run(RenderOptions::default(), |r| {
            push_regular(r, Channel::Left, &[0, 1, 2, 3]);
            // Timestamp leaps 100 s ahead while capture time moves on by 20 ms.
            for k in 4..8 {
                let payload = pcma(k);
                let mut p = pkt(k, T0 + 1_000_000 + 20_000 * k, &payload);
                p.timestamp = p.timestamp.wrapping_add(800_000);
                r.push(Channel::Left, &p);
            }
        });
        for k in 0..8 {
            assert_eq!(&out.ch[0][slot(k)], decoded(k).as_slice(), "packet {k}");
        }
        assert_eq!(out.ch[0].len(), slot(7).end);
    }

    #[test]
    fn jitter_within_a_packet_time_does_not_move_audio() {
        let out = run(RenderOptions::default(), |r| {
            for k in 0..100i64 {
                let payload = pcma(k);
                let jitter = [0, 7_000, 15_000, 3_000, 19_000][(k % 5) as usize];
                let p = pkt(k, T0 + 1_000_000 + 20_000 * k + jitter, &payload);
                r.push(Channel::Left, &p);
            }
        });
        for k in 0..100 {
            assert_eq!(&out.ch[0][slot(k)], decoded(k).as_slice(), "packet {k}");
        }
    }

    #[test]
    fn a_delayed_burst_lands_in_place() {
        // Packets 20..25 are held up 200 ms by the network and then arrive together.
        let out = run(RenderOptions::default(), |r| {
            for k in 0..60i64 {
                let payload = pcma(k);
                let mut t = T0 + 1_000_000 + 20_000 * k;
                if (20..25).contains(&k) {
                    t = T0 + 1_000_000 + 20_000 * 25 - 100 + k;
                }
                r.push(Channel::Left, &pkt(k, t, &payload));
            }
        });
        for k in 0..60 {
            assert_eq!(&out.ch[0][slot(k)], decoded(k).as_slice(), "packet {k}");
        }
        assert_eq!(out.ch[0].len(), slot(59).end);
    }

    #[test]
    fn persistent_lateness_reanchors_by_the_smallest_delay() {
        // From packet 30 on, timestamps lag capture time by 300 ms (e.g. the sender's
        // clock stalled): audio follows capture time after a confirmation window.
        let out = run(RenderOptions::default(), |r| {
            for k in 0..80i64 {
                let payload = pcma(k);
                let extra = if k >= 30 { 300_000 } else { 0 };
                r.push(
                    Channel::Left,
                    &pkt(k, T0 + 1_000_000 + 20_000 * k + extra, &payload),
                );
            }
        });
        let shift = 2400usize; // 300 ms
        for k in 30..80 {
            let s = slot(k);
            assert_eq!(
                &out.ch[0][s.start + shift..s.end + shift],
                decoded(k).as_slice(),
                "{k}"
            );
        }
        assert_eq!(out.ch[0].len(), slot(79).end + shift);
    }

    #[test]
    fn a_late_first_packet_is_corrected_by_the_next_on_time_one() {
        // Packet 0 (the anchor) is 50 ms late (and fed first); packet 1 is on time and so
        // 50 ms earlier than predicted: the stream re-anchors on it.
        let out = run(RenderOptions::default(), |r| {
            for k in 0..20i64 {
                let payload = pcma(k);
                let late = if k == 0 { 50_000 } else { 0 };
                r.push(
                    Channel::Left,
                    &pkt(k, T0 + 1_000_000 + 20_000 * k + late, &payload),
                );
            }
        });
        for k in 1..20 {
            assert_eq!(&out.ch[0][slot(k)], decoded(k).as_slice(), "packet {k}");
        }
        assert_eq!(out.ch[0].len(), slot(19).end);
    }

    #[test]
    fn directions_align_to_capture_time() {
        let out = run(RenderOptions::default(), |r| {
            for k in 0..50i64 {
                let a = pcma(k);
                r.push(Channel::Left, &pkt(k, T0 + 1_000_000 + 20_000 * k, &a));
                // The other direction starts 230 ms later with its own timestamps.
                let mut p = pkt(k, T0 + 1_230_000 + 20_000 * k, &a);
                p.ssrc = 5;
                p.timestamp = 77u32.wrapping_add(160 * k as u32);
                r.push(Channel::Right, &p);
            }
        });
        let off = 1840; // 230 ms
        for k in 0..50 {
            let s = slot(k);
            assert_eq!(&out.ch[0][s.clone()], decoded(k).as_slice());
            assert_eq!(
                &out.ch[1][s.start + off..s.end + off],
                decoded(k).as_slice()
            );
        }
    }

    #[test]
    fn output_rate_follows_highest_codec_and_option() {
        let g722 = vec![0xFFu8; 160];
        let feed = |r: &mut WavRenderer<Cursor<&mut Vec<u8>>>| {
            for k in 0..10i64 {
                let a = pcma(k);
                r.push(Channel::Left, &pkt(k, T0 + 20_000 * k, &a));
                let mut p = pkt(k, T0 + 20_000 * k, &g722);
                p.payload_type = 9;
                p.ssrc = 9;
                r.push(Channel::Right, &p);
            }
        };
        let out = run(RenderOptions::default(), feed);
        assert_eq!(out.spec.sample_rate, 16_000);
        assert_eq!(out.ch[0].len(), 10 * 320);
        let out = run(
            RenderOptions {
                rate: Some(48_000),
                ..Default::default()
            },
            feed,
        );
        assert_eq!(out.spec.sample_rate, 48_000);
        assert_eq!(out.report.rate, 48_000);
        assert_eq!(out.ch[0].len(), 10 * 960);
    }

    #[test]
    fn mono_mixes_both_directions() {
        let out = run(
            RenderOptions {
                mono: true,
                ..Default::default()
            },
            |r| {
                let a = vec![0xD5u8; 160]; // +8
                let b = vec![0xD4u8; 160]; // +24
                r.push(Channel::Left, &pkt(0, T0, &a));
                let mut p = pkt(0, T0, &b);
                p.ssrc = 2;
                r.push(Channel::Right, &p);
            },
        );
        assert_eq!(out.spec.channels, 1);
        assert_eq!(out.ch[0], vec![8 + 24; 160]);
    }

    #[test]
    fn unknown_payload_type_is_silence_with_a_warning() {
        let out = run(RenderOptions::default(), |r| {
            push_regular(r, Channel::Left, &[0, 1]);
            let junk = [1u8, 2, 3];
            let mut p = pkt(2, T0 + 1_040_000, &junk);
            p.payload_type = 96;
            r.push(Channel::Left, &p);
            push_regular(r, Channel::Left, &[3]);
        });
        assert!(out.ch[0][slot(2)].iter().all(|&x| x == 0));
        assert_eq!(&out.ch[0][slot(3)], decoded(3).as_slice());
        assert_eq!(out.report.warnings.len(), 1, "{:?}", out.report.warnings);
        assert!(out.report.warnings[0].contains("payload type 96"));
    }

    #[test]
    fn corrupt_opus_is_silence_with_a_warning() {
        let out = run(RenderOptions::default(), |r| {
            r.set_codec_map(Channel::Right, vec![(111, Codec::Opus { channels: 2 })]);
            // TOC byte says code 3 (arbitrary frame count) with a missing count byte.
            let junk = [0xFFu8];
            for k in 0..5i64 {
                let mut p = pkt(k, T0 + 20_000 * k, &junk);
                p.payload_type = 111;
                p.timestamp = 960 * k as u32;
                r.push(Channel::Right, &p);
            }
        });
        assert!(out.ch.iter().flatten().all(|&x| x == 0));
        assert!(
            out.report
                .warnings
                .iter()
                .any(|w| w.contains("corrupt opus")),
            "{:?}",
            out.report.warnings
        );
    }

    #[test]
    fn l16_stereo_is_downmixed_in_network_order() {
        let out = run(RenderOptions::default(), |r| {
            let codec = codec_for(97, Some(("L16", 16_000, Some(2))));
            r.set_codec_map(Channel::Left, vec![(97, codec)]);
            // Frames (1000, 3000) and (-2, -4): means 2000 and -3.
            let payload = [0x03, 0xE8, 0x0B, 0xB8, 0xFF, 0xFE, 0xFF, 0xFC, 0x00];
            let mut p = pkt(0, T0, &payload);
            p.payload_type = 97;
            r.push(Channel::Left, &p);
        });
        assert_eq!(out.spec.sample_rate, 16_000);
        assert_eq!(out.ch[0], vec![2000, -3]);
        assert!(out
            .report
            .warnings
            .iter()
            .any(|w| w.contains("corrupt L16")));
    }

    #[test]
    fn telephone_events_are_reported_not_rendered() {
        let out = run(
            RenderOptions {
                end_us: Some(T0 + 3_000_000),
                ..Default::default()
            },
            |r| {
                r.set_codec_map(Channel::Left, vec![(101, Codec::TelephoneEvent)]);
                push_regular(r, Channel::Left, &[0, 1, 2]);
                // Digit '#' (11) over three packets plus three end packets, then digit
                // '7' after the end of the range.
                for (i, (ev, flags, dur)) in [
                    (11u8, 0x0Au8, 160u16),
                    (11, 0x0A, 320),
                    (11, 0x8A, 800),
                    (11, 0x8A, 800),
                    (11, 0x8A, 800),
                ]
                .iter()
                .enumerate()
                {
                    let body = [*ev, *flags, (dur >> 8) as u8, *dur as u8];
                    let mut p = pkt(3 + i as i64, T0 + 1_060_000 + 20_000 * i as i64, &body);
                    p.payload_type = 101;
                    p.timestamp = 9000 + 480;
                    r.push(Channel::Left, &p);
                }
                let body = [7u8, 0x8A, 0x03, 0x20];
                let mut p = pkt(8, T0 + 3_500_000, &body);
                p.payload_type = 101;
                r.push(Channel::Left, &p);
            },
        );
        assert_eq!(
            out.report.dtmf,
            vec![Dtmf {
                channel: Channel::Left,
                digit: '#',
                start_us: T0 + 1_060_000,
                duration_ms: 100
            }]
        );
        assert_eq!(out.ch[0].len(), slot(2).end, "events add no audio");
        assert_eq!(out.report.lost_packets_filled, 0);
    }

    #[test]
    fn no_packets_give_an_empty_valid_wav() {
        let out = run(RenderOptions::default(), |_| {});
        assert_eq!(out.report.samples_written, 0);
        assert_eq!(out.spec.sample_rate, 8000);
        assert_eq!(out.spec.channels, 2);
    }

    #[test]
    fn a_packet_after_its_audio_was_written_is_dropped_with_a_warning() {
        let out = run(RenderOptions::default(), |r| {
            push_regular(
                r,
                Channel::Left,
                &(0..300).filter(|&k| k != 10).collect::<Vec<_>>(),
            );
            // Packet 10 shows up 5 s late, long after its slot was written.
            let payload = pcma(10);
            r.push(
                Channel::Left,
                &pkt(10, T0 + 1_000_000 + 20_000 * 300, &payload),
            );
        });
        assert!(out.ch[0][slot(10)].iter().all(|&x| x == 0));
        assert!(out
            .report
            .warnings
            .iter()
            .any(|w| w.contains("after their audio")));
        assert_eq!(out.ch[0].len(), slot(299).end);
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config { cases: 32, ..Default::default() })]

        /// Wild timestamps, SSRCs and capture gaps never make a channel hold more than
        /// the ahead/behind window of audio.
        #[test]
        fn held_audio_is_bounded_for_any_input(
            packets in proptest::collection::vec(
                (proptest::bool::ANY, 0i64..1_500_000, proptest::num::u16::ANY,
                 proptest::num::u32::ANY, 0u32..3, proptest::sample::select(vec![0u8, 8, 9, 97])),
                1..60,
            )
        ) {
            let mut buf = Vec::new();
            let mut r = WavRenderer::new(Cursor::new(&mut buf), RenderOptions::default(), T0);
            r.set_codec_map(Channel::Left, vec![(97, Codec::L16 { rate: 48_000, channels: 1 })]);
            let payload = vec![0x55u8; 320];
            let mut t = T0;
            for (right, dt, seq, ts, ssrc, pt) in packets {
                t += dt;
                let ch = if right { Channel::Right } else { Channel::Left };
                r.push(ch, &RtpPacket { capture_us: t, seq, timestamp: ts, ssrc, payload_type: pt, marker: false, payload: &payload });
                for c in &r.channels {
                    let rate = i64::from(c.rate.unwrap_or(8000));
                    let bound = (MAX_AHEAD_US + MAX_BEHIND_US) / 1_000_000 * rate + 2 * rate;
                    proptest::prop_assert!((c.timeline.data.len() as i64) <= bound);
                }
            }
            proptest::prop_assert!(r.finish().is_ok());
        }
    }

    #[test]
    fn memory_stays_bounded_over_a_long_stream() {
        let mut buf = Vec::new();
        let mut r = WavRenderer::new(Cursor::new(&mut buf), RenderOptions::default(), T0);
        let payload = vec![0xD5u8; 160];
        for k in 0..30_000i64 {
            r.push(Channel::Left, &pkt(k, T0 + 20_000 * k, &payload));
            let held = r.channels[0].timeline.data.len();
            assert!(held <= 3 * 8000, "{held} samples held at packet {k}");
        }
        let report = r.finish().unwrap();
        assert_eq!(report.samples_written, 30_000 * 160);
    }
}
