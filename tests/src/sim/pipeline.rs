//! The pipeline's output on a simulated node: what worker 0's `Out` does with the forwarder's
//! decisions (`dataplane/engine/src/worker.rs`). Hellos go to the link monitors, control
//! envelopes to the control plane (link state to the router, group state to the group state),
//! deliveries to the simulation (group-addressed ones only where the node has a local member),
//! forwards to the link's active path, through the node's misbehaviour if it has one.

use weft_proto::forward::{LinkSender, LocalDelivery, PipelineOutput, hello_fields};
use weft_proto::link_monitor::LinkMonitor;
use weft_routing::link_state::Router;
use weft_shared::DropReason;
use weft_shared::ids::{Incarnation, LinkId};
use weft_shared::time::Instant;
use weft_shared::wire::{HelloRepr, LinkRepr, RecordFlags};

use crate::linkmodel::Rng;
use crate::sim::groups::{self, NodeGroups};
use crate::sim::node::{
    BUF_LEN, Class, Ctx, DROP_MISBEHAVIOUR, LinkSet, Misbehaviour, Output, Packet, data_class,
    send_on_link,
};

/// The pipeline's output on a simulated node (the engine's `Out` for worker 0).
pub(crate) struct Out<'a, 'c> {
    pub(crate) now: Instant,
    pub(crate) mine: Incarnation,
    pub(crate) monitors: &'a mut [LinkMonitor],
    pub(crate) links: &'a LinkSet,
    pub(crate) router: &'a mut Router,
    pub(crate) groups: &'a mut NodeGroups,
    pub(crate) sender: &'a mut LinkSender,
    pub(crate) behaviour: Misbehaviour,
    pub(crate) rng: &'a mut Rng,
    pub(crate) ctx: &'a mut Ctx<'c>,
    pub(crate) punted: bool,
    /// The monitor a hello went to.
    pub(crate) hello_to: Option<usize>,
    pub(crate) hellos_ignored: u64,
    pub(crate) control_refused: u64,
}

impl Out<'_, '_> {
    fn send(&mut self, link: LinkId, body: &[u8], class: Class) {
        send_on_link(
            self.links,
            self.sender,
            link,
            class,
            self.ctx,
            |s, buf, link, path, max| s.write_data_record(buf, link, path, body, max),
        );
    }
}

impl PipelineOutput for Out<'_, '_> {
    fn hello(&mut self, rx: &LinkRepr, hello: &HelloRepr) {
        let Some(i) = self.links.position(rx.link) else {
            return;
        };
        self.hello_to = Some(i);
        let fields = hello_fields(rx, hello, self.mine);
        if self.monitors[i]
            .handle_hello(self.now, rx.path, &fields)
            .is_err()
        {
            self.hellos_ignored += 1;
        }
    }

    fn control(&mut self, rx: &LinkRepr, envelope: &[u8]) {
        self.punted = true;
        let handled = groups::dispatch_control(
            self.router,
            &mut self.groups.state,
            self.now,
            rx.link,
            envelope,
        );
        if handled.is_err() {
            self.control_refused += 1;
        }
    }

    fn deliver(&mut self, _rx: &LinkRepr, d: &LocalDelivery<'_>, _record_body: &[u8]) {
        let mut stamp = [0u8; 8];
        if let Some(head) = d.payload.get(..8) {
            stamp.copy_from_slice(head);
        }
        let sent_at = Instant::from_nanos(u64::from_le_bytes(stamp));
        let class = Class::Data {
            src: d.src,
            flow: d.flow,
            seq: d.seq,
        };
        self.groups.deliver(d.to, class, sent_at, self.ctx.out);
    }

    fn forward(&mut self, link: LinkId, link_seq: u32, flags: RecordFlags, record_body: &[u8]) {
        // The simulated nodes run no real-time state (`realtime()` is `None`), so only best
        // effort comes here: no link sequence, no flags.
        debug_assert_eq!((link_seq, flags), (0, RecordFlags::NONE));
        let class = data_class(record_body);
        let dropped = Output::Drop {
            link: Some(link),
            code: DROP_MISBEHAVIOUR,
            class,
        };
        match self.behaviour {
            Misbehaviour::Honest | Misbehaviour::Flood { .. } => {
                self.send(link, record_body, class);
            }
            Misbehaviour::DropAll => self.ctx.out.push(dropped),
            Misbehaviour::DropFraction(p) => {
                if self.rng.chance(p) {
                    self.ctx.out.push(dropped);
                } else {
                    self.send(link, record_body, class);
                }
            }
            Misbehaviour::Delay(d) => {
                let mut buf = self.ctx.pool.take();
                let len = record_body.len().min(BUF_LEN);
                buf[..len].copy_from_slice(&record_body[..len]);
                self.ctx.out.push(Output::Later {
                    at: self.now + d,
                    link,
                    packet: Packet::new(buf, len),
                });
            }
            Misbehaviour::Duplicate(copies) => {
                for _ in 0..=copies {
                    self.send(link, record_body, class);
                }
            }
        }
    }

    fn multicast_copies(&mut self, copies: u32) {
        self.groups.copies += u64::from(copies);
    }

    fn drop_record(&mut self, reason: DropReason) {
        self.ctx.out.push(Output::Drop {
            link: None,
            code: reason.index() as u64,
            class: Class::Control,
        });
    }
}
