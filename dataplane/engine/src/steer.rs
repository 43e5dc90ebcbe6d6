//! The classic BPF program that steers an interface's incoming datagrams within its
//! `SO_REUSEPORT` group: hellos, feedback and control to worker 0's control socket, data to the
//! workers' data sockets, so a data flood that fills the data sockets' receive queues never
//! costs a hello (docs/dataplane.md, "Sockets and steering").
//!
//! # The group
//!
//! The kernel numbers a group's sockets in the order they were bound, and a reuseport program
//! returns such an index. [`crate::sockets`] binds each interface's sockets in this order:
//!
//! | index | socket |
//! |---|---|
//! | `0 .. W` | the data socket of worker `0 .. W` (W workers) |
//! | `W` | the control socket, read by worker 0 |
//!
//! # The program
//!
//! For `SO_ATTACH_REUSEPORT_CBPF` the packet starts at the UDP payload, that is at the Weft link
//! header; `SKF_NET_OFF` reaches the IP header. It mirrors
//! [`peek_class`](weft_shared::wire::peek_class):
//!
//! 1. A source key: the IPv4 source address (IPv6: its four words XORed) XOR the UDP source
//!    port, kept in scratch word 0. (The kernel's own 4-tuple hash is not visible to a classic
//!    program, and `SKF_AD_RXHASH` is 0 for datagrams from unconnected sockets on loopback.)
//! 2. A payload shorter than the link header, or with another version byte: data.
//! 3. A packet-type byte of a hello, feedback or control packet (every [`PacketType`] whose
//!    class is not data): return `W`, the control socket.
//! 4. Anything else is data: XOR the lane byte's worker bits (byte 3 of the link header, low
//!    six bits) into the key's top byte, mix the key (xorshift-multiply) and return
//!    `(key % W + sub) % W`, `sub` the lane byte's top two bits (the sender's sub-lane,
//!    [`weft_shared::wire::lane`]). One sender lane from one source address and port always
//!    lands on the same worker, so packet order within a lane is kept; a neighbour's workers
//!    spread over the workers, and the sub-lanes of one of them (up to W) land on distinct ones.
//!
//! Malformed datagrams therefore go to a data socket, where the worker counts them as drops. A
//! load beyond the packet ends a classic program with 0 (worker 0's data socket); the program
//! checks the length before it reads the header, so only the IP header loads could do that,
//! and they lie inside every IP packet. The program never returns an index past `W`, so the
//! kernel's fallback (its own hash, which could pick the control socket) is never used.
//!
//! The kernel runs the program once per `skb`: a GSO send (on loopback or a veth pair) or a GRO
//! super-packet is steered as a whole by its first datagram. The engine sends hellos and
//! control packets alone ([`crate::uring::TxSlot::queue_alone`]), never coalesced behind data.

use std::io;
use std::net::UdpSocket;

use nix::sys::socket::{setsockopt, sockopt};
use weft_shared::wire::{LINK_HEADER_LEN, PacketType, PriorityClass, WIRE_VERSION};

/// Offset of the lane byte in the link header (version, type, flags, lane).
const LANE_OFFSET: u32 = 3;
/// The sub-lane's position in the lane byte, and the mask of the worker lane below it
/// (`weft_shared::wire::lane`).
const SUB_LANE_SHIFT: u32 = 6;
const WORKER_LANE_MASK: u32 = (1 << SUB_LANE_SHIFT) - 1;
/// Offset of the packet-type byte in the link header.
const TYPE_OFFSET: u32 = 1;
/// Multiplier of the key mix (a 32-bit odd constant with good avalanche, from a public-domain
/// integer hash).
const MIX: u32 = 0x045d_9f3b;

/// The socket index the program returns for hellos, feedback and control in a group of
/// `workers` data sockets: the control socket, bound last.
pub fn control_index(workers: u32) -> u32 {
    workers
}

/// One classic BPF instruction before its jumps are resolved.
enum Op {
    /// An instruction without a conditional jump.
    Stmt(u16, u32),
    /// An unconditional jump (`ja`) to a label.
    Ja(Label),
    /// A conditional jump: code, constant, label if true, label if false.
    Jump(u16, u32, Label, Label),
    /// Marks the position of a label; emits nothing.
    At(Label),
}

/// Jump targets of the program.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Label {
    V4,
    V6,
    Key,
    Header,
    Type,
    Lane,
    Data,
    Mix,
    Control,
    /// The next instruction.
    Next(usize),
}

const LD_B_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
const LD_H_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const LD_H_IND: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_IND) as u16;
const LD_LEN: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_LEN) as u16;
const LD_MEM: u16 = (libc::BPF_LD | libc::BPF_MEM) as u16;
const LDX_MSH: u16 = (libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH) as u16;
const LDX_MEM: u16 = (libc::BPF_LDX | libc::BPF_MEM) as u16;
const ST: u16 = libc::BPF_ST as u16;
const TAX: u16 = (libc::BPF_MISC | libc::BPF_TAX) as u16;
const ALU_RSH: u16 = (libc::BPF_ALU | libc::BPF_RSH | libc::BPF_K) as u16;
const ALU_LSH: u16 = (libc::BPF_ALU | libc::BPF_LSH | libc::BPF_K) as u16;
const ALU_MUL: u16 = (libc::BPF_ALU | libc::BPF_MUL | libc::BPF_K) as u16;
const ALU_MOD: u16 = (libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K) as u16;
const ALU_AND: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const ALU_ADD_X: u16 = (libc::BPF_ALU | libc::BPF_ADD | libc::BPF_X) as u16;
const LD_IMM: u16 = (libc::BPF_LD | libc::BPF_IMM) as u16;
const ALU_XOR_X: u16 = (libc::BPF_ALU | libc::BPF_XOR | libc::BPF_X) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const RET_A: u16 = (libc::BPF_RET | libc::BPF_A) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// `SKF_NET_OFF + offset`: a load relative to the IP header.
fn net(offset: u32) -> u32 {
    (libc::SKF_NET_OFF as u32).wrapping_add(offset)
}

/// The steering program for a group of `workers` data sockets followed by the control socket
/// (module doc). `workers` must be at least 1.
pub fn program(workers: u32) -> Vec<libc::sock_filter> {
    use Label::*;
    use Op::*;
    let workers = workers.max(1);
    let mut ops = vec![
        // The source key, from the IP and UDP headers.
        Stmt(LD_B_ABS, net(0)),
        Stmt(ALU_RSH, 4),
        Jump(JEQ, 6, V6, V4),
        At(V4),
        Stmt(LDX_MSH, net(0)),   // X = IPv4 header length
        Stmt(LD_H_IND, net(0)),  // A = UDP source port
        Stmt(TAX, 0),            // X = port
        Stmt(LD_W_ABS, net(12)), // A = source address
        Stmt(ALU_XOR_X, 0),      // A ^= port
        Ja(Key),
        At(V6),
        // The UDP header right after the fixed IPv6 header (no extension headers).
        Stmt(LD_H_ABS, net(40)),
    ];
    for word in [8, 12, 16, 20] {
        ops.extend([Stmt(TAX, 0), Stmt(LD_W_ABS, net(word)), Stmt(ALU_XOR_X, 0)]);
    }
    ops.extend([
        At(Key),
        Stmt(ST, 0), // M[0] = key
        Stmt(LD_IMM, 0),
        Stmt(ST, 1), // M[1] = sub-lane, 0 unless the lane byte says otherwise
        // The class, as peek_class finds it.
        Stmt(LD_LEN, 0),
        Jump(JGE, LINK_HEADER_LEN as u32, Header, Data),
        At(Header),
        Stmt(LD_B_ABS, 0),
        Jump(JEQ, u32::from(WIRE_VERSION), Type, Data),
        At(Type),
        Stmt(LD_B_ABS, TYPE_OFFSET),
    ]);
    let critical: Vec<u8> = PacketType::ALL
        .iter()
        .filter(|t| t.class() != PriorityClass::Data)
        .map(|t| t.byte())
        .collect();
    for (i, &b) in critical.iter().enumerate() {
        let otherwise = if i + 1 == critical.len() {
            Lane
        } else {
            Next(i)
        };
        ops.push(Jump(JEQ, u32::from(b), Control, otherwise));
        ops.push(At(Next(i)));
    }
    ops.extend([
        At(Lane),
        Stmt(LD_B_ABS, LANE_OFFSET),
        Stmt(ALU_RSH, SUB_LANE_SHIFT),
        Stmt(ST, 1), // M[1] = the sub-lane (top two bits)
        Stmt(LD_B_ABS, LANE_OFFSET),
        Stmt(ALU_AND, WORKER_LANE_MASK),
        Stmt(ALU_LSH, 24),
        Stmt(LDX_MEM, 0),
        Stmt(ALU_XOR_X, 0), // A = key ^ worker lane << 24
        Ja(Mix),
        At(Data),
        Stmt(LD_MEM, 0),
        At(Mix),
        Stmt(TAX, 0),
        Stmt(ALU_RSH, 16),
        Stmt(ALU_XOR_X, 0),
        Stmt(ALU_MUL, MIX),
        Stmt(TAX, 0),
        Stmt(ALU_RSH, 16),
        Stmt(ALU_XOR_X, 0),
        Stmt(ALU_MOD, workers),
        // + sub-lane, mod W again: one sender worker's sub-lanes land on distinct sockets.
        Stmt(LDX_MEM, 1),
        Stmt(ALU_ADD_X, 0),
        Stmt(ALU_MOD, workers),
        Stmt(RET_A, 0),
        At(Control),
        Stmt(RET_K, control_index(workers)),
    ]);
    assemble(&ops)
}

/// Resolves the labels of `ops` into relative forward jumps.
fn assemble(ops: &[Op]) -> Vec<libc::sock_filter> {
    let mut at = Vec::new();
    let mut pos = 0usize;
    for op in ops {
        match op {
            Op::At(l) => at.push((*l, pos)),
            _ => pos += 1,
        }
    }
    let target = |l: Label, from: usize| -> usize {
        let to = at.iter().find(|(x, _)| *x == l).map_or(from, |(_, to)| *to);
        // Classic BPF jumps only forward; every label here is placed after its jumps.
        debug_assert!(to > from, "{l:?} is not after instruction {from}");
        to.saturating_sub(from + 1)
    };
    let mut out = Vec::with_capacity(pos);
    for op in ops {
        let i = out.len();
        let ins = match *op {
            Op::At(_) => continue,
            Op::Stmt(code, k) => libc::sock_filter {
                code,
                jt: 0,
                jf: 0,
                k,
            },
            Op::Ja(l) => libc::sock_filter {
                code: JA,
                jt: 0,
                jf: 0,
                k: target(l, i) as u32,
            },
            Op::Jump(code, k, t, f) => libc::sock_filter {
                code,
                // The program is far shorter than 255 instructions (asserted in the tests).
                jt: target(t, i) as u8,
                jf: target(f, i) as u8,
                k,
            },
        };
        out.push(ins);
    }
    out
}

/// Attaches `program` to the `SO_REUSEPORT` group of `sock` (any bound member: the program
/// belongs to the group). Fails on a kernel without `SO_ATTACH_REUSEPORT_CBPF` (before Linux
/// 4.5), for a socket bound without `SO_REUSEPORT`, or when the kernel's checker refuses the
/// program.
pub fn attach(sock: &UdpSocket, program: &[libc::sock_filter]) -> io::Result<()> {
    let len = u16::try_from(program.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "BPF program too long"))?;
    let fprog = libc::sock_fprog {
        len,
        // The kernel copies the program during the call and never writes through the pointer.
        filter: program.as_ptr().cast_mut(),
    };
    setsockopt(sock, sockopt::AttachReusePortCbpf, &fprog)?;
    Ok(())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests unwrap and panic to fail loudly"
)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use weft_shared::wire::peek_class;

    use super::*;
    use crate::uring::{SocketOptions, bind_udp};

    /// A group of `workers` data sockets and a control socket on `ip` (bound in that order),
    /// with the program attached.
    fn group(ip: &str, workers: u32) -> Option<(Vec<UdpSocket>, SocketAddr)> {
        let opts = SocketOptions {
            recv_buffer: 1 << 20,
            send_buffer: 0,
            ..SocketOptions::default()
        };
        let first = bind_udp(format!("{ip}:0").parse().unwrap(), &opts).ok()?;
        let addr = first.local_addr().unwrap();
        let mut socks = vec![first];
        for _ in 0..workers {
            socks.push(bind_udp(addr, &opts).unwrap());
        }
        attach(&socks[0], &program(workers)).unwrap();
        Some((socks, addr))
    }

    /// Reads every datagram the group holds: (socket index, payload), until 100 ms pass with
    /// nothing new after at least `expected` arrived (or 3 s in all).
    fn drain(socks: &[UdpSocket], expected: usize) -> Vec<(usize, Vec<u8>)> {
        let mut got = Vec::new();
        let start = Instant::now();
        let mut quiet_since = Instant::now();
        let mut buf = [0u8; 2048];
        while start.elapsed() < Duration::from_secs(3) {
            let mut any = false;
            for (i, s) in socks.iter().enumerate() {
                while let Ok(n) = s.recv(&mut buf) {
                    got.push((i, buf[..n].to_vec()));
                    any = true;
                }
            }
            if any {
                quiet_since = Instant::now();
            } else if got.len() >= expected && quiet_since.elapsed() > Duration::from_millis(100) {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        got
    }

    fn is_critical(p: &[u8]) -> bool {
        matches!(peek_class(p), Ok(c) if c != PriorityClass::Data)
    }

    /// A datagram of `len` bytes with `version` and `type_byte` (where it has room for them)
    /// and the lane byte.
    fn datagram(version: u8, type_byte: u8, lane: u8, len: usize) -> Vec<u8> {
        let mut p = vec![0xA5u8; len];
        for (i, b) in [(0, version), (1, type_byte), (3, lane)] {
            if let Some(x) = p.get_mut(i) {
                *x = b;
            }
        }
        p
    }

    #[test]
    fn the_program_is_short_and_its_jumps_stay_inside() {
        for w in [1, 2, 7, 64] {
            let p = program(w);
            assert!(p.len() < 100, "{} instructions", p.len());
            for (i, ins) in p.iter().enumerate() {
                let rest = p.len() - i - 1;
                if ins.code == JA {
                    assert!((ins.k as usize) < rest);
                } else if ins.code & 0x07 == libc::BPF_JMP as u16 {
                    assert!(usize::from(ins.jt) < rest && usize::from(ins.jf) < rest);
                }
            }
            assert_eq!(p.last().map(|i| (i.code, i.k)), Some((RET_K, w)));
        }
    }

    /// Every combination of version byte, type byte and length lands on the control socket
    /// exactly when `peek_class` calls it a hello, feedback or control packet, on IPv4 and
    /// (where the host has it) IPv6.
    #[test]
    fn the_kernel_steers_like_peek_class() {
        let mut families = 0;
        for ip in ["127.0.0.1", "[::1]"] {
            let Some((socks, addr)) = group(ip, 3) else {
                eprintln!("{ip}: cannot bind here; skipped");
                continue;
            };
            families += 1;
            let senders: Vec<UdpSocket> = (0..4)
                .map(|_| UdpSocket::bind(format!("{ip}:0")).unwrap())
                .collect();
            let mut sent = 0;
            for version in [WIRE_VERSION, WIRE_VERSION.wrapping_add(1)] {
                for type_byte in [0x00, 0x01, 0x02, 0x03, 0x41, 0x42, 0x81, 0xC1, 0xFF] {
                    for len in [0, 1, 2, 3, 4, LINK_HEADER_LEN - 1, LINK_HEADER_LEN, 200] {
                        let s = &senders[sent % senders.len()];
                        s.send_to(&datagram(version, type_byte, sent as u8, len), addr)
                            .unwrap();
                        sent += 1;
                    }
                }
            }
            let got = drain(&socks, sent);
            assert_eq!(got.len(), sent, "{ip}: every datagram arrives once");
            let control = control_index(3) as usize;
            for (i, p) in &got {
                assert_eq!(
                    *i == control,
                    is_critical(p),
                    "{ip}: {p:02x?} went to socket {i}"
                );
            }
            let critical = got.iter().filter(|(i, _)| *i == control).count();
            assert_eq!(
                critical, 6,
                "{ip}: a hello, a feedback and a control packet, of two valid lengths each"
            );
        }
        assert!(families >= 1, "no address family could be tested");
    }

    /// Data from many source ports and lanes spreads over every data socket and never reaches
    /// the control socket; one lane from one source always lands on the same socket.
    #[test]
    fn data_spreads_over_the_workers_and_keeps_a_lane_on_one() {
        let workers = 3;
        let (socks, addr) = group("127.0.0.1", workers).unwrap();
        let senders: Vec<UdpSocket> = (0..32)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let data = PacketType::Data.byte();
        let mut sent = 0;
        for (k, s) in senders.iter().enumerate() {
            for lane in 0..4u8 {
                for seq in 0..3u8 {
                    let mut p = datagram(WIRE_VERSION, data, lane, 64);
                    p[4] = k as u8;
                    p[5] = seq;
                    s.send_to(&p, addr).unwrap();
                    sent += 1;
                }
            }
        }
        let got = drain(&socks, sent);
        assert_eq!(got.len(), sent);
        let mut per_socket = vec![0; socks.len()];
        let mut lane_socket = BTreeMap::new();
        for (i, p) in &got {
            per_socket[*i] += 1;
            let previous = lane_socket.insert((p[4], p[3]), *i);
            assert!(previous.is_none_or(|j| j == *i), "a lane was split");
        }
        assert_eq!(per_socket[control_index(workers) as usize], 0);
        for (i, n) in per_socket.iter().take(workers as usize).enumerate() {
            // 384 datagrams over 3 sockets: about 128 each.
            assert!(*n > 60, "data socket {i} got {n}: {per_socket:?}");
        }
    }

    /// The sub-lanes of one sender worker (lane bytes `w | s << 6`, `weft_shared::wire::lane`)
    /// from one source address and port land on distinct data sockets, for every worker lane.
    #[test]
    fn the_sub_lanes_of_one_sender_worker_land_on_distinct_workers() {
        use weft_shared::wire::lane::{lane_byte, sub_lanes};
        for workers in [2u32, 3, 4] {
            let (socks, addr) = group("127.0.0.1", workers).unwrap();
            let subs = sub_lanes(1, workers as usize);
            let senders: Vec<UdpSocket> = (0..8)
                .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
                .collect();
            let data = PacketType::Data.byte();
            let mut sent = 0;
            for (k, s) in senders.iter().enumerate() {
                for worker in 0..3u8 {
                    for sub in 0..subs {
                        let mut p = datagram(WIRE_VERSION, data, lane_byte(worker, sub), 64);
                        p[4] = k as u8;
                        s.send_to(&p, addr).unwrap();
                        sent += 1;
                    }
                }
            }
            let got = drain(&socks, sent);
            assert_eq!(got.len(), sent);
            let mut sockets: BTreeMap<(u8, u8), Vec<usize>> = BTreeMap::new();
            for (i, p) in &got {
                assert!(*i < workers as usize, "data reached the control socket");
                sockets.entry((p[4], p[3] & 63)).or_default().push(*i);
            }
            for ((k, w), mut at) in sockets {
                at.sort_unstable();
                let n = at.len();
                at.dedup();
                assert_eq!(
                    at.len(),
                    n,
                    "{workers} workers: sender {k} worker {w}: two sub-lanes on one socket"
                );
            }
        }
    }
}
