//! The destination end of real-time flows on worker 0: one [`DeadlineBuffer`] per flow arriving
//! at this node, releasing messages to the local client in order, at origin + deadline or as
//! soon as order allows (the flow's choice, `svc_flags`), and counting each message as on time,
//! recovered, late or lost (`docs/realtime.md`).
//!
//! A flow is known by (source node, source incarnation, flow id) and created by its first
//! message. Memory is fixed at start-up: at most [`MAX_FLOWS`] flows, each a deadline buffer
//! spanning [`FLOW_SPAN`] sequences, and one payload pool of [`POOL_SLOTS`] slots shared by all
//! flows. A message that finds the pool or the flow table full is dropped and counted
//! `QueueFull`. A flow with nothing held for [`IDLE_TIMEOUT`] is retired (its counters go to the
//! log) and its place reused.
//!
//! Origin times never cross hosts: a message's origin on this node's clock is its arrival time
//! less its age (`age_us`, accumulated hop by hop from measured link delays).

use std::time::Duration;
use weft_shared::session::DeliveredTo;

use weft_proto::forward::{LocalDelivery, RtDelivery};
use weft_proto::realtime::{ArrivalOutcome, DeadlineBuffer, DeadlineParams, FlowStats};
use weft_shared::DropReason;
use weft_shared::ids::{FlowId, Incarnation, NodeId, Port};
use weft_shared::shm::{Counter, WorkerCounters};
use weft_shared::time::Instant;

/// Real-time flows tracked at once at this destination.
pub const MAX_FLOWS: usize = 64;
/// Sequences one flow's buffer spans (rate × deadline must stay below it: 4,096 is 200 ms at
/// 20,000 messages/s).
pub const FLOW_SPAN: u32 = 4096;
/// Payload slots shared by every flow's held messages.
pub const POOL_SLOTS: usize = 8192;
/// A flow with nothing held for this long is retired.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where released messages go (the session server, or a test).
pub trait ReleaseSink {
    /// Hands a released message to the client on `port`; `latency` is release − origin.
    fn release(
        &mut self,
        flow: &FlowKey,
        seq: u64,
        latency: Duration,
        payload: &[u8],
    ) -> Result<(), DropReason>;
}

/// Who a flow is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey {
    /// The source node.
    pub src: NodeId,
    /// Its data-plane incarnation.
    pub incarnation: Incarnation,
    /// The flow id.
    pub flow: FlowId,
    /// The source port.
    pub src_port: Port,
    /// The destination port on this node.
    pub dst_port: Port,
    /// How the flow is addressed (to this node, or to a group with members here).
    pub to: DeliveredTo,
}

struct Flow {
    key: FlowKey,
    buffer: DeadlineBuffer<u32>,
    last_active: Instant,
    /// What of `buffer.stats()` was already added to the worker counters.
    counted: Counted,
}

#[derive(Clone, Copy, Default)]
struct Counted {
    on_time: u64,
    recovered: u64,
    late: u64,
    lost: u64,
}

/// The payloads of held messages, in fixed slots.
struct Pool {
    bytes: Box<[u8]>,
    lens: Box<[u16]>,
    free: Vec<u32>,
    slot_len: usize,
}

impl Pool {
    fn new(slots: usize, slot_len: usize) -> Self {
        Pool {
            bytes: vec![0; slots * slot_len].into_boxed_slice(),
            lens: vec![0; slots].into_boxed_slice(),
            free: (0..slots as u32).rev().collect(),
            slot_len,
        }
    }

    fn put(&mut self, payload: &[u8]) -> Result<u32, DropReason> {
        if payload.len() > self.slot_len {
            return Err(DropReason::BadLength {
                field: "deliver.payload",
                value: payload.len(),
            });
        }
        let slot = self.free.pop().ok_or(DropReason::QueueFull)?;
        let at = slot as usize * self.slot_len;
        self.bytes[at..at + payload.len()].copy_from_slice(payload);
        self.lens[slot as usize] = payload.len() as u16;
        Ok(slot)
    }

    fn get(&self, slot: u32) -> &[u8] {
        let at = slot as usize * self.slot_len;
        &self.bytes[at..at + usize::from(self.lens[slot as usize])]
    }

    fn free(&mut self, slot: u32) {
        self.free.push(slot);
    }
}

/// Worker 0's real-time destinations (module doc).
pub struct DeadlineFlows {
    flows: Vec<Option<Flow>>,
    pool: Pool,
}

impl DeadlineFlows {
    /// The table, with payload slots of `max_payload` bytes.
    pub fn new(max_payload: usize) -> Self {
        DeadlineFlows {
            flows: (0..MAX_FLOWS).map(|_| None).collect(),
            pool: Pool::new(POOL_SLOTS, max_payload.max(1)),
        }
    }

    /// Flows being tracked.
    pub fn len(&self) -> usize {
        self.flows.iter().flatten().count()
    }

    /// Whether no flow is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A real-time message for this node arrived at `now`: buffers it. Late and duplicate
    /// messages are counted by the flow (and `late` by the worker counters), not as drops.
    pub fn handle(
        &mut self,
        now: Instant,
        d: &LocalDelivery<'_>,
        rt: RtDelivery,
        counters: &WorkerCounters,
    ) -> Result<(), DropReason> {
        let key = FlowKey {
            src: d.src,
            incarnation: d.src_incarnation,
            flow: d.flow,
            src_port: d.src_port,
            dst_port: d.dst_port,
            to: d.to,
        };
        // Flows number their messages from 0. A flow whose first messages were lost on the way
        // (its first arrival is not 0) must still wait for them, so a buffer made near the
        // start of a flow starts at 0; one made later (a flow retired while idle and resumed)
        // starts where it finds the flow.
        let first = if d.seq < u64::from(FLOW_SPAN / 2) {
            0
        } else {
            d.seq
        };
        let i = self.find_or_create(now, key, rt, first)?;
        let slot = self.pool.put(d.payload)?;
        let origin = Instant::from_nanos(
            now.as_nanos()
                .saturating_sub(u64::from(d.age_us).saturating_mul(1000)),
        );
        let Some(flow) = self.flows[i].as_mut() else {
            self.pool.free(slot);
            return Err(DropReason::QueueFull);
        };
        flow.last_active = now;
        let outcome = flow
            .buffer
            .handle_packet(now, d.seq, origin, rt.recovered, slot);
        let result = match outcome {
            ArrivalOutcome::Buffered => return Ok(()),
            ArrivalOutcome::Late | ArrivalOutcome::Duplicate => Ok(()),
            ArrivalOutcome::Overflow => Err(DropReason::QueueFull),
        };
        self.pool.free(slot);
        sync_counters(flow, counters);
        result
    }

    fn find_or_create(
        &mut self,
        now: Instant,
        key: FlowKey,
        rt: RtDelivery,
        first: u64,
    ) -> Result<usize, DropReason> {
        if let Some(i) = self
            .flows
            .iter()
            .position(|f| f.as_ref().is_some_and(|f| f.key == key))
        {
            return Ok(i);
        }
        let i = match self.flows.iter().position(Option::is_none) {
            Some(i) => i,
            None => self.retire_idle(now).ok_or(DropReason::QueueFull)?,
        };
        let params = DeadlineParams {
            deadline: Duration::from_micros(u64::from(rt.deadline_us)),
            delivery: rt.delivery,
            capacity: FLOW_SPAN,
        };
        self.flows[i] = Some(Flow {
            key,
            buffer: DeadlineBuffer::new(params, Some(first)),
            last_active: now,
            counted: Counted::default(),
        });
        Ok(i)
    }

    /// Retires the flow idle the longest, if one is idle; returns its place.
    fn retire_idle(&mut self, now: Instant) -> Option<usize> {
        let (i, _) = self
            .flows
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.as_ref().map(|f| (i, f)))
            .filter(|(_, f)| {
                f.buffer.held() == 0 && now.saturating_duration_since(f.last_active) >= IDLE_TIMEOUT
            })
            .min_by_key(|(_, f)| f.last_active)?;
        if let Some(f) = self.flows[i].take() {
            log_flow("retired", &f.key, f.buffer.stats());
        }
        Some(i)
    }

    /// Releases every message due at `now` to `sink`, and retires idle flows.
    pub fn poll(&mut self, now: Instant, sink: &mut impl ReleaseSink, counters: &WorkerCounters) {
        for entry in self.flows.iter_mut() {
            let Some(flow) = entry.as_mut() else {
                continue;
            };
            while let Some(r) = flow.buffer.poll_release(now) {
                let result = sink.release(&flow.key, r.seq, r.latency, self.pool.get(r.item));
                self.pool.free(r.item);
                match result {
                    Ok(()) => {
                        counters.add(Counter::Delivered, 1);
                        match flow.key.to {
                            DeliveredTo::Node => {}
                            DeliveredTo::Multicast(_) => counters.add(Counter::McastDelivered, 1),
                            DeliveredTo::Anycast(_) => counters.add(Counter::AnycastDelivered, 1),
                        }
                    }
                    Err(reason) => counters.add_drop(reason, 1),
                }
            }
            sync_counters(flow, counters);
            if flow.buffer.held() == 0
                && now.saturating_duration_since(flow.last_active) >= IDLE_TIMEOUT
            {
                log_flow("idle, retired", &flow.key, flow.buffer.stats());
                *entry = None;
            }
        }
    }

    /// When the next message is due for release.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.flows
            .iter()
            .flatten()
            .filter_map(|f| f.buffer.poll_timeout())
            .min()
    }

    /// Each tracked flow's key and counters.
    pub fn stats(&self) -> impl Iterator<Item = (&FlowKey, &FlowStats)> {
        self.flows
            .iter()
            .flatten()
            .map(|f| (&f.key, f.buffer.stats()))
    }

    /// Logs every flow's counters (at exit).
    pub fn log_all(&self) {
        for (key, stats) in self.stats() {
            log_flow("at exit", key, stats);
        }
    }
}

/// Adds what the flow counted since the last call to the worker counters.
fn sync_counters(flow: &mut Flow, counters: &WorkerCounters) {
    let s = flow.buffer.stats();
    let c = &mut flow.counted;
    for (counter, now, before) in [
        (Counter::RtOnTime, s.on_time, &mut c.on_time),
        (Counter::RtRecovered, s.recovered, &mut c.recovered),
        (Counter::RtLate, s.late, &mut c.late),
        (Counter::RtLost, s.lost, &mut c.lost),
    ] {
        // `lost` can shrink (a lost message that turns up late moves to `late`).
        if now > *before {
            counters.add(counter, now - *before);
        }
        *before = now;
    }
}

/// One line per flow on stderr: its counters and latency percentiles.
fn log_flow(why: &str, key: &FlowKey, s: &FlowStats) {
    let ms = |q: f64| s.latency.quantile(q).map_or(0.0, |d| d.as_secs_f64() * 1e3);
    eprintln!(
        "weft-dataplane: real-time flow {}:{} -> port {} (flow {}, incarnation {}) {why}: \
         on time {} (recovered {}), late {}, lost {}, duplicates {}, overflow {}; latency ms \
         p50 {:.1} p99 {:.1} p99.9 {:.1}",
        key.src,
        key.src_port.0,
        key.dst_port.0,
        key.flow.0,
        key.incarnation.0,
        s.on_time,
        s.recovered,
        s.late,
        s.lost,
        s.duplicates,
        s.overflow,
        ms(0.5),
        ms(0.99),
        ms(0.999),
    );
}
