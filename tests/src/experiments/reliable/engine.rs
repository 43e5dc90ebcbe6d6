//! The event loop of the reliable-service experiments: nodes, directed links, routing by
//! belief, faults, and the source and destination clients.

use std::time::Duration;

use weft_proto::reliable::{
    E2eAck, E2eParams, E2eSink, E2eSource, PACING_OVERHEAD, RelClass, RelParams, RelReceiver,
    RelReceiverLimits, RelSender, RelSenderLimits, SinkOutcome,
};
use weft_shared::time::Instant;
use weft_shared::wire::{AckRepr, NackRepr};

use super::{Fault, Latency, Recovery, ReliableConfig, ReliableReport};
use crate::experiments::queue::EventQueue;
use crate::linkmodel::{LinkModel, LinkParams, Rng, Verdict};

/// A message as the harness carries it: its bytes are this encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Msg {
    seq: u64,
    origin: Instant,
    recovered: bool,
}

const MSG_LEN: usize = 17;
/// The largest record: messages are padded to the configured size less the headers, so that
/// pacing charges what the link model carries.
const MAX_RECORD: usize = 1448;

impl Msg {
    /// The message's bytes, padded; the caller slices the record length.
    fn encode(self) -> [u8; MAX_RECORD] {
        let mut b = [0; MAX_RECORD];
        b[..8].copy_from_slice(&self.seq.to_be_bytes());
        b[8..16].copy_from_slice(&self.origin.as_nanos().to_be_bytes());
        b[16] = u8::from(self.recovered);
        b
    }

    fn decode(b: &[u8]) -> Option<Msg> {
        if b.len() < MSG_LEN {
            return None;
        }
        let word = |r: std::ops::Range<usize>| {
            let mut w = [0; 8];
            w.copy_from_slice(&b[r]);
            u64::from_be_bytes(w)
        };
        Some(Msg {
            seq: word(0..8),
            origin: Instant::from_nanos(word(8..16)),
            recovered: b[16] == 1,
        })
    }
}

/// What travels end to end, forwarded best effort by every node on the way.
#[derive(Clone, Copy, Debug)]
enum Body {
    E2eAck(E2eAck),
    PathData { seq: u32, retx: bool, msg: Msg },
    PathAck(AckRepr),
    PathNack(NackRepr),
}

#[derive(Clone, Copy, Debug)]
enum Pkt {
    /// A data record on one link; `epoch` is the link direction's sequence space.
    LinkData {
        epoch: u32,
        seq: u32,
        retx: bool,
        msg: Msg,
    },
    /// Feedback for the data direction opposite the one it travels on.
    LinkAck {
        epoch: u32,
        ack: AckRepr,
    },
    LinkNack {
        epoch: u32,
        nack: NackRepr,
    },
    Routed {
        dst: usize,
        body: Body,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Comp {
    Sender(usize),
    Receiver(usize),
    Source,
    Sink,
    PathTx,
    PathRx,
}

#[derive(Clone, Copy, Debug)]
enum Belief {
    Link(usize),
    Node(usize),
}

#[derive(Clone, Copy, Debug)]
enum Ev {
    Source,
    Arrive { d: usize, pkt: Pkt },
    Wake(Comp),
    FaultStart(usize),
    FaultEnd(usize),
    Believe { what: Belief, up: bool },
    Read,
}

/// Bytes a feedback or end-to-end ack packet takes.
const FEEDBACK_BYTES: usize = 64;

struct Run {
    cfg: ReliableConfig,
    now: Instant,
    queue: EventQueue<Ev>,
    /// Per directed link `2 · link + dir` (dir 0: a → b).
    models: Vec<LinkModel>,
    senders: Vec<RelSender>,
    receivers: Vec<RelReceiver>,
    epochs: Vec<u32>,
    node_up: Vec<bool>,
    believed_link: Vec<bool>,
    believed_node: Vec<bool>,
    /// Next directed link toward the destination and toward the source, per node.
    to_dst: Vec<Option<usize>>,
    to_src: Vec<Option<usize>>,
    source: E2eSource,
    sink: E2eSink,
    path_tx: RelSender,
    path_rx: RelReceiver,
    armed: Vec<Option<Instant>>,
    interval: Duration,
    /// Messages the client has handed over (the next is `taken + 1`).
    taken: u64,
    origins: Vec<Instant>,
    delivered: u64,
    misordered: u64,
    corrupted: u64,
    recovered_us: Vec<u64>,
    delivery_us: Vec<u64>,
    arrived: Vec<bool>,
    first_send: Option<Instant>,
    last_delivery: Instant,
    data_packets: u64,
    max_link_in_flight: u32,
    max_held: u64,
    max_outstanding: u32,
    /// The client's next send already queued.
    source_tick: Option<Instant>,
    /// Bytes of each record.
    rec_len: usize,
}

/// Runs one experiment to the end (or its time limit) and reports.
pub fn run(cfg: &ReliableConfig) -> ReliableReport {
    let mut r = Run::new(cfg.clone());
    r.push(Instant::ZERO, Ev::Source);
    if r.cfg.read_pps.is_some() {
        r.push(Instant::ZERO, Ev::Read);
    }
    for (i, f) in cfg.faults.iter().enumerate() {
        let (at, for_) = match *f {
            Fault::CutLink { at, for_, .. } | Fault::CrashNode { at, for_, .. } => (at, for_),
        };
        r.push(Instant::ZERO + at, Ev::FaultStart(i));
        r.push(Instant::ZERO + at + for_, Ev::FaultEnd(i));
    }
    let limit = Instant::ZERO + cfg.time_limit;
    while let Some((at, ev)) = r.queue.pop() {
        if at > limit {
            break;
        }
        r.now = r.now.max(at);
        r.handle(ev);
    }
    r.report()
}

impl Run {
    fn new(cfg: ReliableConfig) -> Self {
        let mut rng = Rng::new(cfg.seed);
        let mut models = Vec::new();
        let mut senders = Vec::new();
        let mut receivers = Vec::new();
        for l in &cfg.links {
            let params = LinkParams {
                latency: l.latency,
                jitter: cfg.jitter,
                reorder: !cfg.jitter.is_zero(),
                loss: l.loss,
                rate_bps: cfg.rate_bps,
                ..LinkParams::default()
            };
            let rel = RelParams {
                congestion_control: cfg.congestion_control,
                pacing_bps: cfg.pacing_bps,
                ..RelParams::for_link(l.latency * 2)
            };
            for _ in 0..2 {
                models.push(LinkModel::new(params, rng.next_u64()));
                senders.push(RelSender::new(
                    rel,
                    RelSenderLimits {
                        window: cfg.link_window,
                        record_len: MAX_RECORD,
                    },
                ));
                receivers.push(RelReceiver::new(
                    rel,
                    RelReceiverLimits {
                        window: cfg.link_window,
                        pending: 1024,
                    },
                ));
            }
        }
        let path_rtt = shortest_path(&cfg) * 2;
        let e2e = E2eParams {
            window: cfg.e2e_window,
            msg_len: record_len(&cfg),
            ..E2eParams::for_path(path_rtt)
        };
        let path = RelParams {
            congestion_control: cfg.congestion_control,
            pacing_bps: cfg.pacing_bps,
            ..RelParams::for_link(path_rtt)
        };
        let path_limits = RelSenderLimits {
            window: cfg.link_window,
            record_len: MAX_RECORD,
        };
        let directed = models.len();
        let interval = cfg.rate_pps.map_or(Duration::ZERO, |r| {
            Duration::from_nanos(1_000_000_000 / u64::from(r.max(1)))
        });
        let messages = cfg.messages as usize;
        let mut run = Run {
            now: Instant::ZERO,
            queue: EventQueue::new(),
            models,
            senders,
            receivers,
            epochs: vec![0; directed],
            node_up: vec![true; cfg.nodes],
            believed_link: vec![true; cfg.links.len()],
            believed_node: vec![true; cfg.nodes],
            to_dst: vec![None; cfg.nodes],
            to_src: vec![None; cfg.nodes],
            source: E2eSource::new(e2e),
            sink: E2eSink::new(e2e),
            path_tx: RelSender::new(path, path_limits),
            path_rx: RelReceiver::new(
                path,
                RelReceiverLimits {
                    window: cfg.link_window,
                    pending: 1024,
                },
            ),
            armed: vec![None; directed * 2 + 4],
            interval,
            taken: 0,
            origins: vec![Instant::ZERO; messages + 1],
            delivered: 0,
            misordered: 0,
            corrupted: 0,
            recovered_us: Vec::new(),
            delivery_us: Vec::with_capacity(messages),
            arrived: vec![false; messages + 1],
            first_send: None,
            last_delivery: Instant::ZERO,
            data_packets: 0,
            max_link_in_flight: 0,
            max_held: 0,
            max_outstanding: 0,
            source_tick: None,
            rec_len: record_len(&cfg),
            cfg,
        };
        run.route();
        run
    }

    fn push(&mut self, at: Instant, ev: Ev) {
        self.queue.push(at, ev);
    }

    fn tail(&self, d: usize) -> usize {
        let l = &self.cfg.links[d / 2];
        if d % 2 == 0 { l.a } else { l.b }
    }

    fn head(&self, d: usize) -> usize {
        self.tail(d ^ 1)
    }

    /// Shortest paths by latency toward the destination and the source over what is believed
    /// up; ties go to the lower link index.
    fn route(&mut self) {
        self.to_dst = self.tree(self.cfg.dst);
        self.to_src = self.tree(self.cfg.src);
    }

    fn tree(&self, root: usize) -> Vec<Option<usize>> {
        let n = self.cfg.nodes;
        let mut dist = vec![u64::MAX; n];
        let mut next = vec![None; n];
        let mut done = vec![false; n];
        dist[root] = 0;
        for _ in 0..n {
            let Some(u) = (0..n)
                .filter(|&i| !done[i] && dist[i] < u64::MAX)
                .min_by_key(|&i| dist[i])
            else {
                break;
            };
            done[u] = true;
            for (l, link) in self.cfg.links.iter().enumerate() {
                let (v, d_to_u) = if link.a == u {
                    (link.b, 2 * l + 1)
                } else if link.b == u {
                    (link.a, 2 * l)
                } else {
                    continue;
                };
                if !self.believed_link[l] || !self.believed_node[v] || !self.believed_node[u] {
                    continue;
                }
                let alt = dist[u] + link.latency.as_micros() as u64;
                if alt < dist[v] {
                    dist[v] = alt;
                    next[v] = Some(d_to_u);
                }
            }
        }
        next
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Source => self.pump_source(),
            Ev::Arrive { d, pkt } => self.on_arrive(d, pkt),
            Ev::Wake(comp) => self.on_wake(comp),
            Ev::FaultStart(i) => self.fault(i, true),
            Ev::FaultEnd(i) => self.fault(i, false),
            Ev::Believe { what, up } => {
                match what {
                    Belief::Link(l) => self.believed_link[l] = up,
                    Belief::Node(n) => self.believed_node[n] = up,
                }
                self.route();
                self.pump_source();
            }
            Ev::Read => self.on_read(),
        }
    }

    fn fault(&mut self, i: usize, start: bool) {
        let detect = self.now + self.cfg.detect;
        match self.cfg.faults[i] {
            Fault::CutLink { link, .. } => {
                self.models[2 * link].set_up(!start);
                self.models[2 * link + 1].set_up(!start);
                let what = Belief::Link(link);
                self.push(detect, Ev::Believe { what, up: !start });
            }
            Fault::CrashNode { node, .. } => {
                if node == self.cfg.src || node == self.cfg.dst {
                    return; // only intermediate nodes crash here
                }
                self.node_up[node] = !start;
                if !start {
                    self.restart(node);
                }
                let what = Belief::Node(node);
                self.push(detect, Ev::Believe { what, up: !start });
            }
        }
    }

    /// A node comes back with empty state; every link sequence space it shares starts over.
    fn restart(&mut self, node: usize) {
        for d in 0..self.models.len() {
            if self.tail(d) == node || self.head(d) == node {
                self.senders[d].reset();
                self.receivers[d].reset();
                self.epochs[d] += 1;
            }
        }
    }

    fn on_wake(&mut self, comp: Comp) {
        let id = self.comp_id(comp);
        if self.armed[id] == Some(self.now) {
            self.armed[id] = None;
        }
        match comp {
            Comp::Sender(d) => {
                if self.node_up[self.tail(d)] {
                    self.senders[d].handle_timeout(self.now);
                    self.flush_sender(d);
                }
            }
            Comp::Receiver(d) => {
                if self.node_up[self.head(d)] {
                    self.flush_receiver(d);
                }
            }
            Comp::Source => {
                self.source.handle_timeout(self.now);
                self.pump_source();
            }
            Comp::Sink => self.flush_sink(),
            Comp::PathTx => {
                self.path_tx.handle_timeout(self.now);
                self.flush_path_tx();
            }
            Comp::PathRx => self.flush_path_rx(),
        }
    }

    fn on_arrive(&mut self, d: usize, pkt: Pkt) {
        let here = self.head(d);
        if !self.node_up[here] {
            return;
        }
        match pkt {
            Pkt::LinkData {
                epoch,
                seq,
                retx,
                msg,
            } => {
                if epoch != self.epochs[d] {
                    return; // from before a restart
                }
                match self.receivers[d].classify(seq) {
                    RelClass::New => {
                        if self.take(here, msg, retx) {
                            self.receivers[d].accept(self.now, seq, retx);
                        } else {
                            self.receivers[d].refuse(self.now, seq);
                        }
                    }
                    class => self.receivers[d].duplicate(self.now, class),
                }
                self.flush_receiver(d);
            }
            Pkt::LinkAck { epoch, ack } => {
                let data = d ^ 1;
                if epoch == self.epochs[data] {
                    self.senders[data].handle_ack(self.now, &ack);
                    self.flush_sender(data);
                    if self.tail(data) == self.cfg.src {
                        self.pump_source();
                    }
                }
            }
            Pkt::LinkNack { epoch, nack } => {
                let data = d ^ 1;
                if epoch == self.epochs[data] {
                    self.senders[data].handle_nack(self.now, nack.seqs());
                    self.flush_sender(data);
                }
            }
            Pkt::Routed { dst, body } => {
                if here == dst {
                    self.on_routed(body);
                } else {
                    self.send_routed(here, dst, body);
                }
            }
        }
    }

    fn on_routed(&mut self, body: Body) {
        match body {
            Body::E2eAck(ack) => {
                self.source.handle_ack(self.now, &ack);
                self.pump_source();
            }
            Body::PathData { seq, retx, msg } => {
                match self.path_rx.classify(seq) {
                    RelClass::New => {
                        let dst = self.cfg.dst;
                        if self.take(dst, msg, retx) {
                            self.path_rx.accept(self.now, seq, retx);
                        } else {
                            self.path_rx.refuse(self.now, seq);
                        }
                    }
                    class => self.path_rx.duplicate(self.now, class),
                }
                self.flush_path_rx();
            }
            Body::PathAck(ack) => {
                self.path_tx.handle_ack(self.now, &ack);
                self.flush_path_tx();
                self.pump_source();
            }
            Body::PathNack(nack) => {
                self.path_tx.handle_nack(self.now, nack.seqs());
                self.flush_path_tx();
            }
        }
    }

    /// Node `here` takes `msg` from a link: into the sink at the destination, or onto the next
    /// link. `false`: no room (or no route), the record is refused.
    fn take(&mut self, here: usize, mut msg: Msg, retx: bool) -> bool {
        msg.recovered |= retx;
        if here == self.cfg.dst {
            let rec = msg.encode();
            let bytes = &rec[..self.rec_len];
            return match self.sink.classify(msg.seq, bytes.len()) {
                SinkOutcome::Accepted => {
                    self.sink.handle_packet(self.now, msg.seq, bytes);
                    self.note_arrival(msg);
                    self.flush_sink();
                    true
                }
                SinkOutcome::Duplicate => {
                    self.sink.handle_packet(self.now, msg.seq, bytes);
                    self.flush_sink();
                    true
                }
                SinkOutcome::BeyondWindow | SinkOutcome::TooLarge => false,
            };
        }
        self.send_on_route(here, msg)
    }

    /// Sends `msg` from `here` on its route's next link (hop by hop).
    fn send_on_route(&mut self, here: usize, msg: Msg) -> bool {
        let Some(d) = self.to_dst[here] else {
            return false;
        };
        match self.senders[d].handle_send(self.now, &msg.encode()[..self.rec_len]) {
            Ok(_) => {
                self.max_link_in_flight = self.max_link_in_flight.max(self.senders[d].in_flight());
                self.flush_sender(d);
                true
            }
            Err(_) => false,
        }
    }

    fn note_arrival(&mut self, msg: Msg) {
        let Some(seen) = self.arrived.get_mut(msg.seq as usize) else {
            return;
        };
        if !*seen {
            *seen = true;
            if msg.recovered {
                self.recovered_us
                    .push((self.now - msg.origin).as_micros() as u64);
            }
        }
    }

    fn transmit(&mut self, d: usize, pkt: Pkt) {
        let bytes = match pkt {
            Pkt::LinkData { .. }
            | Pkt::Routed {
                body: Body::PathData { .. },
                ..
            } => {
                self.data_packets += 1;
                self.cfg.msg_bytes
            }
            _ => FEEDBACK_BYTES,
        };
        if let Verdict::Deliver(at) = self.models[d].offer(self.now, bytes) {
            self.push(at, Ev::Arrive { d, pkt });
        }
    }

    fn send_routed(&mut self, from: usize, dst: usize, body: Body) {
        let next = if dst == self.cfg.dst {
            self.to_dst[from]
        } else {
            self.to_src[from]
        };
        if let Some(d) = next {
            self.transmit(d, Pkt::Routed { dst, body });
        }
    }

    /// The source client hands over what it may (rate, credit, room on the first link), and
    /// the source resends what is due.
    fn pump_source(&mut self) {
        // Resends first: they are older.
        loop {
            if !self.first_hop_has_room() {
                break;
            }
            let Some(msg) = self.source.peek_resend().and_then(|(_, b)| Msg::decode(b)) else {
                break;
            };
            let msg = Msg {
                recovered: true,
                ..msg
            };
            if !self.send_from_source(msg) {
                break;
            }
            self.source.commit_resend();
        }
        while self.taken < self.cfg.messages && self.source.credit() > 0 {
            let next = self.taken + 1;
            let wanted = Instant::ZERO + self.interval * (self.taken as u32);
            if wanted > self.now {
                if self.source_tick.is_none_or(|t| t > wanted || t <= self.now) {
                    self.source_tick = Some(wanted);
                    self.push(wanted, Ev::Source);
                }
                break;
            }
            if !self.first_hop_has_room() {
                break;
            }
            let msg = Msg {
                seq: next,
                origin: wanted,
                recovered: false,
            };
            let Ok(seq) = self
                .source
                .handle_send(self.now, &msg.encode()[..self.rec_len])
            else {
                break;
            };
            debug_assert_eq!(seq, next);
            self.taken = next;
            self.origins[next as usize] = wanted;
            self.first_send.get_or_insert(self.now);
            // If it cannot leave now it stays in the source and the resend covers it.
            self.send_from_source(msg);
        }
        self.max_outstanding = self.max_outstanding.max(self.source.outstanding());
        let _ = self.source.poll_event();
        let t = self.source.poll_timeout();
        self.arm(Comp::Source, t);
    }

    fn first_hop_has_room(&self) -> bool {
        match self.cfg.recovery {
            Recovery::EndToEnd => {
                self.path_tx.can_transmit(self.now) && self.to_dst[self.cfg.src].is_some()
            }
            Recovery::HopByHop => {
                self.to_dst[self.cfg.src].is_some_and(|d| self.senders[d].can_transmit(self.now))
            }
        }
    }

    fn send_from_source(&mut self, msg: Msg) -> bool {
        match self.cfg.recovery {
            Recovery::HopByHop => self.send_on_route(self.cfg.src, msg),
            Recovery::EndToEnd => match self
                .path_tx
                .handle_send(self.now, &msg.encode()[..self.rec_len])
            {
                Ok(_) => {
                    self.flush_path_tx();
                    true
                }
                Err(_) => false,
            },
        }
    }

    fn flush_sender(&mut self, d: usize) {
        while let Some((seq, retx, msg)) = self.senders[d]
            .poll_transmit(self.now)
            .and_then(|r| Msg::decode(r.record).map(|m| (r.link_seq, r.retransmission, m)))
        {
            let pkt = Pkt::LinkData {
                epoch: self.epochs[d],
                seq,
                retx,
                msg,
            };
            self.transmit(d, pkt);
        }
        let t = self.senders[d].poll_timeout();
        self.arm(Comp::Sender(d), t);
    }

    fn flush_receiver(&mut self, d: usize) {
        let epoch = self.epochs[d];
        while let Some(nack) = self.receivers[d].poll_nack(self.now) {
            self.transmit(d ^ 1, Pkt::LinkNack { epoch, nack });
        }
        if let Some(ack) = self.receivers[d].poll_ack(self.now) {
            self.transmit(d ^ 1, Pkt::LinkAck { epoch, ack });
        }
        let t = self.receivers[d].poll_timeout();
        self.arm(Comp::Receiver(d), t);
    }

    fn flush_path_tx(&mut self) {
        while let Some((seq, retx, msg)) = self
            .path_tx
            .poll_transmit(self.now)
            .and_then(|r| Msg::decode(r.record).map(|m| (r.link_seq, r.retransmission, m)))
        {
            let body = Body::PathData { seq, retx, msg };
            self.send_routed(self.cfg.src, self.cfg.dst, body);
        }
        let t = self.path_tx.poll_timeout();
        self.arm(Comp::PathTx, t);
    }

    fn flush_path_rx(&mut self) {
        let (src, dst) = (self.cfg.src, self.cfg.dst);
        while let Some(nack) = self.path_rx.poll_nack(self.now) {
            self.send_routed(dst, src, Body::PathNack(nack));
        }
        if let Some(ack) = self.path_rx.poll_ack(self.now) {
            self.send_routed(dst, src, Body::PathAck(ack));
        }
        let t = self.path_rx.poll_timeout();
        self.arm(Comp::PathRx, t);
    }

    fn paused(&self) -> bool {
        self.cfg.read_pause.is_some_and(|(start, len)| {
            let t = self.now - Instant::ZERO;
            t >= start && t < start + len
        })
    }

    /// Delivers to the receiving client what it takes, sends the sink's ack, re-arms.
    fn flush_sink(&mut self) {
        if self.cfg.read_pps.is_none() && !self.paused() {
            while self.deliver_one() {}
        }
        self.max_held = self.max_held.max(self.held());
        if let Some(ack) = self.sink.poll_ack(self.now) {
            self.send_routed(self.cfg.dst, self.cfg.src, Body::E2eAck(ack));
        }
        let t = self.sink.poll_timeout();
        self.arm(Comp::Sink, t);
    }

    fn held(&self) -> u64 {
        let c = self.sink.counters();
        c.accepted - c.delivered
    }

    fn deliver_one(&mut self) -> bool {
        let Some((seq, bytes)) = self.sink.peek_deliver() else {
            return false;
        };
        let msg = Msg::decode(bytes);
        if seq != self.delivered + 1 {
            self.misordered += 1;
        }
        let expected = self.origins.get(seq as usize).copied();
        match msg {
            Some(m) if m.seq == seq && Some(m.origin) == expected => {
                self.delivery_us
                    .push((self.now - m.origin).as_micros() as u64);
            }
            _ => self.corrupted += 1,
        }
        self.delivered = seq;
        self.last_delivery = self.now;
        self.sink.consume(self.now);
        true
    }

    /// The rate-limited client reads one message, and comes back one interval later while
    /// messages are still to come.
    fn on_read(&mut self) {
        if !self.paused() {
            self.deliver_one();
        }
        self.flush_sink();
        if self.delivered < self.cfg.messages
            && let Some(r) = self.cfg.read_pps
        {
            let at = self.now + Duration::from_nanos(1_000_000_000 / u64::from(r.max(1)));
            self.push(at, Ev::Read);
        }
    }

    fn comp_id(&self, comp: Comp) -> usize {
        let n = self.models.len();
        match comp {
            Comp::Sender(d) => d,
            Comp::Receiver(d) => n + d,
            Comp::Source => 2 * n,
            Comp::Sink => 2 * n + 1,
            Comp::PathTx => 2 * n + 2,
            Comp::PathRx => 2 * n + 3,
        }
    }

    /// Makes sure `comp` wakes at `t` (a wake-up already queued for earlier stands).
    fn arm(&mut self, comp: Comp, t: Option<Instant>) {
        let Some(t) = t else {
            return;
        };
        let t = t.max(self.now);
        let id = self.comp_id(comp);
        if self.armed[id].is_none_or(|a| t < a) {
            self.armed[id] = Some(t);
            self.push(t, Ev::Wake(comp));
        }
    }

    fn report(&self) -> ReliableReport {
        let mut link_retx = 0;
        let mut link_dups = 0;
        let mut refused = 0;
        for (s, r) in self.senders.iter().zip(&self.receivers) {
            link_retx += s.counters().retransmitted;
            link_dups += r.counters().duplicates;
            refused += r.counters().refused;
        }
        link_retx += self.path_tx.counters().retransmitted;
        link_dups += self.path_rx.counters().duplicates;
        refused += self.path_rx.counters().refused;
        let span = self
            .first_send
            .map_or(Duration::ZERO, |f| self.last_delivery - f);
        let bits = self.delivered as f64 * self.cfg.msg_bytes as f64 * 8.0;
        ReliableReport {
            recovery: self.cfg.recovery,
            seed: self.cfg.seed,
            sent: self.taken,
            delivered: self.delivered,
            misordered: self.misordered,
            corrupted: self.corrupted,
            complete: self.delivered == self.cfg.messages,
            recovered: self.recovered_us.len() as u64,
            recovered_latency: latency(&self.recovered_us),
            delivery_latency: latency(&self.delivery_us),
            goodput_bps: if span.is_zero() {
                0.0
            } else {
                bits / span.as_secs_f64()
            },
            last_delivery_ms: (self.last_delivery - Instant::ZERO).as_secs_f64() * 1e3,
            data_packets: self.data_packets,
            link_retransmissions: link_retx,
            link_duplicates: link_dups,
            refused,
            e2e_resent: self.source.counters().resent,
            sink_duplicates: self.sink.counters().duplicates,
            stalls: self.source.counters().stalls,
            max_link_in_flight: self.max_link_in_flight,
            max_held: self.max_held,
            max_outstanding: self.max_outstanding,
        }
    }
}

/// Bytes of each record: the packet size less the headers pacing adds.
fn record_len(cfg: &ReliableConfig) -> usize {
    cfg.msg_bytes
        .saturating_sub(PACING_OVERHEAD)
        .clamp(MSG_LEN, MAX_RECORD)
}

/// The latency of the shortest path from the source to the destination.
fn shortest_path(cfg: &ReliableConfig) -> Duration {
    let mut dist = vec![Duration::MAX; cfg.nodes];
    dist[cfg.src] = Duration::ZERO;
    // Bellman-Ford: the graphs are tiny.
    for _ in 0..cfg.nodes {
        for l in &cfg.links {
            for (u, v) in [(l.a, l.b), (l.b, l.a)] {
                if dist[u] != Duration::MAX && dist[u] + l.latency < dist[v] {
                    dist[v] = dist[u] + l.latency;
                }
            }
        }
    }
    if dist[cfg.dst] == Duration::MAX {
        Duration::ZERO
    } else {
        dist[cfg.dst]
    }
}

/// The distribution of `samples` (µs), in ms.
fn latency(samples: &[u64]) -> Latency {
    if samples.is_empty() {
        return Latency::default();
    }
    let mut s = samples.to_vec();
    s.sort_unstable();
    let q = |p: f64| {
        let i = ((s.len() as f64 * p).ceil() as usize).clamp(1, s.len()) - 1;
        s[i] as f64 / 1e3
    };
    Latency {
        count: s.len() as u64,
        min_ms: s[0] as f64 / 1e3,
        p50_ms: q(0.5),
        p90_ms: q(0.9),
        p99_ms: q(0.99),
        p999_ms: q(0.999),
        max_ms: s[s.len() - 1] as f64 / 1e3,
        mean_ms: s.iter().sum::<u64>() as f64 / s.len() as f64 / 1e3,
    }
}
