//! A UDP relay between two fixed addresses that the test can cut: what arrives on its socket
//! from anywhere is sent on to `to`, until [`Relay::cut`].

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A running relay.
pub(crate) struct Relay {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    cut: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// Datagrams passed on.
    pub(crate) relayed: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    /// A relay on `bind` (port 0: any) forwarding to `to`.
    pub(crate) fn start(bind: SocketAddr, to: SocketAddr) -> Relay {
        let sock = UdpSocket::bind(bind).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let relayed = Arc::new(AtomicU64::new(0));
        let (c, s, r) = (cut.clone(), stop.clone(), relayed.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while !s.load(Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    if !c.load(Ordering::Relaxed) && sock.send_to(&buf[..n], to).is_ok() {
                        r.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        Relay {
            addr,
            cut,
            stop,
            relayed,
            thread: Some(thread),
        }
    }

    /// Drops everything from now on.
    pub(crate) fn cut(&self) {
        self.cut.store(true, Ordering::Relaxed);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
