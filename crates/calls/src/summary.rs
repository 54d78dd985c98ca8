//! The call summary (CDR) and stream summaries built by the correlator.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use siphon_rtp::StreamStats;

use crate::CallRef;

/// Where a call is in its life (design §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Initial request seen, not answered yet.
    Pending,
    /// Answered (2xx to INVITE).
    Active,
    /// BYE, CANCEL or a final failure seen; waiting a grace period for late packets.
    Closing,
    /// Finished: the summary is final.
    Complete,
}

/// Outcome of a call, as an operator reads a CDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallState {
    /// Still going on (only in summaries of open calls).
    InProgress,
    /// 2xx to the INVITE.
    Answered,
    /// 486 or 600.
    Busy,
    /// CANCELled by the caller before an answer, or 487.
    Cancelled,
    /// Refused by the callee side: 3xx, 4xx other than busy/timeout, 603.
    Rejected,
    /// No final answer: 408, 480, or no final response at all.
    NoAnswer,
    /// Server or network failure: 5xx and other 6xx.
    Failed,
    /// Non-INVITE transaction completed with 2xx.
    Ok,
}

impl CallState {
    /// Stable lowercase name used in the index and the JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            CallState::InProgress => "in-progress",
            CallState::Answered => "answered",
            CallState::Busy => "busy",
            CallState::Cancelled => "cancelled",
            CallState::Rejected => "rejected",
            CallState::NoAnswer => "no-answer",
            CallState::Failed => "failed",
            CallState::Ok => "ok",
        }
    }

    /// Parses [`CallState::as_str`] back.
    pub fn parse(s: &str) -> Option<CallState> {
        Some(match s {
            "in-progress" => CallState::InProgress,
            "answered" => CallState::Answered,
            "busy" => CallState::Busy,
            "cancelled" => CallState::Cancelled,
            "rejected" => CallState::Rejected,
            "no-answer" => CallState::NoAnswer,
            "failed" => CallState::Failed,
            "ok" => CallState::Ok,
            _ => return None,
        })
    }

    /// State implied by a final status to the initial request.
    pub fn from_final(method_is_invite: bool, status: Option<u16>, cancel_seen: bool) -> CallState {
        match status {
            Some(s) if (200..300).contains(&s) => {
                if method_is_invite {
                    CallState::Answered
                } else {
                    CallState::Ok
                }
            }
            Some(486) | Some(600) => CallState::Busy,
            Some(487) => CallState::Cancelled,
            Some(408) | Some(480) => CallState::NoAnswer,
            Some(s) if (300..500).contains(&s) || s == 603 => CallState::Rejected,
            Some(_) => CallState::Failed,
            None if cancel_seen => CallState::Cancelled,
            None => CallState::NoAnswer,
        }
    }
}

/// Who ended an answered call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HangupSide {
    /// The side that sent the initial INVITE sent the first BYE.
    Caller,
    /// The other side did.
    Callee,
}

/// Direction of a media stream relative to the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamDirection {
    /// Caller → callee ("A-side").
    Uac,
    /// Callee → caller ("B-side").
    Uas,
    /// Could not be told.
    Unknown,
}

impl StreamDirection {
    /// "uac", "uas" or "unknown".
    pub fn as_str(&self) -> &'static str {
        match self {
            StreamDirection::Uac => "uac",
            StreamDirection::Uas => "uas",
            StreamDirection::Unknown => "unknown",
        }
    }
}

/// Name of a codec from its payload type: the SDP rtpmap when known, else the static table.
pub fn codec_name(pt: u8) -> &'static str {
    match pt {
        0 => "PCMU",
        3 => "GSM",
        4 => "G723",
        5 | 6 => "DVI4",
        7 => "LPC",
        8 => "PCMA",
        9 => "G722",
        10 | 11 => "L16",
        12 => "QCELP",
        13 => "CN",
        14 => "MPA",
        15 => "G728",
        18 => "G729",
        _ => "unknown",
    }
}

/// One RTP stream of a call, keyed by (src, dst, SSRC).
#[derive(Debug, Clone)]
pub struct StreamSummary {
    /// Sender transport address.
    pub src: SocketAddr,
    /// Receiver transport address.
    pub dst: SocketAddr,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Payload type of the first packet.
    pub payload_type: u8,
    /// Codec name from the SDP rtpmap, else the static table.
    pub codec: String,
    /// RTP clock rate used for jitter, 0 when unknown.
    pub clock_rate: u32,
    /// Caller→callee or the reverse.
    pub direction: StreamDirection,
    /// Sequence, loss and jitter accounting.
    pub stats: StreamStats,
    /// 5-second intervals from the call start (for the quality timeseries).
    pub intervals: Vec<StreamInterval>,
    /// What the receiver of this stream reported in RTCP.
    pub rtcp: RtcpFigures,
}

/// One 5-second interval of a stream, aligned on the call start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamInterval {
    /// Interval start, µs since the epoch.
    pub start_us: i64,
    /// Packets received in the interval (duplicates included).
    pub packets: u64,
    /// Stream's expected count and duplicates when the interval began and ended.
    pub expected_begin: u64,
    /// See `expected_begin`.
    pub expected_end: u64,
    /// See `expected_begin`.
    pub dup_begin: u64,
    /// See `expected_begin`.
    pub dup_end: u64,
    /// Jitter (ms) at the interval's last packet.
    pub jitter_ms: f64,
    /// Round-trip times (ms) measured in the interval: sum and count.
    pub rtt_sum_ms: f64,
    /// See `rtt_sum_ms`.
    pub rtt_count: u32,
}

impl StreamInterval {
    /// Packets the sequence numbers called for in this interval.
    pub fn expected(&self) -> u64 {
        self.expected_end.saturating_sub(self.expected_begin)
    }

    /// Packets missing in this interval (duplicates not counted as received).
    pub fn lost(&self) -> u64 {
        let dups = self.dup_end.saturating_sub(self.dup_begin);
        self.expected()
            .saturating_sub(self.packets.saturating_sub(dups))
    }

    /// Mean RTT of the interval, if any was measured.
    pub fn rtt_ms(&self) -> Option<f64> {
        (self.rtt_count > 0).then(|| self.rtt_sum_ms / f64::from(self.rtt_count))
    }
}

/// RTCP figures about one stream, from the reports its receiver sent (RFC 3550 SR/RR blocks,
/// XR VoIP metrics).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RtcpFigures {
    /// Report blocks seen.
    pub reports: u32,
    /// Last fraction lost (0..1) and cumulative loss reported.
    pub fraction_lost: Option<f64>,
    /// See `fraction_lost`.
    pub cumulative_lost: Option<i32>,
    /// Last interarrival jitter reported, ms.
    pub jitter_ms: Option<f64>,
    /// Round-trip times from LSR/DLSR (ms): sum, count, min, max.
    pub rtt_sum_ms: f64,
    /// See `rtt_sum_ms`.
    pub rtt_count: u32,
    /// See `rtt_sum_ms`.
    pub rtt_min_ms: Option<f64>,
    /// See `rtt_sum_ms`.
    pub rtt_max_ms: Option<f64>,
    /// XR VoIP metrics: the endpoint's own MOS-LQ and R factor, when sent.
    pub xr_mos_lq: Option<f64>,
    /// See `xr_mos_lq`.
    pub xr_r_factor: Option<u8>,
}

impl RtcpFigures {
    /// Mean RTT, ms.
    pub fn rtt_ms(&self) -> Option<f64> {
        (self.rtt_count > 0).then(|| self.rtt_sum_ms / f64::from(self.rtt_count))
    }

    /// Adds one RTT sample.
    pub fn add_rtt(&mut self, ms: f64) {
        self.rtt_sum_ms += ms;
        self.rtt_count += 1;
        self.rtt_min_ms = Some(self.rtt_min_ms.map_or(ms, |m| m.min(ms)));
        self.rtt_max_ms = Some(self.rtt_max_ms.map_or(ms, |m| m.max(ms)));
    }
}

/// Everything known about one call (or non-call dialog) — the CDR.
#[derive(Debug, Clone)]
pub struct CallSummary {
    /// Store handle.
    pub call_ref: CallRef,
    /// The Call-ID header value, as bytes.
    pub call_id: Vec<u8>,
    /// Method of the first request (INVITE for calls; REGISTER, OPTIONS, ... otherwise).
    pub method: String,
    /// Capture time of the first and last message or packet (µs since the Unix epoch).
    pub start_us: i64,
    /// Time of the first 2xx to INVITE.
    pub answer_us: Option<i64>,
    /// Time of the last SIP message or media packet.
    pub end_us: i64,
    /// From user and domain of the initial request.
    pub caller_user: String,
    /// See `caller_user`.
    pub caller_domain: String,
    /// To user and domain of the initial request.
    pub callee_user: String,
    /// See `callee_user`.
    pub callee_domain: String,
    /// Request-URI of the initial request.
    pub ruri: String,
    /// User-Agent of the caller and Server/User-Agent of the callee.
    pub caller_ua: String,
    /// See `caller_ua`.
    pub callee_ua: String,
    /// Signalling address that sent the initial request, and where it went.
    pub caller_addr: Option<SocketAddr>,
    /// See `caller_addr`.
    pub callee_addr: Option<SocketAddr>,
    /// From tag of the initial request (tells the caller's requests from the callee's).
    pub from_tag: Vec<u8>,
    /// Final status of the initial transaction and its reason phrase.
    pub status: Option<u16>,
    /// See `status`.
    pub reason: String,
    /// Q.850 cause from a Reason header, if any.
    pub q850: Option<u16>,
    /// Outcome.
    pub state: CallState,
    /// Life-cycle phase.
    pub phase: Phase,
    /// Who sent the first BYE.
    pub hangup: Option<HangupSide>,
    /// SIP messages (retransmissions included).
    pub messages: u32,
    /// RTP and RTCP packets bound to the call.
    pub rtp_packets: u64,
    /// See `rtp_packets`.
    pub rtcp_packets: u64,
    /// RTP streams.
    pub streams: Vec<StreamSummary>,
    /// B2BUA correlation headers: X-CID, Session-ID, P-Charging-Vector icid.
    pub x_cid: String,
    /// See `x_cid`.
    pub session_id: String,
    /// See `x_cid`.
    pub icid: String,
    /// A CANCEL was seen.
    pub cancel_seen: bool,
    /// Why the call was closed when not by SIP (timeout), empty otherwise.
    pub close_reason: String,
    /// Quality report, computed when the call completes.
    pub quality: Option<Box<siphon_quality::QualityReport>>,
}

impl CallSummary {
    /// True for INVITE dialogs; REGISTER, OPTIONS, MESSAGE etc. are not calls.
    pub fn is_call(&self) -> bool {
        self.method == "INVITE"
    }

    /// Call-ID as text (lossy for non-UTF-8 bytes).
    pub fn call_id_str(&self) -> String {
        String::from_utf8_lossy(&self.call_id).into_owned()
    }

    /// Duration from the first to the last packet, seconds.
    pub fn duration_s(&self) -> f64 {
        (self.end_us - self.start_us) as f64 / 1e6
    }

    /// Talk time: from answer to end, seconds (0 when not answered).
    pub fn talk_s(&self) -> f64 {
        self.answer_us
            .map(|a| (self.end_us - a).max(0) as f64 / 1e6)
            .unwrap_or(0.0)
    }
}
