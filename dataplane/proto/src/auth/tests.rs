//! Sealing and opening, the replay window, key epochs, and authenticated packets through the
//! pipeline.

use std::path::Path;

use weft_shared::DropReason;
use weft_shared::config::LinkKeys;
use weft_shared::ids::{Incarnation, LinkId, NodeId, PathId};
use weft_shared::shm::fib::FibTable;
use weft_shared::time::Instant;
use weft_shared::wire::{HelloRepr, LINK_HEADER_LEN, LinkRepr, TAG_LEN, parse_packet};

use super::*;
use crate::forward::{Forwarder, LinkInfo, LinkSender, LinkTable, LocalDelivery, PipelineOutput};

const A: u16 = 1;
const B: u16 = 2;
const LINK: u16 = 3;
const K0: &str = "000102030405060708090a0b0c0d0e0f";
const K1: &str = "f0e0d0c0b0a090807060504030201000";
const K2: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn node(n: u16) -> NodeId {
    NodeId::new(n).unwrap()
}

fn link() -> LinkId {
    LinkId::new(LINK).unwrap()
}

fn keys(text: &str) -> LinkKeys {
    LinkKeys::parse(text, Path::new("t.key")).unwrap()
}

/// A sender at node `me` with `text`'s keys on the link to the other node, two peer lanes.
fn sender(me: u16, lane: u8, text: &str) -> LinkSender {
    let mut s = LinkSender::new(node(me), Incarnation(7), lane);
    let peer = if me == A { B } else { A };
    s.auth_mut()
        .set_keys(link(), node(peer), &LinkWindows::new(2, 1), &keys(text));
    s
}

fn hello() -> HelloRepr {
    HelloRepr {
        version_min: 1,
        version_max: 1,
        hello_seq: 1,
        tx_time_ns: 5,
        echo: None,
        config_hash: 9,
        key_epoch: None,
    }
}

fn control_packet(s: &mut LinkSender) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let n = s
        .write_hello(&mut buf, link(), PathId::new(0).unwrap(), &hello())
        .unwrap();
    buf[..n].to_vec()
}

fn open(t: &mut AuthTable, pkt: &mut [u8]) -> Result<usize, DropReason> {
    let (rx, _) = LinkRepr::parse(pkt)?;
    t.open(&rx, pkt)
}

#[test]
fn seal_open_round_trip_and_the_hello_announces_the_newest_epoch() {
    let mut a = sender(A, 0, &format!("0 {K0}\n1 {K2}"));
    let mut b = sender(B, 0, &format!("0 {K0}\n1 {K2}"));
    let mut pkt = control_packet(&mut a);
    let (rx, _) = LinkRepr::parse(&pkt).unwrap();
    assert!(rx.auth);
    assert_eq!(rx.key_epoch, 0, "the oldest epoch before the peer spoke");
    let plain_hello_len = LINK_HEADER_LEN + 8 + 40;
    assert_eq!(pkt.len(), plain_hello_len + TAG_LEN);
    // The body is ciphertext: the record header no longer parses as a hello record.
    assert!(parse_packet(&pkt).is_err());
    let end = open(b.auth_mut(), &mut pkt).unwrap();
    assert_eq!(end, plain_hello_len);
    let summary = parse_packet(&pkt[..end]);
    assert!(
        summary.is_err(),
        "the flag still says AUTH, so the tag is expected"
    );
    let body = &pkt[LINK_HEADER_LEN + 8..end];
    let got = HelloRepr::parse(body).unwrap();
    assert_eq!(got.key_epoch, Some(1));
    assert_eq!(got.hello_seq, 1);
}

#[test]
fn wrong_key_flipped_bits_and_truncation_are_bad_tags() {
    let mut a = sender(A, 0, &format!("0 {K0}"));
    let pkt = control_packet(&mut a);
    // Another key at the same epoch.
    let mut other = sender(B, 0, &format!("0 {K1}"));
    assert_eq!(
        open(other.auth_mut(), &mut pkt.clone()),
        Err(DropReason::BadTag)
    );
    // The same key, but the direction keys differ: a node cannot open its own packets, so a
    // packet reflected back to its sender is refused.
    let mut reflected = sender(A, 0, &format!("0 {K0}"));
    assert!(open(reflected.auth_mut(), &mut pkt.clone()).is_err());
    let mut b = sender(B, 0, &format!("0 {K0}"));
    // A flipped bit anywhere: a header bit either fails the header parse or the tag; a body or
    // tag bit fails the tag.
    for byte in 0..pkt.len() {
        for bit in 0..8 {
            let mut bad = pkt.clone();
            bad[byte] ^= 1 << bit;
            let r = open(b.auth_mut(), &mut bad);
            assert!(r.is_err(), "flipped bit {bit} of byte {byte} was accepted");
            if byte >= LINK_HEADER_LEN {
                assert_eq!(r, Err(DropReason::BadTag), "byte {byte}");
            }
        }
    }
    // Truncated tag.
    let mut short = pkt[..pkt.len() - 1].to_vec();
    assert_eq!(open(b.auth_mut(), &mut short), Err(DropReason::BadTag));
    // None of it moved the window: the real packet is still accepted, once.
    let mut good = pkt.clone();
    assert!(open(b.auth_mut(), &mut good).is_ok());
    assert_eq!(
        open(b.auth_mut(), &mut pkt.clone()),
        Err(DropReason::Replayed)
    );
}

#[test]
fn keyed_links_refuse_plaintext_and_plain_links_refuse_auth() {
    let mut plain = LinkSender::new(node(A), Incarnation(7), 0);
    let mut pkt = control_packet(&mut plain);
    let mut b = sender(B, 0, &format!("0 {K0}"));
    assert_eq!(open(b.auth_mut(), &mut pkt), Err(DropReason::BadTag));
    let mut a = sender(A, 0, &format!("0 {K0}"));
    let mut sealed = control_packet(&mut a);
    let mut unkeyed = AuthTable::new(node(B));
    assert!(matches!(
        open(&mut unkeyed, &mut sealed),
        Err(DropReason::Unsupported(_))
    ));
    let mut lane9 = LinkSender::new(node(A), Incarnation(7), 9);
    lane9.auth_mut().set_keys(
        link(),
        node(B),
        &LinkWindows::new(2, 1),
        &keys(&format!("0 {K0}")),
    );
    let mut pkt = control_packet(&mut lane9);
    assert!(matches!(
        open(b.auth_mut(), &mut pkt),
        Err(DropReason::BadField {
            field: "link.lane",
            ..
        })
    ));
}

#[test]
fn replays_are_refused_and_classes_have_their_own_windows() {
    let mut a = sender(A, 1, &format!("0 {K0}"));
    let mut b = sender(B, 0, &format!("0 {K0}"));
    let hello1 = control_packet(&mut a);
    let mut data = [0u8; 256];
    let n = a
        .write_data_record(&mut data, link(), PathId::new(0).unwrap(), &[0u8; 50], 256)
        .unwrap();
    let data = data[..n].to_vec();
    let hello2 = control_packet(&mut a);
    // The later hello first, then the older data packet: different classes, both accepted.
    assert!(open(b.auth_mut(), &mut hello2.clone()).is_ok());
    assert!(open(b.auth_mut(), &mut data.clone()).is_ok());
    assert!(
        open(b.auth_mut(), &mut hello1.clone()).is_ok(),
        "within the window"
    );
    for p in [&hello1, &hello2, &data] {
        assert_eq!(
            open(b.auth_mut(), &mut p.clone()),
            Err(DropReason::Replayed)
        );
    }
}

/// Two workers' tables with the link's one `LinkWindows`: a packet opened by one is a replay at
/// the other (a copy sent from another address or port is steered to another worker).
#[test]
fn a_replay_steered_to_another_worker_is_caught() {
    let mut a = sender(A, 1, &format!("0 {K0}"));
    let windows = LinkWindows::new(2, 1);
    let mut worker0 = AuthTable::new(node(B));
    let mut worker1 = AuthTable::new(node(B));
    for t in [&mut worker0, &mut worker1] {
        t.set_keys(link(), node(A), &windows, &keys(&format!("0 {K0}")));
    }
    let pkt = control_packet(&mut a);
    assert!(open(&mut worker0, &mut pkt.clone()).is_ok());
    assert_eq!(
        open(&mut worker1, &mut pkt.clone()),
        Err(DropReason::Replayed)
    );
    // A reload of the keys keeps the shared windows.
    worker1.set_keys(
        link(),
        node(A),
        &LinkWindows::new(2, 1),
        &keys(&format!("0 {K0}")),
    );
    assert_eq!(
        open(&mut worker1, &mut pkt.clone()),
        Err(DropReason::Replayed)
    );
    // Separate windows (as before) would take it once per worker.
    let mut lonely = AuthTable::new(node(B));
    lonely.set_keys(
        link(),
        node(A),
        &LinkWindows::new(2, 1),
        &keys(&format!("0 {K0}")),
    );
    assert!(open(&mut lonely, &mut pkt.clone()).is_ok());
}

/// A best-effort sub-lane is its own number space with its own window: packets numbered alike
/// on sub-lanes 0 and 1 are both accepted, a replay on either is refused, and a sub-lane the
/// link does not have is a bad lane.
#[test]
fn each_sub_lane_has_its_own_window() {
    let mut a = LinkSender::new(node(A), Incarnation(7), 1);
    a.auth_mut().set_keys(
        link(),
        node(B),
        &LinkWindows::new(2, 2),
        &keys(&format!("0 {K0}")),
    );
    let mut b = AuthTable::new(node(B));
    b.set_keys(
        link(),
        node(A),
        &LinkWindows::new(2, 2),
        &keys(&format!("0 {K0}")),
    );
    let packet = |s: &mut LinkSender, sub: u8| {
        let mut buf = [0u8; 512];
        let mut data = s
            .open_data(&mut buf, link(), PathId::new(0).unwrap(), sub, 512)
            .unwrap();
        let body = [0u8; 60];
        let record = crate::forward::DataRecord::Encoded {
            body: &body,
            link_seq: 0,
            flags: weft_shared::wire::RecordFlags::NONE,
        };
        assert!(data.append(&mut buf, &record).unwrap());
        let n = s.close_data(&mut buf, &data).unwrap();
        buf[..n].to_vec()
    };
    let on0 = packet(&mut a, 0);
    let on1 = packet(&mut a, 1);
    let (h0, h1) = (
        LinkRepr::parse(&on0).unwrap().0,
        LinkRepr::parse(&on1).unwrap().0,
    );
    assert_eq!((h0.lane, h1.lane), (1, 1 | 1 << 6));
    assert_eq!(
        h0.packet_number & 0xff,
        h1.packet_number & 0xff,
        "numbered alike"
    );
    for p in [&on1, &on0] {
        assert!(open(&mut b, &mut p.clone()).is_ok());
    }
    for p in [&on0, &on1] {
        assert_eq!(open(&mut b, &mut p.clone()), Err(DropReason::Replayed));
    }
    let mut two = LinkSender::new(node(A), Incarnation(7), 0);
    two.auth_mut().set_keys(
        link(),
        node(B),
        &LinkWindows::new(2, 2),
        &keys(&format!("0 {K0}")),
    );
    let mut narrow = AuthTable::new(node(B));
    narrow.set_keys(
        link(),
        node(A),
        &LinkWindows::new(2, 1),
        &keys(&format!("0 {K0}")),
    );
    assert!(matches!(
        open(&mut narrow, &mut packet(&mut two, 1)),
        Err(DropReason::BadField {
            field: "link.lane",
            ..
        })
    ));
}

#[test]
fn window_edges_and_incarnations() {
    let w = ReplayWindow::new();
    let top = 10_000u64;
    w.check(5, top).unwrap();
    w.accept(5, top).unwrap();
    assert_eq!(w.check(5, top), Err(DropReason::Replayed));
    // The W numbers at and below H: H − (W − 1) is still in, H − W is out.
    assert_eq!(w.check(5, top - (REPLAY_WINDOW - 1)), Ok(()));
    assert_eq!(w.check(5, top - REPLAY_WINDOW), Err(DropReason::Replayed));
    w.accept(5, top - (REPLAY_WINDOW - 1)).unwrap();
    assert_eq!(
        w.check(5, top - (REPLAY_WINDOW - 1)),
        Err(DropReason::Replayed)
    );
    // Moving H forward forgets what falls out and clears the reused words.
    w.accept(5, top + 64 * 5 + 3).unwrap();
    assert_eq!(
        w.check(5, top - (REPLAY_WINDOW - 1)),
        Err(DropReason::Replayed)
    );
    assert_eq!(w.check(5, top), Err(DropReason::Replayed));
    assert_eq!(w.check(5, top + 1), Ok(()));
    // Every number in the window, accepted in order, then each refused.
    let w = ReplayWindow::new();
    for n in 1..=3 * REPLAY_WINDOW {
        w.check(1, n).unwrap();
        w.accept(1, n).unwrap();
    }
    for n in 2 * REPLAY_WINDOW..=3 * REPLAY_WINDOW {
        assert_eq!(w.check(1, n), Err(DropReason::Replayed), "{n}");
    }
    // A far jump clears everything.
    w.accept(1, 100 * REPLAY_WINDOW).unwrap();
    assert_eq!(w.check(1, 100 * REPLAY_WINDOW - 1), Ok(()));
    // Older incarnation: refused. Newer: checked against an empty window, but the window moves
    // only when accept is called (after the tag verified).
    assert_eq!(w.check(0, 1), Err(DropReason::Replayed));
    assert_eq!(w.check(2, 1), Ok(()));
    assert_eq!(w.position(), (1, 100 * REPLAY_WINDOW));
    w.accept(2, 1).unwrap();
    assert_eq!(w.position(), (2, 1));
    assert_eq!(
        w.check(1, 100 * REPLAY_WINDOW + 1),
        Err(DropReason::Replayed)
    );
}

#[test]
fn a_forged_newer_incarnation_does_not_reset_the_window() {
    let mut a = sender(A, 0, &format!("0 {K0}"));
    let mut b = sender(B, 0, &format!("0 {K0}"));
    let pkt = control_packet(&mut a);
    assert!(open(b.auth_mut(), &mut pkt.clone()).is_ok());
    // A restarted sender (newer incarnation) with a forged tag.
    let mut forged = pkt.clone();
    forged[12..16].copy_from_slice(&8u32.to_be_bytes());
    assert_eq!(open(b.auth_mut(), &mut forged), Err(DropReason::BadTag));
    // The window still belongs to incarnation 7: the replay is still refused, and the real
    // packets of incarnation 7 still pass.
    assert_eq!(
        open(b.auth_mut(), &mut pkt.clone()),
        Err(DropReason::Replayed)
    );
    assert!(open(b.auth_mut(), &mut control_packet(&mut a)).is_ok());
    // A real restart (incarnation 8, numbers from 0 again) resets it.
    let mut restarted = LinkSender::new(node(A), Incarnation(8), 0);
    restarted.auth_mut().set_keys(
        link(),
        node(B),
        &LinkWindows::new(2, 1),
        &keys(&format!("0 {K0}")),
    );
    assert!(open(b.auth_mut(), &mut control_packet(&mut restarted)).is_ok());
    assert_eq!(
        open(b.auth_mut(), &mut control_packet(&mut a)),
        Err(DropReason::Replayed),
        "the old incarnation is over"
    );
}

#[test]
fn epoch_selection() {
    assert_eq!(send_epoch(&[], None), None);
    assert_eq!(send_epoch(&[3, 4], None), Some(3));
    assert_eq!(send_epoch(&[3, 4], Some(4)), Some(4));
    assert_eq!(send_epoch(&[3, 4], Some(9)), Some(4));
    assert_eq!(send_epoch(&[3, 4], Some(3)), Some(3));
    assert_eq!(send_epoch(&[3, 4], Some(1)), Some(3));
}

#[test]
fn rotation_without_a_gap() {
    // Both start with epoch 0 and hear each other.
    let mut a = sender(A, 0, &format!("0 {K0}"));
    let mut b = sender(B, 0, &format!("0 {K0}"));
    let exchange = |from: &mut LinkSender, to: &mut LinkSender| {
        let mut p = control_packet(from);
        let end = open(to.auth_mut(), &mut p).unwrap();
        let h = HelloRepr::parse(&p[LINK_HEADER_LEN + 8..end]).unwrap();
        to.auth_mut().note_peer_epoch(link(), h.key_epoch);
        LinkRepr::parse(&p).unwrap().0.key_epoch
    };
    exchange(&mut a, &mut b);
    exchange(&mut b, &mut a);
    // The operator adds epoch 1 at A first: A accepts it, but keeps sending 0 (B lacks it).
    a.auth_mut().set_keys(
        link(),
        node(B),
        &LinkWindows::new(2, 1),
        &keys(&format!("0 {K0}\n1 {K1}")),
    );
    assert_eq!(a.auth().send_epoch(link()), Some(0));
    assert_eq!(exchange(&mut a, &mut b), 0);
    assert_eq!(b.auth().send_epoch(link()), Some(0), "B holds only 0");
    // Then at B: B switches as soon as it knows A holds 1; A once B's hello says so.
    b.auth_mut().set_keys(
        link(),
        node(A),
        &LinkWindows::new(2, 1),
        &keys(&format!("0 {K0}\n1 {K1}")),
    );
    assert_eq!(b.auth().send_epoch(link()), Some(1));
    assert_eq!(exchange(&mut b, &mut a), 1);
    assert_eq!(a.auth().send_epoch(link()), Some(1));
    let old = control_packet(&mut a);
    let mut old_b = old.clone();
    assert!(open(b.auth_mut(), &mut old_b).is_ok());
    // The old key goes at both ends: epoch 1 still works, the captured packet is refused.
    a.auth_mut().set_keys(
        link(),
        node(B),
        &LinkWindows::new(2, 1),
        &keys(&format!("1 {K1}")),
    );
    b.auth_mut().set_keys(
        link(),
        node(A),
        &LinkWindows::new(2, 1),
        &keys(&format!("1 {K1}")),
    );
    assert_eq!(exchange(&mut a, &mut b), 1);
    assert_eq!(exchange(&mut b, &mut a), 1);
    assert_eq!(
        open(b.auth_mut(), &mut old.clone()),
        Err(DropReason::Replayed)
    );
    assert_eq!(b.auth().slot_epoch(link(), 0), None);
    assert_eq!(b.auth().slot_epoch(link(), 1), Some(1));
}

/// A pipeline output that records deliveries and drops and authenticates with a table.
struct AuthOut {
    table: AuthTable,
    delivered: Vec<Vec<u8>>,
    hellos: usize,
    drops: Vec<DropReason>,
}

impl PipelineOutput for AuthOut {
    fn hello(&mut self, _rx: &LinkRepr, _hello: &HelloRepr) {
        self.hellos += 1;
    }
    fn control(&mut self, _rx: &LinkRepr, _envelope: &[u8]) {}
    fn deliver(&mut self, _rx: &LinkRepr, d: &LocalDelivery<'_>, _record_body: &[u8]) {
        self.delivered.push(d.payload.to_vec());
    }
    fn forward(&mut self, _: LinkId, _: u32, _: weft_shared::wire::RecordFlags, _: &[u8]) {}
    fn drop_record(&mut self, reason: DropReason) {
        self.drops.push(reason);
    }
    fn auth(&mut self) -> Option<&mut AuthTable> {
        Some(&mut self.table)
    }
}

struct OneLink;

impl LinkTable for OneLink {
    fn link(&self, id: LinkId) -> Option<LinkInfo> {
        (id == link()).then_some(LinkInfo {
            neighbour: node(A),
            path_count: 1,
            one_way_delay_us: 0,
        })
    }
}

#[test]
fn the_pipeline_sees_plaintext_records_once() {
    use weft_shared::ids::{FlowId, Port};
    use weft_shared::wire::{DataRepr, Delivery, LinkProto, OverlayRepr, Route, Strikes};
    let mut a = sender(A, 0, &format!("0 {K0}"));
    let overlay = OverlayRepr {
        route: Route::Unicast(node(B)),
        ttl: 8,
        link_proto: LinkProto::BestEffort,
        delivery: Delivery::AsSoonAsOrdered,
        priority: 0,
        strikes: Strikes::NONE,
        src: node(A),
        src_port: Port(1),
        dst_port: Port(2),
        src_incarnation: Incarnation(7),
        flow: FlowId(1),
        seq: 1,
        deadline_us: None,
        age_us: 0,
    };
    let data = DataRepr {
        overlay,
        fragment: None,
        payload: b"secret payload",
    };
    let mut buf = [0u8; 512];
    let n = a
        .write_data(&mut buf, link(), PathId::new(0).unwrap(), &data, 512)
        .unwrap();
    let pkt = buf[..n].to_vec();
    assert!(
        !pkt.windows(6).any(|w| w == b"secret"),
        "the payload is encrypted on the wire"
    );
    let mut out = AuthOut {
        table: sender(B, 0, &format!("0 {K0}")).auth().clone(),
        delivered: Vec::new(),
        hellos: 0,
        drops: Vec::new(),
    };
    let fib = FibTable::new_boxed();
    let fwd = Forwarder::new(node(B));
    let t = Instant::from_millis(1);
    for _ in 0..2 {
        fwd.handle_datagram(t, t, &mut pkt.clone(), &fib, &OneLink, &mut out);
    }
    // A bit-flipped copy of an accepted packet fails the window before the tag is tried.
    let mut flipped = pkt.clone();
    flipped[n - 20] ^= 0x10;
    fwd.handle_datagram(t, t, &mut flipped, &fib, &OneLink, &mut out);
    // A bit-flipped copy of a packet not seen yet fails the tag, and does not spoil the real
    // one.
    let n2 = a
        .write_data(&mut buf, link(), PathId::new(0).unwrap(), &data, 512)
        .unwrap();
    let pkt2 = buf[..n2].to_vec();
    let mut flipped = pkt2.clone();
    flipped[30] ^= 0x01;
    fwd.handle_datagram(t, t, &mut flipped, &fib, &OneLink, &mut out);
    fwd.handle_datagram(t, t, &mut pkt2.clone(), &fib, &OneLink, &mut out);
    assert_eq!(
        out.delivered,
        [b"secret payload".to_vec(), b"secret payload".to_vec()]
    );
    assert_eq!(
        out.drops,
        [
            DropReason::Replayed,
            DropReason::Replayed,
            DropReason::BadTag
        ]
    );
    let mut hello = control_packet(&mut a);
    fwd.handle_datagram(t, t, &mut hello, &fib, &OneLink, &mut out);
    assert_eq!(out.hellos, 1);
}

#[test]
fn a_packed_data_packet_is_sealed_once_and_opens_with_every_record() {
    use crate::forward::DataRecord;
    use weft_shared::wire::{PacketType, RecordFlags, RecordKind, Records};
    let mut a = sender(A, 0, &format!("0 {K0}"));
    let mut b = sender(B, 0, &format!("0 {K0}"));
    let mut buf = [0u8; 1500];
    let mut open_pkt = a
        .open_data(&mut buf, link(), PathId::new(0).unwrap(), 0, 1400)
        .unwrap();
    for seq in 1..=5u32 {
        let body = [seq as u8; 100];
        let record = DataRecord::Encoded {
            body: &body,
            link_seq: seq,
            flags: RecordFlags::NONE,
        };
        assert!(open_pkt.append(&mut buf, &record).unwrap());
    }
    let len = a.close_data(&mut buf, &open_pkt).unwrap();
    assert_eq!(len, LINK_HEADER_LEN + 5 * 108 + TAG_LEN);
    let mut pkt = buf[..len].to_vec();
    let end = open(b.auth_mut(), &mut pkt).unwrap();
    let seqs: Vec<u32> = Records::new(&pkt[LINK_HEADER_LEN..end], PacketType::Data)
        .map(|r| {
            let r = r.unwrap();
            assert_eq!(r.header.kind, RecordKind::Data);
            assert_eq!(r.body, &[r.header.link_seq as u8; 100]);
            r.header.link_seq
        })
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    // One bit flipped anywhere in the packed body fails the one tag: no record gets through.
    let mut forged = buf[..len].to_vec();
    forged[LINK_HEADER_LEN + 300] ^= 1;
    let mut c = sender(B, 0, &format!("0 {K0}"));
    assert_eq!(open(c.auth_mut(), &mut forged), Err(DropReason::BadTag));
}
