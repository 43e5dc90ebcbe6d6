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
//! to = "4:5000"                  # the overlay destination NODE:PORT, group:GROUP:PORT
//!                                # (every member of a multicast group) or anycast:GROUP:PORT
//! service = "best-effort"        # or "reliable", "realtime[:DEADLINE_MS[:N:M]]"
//! # from_port = 0                # the overlay port to send from (0: any free one)
//! # queue_datagrams = 1024       # bounds of the queue of datagrams waiting for credit
//! # queue_bytes = 1048576
//!
//! [[egress]]
//! port = 5001                    # the overlay port to bind on this node
//! deliver = "127.0.0.1:6001"     # the local UDP address to send each message to
//!
//! [[egress]]
//! join = 7                       # join group 7: its messages to port 5002 (from ingresses
//! port = 5002                    #   with to = "group:7:5002") go to deliver
//! deliver = "127.0.0.1:6002"
//! # bind = true                  # also bind port 5002 (default: only without join)
//! ```

use core::fmt;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use weft_shared::ids::{GroupId, Port};
use weft_shared::session::Destination;

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
    /// The overlay destination: a port on one node, or on a multicast or anycast group.
    pub to: Destination,
    /// The flow's service, passed to the node as is.
    pub service: Service,
    /// The overlay port to send from; `Port(0)` lets the node pick a free one.
    pub from_port: Port,
    /// Bounds of the queue of datagrams waiting for credit.
    pub queue: QueueLimits,
}

/// An egress mapping: messages delivered to overlay port `port` (bound on the node, for
/// senders to `NODE:PORT`) or sent to `group:GROUP:PORT` of the group it joined go to
/// `deliver` as datagrams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressSpec {
    /// The local node's session socket.
    pub socket: PathBuf,
    /// The overlay port (not 0: senders must know it): bound if `bind`, and the port of the
    /// joined group's messages this mapping delivers.
    pub port: Port,
    /// The group to join, if any; its messages to `port` are delivered (those to its other
    /// ports are counted, `other_port`, and discarded).
    pub join: Option<GroupId>,
    /// Whether to bind `port` on the node (always without `join`; with it, only if asked).
    pub bind: bool,
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

/// A destination as [`parse_destination`] reads it: `4:5000`, `group:7:5000` (multicast) or
/// `anycast:7:5000`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DestinationText(pub Destination);

impl fmt::Display for DestinationText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Destination::Node { node, port } => write!(f, "{node}:{port}"),
            Destination::Multicast { group, port } => write!(f, "group:{group}:{port}"),
            Destination::Anycast { group, port } => write!(f, "anycast:{group}:{port}"),
        }
    }
}

impl fmt::Display for IngressSpec {
    /// `ingress udp 127.0.0.1:5000 -> overlay 4:5000 (best-effort)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ingress udp {} -> overlay {} ({})",
            self.listen,
            DestinationText(self.to),
            ServiceText(self.service)
        )
    }
}

impl fmt::Display for EgressSpec {
    /// `egress overlay port 5000 -> udp 127.0.0.1:6000`, `egress overlay group:7:5000 -> udp
    /// 127.0.0.1:6000` (joined, not bound), or `egress overlay port 5000 and group:7:5000 ->
    /// udp 127.0.0.1:6000` (both).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("egress overlay ")?;
        if self.bind {
            write!(f, "port {}", self.port)?;
        }
        if let Some(group) = self.join {
            let and = if self.bind { " and " } else { "" };
            write!(f, "{and}group:{group}:{}", self.port)?;
        }
        write!(f, " -> udp {}", self.deliver)
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

/// What a group destination looks like, for error messages.
const GROUP_FORMS: &str = "group:GROUP:PORT (multicast: every member) or anycast:GROUP:PORT \
                           (the nearest member) with GROUP in 1..=4294967295 and PORT in 0..=65535";

/// Parses a group number, `1..=4294967295` (group 0 is not a group).
pub fn parse_group(field: &str, text: &str) -> Result<GroupId, SpecError> {
    match text.parse::<u32>() {
        Ok(0) => Err(SpecError::new(
            field,
            format!("bad group {text:?}: group 0 is not a group; groups are 1..=4294967295"),
        )),
        Ok(g) => Ok(GroupId(g)),
        Err(_) => Err(SpecError::new(
            field,
            format!("bad group {text:?}: expected a whole number in 1..=4294967295"),
        )),
    }
}

/// Parses an ingress destination: `NODE:PORT` (one node), `group:GROUP:PORT` (every member
/// of a multicast group; `multicast:GROUP:PORT` is the same) or `anycast:GROUP:PORT` (the
/// nearest member).
///
/// ```
/// use weft_client::gateway::{DestinationText, parse_destination};
///
/// let to = parse_destination("--to", "group:7:4000")?;
/// assert_eq!(DestinationText(to).to_string(), "group:7:4000");
/// assert!(parse_destination("--to", "group:0:4000").is_err());
/// # Ok::<(), weft_client::gateway::SpecError>(())
/// ```
pub fn parse_destination(field: &str, text: &str) -> Result<Destination, SpecError> {
    let group_kind = text.split_once(':').and_then(|(kind, rest)| match kind {
        "group" | "multicast" => Some((true, rest)),
        "anycast" => Some((false, rest)),
        _ => None,
    });
    let Some((multicast, rest)) = group_kind else {
        return text
            .parse::<Addr>()
            .map(Destination::from)
            .map_err(|e| SpecError::new(field, format!("{e}, or {GROUP_FORMS}")));
    };
    let bad = |why: &str| {
        SpecError::new(
            field,
            format!("bad group address {text:?}: {why}; expected {GROUP_FORMS}"),
        )
    };
    let (group, port) = rest.split_once(':').ok_or_else(|| bad("no port"))?;
    let group = match group.parse::<u32>() {
        Ok(0) => return Err(bad("group 0 is not a group")),
        Ok(g) => GroupId(g),
        Err(_) => return Err(bad(&format!("the group {group:?} is not a number"))),
    };
    let port = port
        .parse::<u16>()
        .map(Port)
        .map_err(|_| bad(&format!("the port {port:?} is not a number in 0..=65535")))?;
    Ok(if multicast {
        Destination::Multicast { group, port }
    } else {
        Destination::Anycast { group, port }
    })
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
        let to = parse_destination(&format!("{field}to"), to)?;
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
    /// An egress spec from option texts that binds `port`; `field` as for
    /// [`IngressSpec::parse`].
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
            join: None,
            bind: true,
            deliver,
        })
    }

    /// The same spec joining `group` (the text of a group number; `field` names it in
    /// errors), delivering the group's messages to its port; the port is bound as well only
    /// if `bind`.
    pub fn with_join(mut self, field: &str, group: &str, bind: bool) -> Result<Self, SpecError> {
        self.join = Some(parse_group(field, group)?);
        self.bind = bind;
        Ok(self)
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
    join: Option<i64>,
    bind: Option<bool>,
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
            let mut spec = EgressSpec::parse(&field, &socket, &r.port.to_string(), &r.deliver)?;
            match (r.join, r.bind) {
                (Some(group), bind) => {
                    spec = spec.with_join(
                        &format!("{field}join"),
                        &group.to_string(),
                        bind.unwrap_or(false),
                    )?;
                }
                (None, Some(false)) => {
                    return Err(SpecError::new(
                        &format!("{field}bind"),
                        "an egress that joins no group must bind its port: \
                         remove bind = false or add join = GROUP",
                    ));
                }
                (None, _) => {}
            }
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
                    // Two members of one group on one node each get every message: a clash
                    // only if they would send each one twice to the same address.
                    (MappingSpec::Egress(a), MappingSpec::Egress(b)) => {
                        a.socket == b.socket
                            && a.port == b.port
                            && ((a.bind && b.bind)
                                || (a.join.is_some() && a.join == b.join && a.deliver == b.deliver))
                    }
                    (MappingSpec::Ingress(a), MappingSpec::Egress(b))
                    | (MappingSpec::Egress(b), MappingSpec::Ingress(a)) => {
                        b.bind
                            && a.from_port.0 != 0
                            && a.from_port == b.port
                            && a.socket == b.socket
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
        assert_eq!(DestinationText(s.to).to_string(), "4:5000");
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
    fn group_destinations_parse_and_print() {
        for (text, want, printed) in [
            (
                "group:7:4000",
                Destination::Multicast {
                    group: GroupId(7),
                    port: Port(4000),
                },
                "group:7:4000",
            ),
            (
                "multicast:7:4000",
                Destination::Multicast {
                    group: GroupId(7),
                    port: Port(4000),
                },
                "group:7:4000",
            ),
            (
                "anycast:4294967295:1",
                Destination::Anycast {
                    group: GroupId(u32::MAX),
                    port: Port(1),
                },
                "anycast:4294967295:1",
            ),
            (
                "4:5000",
                Destination::from("4:5000".parse::<Addr>().unwrap()),
                "4:5000",
            ),
        ] {
            let d = parse_destination("--to", text).unwrap();
            assert_eq!(d, want, "{text}");
            assert_eq!(DestinationText(d).to_string(), printed);
        }
        let s = IngressSpec::parse(
            "--",
            Path::new("/s"),
            "127.0.0.1:5000",
            "group:7:4000",
            "realtime",
        )
        .unwrap();
        assert_eq!(
            s.to_string(),
            "ingress udp 127.0.0.1:5000 -> overlay group:7:4000 (realtime:200:3:2)"
        );
        for (bad, why) in [
            ("group:0:4000", "group 0 is not a group"),
            ("anycast:0:1", "group 0 is not a group"),
            ("group:7", "no port"),
            ("group:x:1", "the group \"x\" is not a number"),
            ("group:4294967296:1", "is not a number"),
            ("group:7:70000", "the port \"70000\""),
            ("group::1", "is not a number"),
            ("groups:7:1", "expected NODE:PORT"),
        ] {
            let e = parse_destination("--to", bad).unwrap_err();
            assert_eq!(e.field, "--to");
            assert!(e.message.contains(why), "{bad}: {e}");
            assert!(e.message.contains("group:GROUP:PORT"), "{bad}: {e}");
        }
    }

    #[test]
    fn egresses_join_groups_and_bind_as_asked() {
        let p = Path::new("/s");
        let plain = EgressSpec::parse("--", p, "5000", "127.0.0.1:6000").unwrap();
        assert!(plain.bind && plain.join.is_none());
        let member = plain.clone().with_join("--join", "7", false).unwrap();
        assert_eq!((member.join, member.bind), (Some(GroupId(7)), false));
        assert_eq!(
            member.to_string(),
            "egress overlay group:7:5000 -> udp 127.0.0.1:6000"
        );
        let both = plain.clone().with_join("--join", "7", true).unwrap();
        assert_eq!(
            both.to_string(),
            "egress overlay port 5000 and group:7:5000 -> udp 127.0.0.1:6000"
        );
        for bad in ["0", "-1", "x", "4294967296", ""] {
            let e = plain.clone().with_join("--join", bad, false).unwrap_err();
            assert_eq!(e.field, "--join", "{bad}");
        }
        let e = plain.clone().with_join("--join", "0", false).unwrap_err();
        assert!(e.message.contains("group 0 is not a group"), "{e}");

        // From a file: join alone (not bound), join with bind, and the default.
        let c = GatewayConfig::from_toml(
            "socket = \"/s\"\n\
             [[egress]]\njoin = 7\nport = 5000\ndeliver = \"127.0.0.1:6000\"\n\
             [[egress]]\njoin = 7\nport = 5000\ndeliver = \"127.0.0.1:6001\"\n\
             [[egress]]\njoin = 8\nbind = true\nport = 5000\ndeliver = \"127.0.0.1:6002\"\n",
            None,
        )
        .unwrap();
        let e: Vec<&EgressSpec> = c
            .mappings
            .iter()
            .map(|m| match m {
                MappingSpec::Egress(e) => e,
                MappingSpec::Ingress(_) => panic!("egress only"),
            })
            .collect();
        assert_eq!((e[0].join, e[0].bind), (Some(GroupId(7)), false));
        assert_eq!(
            (e[1].join, e[1].bind),
            (Some(GroupId(7)), false),
            "two members of one group on one node, to two addresses: no clash"
        );
        assert_eq!((e[2].join, e[2].bind), (Some(GroupId(8)), true));
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
            (
                "socket = \"/s\"\n[[ingress]]\nlisten = \"127.0.0.1:1\"\nto = \"group:0:1\"",
                "ingress[0].to",
            ),
            (
                "socket = \"/s\"\n[[egress]]\njoin = 0\nport = 1\ndeliver = \"127.0.0.1:1\"",
                "egress[0].join",
            ),
            (
                "socket = \"/s\"\n[[egress]]\nbind = false\nport = 1\ndeliver = \"127.0.0.1:1\"",
                "egress[0].bind",
            ),
            (
                "socket = \"/s\"\n[[egress]]\njoin = 7\nport = 1\ndeliver = \"127.0.0.1:1\"\n\
                 [[egress]]\njoin = 7\nport = 1\ndeliver = \"127.0.0.1:1\"",
                "gateway",
            ),
            (
                "socket = \"/s\"\n[[egress]]\njoin = 7\nbind = true\nport = 1\n\
                 deliver = \"127.0.0.1:1\"\n\
                 [[egress]]\nport = 1\ndeliver = \"127.0.0.1:2\"",
                "gateway",
            ),
        ] {
            let e = GatewayConfig::from_toml(text, None).unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
        }
    }
}
