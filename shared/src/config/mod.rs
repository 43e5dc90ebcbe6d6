//! The overlay's one TOML config file, parsed once into typed values.
//!
//! Every node reads the same file plus its own [`NodeId`]. Loading goes text → spanned TOML
//! document → serde [`raw`] structs (unknown keys rejected) → [`Config`], whose values are
//! typed ([`NodeId`], [`LinkId`], [`PathId`](crate::ids::PathId),
//! [`SocketAddr`](std::net::SocketAddr), [`Duration`](core::time::Duration)) and valid by
//! construction: nothing downstream re-checks them (STYLE.md §5). The schema, every default and
//! every error message are described in `docs/config.md`.
//!
//! ```no_run
//! use weft_shared::config::Config;
//! use weft_shared::ids::NodeId;
//!
//! # fn main() -> Result<(), weft_shared::config::ConfigError> {
//! let config = Config::load("config/demo.toml")?;
//! let me = NodeId::new(3).expect("3 is a valid node id");
//! for end in config.links_of(me) {
//!     for path in end.paths() {
//!         let (from, to) = (path.local.addr, path.remote.addr);
//!         let (link, peer) = (end.id(), end.neighbour());
//!         println!("link {link} path {}: {from} -> {to} (node {peer})", path.id);
//!     }
//! }
//! println!("config hash {}", config.hash());
//! # Ok(())
//! # }
//! ```

mod build;
mod error;
mod hash;
mod keys;
mod locate;
pub mod raw;
mod types;

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a test should fail loudly"
)]
mod tests;

use std::path::Path;

use toml::de::DeTable;

use crate::ids::{LinkId, NodeId};

pub use error::{ConfigError, ConfigErrorKind, FieldPath, Location, Segment};
pub use hash::ConfigHash;
pub use keys::{EpochKey, KeyBytes, KeyFileError, LinkKeys, MAX_KEY_EPOCHS};
pub use raw::RawConfig;
pub use types::{
    Auth, Interface, IspName, Link, LinkEnd, LinkPath, LocalPath, MAX_BUSY_POLL_US, MAX_INTERFACES,
    MAX_ISP_NAME_LEN, Node, Overlay, PathEnd, Timers,
};

/// The config schema version this build reads and writes (`schema = 1`).
pub const SCHEMA_VERSION: u32 = 1;

/// The file name used in errors for configs built with [`TryFrom<RawConfig>`].
pub const INLINE_FILE_NAME: &str = "<inline>";

/// A whole, consistent overlay config.
///
/// Made only by [`Config::load`], [`Config::from_toml_str`] or [`Config::from_raw`]. Nodes and
/// links are kept sorted by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    overlay: Overlay,
    timers: Timers,
    nodes: Vec<Node>,
    links: Vec<Link>,
    hash: ConfigHash,
}

impl Config {
    /// Reads and parses the file at `path`; errors name the path as given.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&file, FieldPath::root(), ConfigErrorKind::Io(e)))?;
        Config::from_toml_str(&text, &file)
    }

    /// Parses `text`; errors name `file_name` and carry the line and column.
    pub fn from_toml_str(text: &str, file_name: &str) -> Result<Config, ConfigError> {
        let raw = parse_raw(text, file_name)?;
        Config::from_raw(&raw, file_name).map_err(|e| {
            // The document parsed a moment ago, so parsing it again to find the line cannot
            // fail; if it somehow did, the error simply goes without a location.
            let location = DeTable::parse(text).ok().and_then(|doc| {
                let span = locate::span_of(&doc, e.path())?;
                Some(Location::of_offset(text, span.start))
            });
            e.with_location(location)
        })
    }

    /// Builds the typed config from raw structs; errors name `file_name` but carry no line.
    pub fn from_raw(raw: &RawConfig, file_name: &str) -> Result<Config, ConfigError> {
        build::build(raw, file_name)
    }

    /// Puts the checked parts together and computes the hash.
    fn assemble(overlay: Overlay, timers: Timers, nodes: Vec<Node>, links: Vec<Link>) -> Config {
        let mut config = Config {
            overlay,
            timers,
            nodes,
            links,
            hash: ConfigHash::from_u64(0),
        };
        config.hash = hash::hash(&config);
        config
    }

    /// The `[overlay]` settings.
    pub fn overlay(&self) -> &Overlay {
        &self.overlay
    }

    /// The protocol timers.
    pub fn timers(&self) -> &Timers {
        &self.timers
    }

    /// All nodes, sorted by id.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node with id `id`.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        let i = self.nodes.binary_search_by_key(&id, Node::id).ok()?;
        self.nodes.get(i)
    }

    /// The node named `name`.
    pub fn node_by_name(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name() == name)
    }

    /// All links, sorted by id.
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// The link with id `id`.
    pub fn link(&self, id: LinkId) -> Option<&Link> {
        let i = self.links.binary_search_by_key(&id, Link::id).ok()?;
        self.links.get(i)
    }

    /// The link between nodes `a` and `b` (in either order), if there is one.
    pub fn link_between(&self, a: NodeId, b: NodeId) -> Option<&Link> {
        let pair = if a < b { [a, b] } else { [b, a] };
        self.links.iter().find(|l| l.nodes() == pair)
    }

    /// The links of `node`, by link id, each seen from `node` (neighbour and path addresses).
    pub fn links_of(&self, node: NodeId) -> impl Iterator<Item = LinkEnd<'_>> {
        self.links.iter().filter_map(move |l| l.end(node))
    }

    /// The node across link `link` from `node`, or `None` if there is no such link or it does
    /// not touch `node`.
    pub fn neighbour(&self, link: LinkId, node: NodeId) -> Option<NodeId> {
        self.link(link)?.neighbour_of(node)
    }

    /// The stable hash of this config's meaning (see [`ConfigHash`]).
    pub fn hash(&self) -> ConfigHash {
        self.hash
    }
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    /// Builds the typed config; errors name the file [`INLINE_FILE_NAME`].
    fn try_from(raw: RawConfig) -> Result<Config, ConfigError> {
        Config::from_raw(&raw, INLINE_FILE_NAME)
    }
}

/// Text to raw structs: TOML syntax, then the schema version, then serde.
fn parse_raw(text: &str, file: &str) -> Result<RawConfig, ConfigError> {
    let located = |span: Option<core::ops::Range<usize>>, path, kind| {
        let location = span.map(|s| Location::of_offset(text, s.start));
        ConfigError::new(file, path, kind).with_location(location)
    };
    let doc = DeTable::parse(text).map_err(|e| {
        let kind = ConfigErrorKind::Syntax {
            message: e.message().to_owned(),
        };
        located(e.span(), FieldPath::root(), kind)
    })?;
    // The schema version is checked before serde sees the rest, so a file written for a newer
    // schema gets "unsupported schema version", not "unknown field" about one of its new keys.
    let schema = doc
        .get_ref()
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == "schema");
    match schema {
        None => {
            let path = FieldPath::root().key("schema");
            return Err(located(Some(0..0), path, ConfigErrorKind::MissingField));
        }
        Some((_, value)) => {
            let number = value
                .get_ref()
                .as_integer()
                .map(|i| i64::from_str_radix(i.as_str(), i.radix()));
            if number != Some(Ok(i64::from(SCHEMA_VERSION))) {
                let found = match number {
                    Some(Ok(n)) => n.to_string(),
                    _ => format!("of type {}", value.get_ref().type_str()),
                };
                let kind = ConfigErrorKind::SchemaVersion {
                    found,
                    supported: SCHEMA_VERSION,
                };
                return Err(located(
                    Some(value.span()),
                    FieldPath::root().key("schema"),
                    kind,
                ));
            }
        }
    }
    let deserializer = toml::de::Deserializer::from(doc);
    serde::Deserialize::deserialize(deserializer).map_err(|e: toml::de::Error| {
        let span = e.span();
        // serde names Rust types; the file's author thinks in TOML types.
        let message = e.message().replace("expected i64", "expected an integer");
        let mut path = match (&span, DeTable::parse(text)) {
            (Some(span), Ok(doc)) => locate::path_at(doc.get_ref(), span),
            _ => FieldPath::root(),
        };
        let kind = if let Some(field) = backticked(&message, "missing field `") {
            path = path.key(field);
            ConfigErrorKind::MissingField
        } else if message.starts_with("unknown field `") {
            ConfigErrorKind::UnknownField { message }
        } else {
            ConfigErrorKind::WrongType { message }
        };
        located(span, path, kind)
    })
}

/// The name between `prefix` and the next backtick, e.g. `addr` in "missing field `addr`".
fn backticked<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    message.strip_prefix(prefix)?.split('`').next()
}
