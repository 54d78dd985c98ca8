//! Groups SIP messages into calls, binds media through SDP and accounts RTP streams.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::net::SocketAddr;

use siphon_rtp::{
    clock_rate_for_static, looks_like_rtcp, parse_rtcp, rtt_us, RtcpReport, RtpHeader, StreamStats,
};
use siphon_sip::sdp::Sdp;
use siphon_sip::Message;

use crate::endpoints::{Binding, Endpoints, Side};
use crate::summary::{
    codec_name, CallState, CallSummary, HangupSide, Phase, StreamDirection, StreamInterval,
    StreamSummary,
};
use crate::CallRef;

/// Randomly seeded (no collision attacks from crafted addresses or Call-IDs) and fast.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Calls remembered per media address (several calls may share a media server's port).
const MAX_CALLS_PER_ENDPOINT: usize = 8;

/// Media endpoints one call stays bound to: renegotiations that keep offering new ports (a
/// hostile or broken peer) unbind that side's oldest rather than grow the call and the
/// endpoint map without bound. Both sides' RTP and RTCP through 8 renegotiations fit.
const MAX_ENDPOINTS_PER_CALL: usize = 32;

/// Timeouts and bounds of the correlator. Times are capture time.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// An INVITE with no final answer is closed after this long (seconds).
    pub pending_timeout_s: u64,
    /// An answered call with no SIP or media for this long is closed (seconds).
    pub active_timeout_s: u64,
    /// After BYE/CANCEL/final failure, late packets still join the call for this long (seconds).
    pub closing_grace_s: u64,
    /// A non-INVITE transaction (REGISTER, OPTIONS...) with no final answer is closed after this long.
    pub non_invite_timeout_s: u64,
    /// Call-IDs of completed calls remembered so that late messages rejoin them without an index look-up.
    pub id_cache_size: usize,
    /// Calls and dialogs open at once; a new Call-ID beyond this is refused and counted
    /// (`Correlator::refused`), so a flood of INVITEs cannot grow memory without bound.
    pub max_open_calls: usize,
    /// RTP streams kept per call; packets of further SSRCs still count in the call's totals.
    pub max_streams_per_call: usize,
}

impl Default for CallConfig {
    fn default() -> Self {
        CallConfig {
            pending_timeout_s: 300,
            active_timeout_s: 1800,
            closing_grace_s: 5,
            non_invite_timeout_s: 32,
            id_cache_size: 10_000,
            max_open_calls: 500_000,
            max_streams_per_call: 64,
        }
    }
}

/// Result of feeding a SIP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipOutcome {
    /// The call the message belongs to.
    pub call_ref: CallRef,
    /// True when this message opened a call not seen before (not even in the index).
    pub opened: bool,
}

/// What a UDP payload was, when it belongs to a call's media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaClass {
    /// An RTP packet of the call.
    Rtp(CallRef),
    /// An RTCP packet of the call.
    Rtcp(CallRef),
}

struct Call {
    /// Boxed: a completed call's summary leaves for the store without being copied.
    summary: Box<CallSummary>,
    initial_cseq: Option<u32>,
    /// The SDP's rtpmap lines: payload type, encoding name, clock rate.
    rtpmap: RtpMaps,
    /// Media endpoints the call is bound to (RTP and RTCP of each side: four inline).
    bound: smallvec::SmallVec<[SocketAddr; 4]>,
    closing_since: Option<i64>,
    /// Signalling changed since the last snapshot.
    dirty: bool,
    /// Media counted since the last snapshot.
    media_dirty: bool,
    /// A snapshot was taken (the store has a row for the call), and at what clock.
    snapshot_at: Option<i64>,
    /// The snapshot saying it is closing was taken (see `Correlator::due`).
    closing_written: bool,
    /// In `Correlator::maybe_due`.
    listed: bool,
    /// The correlator's clock when the call opened.
    opened_at: i64,
    /// Sender reports seen: (sender SSRC, NTP middle 32 bits, capture time), the latest few.
    sr_seen: VecDeque<(u32, u32, i64)>,
    /// The time of the call's live entry in the correlator's deadline queue (`i64::MAX`:
    /// none yet).
    next_check: i64,
}

/// The correlator: see the crate documentation.
pub struct Correlator {
    cfg: CallConfig,
    /// Open calls by Call-ID. The table holds each call's ref and the hash of its Call-ID
    /// ([`Self::id_hash`]); a candidate is confirmed against its call's own Call-ID, which a
    /// look-up reads anyway. No copy of the Call-ID per call, no second cache miss for the
    /// key on every message, and the table grows or clears its deleted slots without reading
    /// any call (with 285,000 open calls, reading each costs tens of milliseconds).
    by_id: hashbrown::HashTable<(u64, CallRef)>,
    id_hash: foldhash::fast::RandomState,
    calls: crate::RefMap<Box<Call>>,
    /// Calls bound to each media endpoint (see [`Endpoints`]: binds are logged and applied
    /// when media is looked up). A completed call's bindings stay until a sweep
    /// ([`Correlator::tidy_media`]; every look-up skips bindings of calls no longer open):
    /// with every call on endpoints of its own, taking them out one by one at completion cost
    /// a cache miss per endpoint.
    media: Endpoints,
    /// Bindings of completed calls still in `media` (an upper bound).
    stale_bindings: usize,
    /// Recently completed calls, for late messages: at most `id_cache_size`, oldest first, and
    /// a table of (hash of the Call-ID, sequence number of the entry) to find them. One copy of
    /// each Call-ID; a Call-ID that completes again (a REGISTER refresh) updates its entry.
    closed: hashbrown::HashTable<(u64, u64)>,
    closed_order: VecDeque<Closed>,
    /// Sequence number of `closed_order`'s front entry.
    closed_front: u64,
    next_ref: CallRef,
    preassigned: HashMap<Vec<u8>, CallRef>,
    /// New calls refused because `max_open_calls` were open.
    pub refused: u64,
    /// The clock of the state machine: the latest `expire` time (capture time for files,
    /// wall time for a live collector).
    clock_us: i64,
    /// When open calls are to be checked for their timeout, earliest first: `expire` visits
    /// only the calls due, not every open call. An entry is live while it matches its call's
    /// `next_check`; a call whose deadline moves later keeps its entry (checked then, and
    /// queued again), one whose deadline moves earlier gets a new one.
    deadlines: Deadlines,
    /// Open calls that may be due for a snapshot (see `due`), each once: a flush looks at
    /// these instead of every open call (hundreds of thousands at the highest rates, most of
    /// them closing and never due).
    maybe_due: Vec<CallRef>,
}

/// A new call's first snapshot waits this long (correlator clock), so that the many calls that
/// end within seconds (failures, rejections) are written to the index once, when complete.
pub const SNAPSHOT_DELAY_US: i64 = 2_000_000;
/// An open call whose only changes are media counts is snapshotted at most this often.
pub const MEDIA_SNAPSHOT_EVERY_US: i64 = 10_000_000;

/// When an open call times out (it is due once the clock is past this), and the reason then
/// recorded: the closing grace after BYE/CANCEL/final failure, else the pending or inactivity
/// timeout after its last packet.
fn deadline(c: &Call, cfg: &CallConfig) -> (i64, &'static str) {
    let s = &c.summary;
    match s.phase {
        Phase::Closing => {
            let since = c.closing_since.unwrap_or(s.end_us).max(s.end_us);
            (since.saturating_add(secs(cfg.closing_grace_s)), "")
        }
        Phase::Pending => {
            let limit = if s.is_call() {
                cfg.pending_timeout_s
            } else {
                cfg.non_invite_timeout_s
            };
            (s.end_us.saturating_add(secs(limit)), "pending timeout")
        }
        Phase::Active => (
            s.end_us.saturating_add(secs(cfg.active_timeout_s)),
            "inactivity timeout",
        ),
        Phase::Complete => (i64::MIN, ""),
    }
}

fn text(b: Option<&[u8]>) -> String {
    // Valid UTF-8 (nearly always) is checked by `from_utf8`, faster on short ASCII values
    // than the lossy conversion's chunk-by-chunk walk, which only the rest needs.
    b.map(|v| match std::str::from_utf8(v) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(v).into_owned(),
    })
    .unwrap_or_default()
}

/// A completed call in [`Correlator::closed_order`].
struct Closed {
    hash: u64,
    call_ref: CallRef,
    id: Box<[u8]>,
}

/// The entry of `order` (whose front is number `front`) numbered `seq`.
fn closed_at(order: &VecDeque<Closed>, front: u64, seq: u64) -> Option<&Closed> {
    order.get(usize::try_from(seq.checked_sub(front)?).ok()?)
}

/// The recently completed call with Call-ID `id` (whose hash is `h`).
fn closed_call<'o>(
    table: &hashbrown::HashTable<(u64, u64)>,
    order: &'o VecDeque<Closed>,
    front: u64,
    h: u64,
    id: &[u8],
) -> Option<&'o Closed> {
    let &(_, seq) = table.find(h, |&(eh, seq)| {
        eh == h && closed_at(order, front, seq).is_some_and(|c| *c.id == *id)
    })?;
    closed_at(order, front, seq)
}

/// The open call with Call-ID `id` (whose hash is `h`): see [`Correlator::by_id`].
fn open_call(
    by_id: &hashbrown::HashTable<(u64, CallRef)>,
    calls: &crate::RefMap<Box<Call>>,
    h: u64,
    id: &[u8],
) -> Option<CallRef> {
    by_id
        .find(h, |&(eh, r)| {
            eh == h
                && calls
                    .get(&r)
                    .is_some_and(|c| c.summary.call_id.as_slice() == id)
        })
        .map(|&(_, r)| r)
}

impl Correlator {
    /// A correlator whose first new call gets `first_ref`.
    pub fn new(cfg: CallConfig, first_ref: CallRef) -> Self {
        Correlator {
            cfg,
            by_id: hashbrown::HashTable::new(),
            id_hash: Default::default(),
            calls: Default::default(),
            media: Endpoints::default(),
            stale_bindings: 0,
            closed: hashbrown::HashTable::new(),
            closed_order: VecDeque::new(),
            closed_front: 0,
            next_ref: first_ref.max(1),
            preassigned: HashMap::default(),
            refused: 0,
            clock_us: i64::MIN,
            deadlines: Deadlines::default(),
            maybe_due: Vec::new(),
        }
    }

    /// The handle the Call-ID gets when it is next opened (index rebuild from stored records).
    pub fn preassign(&mut self, call_id: &[u8], call_ref: CallRef) {
        self.preassigned.insert(call_id.to_vec(), call_ref);
    }

    /// Calls (and non-call dialogs) currently open.
    pub fn open_calls(&self) -> usize {
        self.calls.len()
    }

    /// Number of media endpoints currently bound to open calls (counts them: for tests and
    /// diagnostics).
    pub fn bound_endpoints(&mut self) -> usize {
        self.settle_media();
        self.media.bound_endpoints(|r| self.calls.contains_key(&r))
    }

    /// Feeds one SIP message. `resolve` is asked for the summary of a Call-ID that is neither
    /// open nor in the cache (the store's index), so that late messages rejoin their call.
    /// Returns `None` when the message has no Call-ID.
    pub fn on_sip(
        &mut self,
        ts_us: i64,
        src: SocketAddr,
        dst: SocketAddr,
        msg: &Message<'_>,
        resolve: &mut dyn FnMut(&[u8]) -> Option<CallSummary>,
    ) -> Option<SipOutcome> {
        let call_id = msg.call_id()?;
        let mut opened = false;
        let id_hash = self.id_hash.hash_one(call_id);
        let call_ref = match open_call(&self.by_id, &self.calls, id_hash, call_id) {
            Some(r) => r,
            None => {
                let known = closed_call(
                    &self.closed,
                    &self.closed_order,
                    self.closed_front,
                    id_hash,
                    call_id,
                )
                .map(|c| c.call_ref);
                // An INVITE without a To tag starts a new call: only in-dialog requests,
                // responses and non-INVITE refreshes (REGISTER reuses its Call-ID) can belong to
                // a dialog that was already completed and stored.
                let initial = msg.method() == Some(b"INVITE".as_slice()) && msg.to_tag().is_none();
                let looked_up = if initial && known.is_none() {
                    None
                } else {
                    resolve(call_id)
                };
                let summary = match looked_up {
                    Some(s) => Some(s),
                    None => known.map(|r| self.fresh_summary(r, call_id, ts_us, src, dst, msg)),
                };
                let summary = match summary {
                    Some(s) => s,
                    None => {
                        if self.calls.len() >= self.cfg.max_open_calls {
                            self.refused += 1;
                            return None;
                        }
                        opened = true;
                        let r = match self.preassigned.remove(call_id) {
                            Some(r) => r,
                            None => {
                                self.next_ref += 1;
                                self.next_ref - 1
                            }
                        };
                        self.fresh_summary(r, call_id, ts_us, src, dst, msg)
                    }
                };
                let r = summary.call_ref;
                // Placed by the summary's own Call-ID, which look-ups compare with.
                let placed = self.id_hash.hash_one(summary.call_id.as_slice());
                self.maybe_due.push(r);
                // A user that never takes snapshots (an index rebuild) leaves completed calls
                // listed: they go once they outnumber the open ones.
                if self.maybe_due.len() > 2 * self.calls.len() + 1024 {
                    let calls = &self.calls;
                    self.maybe_due.retain(|r| calls.contains_key(r));
                }
                self.calls.insert(
                    r,
                    Box::new(Call {
                        summary: Box::new(summary),
                        initial_cseq: None,
                        rtpmap: RtpMaps::new(),
                        bound: smallvec::SmallVec::new(),
                        closing_since: None,
                        dirty: true,
                        media_dirty: false,
                        snapshot_at: None,
                        closing_written: false,
                        listed: true,
                        opened_at: if self.clock_us == i64::MIN {
                            ts_us
                        } else {
                            self.clock_us
                        },
                        sr_seen: VecDeque::new(),
                        next_check: i64::MAX,
                    }),
                );
                self.by_id.insert_unique(placed, (placed, r), |&(h, _)| h);
                r
            }
        };
        let call = self.calls.get_mut(&call_ref)?;
        let sdp_side = Self::update_call(call, ts_us, src, dst, msg);
        let (deadline, _) = deadline(call, &self.cfg);
        if deadline < call.next_check {
            call.next_check = deadline;
            self.deadlines.push(deadline, call_ref);
        }
        // The media endpoints this message's SDP offers, bound once the call is no longer
        // borrowed.
        let mut offered: smallvec::SmallVec<[(SocketAddr, bool); 4]> = smallvec::SmallVec::new();
        if sdp_side.is_some() {
            for body in msg.sdp_bodies() {
                let sdp = Sdp::parse(body);
                for m in &sdp.media {
                    for rm in &m.rtpmaps {
                        match call.rtpmap.iter_mut().find(|e| e.0 == rm.payload_type) {
                            Some(e) => {
                                // An answer mostly repeats the offer's names: no new string.
                                if e.1.as_bytes() != rm.encoding {
                                    e.1 = encoding_name(rm.encoding);
                                }
                                e.2 = rm.clock_rate;
                            }
                            None => {
                                call.rtpmap.push((
                                    rm.payload_type,
                                    encoding_name(rm.encoding),
                                    rm.clock_rate,
                                ));
                            }
                        }
                    }
                    let Some(ip) = m.connection else { continue };
                    if m.port == 0 || ip.is_unspecified() {
                        continue;
                    }
                    let rtp = SocketAddr::new(ip, m.port);
                    let rtcp = match m.rtcp {
                        Some((p, a)) => SocketAddr::new(a.unwrap_or(ip), p),
                        None => SocketAddr::new(ip, m.port.wrapping_add(1)),
                    };
                    offered.push((rtp, false));
                    if !m.rtcp_mux && rtcp != rtp {
                        offered.push((rtcp, true));
                    }
                }
            }
        }
        if let Some(side) = sdp_side {
            for &(addr, rtcp) in &offered {
                self.bind(call_ref, side, addr, rtcp);
            }
        }
        if !offered.is_empty() {
            self.tidy_media();
        }
        Some(SipOutcome { call_ref, opened })
    }

    /// Binds a call to a media endpoint its SDP offered (see [`Endpoints`]), and notes the
    /// endpoint in the call's own list, which holds at most [`MAX_ENDPOINTS_PER_CALL`].
    fn bind(&mut self, call_ref: CallRef, side: Side, addr: SocketAddr, rtcp: bool) {
        self.media.bind(
            &addr,
            Binding {
                call_ref,
                side,
                rtcp,
            },
        );
        let full = self
            .calls
            .get(&call_ref)
            .is_some_and(|c| !c.bound.contains(&addr) && c.bound.len() >= MAX_ENDPOINTS_PER_CALL);
        if full {
            // Which endpoint to let go depends on the table: settle it.
            self.settle_media();
        }
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        if call.bound.contains(&addr) {
            return;
        }
        if call.bound.len() >= MAX_ENDPOINTS_PER_CALL {
            // The oldest endpoint this side offered (the other side's stay bound), after any
            // no longer bound to the call at all.
            let media = &self.media;
            let of_call = |a: &SocketAddr, same_side: bool| {
                media
                    .get(a)
                    .any(|b| b.call_ref == call_ref && (!same_side || b.side == side))
            };
            let at = call
                .bound
                .iter()
                .position(|a| !of_call(a, false))
                .or_else(|| call.bound.iter().position(|a| of_call(a, true)))
                .unwrap_or(0);
            let oldest = call.bound.remove(at);
            self.media.unbind(&oldest, call_ref);
        }
        call.bound.push(addr);
    }

    /// Applies the endpoint table's logged binds, before it is read.
    fn settle_media(&mut self) {
        if self.media.logged() > 0 {
            let calls = &self.calls;
            self.media
                .settle(|r| calls.contains_key(&r), MAX_CALLS_PER_ENDPOINT);
        }
    }

    /// Keeps the endpoint table and its log in bounds: completed calls' bindings are swept
    /// once they may be half of them, and a log that still outgrows the open calls (one
    /// call renegotiating over and over) is applied.
    fn tidy_media(&mut self) {
        let held = self.media.bindings() + self.media.logged();
        if self.stale_bindings > held / 2 + 4096 {
            let calls = &self.calls;
            self.media.sweep(|r| calls.contains_key(&r));
            self.stale_bindings = 0;
        }
        if self.media.logged() > 16 * self.calls.len() + 65_536 {
            self.settle_media();
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fresh_summary(
        &self,
        call_ref: CallRef,
        call_id: &[u8],
        ts_us: i64,
        src: SocketAddr,
        dst: SocketAddr,
        msg: &Message<'_>,
    ) -> CallSummary {
        let (from, to) = (msg.from(), msg.to());
        let is_req = msg.is_request();
        let method = if is_req {
            text(msg.method())
        } else {
            text(msg.cseq().map(|c| c.method))
        };
        CallSummary {
            call_ref,
            call_id: call_id.to_vec(),
            method,
            start_us: ts_us,
            answer_us: None,
            end_us: ts_us,
            caller_user: text(from.and_then(|f| f.user)),
            caller_domain: text(from.and_then(|f| f.host)),
            callee_user: text(to.and_then(|t| t.user)),
            callee_domain: text(to.and_then(|t| t.host)),
            ruri: text(msg.request_uri()),
            caller_ua: if is_req {
                text(msg.user_agent())
            } else {
                String::new()
            },
            callee_ua: String::new(),
            caller_addr: Some(if is_req { src } else { dst }),
            callee_addr: Some(if is_req { dst } else { src }),
            from_tag: from.and_then(|f| f.tag).unwrap_or_default().to_vec(),
            status: None,
            reason: String::new(),
            q850: None,
            state: CallState::InProgress,
            phase: Phase::Pending,
            hangup: None,
            messages: 0,
            rtp_packets: 0,
            rtcp_packets: 0,
            streams: Vec::new(),
            x_cid: text(msg.x_cid()),
            session_id: text(msg.session_id()),
            icid: text(msg.icid()),
            cancel_seen: false,
            close_reason: String::new(),
            quality: None,
        }
    }

    /// Applies one message to the call; returns the side whose SDP the message carries.
    fn update_call(
        call: &mut Call,
        ts_us: i64,
        src: SocketAddr,
        _dst: SocketAddr,
        msg: &Message<'_>,
    ) -> Option<Side> {
        let s = &mut call.summary;
        s.messages = s.messages.saturating_add(1);
        s.start_us = s.start_us.min(ts_us);
        s.end_us = s.end_us.max(ts_us);
        if s.phase == Phase::Complete {
            // Reopened from the index: a late message.
            s.phase = Phase::Closing;
            call.closing_since = Some(ts_us);
        }
        // The From tag is read for every message, the To tag only for requests; the rest of
        // From and To only for a new summary.
        let from_caller =
            s.from_tag.is_empty() || msg.from_tag().unwrap_or_default() == s.from_tag.as_slice();
        let cseq = msg.cseq();
        let is_invite = s.method == "INVITE";
        if s.x_cid.is_empty() {
            s.x_cid = text(msg.x_cid());
        }
        if s.session_id.is_empty() {
            s.session_id = text(msg.session_id());
        }
        if s.icid.is_empty() {
            s.icid = text(msg.icid());
        }
        if let Some(r) = msg.reason() {
            if r.protocol.eq_ignore_ascii_case(b"Q.850") && r.cause.is_some() {
                s.q850 = r.cause;
            }
        }
        if msg.is_request() {
            let method = msg.method().unwrap_or_default();
            if method == s.method.as_bytes() && msg.to_tag().is_none() {
                if let Some(c) = cseq {
                    call.initial_cseq = Some(c.seq);
                }
                if s.caller_ua.is_empty() {
                    s.caller_ua = text(msg.user_agent());
                }
            }
            match method {
                b"CANCEL" => {
                    s.cancel_seen = true;
                    if s.phase == Phase::Pending {
                        s.phase = Phase::Closing;
                        call.closing_since = Some(ts_us);
                    }
                }
                b"BYE" => {
                    if s.hangup.is_none() {
                        s.hangup = Some(match s.caller_addr {
                            Some(a) if a == src => HangupSide::Caller,
                            Some(_) => HangupSide::Callee,
                            None if from_caller => HangupSide::Caller,
                            None => HangupSide::Callee,
                        });
                    }
                    if s.phase != Phase::Closing {
                        s.phase = Phase::Closing;
                        call.closing_since = Some(ts_us);
                    }
                }
                _ => {}
            }
            Some(if from_caller {
                Side::Caller
            } else {
                Side::Callee
            })
        } else {
            let status = msg.status().unwrap_or(0);
            if s.callee_ua.is_empty() && from_caller {
                s.callee_ua = text(msg.user_agent());
            }
            let initial = matches!(
                (cseq, call.initial_cseq),
                (Some(c), Some(i)) if c.seq == i && c.method == s.method.as_bytes()
            ) || (call.initial_cseq.is_none()
                && cseq.is_some_and(|c| c.method == s.method.as_bytes()));
            if initial && status >= 200 {
                let had_2xx = s.status.is_some_and(|v| (200..300).contains(&v));
                if !had_2xx || (200..300).contains(&status) {
                    s.status = Some(status);
                    s.reason = text(msg.reason_phrase());
                }
                if (200..300).contains(&status) {
                    if is_invite {
                        if s.answer_us.is_none() {
                            s.answer_us = Some(ts_us);
                        }
                        if s.phase == Phase::Pending {
                            s.phase = Phase::Active;
                        }
                    } else if s.phase != Phase::Complete {
                        s.phase = Phase::Closing;
                        call.closing_since = Some(ts_us);
                    }
                } else if s.phase == Phase::Pending {
                    // Final failure. A 401/407 challenge retried with credentials arrives
                    // within the grace period and keeps the call open.
                    s.phase = Phase::Closing;
                    call.closing_since = Some(ts_us);
                }
                s.state = CallState::from_final(is_invite, s.status, s.cancel_seen);
                if s.phase == Phase::Active {
                    s.state = CallState::Answered;
                }
            }
            Some(if from_caller {
                Side::Callee
            } else {
                Side::Caller
            })
        }
    }

    /// Classifies a UDP payload that is not SIP: RTP or RTCP of a bound call, accounted into
    /// its stream. `None` when no call's SDP announced either address.
    pub fn on_udp_media(
        &mut self,
        ts_us: i64,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
    ) -> Option<MediaClass> {
        self.settle_media();
        let (binding, dst_side) = self.pick(src, dst)?;
        self.account(
            binding.call_ref,
            Some((binding.side, dst_side, binding.rtcp)),
            ts_us,
            src,
            dst,
            payload,
        )
    }

    /// The call a packet between `src` and `dst` belongs to, and whether it matched on `dst`:
    /// a call that announced both addresses first (two calls can share one endpoint, e.g. a
    /// media server's single port), else the latest call that announced `dst`, else `src`.
    fn pick(&self, src: SocketAddr, dst: SocketAddr) -> Option<(Binding, bool)> {
        let d = self.media.get(&dst);
        let s = self.media.get(&src);
        // Bindings of completed calls wait for the next sweep.
        let open = |b: &Binding| self.calls.contains_key(&b.call_ref);
        let both = d
            .clone()
            .rev()
            .filter(open)
            .find(|b| s.clone().any(|x| x.call_ref == b.call_ref));
        if let Some(b) = both {
            return Some((b, true));
        }
        if let Some(b) = d.rev().find(open) {
            return Some((b, true));
        }
        s.rev().find(open).map(|b| (b, false))
    }

    /// Accounts a media packet known to belong to `call_ref` (used when rebuilding an index
    /// from stored records, whose call is recorded with them). `None` when the call is not
    /// open or the payload is neither RTP nor RTCP.
    pub fn on_call_media(
        &mut self,
        call_ref: CallRef,
        ts_us: i64,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
    ) -> Option<MediaClass> {
        self.settle_media();
        let find = |a: &SocketAddr| self.media.get(a).find(|b| b.call_ref == call_ref);
        let bind = match (find(&dst), find(&src)) {
            (Some(b), _) => Some((b.side, true, b.rtcp)),
            (_, Some(b)) => Some((b.side, false, b.rtcp)),
            _ => None,
        };
        self.account(call_ref, bind, ts_us, src, dst, payload)
    }

    fn account(
        &mut self,
        call_ref: CallRef,
        bind: Option<(Side, bool, bool)>,
        ts_us: i64,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
    ) -> Option<MediaClass> {
        let max_streams = self.cfg.max_streams_per_call;
        let call = self.calls.get_mut(&call_ref)?;
        let s = &mut call.summary;
        let is_rtcp_port = bind.is_some_and(|b| b.2);
        if is_rtcp_port || looks_like_rtcp(payload) {
            if !looks_like_rtcp(payload) {
                return None;
            }
            s.rtcp_packets += 1;
            s.end_us = s.end_us.max(ts_us);
            call.media_dirty = true;
            list(&mut self.maybe_due, call, call_ref);
            Self::apply_rtcp(call, ts_us, payload);
            return Some(MediaClass::Rtcp(call_ref));
        }
        let h = RtpHeader::parse(payload).ok()?;
        s.rtp_packets += 1;
        s.end_us = s.end_us.max(ts_us);
        call.media_dirty = true;
        list(&mut self.maybe_due, call, call_ref);
        let s = &mut call.summary;
        let idx = match s
            .streams
            .iter()
            .position(|st| st.ssrc == h.ssrc && st.src == src && st.dst == dst)
        {
            Some(i) => i,
            None if s.streams.len() >= max_streams => {
                // Counted in the call's totals, not analysed as a stream of its own.
                return Some(MediaClass::Rtp(call_ref));
            }
            None => {
                let direction = match bind.map(|b| (b.0, b.1)) {
                    Some((Side::Callee, true)) | Some((Side::Caller, false)) => {
                        StreamDirection::Uac
                    }
                    Some((Side::Caller, true)) | Some((Side::Callee, false)) => {
                        StreamDirection::Uas
                    }
                    None => StreamDirection::Unknown,
                };
                let (codec, clock) = match call.rtpmap.iter().find(|e| e.0 == h.payload_type) {
                    Some(e) => (e.1.to_string(), e.2),
                    None => (
                        codec_name(h.payload_type).to_string(),
                        clock_rate_for_static(h.payload_type).unwrap_or(0),
                    ),
                };
                s.streams.push(StreamSummary {
                    src,
                    dst,
                    ssrc: h.ssrc,
                    payload_type: h.payload_type,
                    codec,
                    clock_rate: clock,
                    direction,
                    stats: StreamStats::new(),
                    intervals: Vec::new(),
                    rtcp: Default::default(),
                });
                s.streams.len() - 1
            }
        };
        let clock = analysis_clock(&call.rtpmap, h.payload_type);
        let call_start = s.start_us;
        if let Some(st) = s.streams.get_mut(idx) {
            let (exp0, dup0) = (st.stats.expected(), st.stats.duplicates);
            st.stats
                .push(ts_us, h.seq, h.timestamp, h.payload_type, h.marker, clock);
            let start = siphon_quality::interval_start(call_start, ts_us);
            if st.intervals.last().map(|i| i.start_us) != Some(start) {
                st.intervals.push(StreamInterval {
                    start_us: start,
                    expected_begin: exp0,
                    dup_begin: dup0,
                    ..Default::default()
                });
            }
            if let Some(iv) = st.intervals.last_mut() {
                iv.packets += 1;
                iv.expected_end = st.stats.expected();
                iv.dup_end = st.stats.duplicates;
                iv.jitter_ms = st.stats.jitter_ms();
            }
        }
        Some(MediaClass::Rtp(call_ref))
    }

    /// The open call with this Call-ID.
    pub fn call_ref_for(&self, call_id: &[u8]) -> Option<CallRef> {
        open_call(
            &self.by_id,
            &self.calls,
            self.id_hash.hash_one(call_id),
            call_id,
        )
    }

    /// Accounts RTCP reports that arrived decoded (HEP type 5 JSON) for an open call.
    pub fn on_rtcp_reports(
        &mut self,
        call_ref: CallRef,
        ts_us: i64,
        reports: &[RtcpReport],
    ) -> bool {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return false;
        };
        call.summary.rtcp_packets += 1;
        call.media_dirty = true;
        list(&mut self.maybe_due, call, call_ref);
        Self::apply_reports(call, ts_us, reports);
        true
    }

    /// Reads the reports of an RTCP packet into the streams they are about.
    fn apply_rtcp(call: &mut Call, ts_us: i64, payload: &[u8]) {
        let reports = parse_rtcp(payload);
        Self::apply_reports(call, ts_us, &reports);
    }

    fn apply_reports(call: &mut Call, ts_us: i64, reports: &[RtcpReport]) {
        for r in reports {
            let blocks = match r {
                RtcpReport::Sender {
                    ssrc,
                    ntp_mid,
                    blocks,
                    ..
                } => {
                    if call.sr_seen.len() >= 32 {
                        call.sr_seen.pop_front();
                    }
                    call.sr_seen.push_back((*ssrc, *ntp_mid, ts_us));
                    blocks.as_slice()
                }
                RtcpReport::Receiver { blocks, .. } => blocks.as_slice(),
                RtcpReport::Xr { voip, .. } => {
                    for v in voip {
                        for st in call
                            .summary
                            .streams
                            .iter_mut()
                            .filter(|st| st.ssrc == v.ssrc)
                        {
                            if v.mos_lq != 127 {
                                st.rtcp.xr_mos_lq = Some(f64::from(v.mos_lq) / 10.0);
                            }
                            if v.r_factor != 127 {
                                st.rtcp.xr_r_factor = Some(v.r_factor);
                            }
                        }
                    }
                    continue;
                }
                _ => continue,
            };
            for b in blocks {
                let rtt = (b.lsr != 0)
                    .then(|| {
                        call.sr_seen
                            .iter()
                            .rev()
                            .find(|(s, m, _)| *s == b.ssrc && *m == b.lsr)
                            .and_then(|(_, _, seen)| rtt_us(*seen, ts_us, b.dlsr))
                    })
                    .flatten()
                    .map(|us| us as f64 / 1000.0);
                for st in call
                    .summary
                    .streams
                    .iter_mut()
                    .filter(|st| st.ssrc == b.ssrc)
                {
                    let f = &mut st.rtcp;
                    f.reports += 1;
                    f.fraction_lost = Some(f64::from(b.fraction_lost) / 256.0);
                    f.cumulative_lost = Some(b.cumulative_lost);
                    if st.clock_rate > 0 {
                        f.jitter_ms = Some(f64::from(b.jitter) * 1000.0 / f64::from(st.clock_rate));
                    }
                    if let Some(ms) = rtt {
                        f.add_rtt(ms);
                        if let Some(iv) = st.intervals.last_mut() {
                            iv.rtt_sum_ms += ms;
                            iv.rtt_count += 1;
                        }
                    }
                }
            }
        }
    }

    /// Completes calls whose timeout or grace period has passed at capture time `now_us`.
    /// Only calls whose queued deadline has passed are looked at, so a live collector can
    /// call this often (small batches of completed calls) at little cost.
    pub fn expire(&mut self, now_us: i64, out: &mut Vec<Box<CallSummary>>) {
        self.clock_us = self.clock_us.max(now_us);
        let mut done = Vec::new();
        let mut due_now = Vec::new();
        self.deadlines.take_before(now_us, &mut due_now);
        for (at, r) in due_now {
            let Some(c) = self.calls.get_mut(&r) else {
                continue; // completed since
            };
            if c.next_check != at {
                continue; // replaced by an earlier entry
            }
            let (due, reason) = deadline(c, &self.cfg);
            if now_us > due {
                c.next_check = i64::MAX;
                done.push((r, reason));
            } else {
                // Activity since it was queued: check again at the new deadline.
                c.next_check = due;
                self.deadlines.push(due, r);
            }
        }
        done.sort_unstable();
        for (r, reason) in done {
            self.complete(r, reason, out);
        }
        // Entries of completed calls and replaced ones wait for their time in the queue; when
        // they outnumber the open calls, the queue is rebuilt from the live ones.
        if self.deadlines.len() > 2 * self.calls.len() + 1024 {
            let mut fresh = Deadlines::default();
            for (r, c) in self.calls.iter() {
                if c.next_check != i64::MAX {
                    fresh.push(c.next_check, r);
                }
            }
            self.deadlines = fresh;
        }
    }

    /// Completes every open call (end of a capture file or shutdown), with `reason` recorded
    /// on calls that had not ended by SIP.
    pub fn finish(&mut self, reason: &str, out: &mut Vec<Box<CallSummary>>) {
        self.finish_each(reason, &mut |s| out.push(s));
    }

    /// [`finish`](Self::finish), handing each summary to `each` as it goes: a collector
    /// stopping with hundreds of thousands of open calls does not gather all their summaries
    /// at once (528 bytes each, beside the strings they own).
    pub fn finish_each(&mut self, reason: &str, each: &mut dyn FnMut(Box<CallSummary>)) {
        self.deadlines.clear();
        let mut refs: Vec<CallRef> = self.calls.keys().collect();
        refs.sort_unstable();
        let mut out = Vec::new();
        for r in refs {
            let ended = self
                .calls
                .get(&r)
                .is_some_and(|c| c.summary.phase == Phase::Closing);
            self.complete(r, if ended { "" } else { reason }, &mut out);
            for s in out.drain(..) {
                each(s);
            }
        }
    }

    // Boxes, not summaries: a summary moves from its call to the store without a copy.
    #[allow(clippy::vec_box)]
    fn complete(&mut self, r: CallRef, reason: &str, out: &mut Vec<Box<CallSummary>>) {
        let Some(call) = self.calls.remove(&r) else {
            return;
        };
        // Its bindings stay in `media` until the next sweep (look-ups skip them).
        self.stale_bindings += call.bound.len();
        self.tidy_media();
        let mut s = call.summary;
        let h = self.id_hash.hash_one(s.call_id.as_slice());
        if let Ok(e) = self.by_id.find_entry(h, |&(_, x)| x == r) {
            e.remove();
        }
        if !reason.is_empty() && s.close_reason.is_empty() {
            s.close_reason = reason.to_string();
        }
        if s.state == CallState::InProgress {
            s.state = CallState::from_final(s.is_call(), s.status, s.cancel_seen);
            if s.answer_us.is_some() {
                s.state = CallState::Answered;
            }
        }
        s.phase = Phase::Complete;
        // Only answered calls carry media worth grading. One without any stream gets no
        // report here: it says "no audio either way" and nothing else, so the store derives
        // it from the row when asked (`siphon_store::index::derived_quality`).
        if s.is_call() && s.answer_us.is_some() && !s.streams.is_empty() {
            s.quality = Some(Box::new(crate::quality::report_for(&s)));
        }
        if self.cfg.id_cache_size > 0 {
            self.remember_closed(r, h, &s.call_id);
        }
        out.push(s);
    }

    /// Adds a completed call to the closed-call cache (see [`Correlator::closed`]); `h` is the
    /// hash of its Call-ID.
    fn remember_closed(&mut self, r: CallRef, h: u64, call_id: &[u8]) {
        let front = self.closed_front;
        if let Some(&(_, seq)) = self.closed.find(h, |&(eh, seq)| {
            eh == h && closed_at(&self.closed_order, front, seq).is_some_and(|c| *c.id == *call_id)
        }) {
            // Completed again: the entry now names the latest call, and keeps its place.
            let at = seq.checked_sub(front).and_then(|d| usize::try_from(d).ok());
            if let Some(c) = at.and_then(|at| self.closed_order.get_mut(at)) {
                c.call_ref = r;
            }
            return;
        }
        while self.closed_order.len() >= self.cfg.id_cache_size {
            let Some(old) = self.closed_order.pop_front() else {
                break;
            };
            let seq = self.closed_front;
            if let Ok(e) = self.closed.find_entry(old.hash, |&(_, x)| x == seq) {
                e.remove();
            }
            self.closed_front += 1;
        }
        let seq = self.closed_front + self.closed_order.len() as u64;
        self.closed_order.push_back(Closed {
            hash: h,
            call_ref: r,
            id: call_id.into(),
        });
        self.closed.insert_unique(h, (h, seq), |&(h, _)| h);
    }

    /// True when an open call's summary is due for the store: it changed, and either it has
    /// been written before and its signalling changed, or it is older than
    /// [`SNAPSHOT_DELAY_US`], or only its media counts changed and the last snapshot is older
    /// than [`MEDIA_SNAPSHOT_EVERY_US`]. A call that is closing (BYE, CANCEL or a final
    /// failure seen) is due once, when it starts closing, if it has a row already: the row
    /// then shows it ended at once rather than after the closing grace. One without a row
    /// waits for its final one (a short call costs one row). A due call is marked as
    /// snapshotted.
    fn due(c: &mut Call, clock: i64) -> bool {
        if !c.dirty && !c.media_dirty {
            return false;
        }
        if c.summary.phase == Phase::Closing {
            if c.snapshot_at.is_none() || c.closing_written {
                // The changes stay marked: should the call reopen, its next snapshot has them.
                return false;
            }
            c.closing_written = true;
            c.dirty = false;
            c.media_dirty = false;
            c.snapshot_at = Some(clock);
            return true;
        }
        c.closing_written = false;
        let due = match c.snapshot_at {
            // No clock yet (nothing expired so far): no delay either.
            None => clock == i64::MIN || clock.saturating_sub(c.opened_at) >= SNAPSHOT_DELAY_US,
            Some(_) if c.dirty => true,
            Some(at) => clock.saturating_sub(at) >= MEDIA_SNAPSHOT_EVERY_US,
        };
        if due {
            c.dirty = false;
            c.media_dirty = false;
            c.snapshot_at = Some(clock);
        }
        due
    }

    /// Snapshots of the open calls due for the store (see `due`): copies.
    pub fn take_dirty(&mut self, out: &mut Vec<CallSummary>) {
        for r in self.take_due() {
            if let Some(c) = self.calls.get(&r) {
                out.push((*c.summary).clone());
            }
        }
    }

    /// [`take_dirty`](Self::take_dirty), borrowed.
    pub fn take_dirty_refs(&mut self) -> Vec<&CallSummary> {
        let due = self.take_due();
        due.iter()
            .filter_map(|r| self.calls.get(r).map(|c| &*c.summary))
            .collect()
    }

    /// The listed calls that are due, marked as snapshotted. A listed call that has changes
    /// but is not due yet stays listed; one without changes, or closing (never due: see
    /// `due`), leaves the list until its next change.
    fn take_due(&mut self) -> Vec<CallRef> {
        let clock = self.clock_us;
        let mut due = Vec::new();
        let mut waiting = Vec::new();
        for r in self.maybe_due.drain(..) {
            let Some(c) = self.calls.get_mut(&r) else {
                continue; // completed since
            };
            c.listed = false;
            if Self::due(c, clock) {
                due.push(r);
            } else if (c.dirty || c.media_dirty) && c.summary.phase != Phase::Closing {
                c.listed = true;
                waiting.push(r);
            }
        }
        self.maybe_due = waiting;
        due
    }

    /// Marks a call changed (the pipeline calls this after SIP messages).
    pub fn mark_dirty(&mut self, r: CallRef) {
        if let Some(c) = self.calls.get_mut(&r) {
            c.dirty = true;
            list(&mut self.maybe_due, c, r);
        }
    }

    /// The next call handle that a new call would get.
    pub fn next_ref(&self) -> CallRef {
        self.next_ref
    }

    /// True when an address was announced by an open call's SDP.
    pub fn is_bound(&mut self, addr: &SocketAddr) -> bool {
        self.settle_media();
        self.media
            .get(addr)
            .any(|b| self.calls.contains_key(&b.call_ref))
    }
}

/// When open calls are to be checked, by time: entries in buckets of [`Deadlines::WIDTH_US`],
/// so that taking the due ones drains whole buckets in order (a binary heap of every open
/// call's entry cost a cache miss per level on every pop), and adding one appends to its
/// bucket.
#[derive(Default)]
struct Deadlines {
    buckets: std::collections::BTreeMap<i64, Vec<(i64, CallRef)>>,
    len: usize,
}

impl Deadlines {
    const WIDTH_US: i64 = 10_000;

    fn push(&mut self, at: i64, r: CallRef) {
        self.buckets
            .entry(at.div_euclid(Self::WIDTH_US))
            .or_default()
            .push((at, r));
        self.len += 1;
    }

    fn len(&self) -> usize {
        self.len
    }

    fn clear(&mut self) {
        self.buckets.clear();
        self.len = 0;
    }

    /// Moves every entry earlier than `now` to `out`.
    fn take_before(&mut self, now: i64, out: &mut Vec<(i64, CallRef)>) {
        while let Some(mut e) = self.buckets.first_entry() {
            let start = e.key().saturating_mul(Self::WIDTH_US);
            if start >= now {
                break;
            }
            if start.saturating_add(Self::WIDTH_US) <= now {
                // The whole bucket is earlier.
                let v = e.remove();
                self.len -= v.len();
                out.extend(v);
                continue;
            }
            // The bucket `now` falls in: only its earlier entries.
            let v = e.get_mut();
            let before = v.len();
            v.retain(|&(at, r)| {
                let take = at < now;
                if take {
                    out.push((at, r));
                }
                !take
            });
            self.len -= before - v.len();
            if v.is_empty() {
                e.remove();
            }
            break;
        }
    }
}

/// Puts a call that just changed on `Correlator::maybe_due`, once.
fn list(maybe_due: &mut Vec<CallRef>, call: &mut Call, r: CallRef) {
    if !call.listed {
        call.listed = true;
        maybe_due.push(r);
    }
}

/// A call's rtpmap lines (payload type, encoding name, clock rate): a few per call, kept inline.
type RtpMaps = smallvec::SmallVec<[(u8, Cow<'static, str>, u32); 4]>;

/// Encoding names that SDP offers name again and again, so that the usual ones cost a call no
/// allocation.
const ENCODINGS: &[&str] = &[
    "PCMU",
    "PCMA",
    "G722",
    "G729",
    "telephone-event",
    "opus",
    "CN",
    "GSM",
    "G723",
    "iLBC",
    "speex",
    "AMR",
    "AMR-WB",
    "L16",
    "red",
];

/// An rtpmap encoding name as text: a shared one when it is a usual name, else a copy (lossy
/// for bytes that are not UTF-8).
fn encoding_name(enc: &[u8]) -> Cow<'static, str> {
    match ENCODINGS.iter().find(|n| n.as_bytes() == enc) {
        Some(n) => Cow::Borrowed(n),
        None => Cow::Owned(String::from_utf8_lossy(enc).into_owned()),
    }
}

/// Clock rate used for jitter: the SDP's rtpmap, else the static table; none for RFC 4733
/// telephone-event, whose timestamps stay at the event start.
fn analysis_clock(rtpmap: &[(u8, Cow<'static, str>, u32)], pt: u8) -> Option<u32> {
    const EVENT: &[u8] = b"telephone-event";
    match rtpmap.iter().find(|e| e.0 == pt) {
        Some(e)
            if e.1
                .as_bytes()
                .get(..EVENT.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(EVENT)) =>
        {
            None
        }
        Some(e) if e.2 > 0 => Some(e.2),
        _ => clock_rate_for_static(pt),
    }
}

fn secs(s: u64) -> i64 {
    i64::try_from(s.saturating_mul(1_000_000)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_the_lossy_conversion_of_any_bytes() {
        let cases: [&[u8]; 6] = [
            b"",
            b"alice",
            "Zo\u{eb} \u{1f4de}".as_bytes(),
            b"bad \xff byte",
            b"cut \xe2\x82",
            b"\xc0\x80 overlong",
        ];
        for v in cases {
            assert_eq!(text(Some(v)), String::from_utf8_lossy(v), "{v:?}");
        }
        assert_eq!(text(Some(b"bad \xff byte")), "bad \u{fffd} byte");
        assert_eq!(text(None), "");
    }
    use proptest::prelude::*;

    fn sip(text: &str) -> Vec<u8> {
        text.replace('\n', "\r\n").into_bytes()
    }

    fn invite(sdp_port: u16) -> Vec<u8> {
        let body = format!(
            "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio {sdp_port} RTP/AVP 8 101\na=rtpmap:8 PCMA/8000\na=rtpmap:101 telephone-event/8000\n"
        );
        sip(&format!(
            "INVITE sip:bob@b.example SIP/2.0\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\nFrom: <sip:alice@a.example>;tag=a1\nTo: <sip:bob@b.example>\nCall-ID: c1\nCSeq: 1 INVITE\nContent-Type: application/sdp\nContent-Length: {}\n\n{}",
            body.len() + body.matches('\n').count(),
            body
        ))
    }

    fn ok(sdp_port: u16, cseq: &str) -> Vec<u8> {
        let body = format!(
            "v=0\no=- 2 2 IN IP4 10.0.0.2\ns=-\nc=IN IP4 10.0.0.2\nt=0 0\nm=audio {sdp_port} RTP/AVP 8\na=rtpmap:8 PCMA/8000\n"
        );
        sip(&format!(
            "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\nFrom: <sip:alice@a.example>;tag=a1\nTo: <sip:bob@b.example>;tag=b1\nCall-ID: c1\nCSeq: {cseq}\nContent-Type: application/sdp\nContent-Length: {}\n\n{}",
            body.len() + body.matches('\n').count(),
            body
        ))
    }

    /// The caller's re-INVITE (CSeq 2, in the dialog) offering media on `sdp_port`.
    fn reinvite(sdp_port: u16) -> String {
        String::from_utf8(invite(sdp_port))
            .unwrap()
            .replace(
                "To: <sip:bob@b.example>\r\n",
                "To: <sip:bob@b.example>;tag=b1\r\n",
            )
            .replace("CSeq: 1 INVITE", "CSeq: 2 INVITE")
    }

    fn bye_from_callee() -> Vec<u8> {
        sip("BYE sip:alice@10.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK9\nFrom: <sip:bob@b.example>;tag=b1\nTo: <sip:alice@a.example>;tag=a1\nCall-ID: c1\nCSeq: 1 BYE\nContent-Length: 0\n\n")
    }

    fn bye_ok() -> Vec<u8> {
        sip("SIP/2.0 200 OK\nVia: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK9\nFrom: <sip:bob@b.example>;tag=b1\nTo: <sip:alice@a.example>;tag=a1\nCall-ID: c1\nCSeq: 1 BYE\nContent-Length: 0\n\n")
    }

    fn rtp(seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
        let mut v = vec![0x80, 8];
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&ts.to_be_bytes());
        v.extend_from_slice(&ssrc.to_be_bytes());
        v.extend_from_slice(&[0xd5; 160]);
        v
    }

    const A_SIG: &str = "10.0.0.1:5060";
    const B_SIG: &str = "10.0.0.2:5060";

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn feed_sip(c: &mut Correlator, t: i64, src: &str, dst: &str, bytes: &[u8]) -> SipOutcome {
        let m = Message::parse(bytes).unwrap();
        c.on_sip(t, addr(src), addr(dst), &m, &mut |_| None)
            .unwrap()
    }

    /// An INVITE and the callee's BYE of call `id`, both at `t`.
    fn short_call(c: &mut Correlator, t: i64, id: &str) {
        let id = format!("Call-ID: {id}");
        let inv = String::from_utf8(invite(4000))
            .unwrap()
            .replace("Call-ID: c1", &id);
        let bye = String::from_utf8(bye_from_callee())
            .unwrap()
            .replace("Call-ID: c1", &id);
        feed_sip(c, t, A_SIG, B_SIG, inv.as_bytes());
        feed_sip(c, t, B_SIG, A_SIG, bye.as_bytes());
    }

    fn setup(c: &mut Correlator) -> CallRef {
        let r = feed_sip(c, 0, A_SIG, B_SIG, &invite(4000)).call_ref;
        feed_sip(c, 100_000, B_SIG, A_SIG, &ok(6000, "1 INVITE"));
        r
    }

    #[test]
    fn a_call_id_that_completes_again_and_again_keeps_the_closed_call_cache_bounded() {
        // One Call-ID reused call after call (as a phone reuses its REGISTER Call-ID), among a
        // few others: the cache used to keep a copy per completion of the reused one, and to
        // forget its latest call when the oldest copy left.
        let cfg = CallConfig {
            id_cache_size: 4,
            ..CallConfig::default()
        };
        let grace = secs(cfg.closing_grace_s);
        let mut c = Correlator::new(cfg, 1);
        let mut done = Vec::new();
        let mut t = 0;
        let mut latest = 0;
        for i in 0..50 {
            short_call(&mut c, t, "reused@h");
            latest = c.call_ref_for(b"reused@h").unwrap();
            if i % 10 == 0 {
                short_call(&mut c, t, &format!("other-{i}@h"));
            }
            t += grace + 1;
            c.expire(t, &mut done);
        }
        assert_eq!(done.len(), 55);
        assert!(
            c.closed_order.len() <= 4,
            "{} entries",
            c.closed_order.len()
        );
        assert!(c.closed.len() <= 4);
        let found = |c: &Correlator, id: &[u8]| {
            closed_call(
                &c.closed,
                &c.closed_order,
                c.closed_front,
                c.id_hash.hash_one(id),
                id,
            )
            .map(|e| e.call_ref)
        };
        assert_eq!(found(&c, b"reused@h"), Some(latest));
        assert_eq!(
            found(&c, b"other-40@h"),
            done.iter()
                .find(|s| s.call_id == b"other-40@h")
                .map(|s| s.call_ref)
        );
        assert_eq!(found(&c, b"other-0@h"), None, "the oldest are forgotten");
        // A late message of the latest reused call is tied to it again.
        let bye = String::from_utf8(bye_ok())
            .unwrap()
            .replace("Call-ID: c1", "Call-ID: reused@h");
        let late = feed_sip(&mut c, t + 1, A_SIG, B_SIG, bye.as_bytes());
        assert_eq!(late.call_ref, latest);
    }

    #[test]
    fn renegotiations_that_keep_offering_new_ports_keep_a_call_to_its_latest_endpoints() {
        let mut c = Correlator::new(CallConfig::default(), 1);
        let r = setup(&mut c);
        let at = |port: u16| addr(&format!("10.0.0.1:{port}"));
        assert!(c.is_bound(&at(4000)));
        for i in 0..100u16 {
            let port = 10_000 + 2 * i;
            let out = feed_sip(
                &mut c,
                200_000 + i64::from(i),
                A_SIG,
                B_SIG,
                reinvite(port).as_bytes(),
            );
            assert_eq!(out.call_ref, r);
            assert!(c.is_bound(&at(port)) && c.is_bound(&at(port + 1)), "{port}");
        }
        assert!(
            c.bound_endpoints() <= MAX_ENDPOINTS_PER_CALL,
            "{} endpoints bound",
            c.bound_endpoints()
        );
        assert!(!c.is_bound(&at(4000)), "the oldest offer is unbound");
        assert!(!c.is_bound(&at(10_000)));
        // The callee, which offered once, stays bound.
        assert!(c.is_bound(&addr("10.0.0.2:6000")) && c.is_bound(&addr("10.0.0.2:6001")));
        // The latest offer's RTP still counts for the call.
        let pkt = rtp(1, 160, 0x1234);
        let class = c.on_udp_media(300_000, addr("10.0.0.2:6000"), at(10_198), &pkt);
        assert!(
            matches!(class, Some(MediaClass::Rtp(x)) if x == r),
            "{class:?}"
        );
    }

    #[test]
    fn renegotiations_with_no_media_looked_up_keep_the_log_and_the_call_bounded() {
        let mut c = Correlator::new(CallConfig::default(), 1);
        let r = setup(&mut c);
        let at = |port: u16| addr(&format!("10.0.0.1:{port}"));
        // New ports each time, and nothing reads the endpoint table meanwhile.
        for i in 0..100u16 {
            let t = 200_000 + i64::from(i);
            feed_sip(&mut c, t, A_SIG, B_SIG, reinvite(10_000 + 2 * i).as_bytes());
        }
        assert!(c.bound_endpoints() <= MAX_ENDPOINTS_PER_CALL);
        assert!(!c.is_bound(&at(4000)) && !c.is_bound(&at(10_000)));
        assert!(c.is_bound(&at(10_198)) && c.is_bound(&at(10_199)));
        assert!(c.is_bound(&addr("10.0.0.2:6000")));
        // The same two ports over and over: the log is applied before it outgrows its bound.
        let mut most = 0;
        for i in 0..40_000u32 {
            let port = 20_000 + 2 * (i % 2) as u16;
            let t = 300_000 + i64::from(i);
            let out = feed_sip(&mut c, t, A_SIG, B_SIG, reinvite(port).as_bytes());
            assert_eq!(out.call_ref, r);
            most = most.max(c.media.logged());
        }
        assert!(most <= 65_536 + 16 + 2, "{most} binds logged");
        assert!(c.bound_endpoints() <= MAX_ENDPOINTS_PER_CALL);
        let class = c.on_udp_media(400_000, addr("10.0.0.2:6000"), at(20_002), &rtp(1, 0, 0xA));
        assert!(
            matches!(class, Some(MediaClass::Rtp(x)) if x == r),
            "{class:?}"
        );
    }

    #[test]
    fn thousands_of_open_calls_are_each_found_by_call_id_until_they_complete() {
        // Enough calls for the Call-ID table to grow many times (each growth places every open
        // call again, by the hash the table keeps for it).
        let mut c = Correlator::new(CallConfig::default(), 1);
        let inv = String::from_utf8(invite(4000)).unwrap();
        let ids: Vec<String> = (0..5000).map(|i| format!("{i:x}-{}@h", i * 7919)).collect();
        let mut refs = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let m = inv.replace("Call-ID: c1", &format!("Call-ID: {id}"));
            let out = feed_sip(&mut c, i as i64, A_SIG, B_SIG, m.as_bytes());
            assert!(out.opened, "{id}");
            refs.push(out.call_ref);
        }
        for (id, r) in ids.iter().zip(&refs) {
            assert_eq!(c.call_ref_for(id.as_bytes()), Some(*r));
            // A message of the same call finds it rather than opening another.
            let m = inv.replace("Call-ID: c1", &format!("Call-ID: {id}"));
            let again = feed_sip(&mut c, 9_000, A_SIG, B_SIG, m.as_bytes());
            assert_eq!((again.call_ref, again.opened), (*r, false));
        }
        assert_eq!(c.call_ref_for(b"0-0@"), None);
        assert_eq!(c.call_ref_for(b"no-such-call"), None);
        // The odd calls hang up and complete; the even ones stay open and findable.
        let bye = String::from_utf8(bye_from_callee()).unwrap();
        for id in ids.iter().skip(1).step_by(2) {
            let m = bye.replace("Call-ID: c1", &format!("Call-ID: {id}"));
            feed_sip(&mut c, 10_000, B_SIG, A_SIG, m.as_bytes());
        }
        let mut done = Vec::new();
        c.expire(
            10_000 + secs(CallConfig::default().closing_grace_s) + 1,
            &mut done,
        );
        assert_eq!(done.len(), ids.len() / 2);
        for (i, (id, r)) in ids.iter().zip(&refs).enumerate() {
            let open = c.call_ref_for(id.as_bytes());
            assert_eq!(open, (i % 2 == 0).then_some(*r), "{id}");
        }
    }

    #[test]
    fn a_new_call_is_snapshotted_after_the_delay_and_media_only_changes_at_most_every_10_s() {
        let mut c = Correlator::new(CallConfig::default(), 1);
        let mut done = Vec::new();
        c.expire(0, &mut done); // the clock starts
        let r = setup(&mut c);
        let refs = |c: &mut Correlator| -> Vec<CallRef> {
            c.take_dirty_refs().iter().map(|s| s.call_ref).collect()
        };
        // Younger than the delay: not yet, and it stays due.
        c.expire(SNAPSHOT_DELAY_US - 1, &mut done);
        assert!(refs(&mut c).is_empty());
        c.expire(SNAPSHOT_DELAY_US, &mut done);
        assert_eq!(refs(&mut c), vec![r]);
        assert!(refs(&mut c).is_empty(), "nothing changed since");
        // Media only: held back until the refresh period has passed.
        let (a, b) = (addr("10.0.0.1:4000"), addr("10.0.0.2:6000"));
        c.on_udp_media(SNAPSHOT_DELAY_US, a, b, &rtp(1, 0, 0xA));
        c.expire(SNAPSHOT_DELAY_US + MEDIA_SNAPSHOT_EVERY_US - 1, &mut done);
        assert!(refs(&mut c).is_empty());
        c.expire(SNAPSHOT_DELAY_US + MEDIA_SNAPSHOT_EVERY_US, &mut done);
        assert_eq!(refs(&mut c), vec![r]);
        // Signalling on a call already in the store: at once.
        c.on_udp_media(SNAPSHOT_DELAY_US, a, b, &rtp(2, 160, 0xA));
        let re = reinvite(4100);
        feed_sip(&mut c, 200_000, A_SIG, B_SIG, re.as_bytes());
        c.mark_dirty(r);
        assert_eq!(refs(&mut c), vec![r]);
        // Hung up: one snapshot says it is closing, then nothing until the final summary,
        // after the grace.
        feed_sip(&mut c, 300_000, B_SIG, A_SIG, &bye_from_callee());
        c.mark_dirty(r);
        assert_eq!(refs(&mut c), vec![r], "the row shows it ended");
        c.on_udp_media(SNAPSHOT_DELAY_US, a, b, &rtp(3, 320, 0xA));
        feed_sip(&mut c, 300_100, A_SIG, B_SIG, &bye_ok());
        c.mark_dirty(r);
        assert!(
            refs(&mut c).is_empty(),
            "a closing call waits for its final row"
        );
        assert!(done.is_empty(), "the call is still open");
        let grace = secs(CallConfig::default().closing_grace_s);
        let now = SNAPSHOT_DELAY_US + MEDIA_SNAPSHOT_EVERY_US;
        c.expire(now + grace + 1, &mut done);
        assert_eq!(done.iter().map(|s| s.call_ref).collect::<Vec<_>>(), vec![r]);
        assert_eq!(done[0].hangup, Some(HangupSide::Callee));
    }

    #[test]
    fn activity_postpones_a_timeout_and_a_hangup_brings_it_forward() {
        let cfg = CallConfig::default();
        let mut c = Correlator::new(cfg.clone(), 1);
        let mut done = Vec::new();
        // Unanswered: the pending timeout counts from the last message.
        let r = feed_sip(&mut c, 0, A_SIG, B_SIG, &invite(4000)).call_ref;
        let ringing = String::from_utf8(ok(6000, "1 INVITE"))
            .unwrap()
            .replace("200 OK", "180 Ringing");
        let later = secs(cfg.pending_timeout_s) - 1;
        feed_sip(&mut c, later, B_SIG, A_SIG, ringing.as_bytes());
        c.expire(secs(cfg.pending_timeout_s) + 1, &mut done);
        assert!(done.is_empty(), "the 180 restarted the timeout");
        c.expire(later + secs(cfg.pending_timeout_s) + 1, &mut done);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].call_ref, r);
        assert_eq!(done[0].close_reason, "pending timeout");
        // Answered (inactivity timeout far away), then hung up: done after the grace.
        let mut c = Correlator::new(cfg.clone(), 1);
        let mut done = Vec::new();
        setup(&mut c);
        feed_sip(&mut c, 200_000, B_SIG, A_SIG, &bye_from_callee());
        c.expire(200_000 + secs(cfg.closing_grace_s), &mut done);
        assert!(done.is_empty(), "not before the grace has passed");
        c.expire(200_000 + secs(cfg.closing_grace_s) + 1, &mut done);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].close_reason, "");
    }

    #[test]
    fn deadlines_before_a_time_are_taken_and_later_ones_stay() {
        let mut d = Deadlines::default();
        let w = Deadlines::WIDTH_US;
        // Two buckets wholly before `now`, the bucket `now` falls in, a later one; and a time
        // before the epoch.
        for (at, r) in [
            (3 * w + 5, 1),
            (w, 2),
            (5 * w + 1, 3),
            (5 * w + 2, 4),
            (9 * w, 5),
            (-7, 6),
        ] {
            d.push(at, r);
        }
        let mut out = Vec::new();
        d.take_before(5 * w + 2, &mut out);
        out.sort_unstable();
        assert_eq!(out, vec![(-7, 6), (w, 2), (3 * w + 5, 1), (5 * w + 1, 3)]);
        assert_eq!(d.len(), 2);
        out.clear();
        d.take_before(5 * w + 2, &mut out);
        assert!(out.is_empty(), "an entry at `now` is not before it");
        d.take_before(9 * w + 1, &mut out);
        out.sort_unstable();
        assert_eq!(out, vec![(5 * w + 2, 4), (9 * w, 5)]);
        assert_eq!(d.len(), 0);
    }

    #[test]
    fn without_snapshots_taken_the_list_of_changed_calls_stays_bounded() {
        // As in an index rebuild: calls open and complete, nobody takes snapshots.
        let mut c = Correlator::new(CallConfig::default(), 1);
        let mut done = Vec::new();
        let grace = secs(CallConfig::default().closing_grace_s);
        for i in 0..3000i64 {
            let t = i * (grace + 1_000_000);
            c.expire(t, &mut done);
            short_call(&mut c, t, &format!("s{i}"));
        }
        assert_eq!(
            done.len(),
            2999,
            "each call completed before the next began"
        );
        assert!(
            c.maybe_due.len() <= 2 * c.open_calls() + 1024 + 1,
            "{} entries for {} open calls",
            c.maybe_due.len(),
            c.open_calls()
        );
    }

    #[test]
    fn the_deadline_queue_is_rebuilt_when_stale_entries_pile_up() {
        let mut c = Correlator::new(CallConfig::default(), 1);
        let mut done = Vec::new();
        // Many short calls: each leaves a stale pending-timeout entry behind.
        for i in 0..3000 {
            short_call(&mut c, i, &format!("c{i}"));
        }
        c.expire(
            10_000 + secs(CallConfig::default().closing_grace_s),
            &mut done,
        );
        assert_eq!(done.len(), 3000);
        assert_eq!(c.open_calls(), 0);
        assert!(
            c.deadlines.len() <= 1024,
            "{} entries kept",
            c.deadlines.len()
        );
    }

    #[test]
    fn a_call_with_a_row_is_snapshotted_once_more_when_it_starts_closing() {
        let mut c = Correlator::new(CallConfig::default(), 1);
        let mut done = Vec::new();
        c.expire(0, &mut done);
        let r = setup(&mut c);
        c.expire(SNAPSHOT_DELAY_US, &mut done);
        let phases = |c: &mut Correlator| -> Vec<(CallRef, Phase)> {
            c.take_dirty_refs()
                .iter()
                .map(|s| (s.call_ref, s.phase))
                .collect()
        };
        assert_eq!(phases(&mut c), vec![(r, Phase::Active)]);
        let t = SNAPSHOT_DELAY_US + 1_000_000;
        feed_sip(&mut c, t, B_SIG, A_SIG, &bye_from_callee());
        c.mark_dirty(r);
        c.expire(t, &mut done);
        assert_eq!(
            phases(&mut c),
            vec![(r, Phase::Closing)],
            "the row shows the call ended"
        );
        // Further messages during the grace: no more rows until the final one.
        feed_sip(&mut c, t + 1000, B_SIG, A_SIG, &bye_from_callee());
        c.mark_dirty(r);
        c.expire(t + 1000, &mut done);
        assert!(phases(&mut c).is_empty());
        c.expire(
            t + 1000 + secs(CallConfig::default().closing_grace_s) + 1,
            &mut done,
        );
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].phase, Phase::Complete);
    }

    #[test]
    fn a_call_that_is_already_closing_is_not_snapshotted() {
        let mut c = Correlator::new(CallConfig::default(), 1);
        let mut done = Vec::new();
        c.expire(0, &mut done);
        let r = setup(&mut c);
        feed_sip(&mut c, 200_000, B_SIG, A_SIG, &bye_from_callee());
        c.mark_dirty(r);
        c.expire(SNAPSHOT_DELAY_US, &mut done);
        assert!(c.take_dirty_refs().is_empty());
        assert!(done.is_empty());
        // Completed after the grace: handed over once, final.
        c.expire(
            200_000 + secs(CallConfig::default().closing_grace_s) + 1,
            &mut done,
        );
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].call_ref, r);
        assert_eq!(done[0].phase, Phase::Complete);
    }

    #[test]
    fn answered_call_binds_media_both_ways_and_callee_hangs_up() {
        let mut c = Correlator::new(CallConfig::default(), 1);
        let r = setup(&mut c);
        let a = addr("10.0.0.1:4000");
        let b = addr("10.0.0.2:6000");
        assert_eq!(
            c.on_udp_media(200_000, a, b, &rtp(1, 0, 0xA)),
            Some(MediaClass::Rtp(r))
        );
        assert_eq!(
            c.on_udp_media(200_000, b, a, &rtp(1, 0, 0xB)),
            Some(MediaClass::Rtp(r))
        );
        // An unannounced port is not this call's media.
        assert_eq!(
            c.on_udp_media(
                200_000,
                addr("10.0.0.9:7000"),
                addr("10.0.0.8:7002"),
                &rtp(1, 0, 1)
            ),
            None
        );
        feed_sip(&mut c, 3_000_000, B_SIG, A_SIG, &bye_from_callee());
        let mut done = Vec::new();
        c.expire(3_000_000 + 6_000_000, &mut done);
        assert_eq!(done.len(), 1);
        let s = &done[0];
        assert_eq!(s.state, CallState::Answered);
        assert_eq!(s.hangup, Some(HangupSide::Callee));
        assert_eq!(s.phase, Phase::Complete);
        let dirs: Vec<_> = s.streams.iter().map(|st| (st.ssrc, st.direction)).collect();
        assert!(dirs.contains(&(0xA, StreamDirection::Uac)));
        assert!(dirs.contains(&(0xB, StreamDirection::Uas)));
        assert!(s.quality.is_some());
        // Bindings are released with the call.
        assert_eq!(c.bound_endpoints(), 0);
    }

    #[test]
    fn completed_calls_on_a_shared_endpoint_do_not_crowd_out_an_open_one() {
        let mut c = Correlator::new(CallConfig::default(), 1);
        let open = setup(&mut c);
        // More short calls than an endpoint keeps, one after the other, each offering the
        // open call's endpoint and completed before the next.
        let mut t = 1_000_000;
        for i in 0..2 * MAX_CALLS_PER_ENDPOINT {
            short_call(&mut c, t, &format!("short{i}"));
            t += 10_000_000;
            let mut done = Vec::new();
            c.expire(t, &mut done);
            assert_eq!(done.len(), 1, "short call {i}");
        }
        c.settle_media();
        assert!(c.media.get(&addr("10.0.0.1:4000")).count() <= MAX_CALLS_PER_ENDPOINT);
        // The open call is still bound to it: media from an address nobody announced is its.
        let from = addr("10.0.0.9:7000");
        assert_eq!(
            c.on_udp_media(t, from, addr("10.0.0.1:4000"), &rtp(1, 0, 0xC)),
            Some(MediaClass::Rtp(open))
        );
    }

    #[test]
    fn an_endpoint_shared_with_a_completed_call_stays_with_the_open_one() {
        let mut c = Correlator::new(CallConfig::default(), 1);
        let open = setup(&mut c);
        // A second call offers the caller's endpoint too, later, and ends; its binding is
        // the endpoint's latest until the table is swept.
        let inv = String::from_utf8(invite(4000))
            .unwrap()
            .replace("Call-ID: c1", "Call-ID: c2");
        let bye = String::from_utf8(bye_from_callee())
            .unwrap()
            .replace("Call-ID: c1", "Call-ID: c2");
        let other = feed_sip(&mut c, 200_000, A_SIG, B_SIG, inv.as_bytes()).call_ref;
        feed_sip(&mut c, 300_000, B_SIG, A_SIG, bye.as_bytes());
        let mut done = Vec::new();
        c.expire(20_000_000, &mut done);
        assert_eq!(done.iter().map(|s| s.call_ref).collect::<Vec<_>>(), [other]);
        // Media to that endpoint from an address no call announced: the open call's.
        let from = addr("10.0.0.9:7000");
        assert_eq!(
            c.on_udp_media(21_000_000, from, addr("10.0.0.1:4000"), &rtp(1, 0, 0xC)),
            Some(MediaClass::Rtp(open))
        );
    }

    #[test]
    fn completed_calls_media_is_not_theirs_and_the_endpoint_table_stays_bounded() {
        let mut c = Correlator::new(CallConfig::default(), 1);
        // 20,000 calls, each offering media on a port of its own (RTP and RTCP bound), all
        // completed by the same expiry.
        let n = 20_000u16;
        for i in 0..n {
            let id = format!("Call-ID: k{i}");
            let inv = String::from_utf8(invite(4000 + 2 * i))
                .unwrap()
                .replace("Call-ID: c1", &id);
            let bye = String::from_utf8(bye_from_callee())
                .unwrap()
                .replace("Call-ID: c1", &id);
            let t = i64::from(i) * 1000;
            feed_sip(&mut c, t, A_SIG, B_SIG, inv.as_bytes());
            feed_sip(&mut c, t, B_SIG, A_SIG, bye.as_bytes());
        }
        let mut done = Vec::new();
        c.expire(i64::from(n) * 1000 + 60_000_000, &mut done);
        assert_eq!(done.len(), usize::from(n));
        // No media was looked up, so the binds were only logged; swept once completed calls'
        // bindings are half of them: never 40,000.
        assert_eq!(c.media.bindings(), 0);
        let kept = c.media.logged();
        assert!(kept <= 8192, "{kept} bindings kept");
        assert_eq!(c.bound_endpoints(), 0);
        // The last call's bind, still logged, is dropped when the log is applied (its call is
        // no longer open); its media is nobody's.
        let last = addr(&format!("10.0.0.1:{}", 4000 + 2 * (n - 1)));
        c.settle_media();
        assert!(c.media.get(&last).next().is_none() && !c.is_bound(&last));
        let b = addr("10.0.0.2:6000");
        let t = i64::from(n) * 1000 + 61_000_000;
        assert_eq!(c.on_udp_media(t, b, last, &rtp(1, 0, 0xB)), None);
        // A new call offering the same endpoint gets its media.
        let inv = String::from_utf8(invite(4000 + 2 * (n - 1)))
            .unwrap()
            .replace("Call-ID: c1", "Call-ID: again");
        let r = feed_sip(&mut c, t, A_SIG, B_SIG, inv.as_bytes()).call_ref;
        assert!(c.is_bound(&last));
        assert_eq!(
            c.on_udp_media(t + 1000, b, last, &rtp(2, 160, 0xB)),
            Some(MediaClass::Rtp(r))
        );
    }

    #[test]
    fn reinvite_moves_media_to_the_new_port() {
        let mut c = Correlator::new(CallConfig::default(), 1);
        let r = setup(&mut c);
        let re = reinvite(4100);
        feed_sip(&mut c, 1_000_000, A_SIG, B_SIG, re.as_bytes());
        let new_a = addr("10.0.0.1:4100");
        let b = addr("10.0.0.2:6000");
        assert_eq!(
            c.on_udp_media(1_100_000, b, new_a, &rtp(9, 0, 0xB)),
            Some(MediaClass::Rtp(r))
        );
    }

    #[test]
    fn pending_call_times_out_with_a_reason() {
        let cfg = CallConfig {
            pending_timeout_s: 10,
            ..CallConfig::default()
        };
        let mut c = Correlator::new(cfg, 1);
        feed_sip(&mut c, 0, A_SIG, B_SIG, &invite(4000));
        let mut done = Vec::new();
        c.expire(5_000_000, &mut done);
        assert!(done.is_empty());
        c.expire(11_000_000, &mut done);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].state, CallState::NoAnswer);
        assert_eq!(done[0].close_reason, "pending timeout");
        assert!(done[0].quality.is_none());
    }

    #[test]
    fn call_table_and_streams_per_call_are_bounded() {
        let cfg = CallConfig {
            max_open_calls: 1,
            max_streams_per_call: 2,
            ..CallConfig::default()
        };
        let mut c = Correlator::new(cfg, 1);
        let r = setup(&mut c);
        let other = String::from_utf8(invite(4200))
            .unwrap()
            .replace("Call-ID: c1", "Call-ID: c2");
        let m = Message::parse(other.as_bytes()).unwrap();
        assert!(c
            .on_sip(0, addr(A_SIG), addr(B_SIG), &m, &mut |_| None)
            .is_none());
        assert_eq!(c.refused, 1);
        assert_eq!(c.open_calls(), 1);
        let (a, b) = (addr("10.0.0.1:4000"), addr("10.0.0.2:6000"));
        for ssrc in 0..50u32 {
            assert_eq!(
                c.on_udp_media(200_000, a, b, &rtp(1, 0, ssrc)),
                Some(MediaClass::Rtp(r))
            );
        }
        let mut out = Vec::new();
        c.finish("", &mut out);
        assert_eq!(out[0].streams.len(), 2);
        assert_eq!(out[0].rtp_packets, 50);
    }

    #[test]
    fn rtpmap_names_are_kept_and_events_get_no_jitter_clock() {
        let maps: RtpMaps = [
            (8, encoding_name(b"PCMA"), 8000),
            (101, encoding_name(b"TELEPHONE-EVENT"), 8000),
            (96, encoding_name(b"EVS"), 16000),
            (97, encoding_name(b"bad\xff"), 0),
        ]
        .into_iter()
        .collect();
        // The usual names are shared; others are copied as they were offered.
        assert!(matches!(maps[0].1, Cow::Borrowed("PCMA")));
        assert!(matches!(&maps[2].1, Cow::Owned(n) if n == "EVS"));
        assert_eq!(maps[3].1, "bad\u{fffd}");
        assert_eq!(analysis_clock(&maps, 8), Some(8000));
        // RFC 4733 events, whatever the case of their name, have no clock for jitter.
        assert_eq!(analysis_clock(&maps, 101), None);
        assert_eq!(analysis_clock(&maps, 96), Some(16000));
        // No rate in the rtpmap, or no rtpmap: the static table.
        assert_eq!(analysis_clock(&maps, 97), None);
        assert_eq!(analysis_clock(&maps, 0), Some(8000));
    }

    proptest! {
        /// Jitter and loss of each stream do not depend on how the packets of different
        /// streams interleave in the capture.
        #[test]
        fn stream_figures_are_invariant_to_interleaving(
            order in proptest::collection::vec(any::<bool>(), 120),
            jit in proptest::collection::vec(0i64..8_000, 120),
            drop in proptest::collection::vec(0u8..20, 120),
        ) {
            let a = addr("10.0.0.1:4000");
            let b = addr("10.0.0.2:6000");
            // Each stream's own packets: (time, seq, ts); some dropped.
            let make = |k: usize| -> Vec<(i64, u16, u32)> {
                (0..60).filter(|i| drop[(i + k) % 120] != 0)
                    .map(|i| (i as i64 * 20_000 + jit[(i * 2 + k) % 120], i as u16 + 100, i as u32 * 160))
                    .collect()
            };
            let (sa, sb) = (make(0), make(1));
            let run = |interleave: &dyn Fn(usize) -> bool| {
                let mut c = Correlator::new(CallConfig::default(), 1);
                setup(&mut c);
                let (mut i, mut j, mut n) = (0, 0, 0);
                while i < sa.len() || j < sb.len() {
                    let take_a = j >= sb.len() || (i < sa.len() && interleave(n));
                    if take_a {
                        let (t, q, ts) = sa[i];
                        c.on_udp_media(1_000_000 + t, a, b, &rtp(q, ts, 0xA));
                        i += 1;
                    } else {
                        let (t, q, ts) = sb[j];
                        c.on_udp_media(1_000_000 + t, b, a, &rtp(q, ts, 0xB));
                        j += 1;
                    }
                    n += 1;
                }
                let mut out = Vec::new();
                c.finish("", &mut out);
                let mut v: Vec<_> = out[0].streams.iter().map(|s| (s.ssrc, s.stats.packets, s.stats.lost(),
                    (s.stats.mean_jitter_ms() * 1e6).round() as i64, (s.stats.max_jitter_ms() * 1e6).round() as i64)).collect();
                v.sort();
                v
            };
            let x = run(&|n| order[n % 120]);
            let y = run(&|n| n % 2 == 0);
            prop_assert_eq!(x, y);
        }
    }
}
