//! Real Unix sockets: ports (exclusive binds, ephemeral ports, limits, `Unbind`), flow opening
//! policy, groups, and what a disconnect releases.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests unwrap to fail loudly"
)]

mod session_common;

use session_common::{Harness, Msg, best_effort};
use weft_dataplane::session::{ClientId, SessionConfig};
use weft_shared::ids::{GroupId, Port};
use weft_shared::session::{
    ClientMessage, ErrorCode, FlowHandle, LinkProtocol, RoutingMode, Strikes,
};

fn error(msg: &Msg) -> (ErrorCode, u32) {
    match msg {
        Msg::Error(code, detail, _) => (*code, *detail),
        other => panic!("expected Error, got {other:?}"),
    }
}

#[test]
fn ports_are_exclusive_per_node_and_unbind_frees_them() {
    let mut h = Harness::new("ports", SessionConfig::default());
    let (mut a, _) = h.connect("a");
    let (mut b, _) = h.connect("b");
    assert_eq!(h.bind(&mut a, 5000), Port(5000));
    let taken = h.request(&mut b, &ClientMessage::Bind { port: Port(5000) });
    assert_eq!(error(&taken), (ErrorCode::PortInUse, 5000));
    assert_eq!(
        h.bind(&mut a, 5000),
        Port(5000),
        "re-binding your own port is fine"
    );

    assert_eq!(
        h.request(&mut a, &ClientMessage::Unbind { port: Port(5000) }),
        Msg::Ok
    );
    let again = h.request(&mut a, &ClientMessage::Unbind { port: Port(5000) });
    assert_eq!(error(&again), (ErrorCode::PortNotBound, 5000));
    assert_eq!(h.bind(&mut b, 5000), Port(5000), "free again after Unbind");
    let info = h.server.client_info(h.watched[1]).unwrap();
    assert_eq!(info.ports, &[Port(5000)]);
    assert_eq!(h.server.stats().errors(ErrorCode::PortInUse), 1);
}

#[test]
fn bind_zero_picks_free_ephemeral_ports_and_limits_hold() {
    let cfg = SessionConfig {
        ephemeral_ports: 60_000..=60_002,
        max_ports: 4,
        ..SessionConfig::default()
    };
    let mut h = Harness::new("ephemeral", cfg);
    let (mut a, _) = h.connect("a");
    let (mut b, _) = h.connect("b");
    assert_eq!(h.bind(&mut b, 60_001), Port(60_001));
    let p1 = h.bind(&mut a, 0);
    let p2 = h.bind(&mut a, 0);
    assert_eq!((p1, p2), (Port(60_000), Port(60_002)), "60001 is b's");
    let none = h.request(&mut a, &ClientMessage::Bind { port: Port(0) });
    assert_eq!(error(&none), (ErrorCode::PortInUse, 0));

    // max_ports = 4: two more named ports, then TooManyPorts.
    h.bind(&mut a, 10);
    h.bind(&mut a, 11);
    let over = h.request(&mut a, &ClientMessage::Bind { port: Port(12) });
    assert_eq!(error(&over), (ErrorCode::TooManyPorts, 4));
    assert_eq!(h.server.client_info(h.watched[0]).unwrap().ports.len(), 4);
}

#[test]
fn open_flow_checks_the_port_the_service_and_the_limit() {
    let cfg = SessionConfig {
        max_flows: 2,
        max_k_paths: 3,
        ..SessionConfig::default()
    };
    let mut h = Harness::new("open-flow", cfg);
    let (mut a, _) = h.connect("a");
    let unbound = h.request(&mut a, &ClientMessage::OpenFlow(best_effort(100, 9)));
    assert_eq!(error(&unbound), (ErrorCode::PortNotBound, 100));
    h.bind(&mut a, 100);

    let mut k4 = best_effort(100, 9);
    k4.routing = RoutingMode::KPaths(4);
    let r = h.request(&mut a, &ClientMessage::OpenFlow(k4));
    assert_eq!(error(&r).0, ErrorCode::Unsupported);
    let mut realtime = best_effort(100, 9);
    realtime.protocol = LinkProtocol::Realtime;
    realtime.strikes = Strikes { n: 3, m: 2 };
    let r = h.request(&mut a, &ClientMessage::OpenFlow(realtime));
    assert_eq!(
        error(&r).0,
        ErrorCode::Unsupported,
        "realtime without a deadline"
    );
    let mut held_reliable = best_effort(100, 9);
    held_reliable.protocol = LinkProtocol::Reliable;
    held_reliable.pack_delay_us = 100;
    let r = h.request(&mut a, &ClientMessage::OpenFlow(held_reliable));
    assert_eq!(
        error(&r).0,
        ErrorCode::Unsupported,
        "a pack delay off best effort"
    );
    let mut held_long = best_effort(100, 9);
    held_long.pack_delay_us = 10_001;
    let r = h.request(&mut a, &ClientMessage::OpenFlow(held_long));
    assert_eq!(
        error(&r).0,
        ErrorCode::Unsupported,
        "a pack delay over 10 ms"
    );
    let refused = h.request(&mut a, &ClientMessage::OpenFlow(best_effort(100, 666)));
    assert_eq!(
        error(&refused).0,
        ErrorCode::Unsupported,
        "the sink's refusal"
    );
    assert!(h.sink.opened.is_empty());

    realtime.deadline_us = 50_000;
    let Msg::FlowOpened(f1, credits) = h.request(&mut a, &ClientMessage::OpenFlow(realtime)) else {
        panic!("realtime with a deadline opens")
    };
    assert_eq!(credits, 64, "the default credits");
    let (f2, _) = h.open_flow(&mut a, 100);
    assert_ne!(f1, f2);
    let over = h.request(&mut a, &ClientMessage::OpenFlow(best_effort(100, 9)));
    assert_eq!(error(&over), (ErrorCode::TooManyFlows, 2));
    assert_eq!(h.sink.opened.len(), 2);
    assert_ne!(h.sink.opened[0], h.sink.opened[1], "node-unique flow ids");

    // CloseFlow frees a slot; the old handle is dead even when the slot is reused.
    assert_eq!(
        h.request(&mut a, &ClientMessage::CloseFlow { flow: f1 }),
        Msg::Ok
    );
    assert_eq!(h.sink.closed, vec![h.sink.opened[0]]);
    let again = h.request(&mut a, &ClientMessage::CloseFlow { flow: f1 });
    assert_eq!(error(&again), (ErrorCode::UnknownFlow, f1.0));
    let (f3, _) = h.open_flow(&mut a, 100);
    assert_ne!(f3, f1);
    let stale = h.request(
        &mut a,
        &ClientMessage::Send {
            flow: f1,
            payload: b"x",
        },
    );
    assert_eq!(error(&stale), (ErrorCode::UnknownFlow, f1.0));
    let bogus = FlowHandle(0xffff_0000);
    let r = h.request(
        &mut a,
        &ClientMessage::Send {
            flow: bogus,
            payload: b"x",
        },
    );
    assert_eq!(error(&r), (ErrorCode::UnknownFlow, bogus.0));
    assert!(h.sink.sends.is_empty());
}

#[test]
fn unbind_closes_the_flows_sending_from_the_port() {
    let mut h = Harness::new("unbind-flows", SessionConfig::default());
    let (mut a, _) = h.connect("a");
    h.bind(&mut a, 1);
    h.bind(&mut a, 2);
    let (on1, _) = h.open_flow(&mut a, 1);
    let (on2, _) = h.open_flow(&mut a, 2);
    assert_eq!(
        h.request(&mut a, &ClientMessage::Unbind { port: Port(1) }),
        Msg::Ok
    );
    assert_eq!(h.sink.closed, vec![h.sink.opened[0]]);
    let dead = h.request(
        &mut a,
        &ClientMessage::Send {
            flow: on1,
            payload: b"x",
        },
    );
    assert_eq!(error(&dead).0, ErrorCode::UnknownFlow);
    let id = a.send(&ClientMessage::Send {
        flow: on2,
        payload: b"alive",
    });
    h.until("the send on port 2", |h| h.sink.sends.len() == 1);
    assert_eq!(h.sink.sends[0].src_port, Port(2));
    assert!(
        a.inbox.iter().all(|(rid, _)| *rid != id),
        "no reply to a good Send"
    );
}

#[test]
fn join_and_leave_reply_ok_and_tell_the_sink_once() {
    let cfg = SessionConfig {
        max_groups: 2,
        ..SessionConfig::default()
    };
    let mut h = Harness::new("groups", cfg);
    let (mut a, _) = h.connect("a");
    let (mut b, _) = h.connect("b");
    let (ca, cb) = (h.watched[0], h.watched[1]);
    let g = GroupId(10);
    assert_eq!(
        h.request(&mut a, &ClientMessage::Join { group: g }),
        Msg::Ok
    );
    assert_eq!(
        h.request(&mut a, &ClientMessage::Join { group: g }),
        Msg::Ok
    );
    assert_eq!(
        h.request(&mut b, &ClientMessage::Join { group: g }),
        Msg::Ok
    );
    assert_eq!(
        h.sink.joined,
        vec![(g, ca), (g, cb)],
        "a repeat Join is not reported"
    );
    assert_eq!(h.server.group_members(g), 2);

    let zero = h.request(&mut a, &ClientMessage::Join { group: GroupId(0) });
    assert_eq!(error(&zero).0, ErrorCode::BadRequest);
    assert_eq!(
        h.request(&mut a, &ClientMessage::Join { group: GroupId(11) }),
        Msg::Ok
    );
    let over = h.request(&mut a, &ClientMessage::Join { group: GroupId(12) });
    assert_eq!(error(&over), (ErrorCode::TooManyGroups, 2));

    assert_eq!(
        h.request(&mut a, &ClientMessage::Leave { group: g }),
        Msg::Ok
    );
    assert_eq!(
        h.request(&mut a, &ClientMessage::Leave { group: g }),
        Msg::Ok
    );
    assert_eq!(h.sink.left, vec![(g, ca)], "leaving twice is reported once");
    assert_eq!(h.server.group_members(g), 1);
}

#[test]
fn a_disconnect_releases_ports_flows_and_groups() {
    let mut h = Harness::new("disconnect", SessionConfig::default());
    let (mut a, _) = h.connect("a");
    let (mut b, _) = h.connect("b");
    let ca = h.watched[0];
    h.bind(&mut a, 6000);
    h.open_flow(&mut a, 6000);
    for g in [20, 21] {
        assert_eq!(
            h.request(&mut a, &ClientMessage::Join { group: GroupId(g) }),
            Msg::Ok
        );
    }
    let taken = h.request(&mut b, &ClientMessage::Bind { port: Port(6000) });
    assert_eq!(error(&taken).0, ErrorCode::PortInUse);

    // The client just goes away: no Goodbye.
    drop(a);
    h.until("the server to notice", |h| h.closed == vec![ca]);
    let mut left = h.sink.left.clone();
    left.sort();
    assert_eq!(left, vec![(GroupId(20), ca), (GroupId(21), ca)]);
    assert_eq!(h.sink.closed, h.sink.opened);
    assert_eq!(h.server.group_members(GroupId(20)), 0);
    assert_eq!(h.bind(&mut b, 6000), Port(6000), "the port is free again");

    // Goodbye does the same, and the slot is free for the next client.
    b.send(&ClientMessage::Goodbye);
    assert!(h.wait_closed(&mut b).is_empty());
    let (mut c, _) = h.connect("c");
    assert_eq!(h.watched, vec![ClientId(0)]);
    assert_eq!(h.bind(&mut c, 6000), Port(6000));
    let s = h.server.stats();
    assert_eq!((s.clients, s.closed), (1, 2));

    // The node may also close a client itself (a stall timeout, say): the same release.
    let (mut d, _) = h.connect("d");
    let cd = h.watched[1];
    h.bind(&mut d, 7000);
    assert_eq!(
        h.request(&mut d, &ClientMessage::Join { group: GroupId(30) }),
        Msg::Ok
    );
    h.server.disconnect(cd, &mut h.sink);
    assert_eq!(h.sink.left.last(), Some(&(GroupId(30), cd)));
    h.watched.retain(|&w| w != cd); // Unwatch, then reap.
    h.server.reap(cd);
    assert!(h.wait_closed(&mut d).is_empty());
    assert_eq!(h.bind(&mut c, 7000), Port(7000));
    assert_eq!(h.server.stats().clients, 1);
}

#[test]
fn the_node_counts_local_members_per_group_and_caps_its_distinct_groups() {
    let cfg = SessionConfig {
        max_node_groups: 3,
        ..SessionConfig::default()
    };
    let mut h = Harness::new("node-groups", cfg);
    let (mut a, _) = h.connect("a");
    let (mut b, _) = h.connect("b");
    let groups = |h: &Harness| h.server.local_groups().collect::<Vec<_>>();
    let epoch0 = h.server.group_epoch();
    for g in [5, 6] {
        let join = ClientMessage::Join { group: GroupId(g) };
        assert_eq!(h.request(&mut a, &join), Msg::Ok);
    }
    let join5 = ClientMessage::Join { group: GroupId(5) };
    assert_eq!(h.request(&mut b, &join5), Msg::Ok);
    assert_eq!(groups(&h), [(GroupId(5), 2), (GroupId(6), 1)]);
    let epoch1 = h.server.group_epoch();
    assert!(epoch1 > epoch0, "every join moves the epoch");
    // A repeat join changes nothing.
    assert_eq!(h.request(&mut b, &join5), Msg::Ok);
    assert_eq!(h.server.group_epoch(), epoch1);

    // The third distinct group fits; a fourth does not, but more members of known ones do.
    let join7 = ClientMessage::Join { group: GroupId(7) };
    assert_eq!(h.request(&mut b, &join7), Msg::Ok);
    let over = h.request(&mut b, &ClientMessage::Join { group: GroupId(8) });
    assert_eq!(error(&over), (ErrorCode::TooManyGroups, 3));
    assert_eq!(h.request(&mut a, &join7), Msg::Ok);
    assert_eq!(
        groups(&h),
        [(GroupId(5), 2), (GroupId(6), 1), (GroupId(7), 2)]
    );

    // A leave and a disconnect take their members away; an emptied group is gone.
    let leave6 = ClientMessage::Leave { group: GroupId(6) };
    assert_eq!(h.request(&mut a, &leave6), Msg::Ok);
    let epoch2 = h.server.group_epoch();
    drop(a);
    h.until("the server to notice", |h| h.server.stats().clients == 1);
    assert_eq!(groups(&h), [(GroupId(5), 1), (GroupId(7), 1)]);
    assert!(h.server.group_epoch() > epoch2);
    // Room again for a new group.
    let join8 = ClientMessage::Join { group: GroupId(8) };
    assert_eq!(h.request(&mut b, &join8), Msg::Ok);
}
