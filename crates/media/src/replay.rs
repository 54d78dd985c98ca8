//! Rendering a stored call: its SIP messages give each side's media addresses and payload
//! type map; its RTP packets go to the left (caller→callee) or right (callee→caller) channel.
//! This is what `siphon wav` and the HTTP media endpoint call.

use std::collections::HashSet;
use std::io::{Seek, Write};
use std::net::SocketAddr;

use siphon_rtp::{looks_like_rtcp, RtpHeader};
use siphon_sip::sdp::Sdp;
use siphon_sip::Message;
use siphon_wire::decode::Decoder;
use siphon_wire::link::LinkType;

use crate::codec::{codec_for, Codec};
use crate::render::{Channel, RenderOptions, RenderReport, RtpPacket, WavRenderer};

/// One stored packet of the call, in capture order.
#[derive(Debug, Clone, Copy)]
pub struct CallPacket<'a> {
    /// Capture time, µs since the epoch.
    pub ts_us: i64,
    /// True for SIP messages, false for media.
    pub is_sip: bool,
    /// Link type of `frame`.
    pub link: LinkType,
    /// The captured frame.
    pub frame: &'a [u8],
}

/// Renders a call to WAV. `from_tag` is the From tag of the call's initial request (it tells
/// the caller's SIP messages from the callee's); `packets` must be in capture order.
pub fn render_call<W: Write + Seek>(
    packets: &[CallPacket<'_>],
    call_start_us: i64,
    from_tag: &[u8],
    opts: RenderOptions,
    out: W,
) -> std::io::Result<RenderReport> {
    let sip: Vec<CallPacket<'_>> = packets.iter().filter(|p| p.is_sip).copied().collect();
    let mut r = CallRenderer::new(&sip, call_start_us, from_tag, opts, out);
    for p in packets.iter().filter(|p| !p.is_sip) {
        r.push_media(p);
    }
    r.finish()
}

/// [`render_call`] with the media fed one packet at a time (in capture order), so that a long
/// call need not be in memory at once.
pub struct CallRenderer<W: Write + Seek> {
    dec: Decoder,
    caller_media: HashSet<SocketAddr>,
    callee_media: HashSet<SocketAddr>,
    r: WavRenderer<W>,
}

impl<W: Write + Seek> CallRenderer<W> {
    /// A renderer for the call whose SIP messages are `sip` (their SDP gives each side's media
    /// addresses and payload types).
    pub fn new(
        sip: &[CallPacket<'_>],
        call_start_us: i64,
        from_tag: &[u8],
        opts: RenderOptions,
        out: W,
    ) -> Self {
        let mut dec = Decoder::new();
        let mut caller_media: HashSet<SocketAddr> = HashSet::new();
        let mut callee_media: HashSet<SocketAddr> = HashSet::new();
        let mut map: Vec<(u8, Codec)> = Vec::new();
        for p in sip.iter().filter(|p| p.is_sip) {
            let Ok(Some(pkt)) = dec.decode_raw(p.ts_us, p.link, p.frame) else {
                continue;
            };
            let Ok(m) = Message::parse(pkt.payload) else {
                continue;
            };
            let tag = m.from().and_then(|f| f.tag).unwrap_or_default();
            let by_caller = from_tag.is_empty() || tag == from_tag;
            let from_caller = if m.is_request() {
                by_caller
            } else {
                !by_caller
            };
            for body in m.sdp_bodies() {
                let sdp = Sdp::parse(body);
                for media in &sdp.media {
                    for rm in &media.rtpmaps {
                        let enc = String::from_utf8_lossy(rm.encoding);
                        let c =
                            codec_for(rm.payload_type, Some((&enc, rm.clock_rate, rm.channels)));
                        match map.iter_mut().find(|e| e.0 == rm.payload_type) {
                            Some(e) => e.1 = c,
                            None => map.push((rm.payload_type, c)),
                        }
                    }
                    if let Some(ip) = media.connection.filter(|ip| !ip.is_unspecified()) {
                        if media.port != 0 {
                            let a = SocketAddr::new(ip, media.port);
                            if from_caller {
                                caller_media.insert(a);
                            } else {
                                callee_media.insert(a);
                            }
                        }
                    }
                }
            }
        }
        let mut r = WavRenderer::new(out, opts, call_start_us);
        r.set_codec_map(Channel::Left, map.clone());
        r.set_codec_map(Channel::Right, map);
        CallRenderer {
            dec,
            caller_media,
            callee_media,
            r,
        }
    }

    /// One stored media packet (RTP goes to its side's channel; RTCP and strangers are
    /// skipped).
    pub fn push_media(&mut self, p: &CallPacket<'_>) {
        let Ok(Some(pkt)) = self.dec.decode_raw(p.ts_us, p.link, p.frame) else {
            return;
        };
        if looks_like_rtcp(pkt.payload) {
            return;
        }
        let Ok(h) = RtpHeader::parse(pkt.payload) else {
            return;
        };
        let (caller, callee) = (&self.caller_media, &self.callee_media);
        let channel = if callee.contains(&pkt.dst) || caller.contains(&pkt.src) {
            Channel::Left
        } else if caller.contains(&pkt.dst) || callee.contains(&pkt.src) {
            Channel::Right
        } else {
            return;
        };
        let payload = pkt
            .payload
            .get(h.payload_offset..h.payload_offset + h.payload_len)
            .unwrap_or_default();
        self.r.push(
            channel,
            &RtpPacket {
                capture_us: p.ts_us,
                seq: h.seq,
                timestamp: h.timestamp,
                ssrc: h.ssrc,
                payload_type: h.payload_type,
                marker: h.marker,
                payload,
            },
        );
    }

    /// Writes the rest and the WAV header; what was rendered.
    pub fn finish(self) -> std::io::Result<RenderReport> {
        self.r.finish()
    }
}
