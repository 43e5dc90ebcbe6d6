//! The one error type of config loading: which file, where in it, which field, and why.
//!
//! Display format (see `docs/config.md`):
//!
//! ```text
//! demo.toml:41:9: link[id=7].paths[1]: unknown ISP "c" on node 4 (node 4 has: a, b)
//! ```
//!
//! `line:column` is present when the error came from text (1-based, columns in characters); the
//! field path is absent only for syntax errors and I/O errors.

use core::fmt;
use std::net::SocketAddr;

/// One step of a [`FieldPath`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// A table key, e.g. `node` or `addr`.
    Key(String),
    /// An entry of an array: its 0-based position in the file, and its id where it has one.
    ///
    /// Shown as `[id=7]` when `id` is known, otherwise as `[2]`.
    Index {
        /// Position among its siblings in the file (0-based).
        index: usize,
        /// The entry's own id (node or link id), once that id is known to be valid.
        id: Option<u16>,
    },
}

/// Where a value sits in the file, e.g. `node[id=3].interface[1].addr`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// The document root (an empty path).
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    /// This path extended by the key `key`.
    pub fn key(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_owned()));
        FieldPath(segments)
    }

    /// This path extended by the array entry at position `index` (0-based), without an id.
    pub fn index(&self, index: usize) -> Self {
        self.entry(index, None)
    }

    /// This path extended by the array entry at position `index` whose id is `id`.
    pub fn entry(&self, index: usize, id: Option<u16>) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index { index, id });
        FieldPath(segments)
    }

    /// The path's steps, outermost first.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// Whether this is the document root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends one step in place (used while walking a parsed document).
    pub(crate) fn push(&mut self, segment: Segment) {
        self.0.push(segment);
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index { id: Some(id), .. } => write!(f, "[id={id}]")?,
                Segment::Index { index, id: None } => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A position in the config text: 1-based line and column (columns count characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
}

impl Location {
    /// The location of byte offset `offset` in `text` (clamped to the text's end).
    pub fn of_offset(text: &str, offset: usize) -> Self {
        let mut end = offset.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let before = &text[..end];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.matches('\n').count() + 1;
        let column = before[line_start..].chars().count() + 1;
        Location {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }
}

/// A config that could not be loaded: the file, the place in it, and the reason.
///
/// Boxed inside, so a `Result<Config, ConfigError>` stays one pointer wide on the error side.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    file: String,
    location: Option<Location>,
    path: FieldPath,
    // Not a `#[source]`: the kind is already part of this error's message.
    kind: ConfigErrorKind,
}

impl ConfigError {
    /// An error of kind `kind` at `path` in `file`, without a text location.
    pub fn new(file: &str, path: FieldPath, kind: ConfigErrorKind) -> Self {
        ConfigError(Box::new(Inner {
            file: file.to_owned(),
            location: None,
            path,
            kind,
        }))
    }

    /// The file name as given to the loader.
    pub fn file(&self) -> &str {
        &self.0.file
    }

    /// Line and column in the text, when the error came from text.
    pub fn location(&self) -> Option<Location> {
        self.0.location
    }

    /// The field the error is about (the root for syntax and I/O errors).
    pub fn path(&self) -> &FieldPath {
        &self.0.path
    }

    /// Why the config was rejected.
    pub fn kind(&self) -> &ConfigErrorKind {
        &self.0.kind
    }

    pub(crate) fn with_location(mut self, location: Option<Location>) -> Self {
        self.0.location = location;
        self
    }

    fn render(&self) -> String {
        let mut out = self.0.file.clone();
        if let Some(Location { line, column }) = self.0.location {
            out.push_str(&format!(":{line}:{column}"));
        }
        if !self.0.path.is_root() {
            out.push_str(&format!(": {}", self.0.path));
        }
        out.push_str(&format!(": {}", self.0.kind));
        out
    }
}

/// Why a config was rejected. The Display of each variant is the "why" part of the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The file could not be read.
    #[error("cannot read the config file: {0}")]
    Io(#[source] std::io::Error),
    /// The text is not valid TOML.
    #[error("TOML syntax error: {message}")]
    Syntax {
        /// The TOML parser's description.
        message: String,
    },
    /// A required field is absent.
    #[error("missing required field")]
    MissingField,
    /// A key that the schema does not have (often a typo).
    #[error("{message}")]
    UnknownField {
        /// The deserializer's description, which lists the expected keys.
        message: String,
    },
    /// A value of the wrong TOML type (say a string where an integer belongs).
    #[error("{message}")]
    WrongType {
        /// The deserializer's description.
        message: String,
    },
    /// `schema` is not a version this build reads.
    #[error("unsupported schema version {found}; this build reads schema = {supported}")]
    SchemaVersion {
        /// The value in the file.
        found: String,
        /// The version this build supports.
        supported: u32,
    },
    /// A feature that the schema reserves but this build does not implement.
    #[error("{what} is not supported yet")]
    NotSupported {
        /// What was asked for.
        what: String,
    },
    /// A value that is out of range or malformed.
    #[error("{reason}")]
    BadValue {
        /// What is wrong with it, and what is allowed.
        reason: String,
    },
    /// Two nodes share an id.
    #[error("duplicate node id {id} (also used by {first})")]
    DuplicateNodeId {
        /// The repeated id.
        id: u16,
        /// The path of the node that used it first.
        first: FieldPath,
    },
    /// Two nodes share a name.
    #[error("duplicate node name \"{name}\" (also used by {first})")]
    DuplicateNodeName {
        /// The repeated name.
        name: String,
        /// The path of the node that used it first.
        first: FieldPath,
    },
    /// A node lists the same ISP twice.
    #[error("duplicate ISP \"{isp}\" on this node (also {first})")]
    DuplicateIsp {
        /// The repeated ISP name.
        isp: String,
        /// The path of the interface that used it first.
        first: FieldPath,
    },
    /// Two interfaces (on one node or on two) bind the same IP and port.
    #[error("duplicate address {addr} (also used by {first})")]
    DuplicateAddress {
        /// The repeated address.
        addr: SocketAddr,
        /// The path of the interface that used it first.
        first: FieldPath,
    },
    /// Two sockets, shared-memory names or similar per-node resources collide.
    #[error("{what} \"{value}\" is also used by {first}")]
    DuplicateResource {
        /// What kind of resource (e.g. "socket path").
        what: &'static str,
        /// The colliding value.
        value: String,
        /// The path of the field that used it first.
        first: FieldPath,
    },
    /// Two links share an id.
    #[error("duplicate link id {id} (also used by {first})")]
    DuplicateLinkId {
        /// The repeated id.
        id: u16,
        /// The path of the link that used it first.
        first: FieldPath,
    },
    /// Two links join the same pair of nodes.
    #[error("a link between nodes {a} and {b} already exists ({first}); use paths for more")]
    DuplicateLink {
        /// The lower node id.
        a: u16,
        /// The higher node id.
        b: u16,
        /// The path of the existing link.
        first: FieldPath,
    },
    /// A link names a node id that no `[[node]]` has.
    #[error("unknown node {id}: no [[node]] has this id")]
    UnknownNode {
        /// The missing node id.
        id: u16,
    },
    /// A link joins a node to itself.
    #[error("a link joins node {id} to itself")]
    SelfLink {
        /// The node.
        id: u16,
    },
    /// A path names an ISP that the node has no interface for.
    #[error("unknown ISP \"{isp}\" on node {node} (node {node} has: {available})")]
    UnknownIsp {
        /// The ISP name in the path.
        isp: String,
        /// The node that lacks it.
        node: u16,
        /// The node's ISP names, comma separated.
        available: String,
    },
    /// Timer values that contradict each other.
    #[error("timers inconsistent: {reason}")]
    TimersInconsistent {
        /// Which relation is broken, with the numbers.
        reason: String,
    },
}

impl ConfigErrorKind {
    /// A [`ConfigErrorKind::BadValue`] with the given reason.
    pub(crate) fn bad(reason: impl Into<String>) -> Self {
        ConfigErrorKind::BadValue {
            reason: reason.into(),
        }
    }
}
