//! Real Unix sockets: malformed messages are answered and the session goes on, framing errors
//! and garbage close only the offending client, a request flood from a client that does not
//! read pauses it without losing a reply, and seeded random garbage from many clients leaves a
//! well-behaved client unaffected.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests unwrap to fail loudly"
)]

mod session_common;

use std::io::{ErrorKind, Write};

use session_common::{Harness, Msg, TestClient};
use weft_dataplane::session::{DeliverInfo, MIN_OUT_BUF_BYTES, REPLY_RESERVE, SessionConfig};
use weft_shared::ids::{FlowId, NodeId, Port};
use weft_shared::session::{ClientMessage, ErrorCode, MAX_FRAME_SIZE, MAX_PAYLOAD};

/// A raw frame: any type, flags and body.
fn frame(msg_type: u8, flags: u8, request_id: u32, body: &[u8]) -> Vec<u8> {
    let mut v = u32::try_from(8 + body.len())
        .unwrap()
        .to_be_bytes()
        .to_vec();
    v.extend_from_slice(&[msg_type, flags, 0, 0]);
    v.extend_from_slice(&request_id.to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn error_of(m: &(u32, Msg)) -> (u32, ErrorCode, u32) {
    match m {
        (id, Msg::Error(code, detail, _)) => (*id, *code, *detail),
        other => panic!("expected Error, got {other:?}"),
    }
}

/// Checks that `c` is fully served: a bind, an unbind and a delivered message.
fn still_served(h: &mut Harness, c: &mut TestClient, port: u16) {
    assert_eq!(h.bind(c, port), Port(port));
    let info = DeliverInfo {
        from_node: NodeId::new(2).unwrap(),
        from_port: Port(1),
        flow: FlowId(1),
        seq: u64::from(port),
        age_us: 0,
        group: None,
    };
    h.server.deliver(Port(port), &info, b"still here").unwrap();
    match h.recv(c) {
        (0, Msg::Deliver(d)) => assert_eq!(d.seq, u64::from(port)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.request(c, &ClientMessage::Unbind { port: Port(port) }),
        Msg::Ok
    );
}

#[test]
fn malformed_messages_get_an_error_and_the_session_goes_on() {
    let mut h = Harness::new("malformed", SessionConfig::default());
    let (mut c, _) = h.connect("sloppy");
    let mut open_flow_body = [0u8; 20];
    open_flow_body[10] = 9; // An unknown routing mode.
    let mut bytes = Vec::new();
    bytes.extend(frame(0x02, 0, 11, &[0, 5, 0])); // Bind with a trailing byte.
    bytes.extend(frame(0x42, 0, 12, &[])); // Unknown type.
    bytes.extend(frame(0x84, 0, 13, &[])); // A server's type (Ok) from a client.
    bytes.extend(frame(0x02, 1, 14, &[0, 5])); // Flags set.
    bytes.extend(frame(0x04, 0, 15, &open_flow_body));
    let mut send_body = vec![0u8; 4 + MAX_PAYLOAD + 1]; // A payload one byte over the limit.
    send_body[3] = 1;
    bytes.extend(frame(0x06, 0, 16, &send_body));
    bytes.extend(frame(0x07, 0, 17, &[0, 0])); // Join with a short body.
    c.write_all(&bytes);
    let mut got = Vec::new();
    for _ in 0..7 {
        got.push(error_of(&h.recv(&mut c)));
    }
    assert_eq!(
        got,
        vec![
            (11, ErrorCode::BadRequest, 0),
            (12, ErrorCode::BadRequest, 0x42),
            (13, ErrorCode::BadRequest, 0x84),
            (14, ErrorCode::BadRequest, 0),
            (15, ErrorCode::BadRequest, 0),
            (16, ErrorCode::MessageTooLarge, MAX_PAYLOAD as u32),
            (17, ErrorCode::BadRequest, 0),
        ]
    );
    still_served(&mut h, &mut c, 500);
    let s = h.server.stats();
    assert_eq!((s.clients, s.closed), (1, 0));
    assert_eq!(s.errors(ErrorCode::BadRequest), 6);
}

#[test]
fn framing_errors_and_cut_frames_close_only_that_client() {
    let mut h = Harness::new("framing", SessionConfig::default());
    let (mut good, _) = h.connect("good");

    let (mut short, _) = h.connect("short");
    short.write_all(&[0, 0, 0, 3, 0x02, 0, 0, 0, 0, 0, 0, 1]);
    let got = h.wait_closed(&mut short);
    assert_eq!(
        got.iter().map(error_of).collect::<Vec<_>>(),
        vec![(0, ErrorCode::BadRequest, 3)]
    );

    let (mut huge, _) = h.connect("huge");
    huge.write_all(&70_000u32.to_be_bytes());
    let got = h.wait_closed(&mut huge);
    let want = (0, ErrorCode::MessageTooLarge, MAX_FRAME_SIZE as u32);
    assert_eq!(got.iter().map(error_of).collect::<Vec<_>>(), vec![want]);

    // Half a Send, then the client goes away: closed, nothing reaches the sink.
    let (mut cut, _) = h.connect("cut");
    h.bind(&mut cut, 9);
    let (flow, _) = h.open_flow(&mut cut, 9);
    let whole = session_common::batch(
        1,
        &[ClientMessage::Send {
            flow,
            payload: b"0123456789",
        }],
    );
    cut.write_all(&whole[..whole.len() - 4]);
    for _ in 0..3 {
        h.step();
    }
    drop(cut);
    h.until("the cut client's close", |h| h.closed.len() == 3);
    assert!(h.sink.sends.is_empty());
    assert_eq!(h.sink.closed.len(), 1, "its flow was closed");

    still_served(&mut h, &mut good, 501);
    let s = h.server.stats();
    assert_eq!((s.clients, s.closed), (1, 3));
}

#[test]
fn a_request_flood_from_a_client_that_does_not_read_is_paused_without_losing_replies() {
    let cfg = SessionConfig {
        out_buf_bytes: MIN_OUT_BUF_BYTES,
        ..SessionConfig::default()
    };
    let mut h = Harness::new("flood", cfg);
    let (mut flood, _) = h.connect("flood");
    let (mut good, _) = h.connect("good");
    const N: u32 = 30_000;
    let bytes: Vec<u8> = (1..=N).flat_map(|id| frame(0x42, 0, id, &[])).collect();

    // Write without reading until the server stops taking frames from this client.
    let mut off = 0;
    let mut last_frames = 0;
    let mut still = 0;
    while still < 50 {
        if off < bytes.len() {
            match flood.stream.write(&bytes[off..]) {
                Ok(n) => off += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        h.step();
        let frames = h.server.stats().frames_in;
        still = if frames == last_frames { still + 1 } else { 0 };
        last_frames = frames;
    }
    assert!(
        last_frames < u64::from(N),
        "the server never paused the flood"
    );
    println!("paused after {last_frames} of {N} frames, {off} B written");
    let waiting = h.server.client_info(h.watched[0]).unwrap().out_bytes;
    assert!(
        waiting > MIN_OUT_BUF_BYTES - REPLY_RESERVE,
        "paused by its full output: {waiting}"
    );
    assert!(h.server.flush(), "output still waiting");
    // Meanwhile another client is served as usual.
    still_served(&mut h, &mut good, 502);

    // Now the flood client reads: every request gets its Error, in order, none lost.
    let mut next_id = 1;
    h.until("every reply", |_| {
        if off < bytes.len() {
            if let Ok(n) = flood.stream.write(&bytes[off..]) {
                off += n;
            }
        }
        flood.poll();
        for m in flood.inbox.drain(..) {
            assert_eq!(error_of(&m), (next_id, ErrorCode::BadRequest, 0x42));
            next_id += 1;
        }
        next_id > N
    });
    let s = h.server.stats();
    assert_eq!(s.reply_overflows, 0);
    assert_eq!(s.errors(ErrorCode::BadRequest), u64::from(N));
}

/// A xorshift64* generator; the seed is printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn seeded_garbage_from_many_clients_never_disturbs_a_good_one() {
    let seed = 0x5eed_0000_0000_0001;
    println!("seed {seed:#x}");
    let mut rng = Rng(seed);
    let mut h = Harness::new("garbage", SessionConfig::default());
    let (mut good, _) = h.connect("good");
    let mut garbage = Vec::new();
    for round in 0..40u16 {
        let mut c = if rng.below(2) == 0 {
            h.connect("noisy").0
        } else {
            TestClient::connect(&h.path)
        };
        let mut bytes = Vec::new();
        match rng.below(3) {
            0 => {
                let n = 1 + rng.below(3000) as usize;
                bytes = rng.bytes(n);
            }
            1 => {
                // Frame-like: a plausible length and type, random body.
                for _ in 0..1 + rng.below(20) {
                    let len = rng.below(200) as usize;
                    let body = rng.bytes(len);
                    let t = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x84]
                        [rng.below(10) as usize];
                    bytes.extend(frame(t, 0, rng.next() as u32, &body));
                }
            }
            _ => {
                // Valid frames with one corrupted byte somewhere.
                let msgs = [
                    ClientMessage::Bind {
                        port: Port(round + 1000),
                    },
                    ClientMessage::Join {
                        group: weft_shared::ids::GroupId(5),
                    },
                ];
                bytes = session_common::batch(1, &msgs);
                let i = rng.below(bytes.len() as u64) as usize;
                bytes[i] ^= 1 << rng.below(8);
            }
        }
        c.write_all(&bytes);
        for _ in 0..3 {
            h.step();
        }
        c.poll();
        if rng.below(2) == 0 {
            drop(c); // Gone without a word, maybe mid-frame.
        } else {
            garbage.push(c);
        }
        still_served(&mut h, &mut good, 2000 + round);
    }
    drop(garbage);
    h.until("every garbage client to close", |h| {
        h.server.stats().clients == 1
    });
    still_served(&mut h, &mut good, 3000);
    assert_eq!(h.server.stats().reply_overflows, 0);
}
