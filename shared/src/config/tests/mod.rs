//! Unit tests of config loading, with shared helpers.
//!
//! - `errors`: one test per error kind; each checks the file name and the field path in the
//!   message, and where it matters the line.
//! - `model`: defaults, normalisation and the accessors the planes use.
//! - `hash`: what changes the config hash and what does not.
//! - `files`: the shipped `config/example.toml` and `config/demo.toml`.

mod errors;
mod files;
mod hash;
mod model;

use super::*;

pub(super) const FILE: &str = "t.toml";

/// Three nodes (1, 2, 3) on ISPs a and b, links 0 (1-2) and 7 (2-3).
pub(super) fn base() -> String {
    let mut s = String::from("schema = 1\n\n[overlay]\nname = \"t\"\n");
    for (n, name) in [(1, "one"), (2, "two"), (3, "three")] {
        s.push_str(&format!(
            "\n[[node]]\nid = {n}\nname = \"{name}\"\n\n\
             [[node.interface]]\nisp = \"a\"\naddr = \"127.0.1.{n}:700{n}\"\n\n\
             [[node.interface]]\nisp = \"b\"\naddr = \"127.0.2.{n}:700{n}\"\n"
        ));
    }
    s.push_str("\n[[link]]\nid = 0\nnodes = [1, 2]\ncost = 1000\n");
    s.push_str("\n[[link]]\nid = 7\nnodes = [2, 3]\ncost = 1000\n");
    s
}

/// `text` with the one occurrence of `from` replaced by `to`; fails if `from` is not there.
pub(super) fn edit(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} must occur exactly once"
    );
    text.replacen(from, to, 1)
}

pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(text, FILE)
}

/// Parses `text`, expects an error whose message holds the file name and every fragment.
pub(super) fn fails(text: &str, fragments: &[&str]) -> ConfigError {
    let e = match parse(text) {
        Ok(_) => panic!("expected an error containing {fragments:?}"),
        Err(e) => e,
    };
    let msg = e.to_string();
    assert!(
        msg.starts_with(FILE),
        "message {msg:?} does not name the file"
    );
    for f in fragments {
        assert!(msg.contains(f), "message {msg:?} lacks {f:?}");
    }
    e
}

/// The 1-based line of the first line of `text` that contains `needle` (after `skip` matches).
pub(super) fn line_of(text: &str, needle: &str, skip: usize) -> u32 {
    let i = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .nth(skip);
    u32::try_from(i.map(|(i, _)| i + 1).unwrap_or(0)).unwrap()
}
