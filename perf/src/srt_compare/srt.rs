//! The SRT side of `srt-compare`: `srt-live-transmit` in live mode, a caller that reads the
//! probe's UDP stream and a listener that writes it to the probe's sink, with the SRT
//! connection (data, ACKs, ACKACKs, NAKs, keepalives, handshake) relayed through
//! `weft-linkem` with the same settings as the Weft side's path.
//!
//! ```text
//!  probe -> udp -> srt-live-transmit (caller) ── weft-linkem ──> srt-live-transmit (listener) -> udp -> probe sink
//! ```
//!
//! The caller binds a fixed local address (`adapter`, `port`) so the relay knows where to send
//! the listener's packets back. Options other than the latency are SRT's live-mode defaults:
//! `transtype=live` (TSBPD on, too-late packet drop on, NAK reports on), `maxbw` -1 and
//! `oheadbw` 25 % (no cap at this rate), 1,456-byte chunks.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Result, bail};
use nix::sys::signal::Signal;
use weft_tests::linkem::process::LinkemProcess;
use weft_tests::overlay::Addrs;

use super::{PathModel, Procs, RelayAddrs, TempDir, start_relay};

/// Checks that `bin` runs; otherwise says how to install it.
pub fn check_installed(bin: &Path) -> Result<String> {
    let out = Command::new(bin)
        .arg("-version")
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            Ok(text
                .lines()
                .find(|l| l.contains("SRT Library version"))
                .unwrap_or("unknown version")
                .trim()
                .to_owned())
        }
        Err(e) => bail!(
            "{} cannot be run ({e}). srt-compare needs SRT's srt-live-transmit: install it with \
             `apt-get install srt-tools` (Debian, Ubuntu), or pass --srt-bin PATH",
            bin.display()
        ),
    }
}

/// A running SRT side; dropping it stops both ends, then the relay.
pub struct SrtSide {
    procs: Procs,
    relay: LinkemProcess,
    /// Where the probe sends.
    pub input: SocketAddr,
    _dir: TempDir,
}

impl SrtSide {
    /// Starts the relay, the listener (delivering to `sink`) and the caller, with SRT's
    /// `latency` (both ends, ms), and waits until the caller is connected. `limit` bounds
    /// each `srt-live-transmit`'s life (`-t`), should this process die without stopping them.
    #[allow(clippy::too_many_arguments, reason = "a flat list of settings")]
    pub fn start(
        bins: &Path,
        srt_bin: &Path,
        tag: &str,
        model: &PathModel,
        latency_ms: u32,
        sink: SocketAddr,
        limit: Duration,
    ) -> Result<SrtSide> {
        let dir = TempDir::new(tag)?;
        let addrs = Addrs::new(tag);
        let caller = addrs.host(0, 11, 9200);
        let listener = addrs.host(0, 12, 9300);
        let relay_addrs = RelayAddrs {
            a_side: addrs.relay(0, 0),
            b_side: addrs.relay(0, 1),
            to_a: caller,
            to_b: listener,
        };
        let relay = start_relay(bins, dir.path(), &relay_addrs, model);
        let mut procs = Procs::new(dir.path());
        let common = format!("transtype=live&latency={latency_ms}");
        let timeout = limit.as_secs().max(1).to_string();
        let rx_args = vec![
            "-a".to_owned(),
            "no".to_owned(),
            "-t".to_owned(),
            timeout.clone(),
            format!("srt://{listener}?mode=listener&{common}"),
            format!("udp://{sink}"),
        ];
        procs.spawn_with("srt-listener", srt_bin, &rx_args, Signal::SIGKILL)?;
        std::thread::sleep(Duration::from_millis(200));
        procs.check_running("srt-listener")?;
        let input = addrs.host(0, 11, 5000);
        let tx_args = vec![
            "-a".to_owned(),
            "no".to_owned(),
            "-t".to_owned(),
            timeout,
            format!("udp://{input}"),
            format!(
                "srt://{}?mode=caller&{common}&adapter={}&port={}",
                relay_addrs.a_side,
                caller.ip(),
                caller.port()
            ),
        ];
        procs.spawn_with("srt-caller", srt_bin, &tx_args, Signal::SIGKILL)?;
        procs.wait_until("srt-caller", "connected", Duration::from_secs(10), |p| {
            p.output("srt-caller").contains("connected")
        })?;
        Ok(SrtSide {
            procs,
            relay,
            input,
            _dir: dir,
        })
    }

    /// The relay of the path.
    pub fn relay(&self) -> &LinkemProcess {
        &self.relay
    }
}

impl Drop for SrtSide {
    fn drop(&mut self) {
        self.procs.stop_all();
    }
}
