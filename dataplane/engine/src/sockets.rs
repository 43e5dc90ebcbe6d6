//! The node's UDP sockets, bound by the main thread before any worker starts, in the fixed order
//! the steering program relies on ([`crate::steer`]), and handed to the workers.
//!
//! For each interface, in config order:
//!
//! 1. a plain bind of the address without `SO_REUSEPORT`, closed at once: it fails if any
//!    socket holds the address, so a second data plane for the same node (whose sockets would
//!    join this one's group and whose program would replace this one's) is a clear error rather
//!    than traffic silently split between two processes;
//! 2. the data socket of worker 0, 1, .., W − 1 (group index = worker index);
//! 3. the control socket (group index W), read by worker 0;
//! 4. the steering program, attached to the group.
//!
//! All sockets of an interface get the same options (`SO_REUSEPORT`, 8 MiB buffers, `UDP_GRO`
//! when on), so the kernel treats the group's sockets alike wherever it picks one without the
//! program (the GRO lookup on a NIC does).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::steer;
use crate::uring::{SocketOptions, bind_udp};

/// Every UDP socket of the node.
#[derive(Debug)]
pub struct NodeSockets {
    /// `data[w][i]`: worker `w`'s data socket for interface `i`.
    pub data: Vec<Vec<UdpSocket>>,
    /// `control[i]`: the control socket of interface `i` (worker 0 reads it).
    pub control: Vec<UdpSocket>,
}

impl NodeSockets {
    /// Binds every socket of `workers` workers on `interfaces` (module doc) and attaches the
    /// steering program to each interface's group. `gro` turns on `UDP_GRO` (the caller checked
    /// that the kernel accepts it).
    pub fn bind(interfaces: &[SocketAddr], workers: usize, gro: bool) -> anyhow::Result<Self> {
        let w = u32::try_from(workers)
            .ok()
            .filter(|w| (1..=256).contains(w))
            .with_context(|| format!("{workers} workers: between 1 and 256 are supported"))?;
        let options = SocketOptions {
            gro,
            ..SocketOptions::default()
        };
        let bind_one = |a: SocketAddr| {
            bind_udp(a, &options).with_context(|| {
                if gro {
                    format!("binding {a} with UDP_GRO (--no-gro receives without it)")
                } else {
                    format!("binding {a}")
                }
            })
        };
        let program = steer::program(w);
        let mut data: Vec<Vec<UdpSocket>> = (0..workers).map(|_| Vec::new()).collect();
        let mut control = Vec::with_capacity(interfaces.len());
        for &a in interfaces {
            ensure_free(a)?;
            for sockets in &mut data {
                sockets.push(bind_one(a)?);
            }
            let ctl = bind_one(a)?;
            steer::attach(&ctl, &program).with_context(|| {
                format!(
                    "attaching the hello/control steering program to {a} \
                     (SO_ATTACH_REUSEPORT_CBPF, Linux 4.5 or newer)"
                )
            })?;
            control.push(ctl);
        }
        Ok(NodeSockets { data, control })
    }
}

/// How long an address held by someone else is retried before start-up fails: a data plane
/// killed a moment ago releases the sockets its io_uring held only when the kernel tears the
/// ring down, a few milliseconds after the process is gone.
const IN_USE_GRACE: Duration = Duration::from_secs(2);

/// Fails if some socket already holds `addr` (module doc, step 1), after retrying for
/// [`IN_USE_GRACE`].
fn ensure_free(addr: SocketAddr) -> anyhow::Result<()> {
    let plain = SocketOptions {
        reuse_port: false,
        recv_buffer: 0,
        send_buffer: 0,
        gro: false,
    };
    let start = std::time::Instant::now();
    loop {
        match bind_udp(addr, &plain) {
            Ok(_probe) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                if start.elapsed() >= IN_USE_GRACE {
                    bail!(
                        "binding {addr}: the address is in use by another socket (is a data \
                         plane for this node already running?)"
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e).with_context(|| format!("binding {addr}")),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use std::time::{Duration, Instant};

    use weft_shared::wire::{PacketType, WIRE_VERSION};

    use super::*;

    /// A free port on 127.0.0.1 (bound and released).
    fn free_addr() -> SocketAddr {
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    #[test]
    fn hellos_reach_the_control_socket_and_data_the_workers() {
        let addr = free_addr();
        let s = NodeSockets::bind(&[addr], 2, false).unwrap();
        assert_eq!((s.data.len(), s.data[0].len(), s.control.len()), (2, 1, 1));
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut hello = vec![0u8; 64];
        hello[0] = WIRE_VERSION;
        hello[1] = PacketType::Hello.byte();
        let mut data = hello.clone();
        data[1] = PacketType::Data.byte();
        for _ in 0..5 {
            sender.send_to(&hello, addr).unwrap();
        }
        // Lanes 0..64 from one source spread over both workers.
        for lane in 0..64 {
            data[3] = lane;
            sender.send_to(&data, addr).unwrap();
        }
        let count = |sock: &UdpSocket, want: u8| {
            sock.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 128];
            let mut n = 0;
            let deadline = Instant::now() + Duration::from_millis(300);
            while Instant::now() < deadline {
                match sock.recv(&mut buf) {
                    Ok(_) => {
                        assert_eq!(buf[1], want, "a packet of another class");
                        n += 1;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            n
        };
        let data_byte = PacketType::Data.byte();
        assert_eq!(count(&s.control[0], PacketType::Hello.byte()), 5);
        let (w0, w1) = (
            count(&s.data[0][0], data_byte),
            count(&s.data[1][0], data_byte),
        );
        assert_eq!(w0 + w1, 64);
        assert!(w0 > 0 && w1 > 0, "worker 0 got {w0}, worker 1 {w1}");
    }

    #[test]
    fn a_second_data_plane_on_the_same_address_is_refused() {
        let addr = free_addr();
        let _first = NodeSockets::bind(&[addr], 1, false).unwrap();
        let err = NodeSockets::bind(&[addr], 1, false).unwrap_err();
        assert!(
            format!("{err:#}").contains("in use by another socket"),
            "{err:#}"
        );
        assert!(NodeSockets::bind(&[addr], 0, false).is_err());
    }
}
