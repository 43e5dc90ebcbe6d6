//! What a gateway maps: [`IngressSpec`] (a local UDP port into an overlay flow) and
//! [`EgressSpec`] (an overlay port out to a local UDP address), from command-line text or a
//! TOML file ([`GatewayConfig::from_toml`]).
//!
//! Text is parsed once, here, into typed specs; every error names the field it came from
//! (`--to`, or `ingress[1].to` in a file) and says what was expected.
//!
//! The file (all mappings of one process; `socket` at the top is the default of each):
//!
//! ```toml
//! socket = "/run/weft/n1.sock"
//!
//! [[ingress]]
//! listen = "127.0.0.1:5000"      # the local UDP address to receive datagrams on
//! to = "4:5000"                  # the overlay destination NODE:PORT
//! service = "best-effort"        # or "reliable", "realtime[:DEADLINE_MS[:N:M]]"
//! # from_port = 0                # the overlay port to send from (0: any free one)
//! # queue_datagrams = 1024       # bounds of the queue of datagrams waiting for credit
//! # queue_bytes = 1048576
//!
//! [[egress]]
//! port = 5001                    # the overlay port to bind on this node
//! deliver = "127.0.0.1:6001"     # the local UDP address to send each message to
//! ```

use core::fmt;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use weft_shared::ids::Port;

use super::service::{ServiceText, parse_service};
use crate::service::{Addr, Service};

/// Bounds of an ingress gateway's queue of datagrams waiting for credit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimits {
    /// Datagrams queued at most.
    pub datagrams: usize,
    /// Datagram bytes queued at most (raised to the node's payload limit).
    pub bytes: usize,
}

impl Default for QueueLimits {
    /// 1,024 datagrams and 1 MiB: about 0.8 s of a 10 Mbit/s stream.
    fn default() -> Self {
        QueueLimits {
            datagrams: 1024,
            bytes: 1 << 20,
        }
    }
}

/// The most a queue may hold, either bound: 1,000,000 datagrams, 1 GiB.
pub const MAX_QUEUE: QueueLimits = QueueLimits {
    datagrams: 1_000_000,
    bytes: 1 << 30,
};

/// An ingress mapping: datagrams received on `listen` go to `to` as overlay messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngressSpec {
    /// The local node's session socket.
    pub socket: PathBuf,
    /// The local UDP address to receive on.
    pub listen: SocketAddr,
    /// The overlay destination.
    pub to: Addr,
    /// The flow's service, passed to the node as is.
    pub service: Service,
    /// The overlay port to send from; `Port(0)` lets the node pick a free one.
    pub from_port: Port,
    /// Bounds of the queue of datagrams waiting for credit.
    pub queue: QueueLimits,
}

/// An egress mapping: messages delivered to overlay port `port` go to `deliver` as datagrams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressSpec {
    /// The local node's session socket.
    pub socket: PathBuf,
    /// The overlay port to bind (not 0: senders must know it).
    pub port: Port,
    /// The local UDP address each message is sent to.
    pub deliver: SocketAddr,
}

/// One mapping of a gateway process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MappingSpec {
    /// UDP in, overlay out.
    Ingress(IngressSpec),
    /// Overlay in, UDP out.
    Egress(EgressSpec),
}

impl fmt::Display for IngressSpec {
    /// `ingress udp 127.0.0.1:5000 -> overlay 4:5000 (best-effort)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ingress udp {} -> overlay {} ({})",
            self.listen,
            self.to,
            ServiceText(self.service)
        )
    }
}

impl fmt::Display for EgressSpec {
    /// `egress overlay port 5000 -> udp 127.0.0.1:6000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "egress overlay port {} -> udp {}",
            self.port, self.deliver
        )
    }
}

impl fmt::Display for MappingSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MappingSpec::Ingress(s) => s.fmt(f),
            MappingSpec::Egress(s) => s.fmt(f),
        }
    }
}

/// A bad option or config field: which one, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// The option (`--to`) or file field (`ingress[0].to`).
    pub field: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl SpecError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        SpecError {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Parses a UDP address `HOST:PORT` (IPv4, `[IPv6]`, or a name that resolves, like
/// `localhost:5000`; the first address is used).
pub fn parse_udp_addr(field: &str, text: &str) -> Result<SocketAddr, SpecError> {
    let bad = |why: &str| {
        SpecError::new(
            field,
            format!("bad UDP address {text:?}: {why}; expected HOST:PORT like 127.0.0.1:5000"),
        )
    };
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(a);
    }
    if !text.contains(':') {
        return Err(bad("no port"));
    }
    let mut addrs = text
        .to_socket_addrs()
        .map_err(|e| bad(&format!("it does not resolve ({e})")))?;
    addrs.next().ok_or_else(|| bad("it resolves to no address"))
}

/// Parses the overlay destination `NODE:PORT`.
pub fn parse_overlay_addr(field: &str, text: &str) -> Result<Addr, SpecError> {
    text.parse::<Addr>()
        .map_err(|e| SpecError::new(field, e.to_string()))
}

/// Parses an overlay port, `0..=65535` (`allow_zero`) or `1..=65535`.
pub fn parse_port(field: &str, text: &str, allow_zero: bool) -> Result<Port, SpecError> {
    let low = u16::from(!allow_zero);
    text.parse::<u16>()
        .ok()
        .filter(|&p| p >= low)
        .map(Port)
        .ok_or_else(|| {
            SpecError::new(
                field,
                format!("bad overlay port {text:?}: expected a whole number in {low}..=65535"),
            )
        })
}

impl IngressSpec {
    /// An ingress spec from option texts; `field` is the prefix of each field's name in errors
    /// (`"--"` for options, `"ingress[0]."` in a file).
    pub fn parse(
        field: &str,
        socket: &Path,
        listen: &str,
        to: &str,
        service: &str,
    ) -> Result<IngressSpec, SpecError> {
        let listen = parse_udp_addr(&format!("{field}listen"), listen)?;
        let to = parse_overlay_addr(&format!("{field}to"), to)?;
        let service = parse_service(service)
            .map_err(|e| SpecError::new(&format!("{field}service"), e.to_string()))?;
        Ok(IngressSpec {
            socket: socket.to_owned(),
            listen,
            to,
            service,
            from_port: Port(0),
            queue: QueueLimits::default(),
        })
    }

    /// The same spec with the queue bounds `queue`, checked; `fields` name the two bounds in
    /// errors (`("--queue-datagrams", "--queue-bytes")`).
    pub fn with_queue(
        mut self,
        fields: (&str, &str),
        queue: QueueLimits,
    ) -> Result<Self, SpecError> {
        if !(1..=MAX_QUEUE.datagrams).contains(&queue.datagrams) {
            return Err(SpecError::new(
                fields.0,
                format!("{} is not in 1..={}", queue.datagrams, MAX_QUEUE.datagrams),
            ));
        }
        if !(1..=MAX_QUEUE.bytes).contains(&queue.bytes) {
            return Err(SpecError::new(
                fields.1,
                format!("{} is not in 1..={}", queue.bytes, MAX_QUEUE.bytes),
            ));
        }
        self.queue = queue;
        Ok(self)
    }
}

impl EgressSpec {
    /// An egress spec from option texts; `field` as for [`IngressSpec::parse`].
    pub fn parse(
        field: &str,
        socket: &Path,
        port: &str,
        deliver: &str,
    ) -> Result<EgressSpec, SpecError> {
        let port = parse_port(&format!("{field}port"), port, false)?;
        let deliver_field = format!("{field}deliver");
        let deliver = parse_udp_addr(&deliver_field, deliver)?;
        if deliver.port() == 0 || deliver.ip().is_unspecified() {
            return Err(SpecError::new(
                &deliver_field,
                format!("{deliver} is not an address to send to: give a host and a port"),
            ));
        }
        Ok(EgressSpec {
            socket: socket.to_owned(),
            port,
            deliver,
        })
    }
}

/// Every mapping of one gateway process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GatewayConfig {
    /// The mappings, in file order (ingress first, then egress).
    pub mappings: Vec<MappingSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    socket: Option<PathBuf>,
    #[serde(default)]
    ingress: Vec<RawIngress>,
    #[serde(default)]
    egress: Vec<RawEgress>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIngress {
    socket: Option<PathBuf>,
    listen: String,
    to: String,
    service: Option<String>,
    from_port: Option<u16>,
    queue_datagrams: Option<usize>,
    queue_bytes: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEgress {
    socket: Option<PathBuf>,
    port: u16,
    deliver: String,
}

impl GatewayConfig {
    /// Parses a config file's text. `default_socket` (from the command line) applies to
    /// mappings that name no `socket`, after the file's own top-level one.
    pub fn from_toml(text: &str, default_socket: Option<&Path>) -> Result<Self, SpecError> {
        let raw: RawFile =
            toml::from_str(text).map_err(|e| SpecError::new("file", e.to_string()))?;
        let top = raw.socket.as_deref().or(default_socket);
        let socket = |own: Option<&Path>, field: &str| {
            own.or(top).map(Path::to_owned).ok_or_else(|| {
                SpecError::new(
                    &format!("{field}socket"),
                    "no session socket: set socket here or at the top, or give --socket",
                )
            })
        };
        let mut config = GatewayConfig::default();
        for (i, r) in raw.ingress.iter().enumerate() {
            let field = format!("ingress[{i}].");
            let socket = socket(r.socket.as_deref(), &field)?;
            let service = r.service.as_deref().unwrap_or("best-effort");
            let defaults = QueueLimits::default();
            let queue = QueueLimits {
                datagrams: r.queue_datagrams.unwrap_or(defaults.datagrams),
                bytes: r.queue_bytes.unwrap_or(defaults.bytes),
            };
            let mut spec = IngressSpec::parse(&field, &socket, &r.listen, &r.to, service)?
                .with_queue(
                    (
                        &format!("{field}queue_datagrams"),
                        &format!("{field}queue_bytes"),
                    ),
                    queue,
                )?;
            spec.from_port = Port(r.from_port.unwrap_or(0));
            config.mappings.push(MappingSpec::Ingress(spec));
        }
        for (i, r) in raw.egress.iter().enumerate() {
            let field = format!("egress[{i}].");
            let socket = socket(r.socket.as_deref(), &field)?;
            let spec = EgressSpec::parse(&field, &socket, &r.port.to_string(), &r.deliver)?;
            config.mappings.push(MappingSpec::Egress(spec));
        }
        config.check()?;
        Ok(config)
    }

    /// Checks the mappings as a whole: at least one; no UDP address listened on twice; no
    /// overlay port bound twice on one node (socket).
    pub fn check(&self) -> Result<(), SpecError> {
        if self.mappings.is_empty() {
            return Err(SpecError::new(
                "gateway",
                "no mapping: give --listen and --to (ingress), --port and --deliver (egress), \
                 or a --config file with [[ingress]] or [[egress]] tables",
            ));
        }
        for (i, m) in self.mappings.iter().enumerate() {
            for earlier in &self.mappings[..i] {
                let clash = match (m, earlier) {
                    (MappingSpec::Ingress(a), MappingSpec::Ingress(b)) => a.listen == b.listen,
                    (MappingSpec::Egress(a), MappingSpec::Egress(b)) => {
                        a.port == b.port && a.socket == b.socket
                    }
                    (MappingSpec::Ingress(a), MappingSpec::Egress(b))
                    | (MappingSpec::Egress(b), MappingSpec::Ingress(a)) => {
                        a.from_port.0 != 0 && a.from_port == b.port && a.socket == b.socket
                    }
                };
                if clash {
                    return Err(SpecError::new(
                        "gateway",
                        format!("\"{m}\" and \"{earlier}\" use the same address or port"),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use weft_shared::session::LinkProtocol;

    use super::*;

    #[test]
    fn options_parse_into_specs() {
        let s = IngressSpec::parse(
            "--",
            Path::new("/s"),
            "127.0.0.1:5000",
            "4:5000",
            "reliable",
        )
        .unwrap();
        assert_eq!(s.listen, "127.0.0.1:5000".parse().unwrap());
        assert_eq!(s.to.to_string(), "4:5000");
        assert_eq!(s.service.protocol(), LinkProtocol::Reliable);
        assert_eq!(
            s.to_string(),
            "ingress udp 127.0.0.1:5000 -> overlay 4:5000 (reliable)"
        );
        let e = EgressSpec::parse("--", Path::new("/s"), "6000", "[::1]:6000").unwrap();
        assert_eq!(e.port, Port(6000));
        assert_eq!(e.to_string(), "egress overlay port 6000 -> udp [::1]:6000");
        assert!(parse_udp_addr("--listen", "localhost:5000").is_ok());
    }

    #[test]
    fn bad_options_name_the_field() {
        let p = Path::new("/s");
        let cases = [
            IngressSpec::parse("--", p, "127.0.0.1", "4:1", "best-effort").map(drop),
            IngressSpec::parse("--", p, "nonsense:x", "4:1", "best-effort").map(drop),
            IngressSpec::parse("--", p, "127.0.0.1:1", "4", "best-effort").map(drop),
            IngressSpec::parse("--", p, "127.0.0.1:1", "0:5", "best-effort").map(drop),
            IngressSpec::parse("--", p, "127.0.0.1:1", "4:5", "fast").map(drop),
            EgressSpec::parse("--", p, "0", "127.0.0.1:1").map(drop),
            EgressSpec::parse("--", p, "70000", "127.0.0.1:1").map(drop),
            EgressSpec::parse("--", p, "5", "0.0.0.0:6000").map(drop),
            EgressSpec::parse("--", p, "5", "127.0.0.1:0").map(drop),
        ];
        let fields = [
            "--listen",
            "--listen",
            "--to",
            "--to",
            "--service",
            "--port",
            "--port",
            "--deliver",
            "--deliver",
        ];
        for (r, field) in cases.into_iter().zip(fields) {
            let e = r.unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
        let e = IngressSpec::parse("--", p, "127.0.0.1:1", "4", "best-effort").unwrap_err();
        assert!(e.to_string().contains("NODE:PORT"), "{e}");
    }

    #[test]
    fn a_file_parses_with_defaults_and_overrides() {
        let text = r#"
            socket = "/top.sock"
            [[ingress]]
            listen = "127.0.0.1:5000"
            to = "4:5000"
            [[ingress]]
            socket = "/own.sock"
            listen = "127.0.0.1:5001"
            to = "4:5001"
            service = "realtime:100:3:2"
            from_port = 77
            queue_datagrams = 10
            queue_bytes = 20000
            [[egress]]
            port = 5002
            deliver = "127.0.0.1:6002"
        "#;
        let c = GatewayConfig::from_toml(text, Some(Path::new("/cli.sock"))).unwrap();
        assert_eq!(c.mappings.len(), 3);
        let MappingSpec::Ingress(a) = &c.mappings[0] else {
            panic!("ingress first")
        };
        assert_eq!(a.socket, Path::new("/top.sock"));
        assert_eq!(a.service, Service::best_effort());
        assert_eq!(a.queue, QueueLimits::default());
        let MappingSpec::Ingress(b) = &c.mappings[1] else {
            panic!("ingress second")
        };
        assert_eq!(b.socket, Path::new("/own.sock"));
        assert_eq!(b.from_port, Port(77));
        assert_eq!(b.service.deadline_us(), 100_000);
        assert_eq!(
            b.queue,
            QueueLimits {
                datagrams: 10,
                bytes: 20000
            }
        );
        let MappingSpec::Egress(e) = &c.mappings[2] else {
            panic!("egress last")
        };
        assert_eq!(
            (e.port, e.socket.as_path()),
            (Port(5002), Path::new("/top.sock"))
        );

        // Without a top-level socket, the command line's applies.
        let c = GatewayConfig::from_toml(
            "[[egress]]\nport = 1\ndeliver = \"127.0.0.1:2\"",
            Some(Path::new("/cli.sock")),
        )
        .unwrap();
        let MappingSpec::Egress(e) = &c.mappings[0] else {
            panic!("egress")
        };
        assert_eq!(e.socket, Path::new("/cli.sock"));
    }

    #[test]
    fn bad_files_say_where() {
        for (text, field) in [
            (
                "[[ingress]]\nlisten = \"127.0.0.1:1\"\nto = \"4:1\"",
                "ingress[0].socket",
            ),
            (
                "socket = \"/s\"\n[[ingress]]\nlisten = \"1.2.3.4:1\"\nto = \"x\"",
                "ingress[0].to",
            ),
            (
                "socket = \"/s\"\n[[egress]]\nport = 0\ndeliver = \"127.0.0.1:1\"",
                "egress[0].port",
            ),
            (
                "socket = \"/s\"\n[[egress]]\nport = 1\ndeliver = \"127.0.0.1:1\"\nx = 1",
                "file",
            ),
            ("socket = \"/s\"", "gateway"),
            (
                "socket = \"/s\"\n[[egress]]\nport = 1\ndeliver = \"127.0.0.1:1\"\n\
                 [[egress]]\nport = 1\ndeliver = \"127.0.0.1:2\"",
                "gateway",
            ),
            (
                "socket = \"/s\"\n[[ingress]]\nlisten = \"127.0.0.1:1\"\nto = \"4:1\"\n\
                 queue_datagrams = 0",
                "ingress[0].queue_datagrams",
            ),
        ] {
            let e = GatewayConfig::from_toml(text, None).unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
        }
    }
}
