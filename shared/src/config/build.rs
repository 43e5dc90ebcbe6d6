//! Raw structs to typed [`Config`]: every range, reference and uniqueness check lives here, once.
//!
//! Checks run in file order and stop at the first problem, so the error names the earliest
//! offending field. Errors carry a [`FieldPath`]; the caller adds the line and column.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::error::{ConfigError, ConfigErrorKind as Kind, FieldPath};
use super::raw::{RawConfig, RawLink, RawNode, RawOverlay, RawTimers};
use super::types::{
    Auth, Interface, IspName, KeyFileRef, Link, LinkPath, MAX_BUSY_POLL_US, MAX_INTERFACES, Node,
    Overlay, PathEnd, Timers,
};
use super::{Config, SCHEMA_VERSION};
use crate::ids::{LinkId, MAX_LINKS, MAX_NODE_ID, MAX_PATHS_PER_LINK, NodeId, PathId};

/// Longest node or overlay name, in bytes.
const MAX_NAME_LEN: usize = 32;
/// Longest shared-memory name, in bytes (NAME_MAX is 255; leave room for suffixes).
const MAX_SHM_NAME_LEN: usize = 200;
/// Longest Unix socket path, in bytes: `sun_path` is 108 bytes including the NUL.
const MAX_SOCKET_PATH_LEN: usize = 107;
/// Highest CPU core index accepted.
const MAX_CORE: i64 = 4095;
/// Largest link cost in microseconds (10 s).
const MAX_COST_US: i64 = 10_000_000;
/// Smallest MTU: the IPv4 minimum reassembly size, below which no overlay header fits.
const MIN_MTU: i64 = 576;
/// MTU of a link that does not set one: Ethernet's.
const DEFAULT_MTU: i64 = 1500;

type Result<T> = core::result::Result<T, (FieldPath, Kind)>;

/// Builds the typed config from `raw`; errors name `file`.
pub(super) fn build(raw: &RawConfig, file: &str) -> core::result::Result<Config, ConfigError> {
    // Key files are named relative to the config file's directory.
    let base = std::path::Path::new(file)
        .parent()
        .unwrap_or(std::path::Path::new(""));
    build_inner(raw, base).map_err(|(path, kind)| ConfigError::new(file, path, kind))
}

fn build_inner(raw: &RawConfig, base: &std::path::Path) -> Result<Config> {
    let root = FieldPath::root();
    if raw.schema != i64::from(SCHEMA_VERSION) {
        let found = raw.schema.to_string();
        return Err((
            root.key("schema"),
            Kind::SchemaVersion {
                found,
                supported: SCHEMA_VERSION,
            },
        ));
    }
    let overlay = overlay(&raw.overlay, &root.key("overlay"))?;
    let timers = timers(&raw.timers, &root.key("timers"))?;
    let mut nodes = Vec::with_capacity(raw.nodes.len());
    let mut seen = Seen::default();
    for (i, raw_node) in raw.nodes.iter().enumerate() {
        nodes.push(node(raw_node, i, &overlay, &mut seen)?);
    }
    nodes.sort_by_key(Node::id);
    let mut links = Vec::with_capacity(raw.links.len());
    let mut link_ids: HashMap<LinkId, usize> = HashMap::new();
    let mut pairs: HashMap<[NodeId; 2], FieldPath> = HashMap::new();
    for (i, raw_link) in raw.links.iter().enumerate() {
        let mut l = link(raw_link, i, &nodes, &mut link_ids, &mut pairs)?;
        l.key_file = key_file(
            raw_link,
            base,
            &FieldPath::root().key("link").entry(i, Some(l.id.get())),
        )?;
        links.push(l);
    }
    links.sort_by_key(Link::id);
    Ok(Config::assemble(overlay, timers, nodes, links))
}

fn overlay(raw: &RawOverlay, path: &FieldPath) -> Result<Overlay> {
    check_name(&raw.name, "overlay name").map_err(|k| (path.key("name"), k))?;
    let auth = match raw.auth.as_deref() {
        None | Some("none") => Auth::None,
        Some(mode @ "aes-128-gcm") => {
            let what = format!("auth = \"{mode}\" (reserved for per-link AES-GCM)");
            return Err((path.key("auth"), Kind::NotSupported { what }));
        }
        Some(other) => {
            let reason = format!("unknown auth mode \"{other}\"; expected \"none\"");
            return Err((path.key("auth"), Kind::bad(reason)));
        }
    };
    Ok(Overlay {
        name: raw.name.clone(),
        auth,
    })
}

/// The value at `path`, or `default` when absent; it must lie in `range` (`unit` is for the
/// message).
fn ranged(
    value: Option<i64>,
    default: i64,
    range: core::ops::RangeInclusive<i64>,
    unit: &str,
    path: FieldPath,
) -> Result<i64> {
    let v = value.unwrap_or(default);
    if range.contains(&v) {
        Ok(v)
    } else {
        let (min, max) = (range.start(), range.end());
        Err((
            path,
            Kind::bad(format!("{v}{unit} is out of range {min}..={max}{unit}")),
        ))
    }
}

fn timers(raw: &RawTimers, path: &FieldPath) -> Result<Timers> {
    let d = Timers::default();
    let ms = |d: core::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let at = |field: &str| path.key(field);
    let hello = ranged(
        raw.hello_interval_ms,
        ms(d.hello_interval),
        1..=10_000,
        " ms",
        at("hello_interval_ms"),
    )?;
    let dead = ranged(
        raw.path_dead_after_ms,
        ms(d.path_dead_after),
        1..=600_000,
        " ms",
        at("path_dead_after_ms"),
    )?;
    let up = ranged(
        raw.path_up_after_hellos,
        i64::from(d.path_up_after_hellos),
        1..=100,
        "",
        at("path_up_after_hellos"),
    )?;
    let refresh = ranged(
        raw.link_state_refresh_ms,
        ms(d.link_state_refresh),
        100..=3_600_000,
        " ms",
        at("link_state_refresh_ms"),
    )?;
    let max_age = ranged(
        raw.link_state_max_age_ms,
        ms(d.link_state_max_age),
        200..=86_400_000,
        " ms",
        at("link_state_max_age_ms"),
    )?;
    let fib = ranged(
        raw.fib_publish_min_interval_ms,
        ms(d.fib_publish_min_interval),
        0..=10_000,
        " ms",
        at("fib_publish_min_interval_ms"),
    )?;
    // Say which side of a broken relation the file left at its default.
    let note = |given: Option<i64>| if given.is_some() { "" } else { ", the default" };
    // A path must survive two lost hellos in a row, plus jitter: strictly more than three
    // intervals without a hello before it is declared down.
    if dead <= 3 * hello {
        let reason = format!(
            "path_dead_after_ms ({dead}{}) must be more than 3 × hello_interval_ms \
             (3 × {hello}{} = {})",
            note(raw.path_dead_after_ms),
            note(raw.hello_interval_ms),
            3 * hello
        );
        return Err((
            path.key("path_dead_after_ms"),
            Kind::TimersInconsistent { reason },
        ));
    }
    // One lost refresh must not age out a neighbour's link state.
    if max_age < 2 * refresh {
        let reason = format!(
            "link_state_max_age_ms ({max_age}{}) must be at least 2 × link_state_refresh_ms \
             (2 × {refresh}{} = {})",
            note(raw.link_state_max_age_ms),
            note(raw.link_state_refresh_ms),
            2 * refresh
        );
        return Err((
            path.key("link_state_max_age_ms"),
            Kind::TimersInconsistent { reason },
        ));
    }
    // The FIB throttle must not hold back a reaction longer than a failure takes to detect.
    if fib >= dead {
        let reason = format!(
            "fib_publish_min_interval_ms ({fib}{}) must be less than path_dead_after_ms ({dead}{})",
            note(raw.fib_publish_min_interval_ms),
            note(raw.path_dead_after_ms)
        );
        return Err((
            path.key("fib_publish_min_interval_ms"),
            Kind::TimersInconsistent { reason },
        ));
    }
    let dur = |v: i64| core::time::Duration::from_millis(v.unsigned_abs());
    Ok(Timers {
        hello_interval: dur(hello),
        path_dead_after: dur(dead),
        path_up_after_hellos: u32::try_from(up).unwrap_or(1),
        link_state_refresh: dur(refresh),
        link_state_max_age: dur(max_age),
        fib_publish_min_interval: dur(fib),
    })
}

/// What earlier nodes already use, to report collisions with both places named.
#[derive(Default)]
struct Seen {
    ids: HashMap<NodeId, usize>,
    names: HashMap<String, FieldPath>,
    addrs: HashMap<SocketAddr, FieldPath>,
    sockets: HashMap<PathBuf, FieldPath>,
    shm_names: HashMap<String, FieldPath>,
}

/// Inserts `value` into `map`, or returns the path that already holds it.
fn claim<K: Eq + core::hash::Hash>(
    map: &mut HashMap<K, FieldPath>,
    value: K,
    path: &FieldPath,
) -> core::result::Result<(), FieldPath> {
    match map.entry(value) {
        Entry::Occupied(e) => Err(e.get().clone()),
        Entry::Vacant(e) => {
            e.insert(path.clone());
            Ok(())
        }
    }
}

fn node(raw: &RawNode, index: usize, overlay: &Overlay, seen: &mut Seen) -> Result<Node> {
    let nodes = FieldPath::root().key("node");
    let id = u16::try_from(raw.id)
        .ok()
        .and_then(NodeId::new)
        .ok_or_else(|| {
            let reason = format!("node id {} is out of range 1..={MAX_NODE_ID}", raw.id);
            (nodes.index(index).key("id"), Kind::bad(reason))
        })?;
    if let Some(&first) = seen.ids.get(&id) {
        let kind = Kind::DuplicateNodeId {
            id: id.get(),
            first: nodes.index(first),
        };
        return Err((nodes.index(index).key("id"), kind));
    }
    seen.ids.insert(id, index);
    let path = nodes.entry(index, Some(id.get()));

    check_name(&raw.name, "node name").map_err(|k| (path.key("name"), k))?;
    claim(&mut seen.names, raw.name.clone(), &path).map_err(|first| {
        (
            path.key("name"),
            Kind::DuplicateNodeName {
                name: raw.name.clone(),
                first,
            },
        )
    })?;

    let cores = cores(raw.cores.as_deref(), &path.key("cores"))?;
    let busy_poll_us = ranged(
        raw.busy_poll_us,
        0,
        0..=MAX_BUSY_POLL_US,
        " us",
        path.key("busy_poll_us"),
    )?;

    let mut socket = |value: &Option<String>, field: &str, suffix: &str| -> Result<PathBuf> {
        let p = path.key(field);
        let text = value
            .clone()
            .unwrap_or_else(|| format!("/run/weft/node{id}.{suffix}"));
        check_socket_path(&text).map_err(|k| (p.clone(), k))?;
        let what = "socket path";
        claim(&mut seen.sockets, PathBuf::from(&text), &p).map_err(|first| {
            (
                p.clone(),
                Kind::DuplicateResource {
                    what,
                    value: text.clone(),
                    first,
                },
            )
        })?;
        Ok(PathBuf::from(text))
    };
    let session_socket = socket(&raw.session_socket, "session_socket", "sock")?;
    let ctl_socket = socket(&raw.ctl_socket, "ctl_socket", "ctl")?;

    let shm_path = path.key("shm_name");
    let shm_name = raw
        .shm_name
        .clone()
        .unwrap_or_else(|| format!("weft-{}-node{id}", overlay.name));
    check_shm_name(&shm_name).map_err(|k| (shm_path.clone(), k))?;
    claim(&mut seen.shm_names, shm_name.clone(), &shm_path).map_err(|first| {
        let kind = Kind::DuplicateResource {
            what: "shared-memory name",
            value: shm_name.clone(),
            first,
        };
        (shm_path.clone(), kind)
    })?;

    let list = path.key("interface");
    if raw.interfaces.is_empty() || raw.interfaces.len() > MAX_INTERFACES {
        let reason = format!(
            "a node needs 1..={MAX_INTERFACES} [[node.interface]] entries, found {}",
            raw.interfaces.len()
        );
        return Err((list, Kind::bad(reason)));
    }
    let mut interfaces: Vec<Interface> = Vec::with_capacity(raw.interfaces.len());
    let mut isps: HashMap<IspName, FieldPath> = HashMap::new();
    for (j, raw_iface) in raw.interfaces.iter().enumerate() {
        let ipath = list.index(j);
        let isp = IspName::new(&raw_iface.isp).ok_or_else(|| {
            let reason = format!(
                "ISP name \"{}\" must be 1..={} ASCII letters, digits, '-' or '_'",
                raw_iface.isp,
                super::types::MAX_ISP_NAME_LEN
            );
            (ipath.key("isp"), Kind::bad(reason))
        })?;
        claim(&mut isps, isp, &ipath.key("isp")).map_err(|first| {
            (
                ipath.key("isp"),
                Kind::DuplicateIsp {
                    isp: isp.as_str().to_owned(),
                    first,
                },
            )
        })?;
        let apath = ipath.key("addr");
        let addr = socket_addr(&raw_iface.addr).map_err(|k| (apath.clone(), k))?;
        claim(&mut seen.addrs, addr, &apath)
            .map_err(|first| (apath.clone(), Kind::DuplicateAddress { addr, first }))?;
        interfaces.push(Interface { isp, addr });
    }
    interfaces.sort_by_key(Interface::isp);
    Ok(Node {
        id,
        name: raw.name.clone(),
        cores,
        session_socket,
        ctl_socket,
        shm_name,
        packing: raw.packing.unwrap_or(true),
        busy_poll_us: busy_poll_us as u32,
        interfaces,
    })
}

fn cores(raw: Option<&[i64]>, path: &FieldPath) -> Result<Vec<u16>> {
    let raw = raw.unwrap_or(&[0]);
    if raw.is_empty() {
        return Err((path.clone(), Kind::bad("cores must list at least one core")));
    }
    let mut cores: Vec<u16> = Vec::with_capacity(raw.len());
    for (k, &core) in raw.iter().enumerate() {
        let c = u16::try_from(core)
            .ok()
            .filter(|_| (0..=MAX_CORE).contains(&core));
        let Some(c) = c else {
            let reason = format!("core {core} is out of range 0..={MAX_CORE}");
            return Err((path.index(k), Kind::bad(reason)));
        };
        if cores.contains(&c) {
            return Err((
                path.index(k),
                Kind::bad(format!("core {c} is listed twice")),
            ));
        }
        cores.push(c);
    }
    Ok(cores)
}

fn check_name(name: &str, what: &str) -> core::result::Result<(), Kind> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Kind::bad(format!(
            "{what} \"{name}\" must be 1..={MAX_NAME_LEN} ASCII letters, digits, '-', '_' or '.'"
        )))
    }
}

fn check_shm_name(name: &str) -> core::result::Result<(), Kind> {
    let ok = !name.is_empty()
        && name.len() <= MAX_SHM_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Kind::bad(format!(
            "shared-memory name \"{name}\" must be 1..={MAX_SHM_NAME_LEN} ASCII letters, \
             digits, '-', '_' or '.' (no '/': the leading slash is added when opening)"
        )))
    }
}

fn check_socket_path(path: &str) -> core::result::Result<(), Kind> {
    if !path.starts_with('/') || path.ends_with('/') || path.contains('\0') {
        return Err(Kind::bad(format!(
            "socket path \"{path}\" must be an absolute file path \
             (start with '/', not end with '/')"
        )));
    }
    if path.len() > MAX_SOCKET_PATH_LEN {
        return Err(Kind::bad(format!(
            "socket path \"{path}\" is {} bytes; Unix socket paths hold at most \
             {MAX_SOCKET_PATH_LEN}",
            path.len()
        )));
    }
    Ok(())
}

fn socket_addr(text: &str) -> core::result::Result<SocketAddr, Kind> {
    let addr: SocketAddr = text.parse().map_err(|_| {
        Kind::bad(format!(
            "\"{text}\" is not an IP:port address (IPv6 as \"[addr]:port\")"
        ))
    })?;
    if addr.port() == 0 {
        return Err(Kind::bad(format!(
            "{addr}: port 0 cannot be reached by peers"
        )));
    }
    let ip = addr.ip();
    if ip.is_unspecified() || ip.is_multicast() || ip == std::net::Ipv4Addr::BROADCAST {
        return Err(Kind::bad(format!(
            "{addr}: an interface needs a specific unicast IP that peers can send to"
        )));
    }
    Ok(addr)
}

fn link(
    raw: &RawLink,
    index: usize,
    nodes: &[Node],
    ids: &mut HashMap<LinkId, usize>,
    pairs: &mut HashMap<[NodeId; 2], FieldPath>,
) -> Result<Link> {
    let links = FieldPath::root().key("link");
    let id = u16::try_from(raw.id)
        .ok()
        .and_then(LinkId::new)
        .ok_or_else(|| {
            let reason = format!("link id {} is out of range 0..={}", raw.id, MAX_LINKS - 1);
            (links.index(index).key("id"), Kind::bad(reason))
        })?;
    if let Some(&first) = ids.get(&id) {
        let kind = Kind::DuplicateLinkId {
            id: id.get(),
            first: links.index(first),
        };
        return Err((links.index(index).key("id"), kind));
    }
    ids.insert(id, index);
    let path = links.entry(index, Some(id.get()));

    let npath = path.key("nodes");
    let [a, b] = raw.nodes[..] else {
        let reason = format!(
            "nodes must list exactly two node ids, found {}",
            raw.nodes.len()
        );
        return Err((npath, Kind::bad(reason)));
    };
    let lookup = |k: usize, raw_id: i64| -> Result<&Node> {
        let id = u16::try_from(raw_id)
            .ok()
            .and_then(NodeId::new)
            .ok_or_else(|| {
                let reason = format!("node id {raw_id} is out of range 1..={MAX_NODE_ID}");
                (npath.index(k), Kind::bad(reason))
            })?;
        let found = nodes
            .binary_search_by_key(&id, Node::id)
            .ok()
            .and_then(|i| nodes.get(i));
        found.ok_or_else(|| (npath.index(k), Kind::UnknownNode { id: id.get() }))
    };
    let (node_a, node_b) = (lookup(0, a)?, lookup(1, b)?);
    if node_a.id == node_b.id {
        return Err((
            npath,
            Kind::SelfLink {
                id: node_a.id.get(),
            },
        ));
    }
    let pair = if node_a.id < node_b.id {
        [node_a.id, node_b.id]
    } else {
        [node_b.id, node_a.id]
    };
    claim(pairs, pair, &path).map_err(|first| {
        (
            npath.clone(),
            Kind::DuplicateLink {
                a: pair[0].get(),
                b: pair[1].get(),
                first,
            },
        )
    })?;

    let cost = ranged(Some(raw.cost), 0, 1..=MAX_COST_US, " µs", path.key("cost"))?;
    let mtu = ranged(
        raw.mtu,
        DEFAULT_MTU,
        MIN_MTU..=65_535,
        " bytes",
        path.key("mtu"),
    )?;

    let swapped = node_a.id > node_b.id;
    let paths = match &raw.paths {
        Some(list) => {
            let mut paths = explicit_paths(list, node_a, node_b, &path.key("paths"))?;
            if swapped {
                paths.iter_mut().for_each(|p| p.ends.swap(0, 1));
            }
            paths
        }
        // The default pairing is computed from the lower id's side, so it does not depend on
        // the order the file lists the two nodes in.
        None if swapped => default_paths(node_b, node_a, &path)?,
        None => default_paths(node_a, node_b, &path)?,
    };
    Ok(Link {
        id,
        nodes: pair,
        cost_us: u32::try_from(cost).unwrap_or(u32::MAX),
        mtu: u16::try_from(mtu).unwrap_or(u16::MAX),
        paths,
        key_file: None,
    })
}

/// Longest key file name, in bytes.
const MAX_KEY_FILE_LEN: usize = 4096;

/// The link's key file, resolved against `base` (the config file's directory).
fn key_file(raw: &RawLink, base: &std::path::Path, path: &FieldPath) -> Result<Option<KeyFileRef>> {
    let Some(written) = &raw.key_file else {
        return Ok(None);
    };
    if written.is_empty() || written.len() > MAX_KEY_FILE_LEN || written.contains('\0') {
        let reason = format!(
            "a key file name is 1..={MAX_KEY_FILE_LEN} bytes without NUL, found {} bytes",
            written.len()
        );
        return Err((path.key("key_file"), Kind::bad(reason)));
    }
    Ok(Some(KeyFileRef {
        written: written.clone(),
        path: base.join(written),
    }))
}

/// The end of a path on `node` for ISP `isp`, if the node has such an interface.
fn path_end(node: &Node, isp: &str) -> Option<PathEnd> {
    let (interface, i) = node
        .interfaces
        .iter()
        .enumerate()
        .find(|(_, i)| i.isp.as_str() == isp)?;
    Some(PathEnd {
        isp: i.isp,
        interface,
        addr: i.addr,
    })
}

fn make_path(index: usize, ends: [PathEnd; 2]) -> Option<LinkPath> {
    let id = PathId::new(u8::try_from(index).ok()?)?;
    Some(LinkPath { id, ends })
}

fn explicit_paths(
    list: &[Vec<String>],
    a: &Node,
    b: &Node,
    path: &FieldPath,
) -> Result<Vec<LinkPath>> {
    let max = usize::from(MAX_PATHS_PER_LINK);
    if list.is_empty() || list.len() > max {
        let reason = format!("a link needs 1..={max} paths, found {}", list.len());
        return Err((path.clone(), Kind::bad(reason)));
    }
    let mut out: Vec<LinkPath> = Vec::with_capacity(list.len());
    for (k, pair) in list.iter().enumerate() {
        let ppath = path.index(k);
        let [isp_a, isp_b] = &pair[..] else {
            let reason = format!(
                "a path is a pair [\"isp_of_{}\", \"isp_of_{}\"], found {} names",
                a.id,
                b.id,
                pair.len()
            );
            return Err((ppath, Kind::bad(reason)));
        };
        let end = |side: usize, node: &Node, isp: &str| {
            path_end(node, isp).ok_or_else(|| {
                let available: Vec<&str> = node.interfaces.iter().map(|i| i.isp.as_str()).collect();
                let kind = Kind::UnknownIsp {
                    isp: isp.to_owned(),
                    node: node.id.get(),
                    available: available.join(", "),
                };
                (ppath.index(side), kind)
            })
        };
        let ends = [end(0, a, isp_a)?, end(1, b, isp_b)?];
        if ends[0].addr.is_ipv4() != ends[1].addr.is_ipv4() {
            let reason = format!(
                "path pairs {} with {}: both ends must be IPv4 or both IPv6",
                ends[0].addr, ends[1].addr
            );
            return Err((ppath, Kind::bad(reason)));
        }
        if let Some(dup) = out.iter().position(|p| p.ends == ends) {
            let reason = format!(
                "path [\"{isp_a}\", \"{isp_b}\"] is listed twice (also {})",
                path.index(dup)
            );
            return Err((ppath, Kind::bad(reason)));
        }
        let p = make_path(k, ends).ok_or_else(|| (ppath.clone(), Kind::bad("too many paths")))?;
        out.push(p);
    }
    Ok(out)
}

/// Every ISP the two nodes share, or failing that every interface pair; same IP family only.
fn default_paths(a: &Node, b: &Node, path: &FieldPath) -> Result<Vec<LinkPath>> {
    let same_family = |x: &PathEnd, y: &PathEnd| x.addr.is_ipv4() == y.addr.is_ipv4();
    let ends_of = |n: &Node| -> Vec<PathEnd> {
        n.interfaces
            .iter()
            .enumerate()
            .map(|(interface, i)| PathEnd {
                isp: i.isp,
                interface,
                addr: i.addr,
            })
            .collect()
    };
    let (ends_a, ends_b) = (ends_of(a), ends_of(b));
    let mut pairs: Vec<[PathEnd; 2]> = Vec::new();
    for x in &ends_a {
        for y in &ends_b {
            if x.isp == y.isp && same_family(x, y) {
                pairs.push([*x, *y]);
            }
        }
    }
    if pairs.is_empty() {
        for x in &ends_a {
            for y in &ends_b {
                if same_family(x, y) {
                    pairs.push([*x, *y]);
                }
            }
        }
    }
    let max = usize::from(MAX_PATHS_PER_LINK);
    if pairs.is_empty() || pairs.len() > max {
        let reason = format!(
            "the default pairing of nodes {} and {} gives {} paths (allowed 1..={max}); \
             list paths explicitly",
            a.id,
            b.id,
            pairs.len()
        );
        return Err((path.key("paths"), Kind::bad(reason)));
    }
    let mut out = Vec::with_capacity(pairs.len());
    for (k, ends) in pairs.into_iter().enumerate() {
        out.push(
            make_path(k, ends).ok_or_else(|| (path.key("paths"), Kind::bad("too many paths")))?,
        );
    }
    Ok(out)
}
