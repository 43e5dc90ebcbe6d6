//! Link key files: the AES-GCM keys of one authenticated link, by epoch.
//!
//! A `[[link]]` with `key_file = "keys/link3.key"` is authenticated (docs/config.md "Key
//! files"). Both ends read the same file. It holds one key per line, `EPOCH HEX`: an epoch
//! 0..=255 and 32 hex digits (AES-128) or 64 (AES-256); blank lines and `#` comments are
//! ignored. The wire carries an epoch modulo 4 (docs/wire.md "Key epochs"), so no two epochs of
//! one file may be congruent modulo 4: a rotation adds the next epoch and, once both ends use
//! it, removes the oldest.
//!
//! [`Config::load`](super::Config::load) does not read key files (the control plane and
//! `weftctl` never need the keys, and may not be allowed to read them); the data plane calls
//! [`LinkKeys::load`] at start-up and whenever a file changes.

use std::fmt;
use std::path::{Path, PathBuf};

/// The most epochs one key file may hold at once (the wire tells 4 apart).
pub const MAX_KEY_EPOCHS: usize = 4;

/// The bytes of one AES-GCM key.
#[derive(Clone, PartialEq, Eq)]
pub enum KeyBytes {
    /// A 128-bit key (32 hex digits).
    Aes128([u8; 16]),
    /// A 256-bit key (64 hex digits).
    Aes256([u8; 32]),
}

impl KeyBytes {
    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            KeyBytes::Aes128(k) => k,
            KeyBytes::Aes256(k) => k,
        }
    }
}

impl fmt::Debug for KeyBytes {
    /// Never prints key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyBytes::Aes128(_) => f.write_str("Aes128(..)"),
            KeyBytes::Aes256(_) => f.write_str("Aes256(..)"),
        }
    }
}

/// One key of a link with its epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochKey {
    /// The epoch, 0..=255; a later key has a higher epoch.
    pub epoch: u8,
    /// The key.
    pub key: KeyBytes,
}

/// The keys of one link, sorted by epoch (1..=[`MAX_KEY_EPOCHS`] of them, no two epochs
/// congruent modulo 4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkKeys {
    keys: Vec<EpochKey>,
}

/// Why a key file could not be used. The message names the file and, for a bad line, its
/// number; it never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read (missing, no permission, not a file).
    #[error("{path}: cannot read the key file: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A line is not `EPOCH HEX` with a valid epoch and key.
    #[error("{path}:{line}: {reason}")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Two lines have the same epoch.
    #[error("{path}:{line}: duplicate epoch {epoch} (also on line {first})")]
    DuplicateEpoch {
        /// The file.
        path: PathBuf,
        /// The second line with the epoch.
        line: usize,
        /// The epoch.
        epoch: u8,
        /// The first line with it.
        first: usize,
    },
    /// Two epochs share their wire bits (epoch modulo 4).
    #[error(
        "{path}:{line}: epoch {epoch} and epoch {other} (line {other_line}) are equal modulo 4, \
         which the wire cannot tell apart; remove the older key first"
    )]
    EpochClash {
        /// The file.
        path: PathBuf,
        /// The line of the later of the two.
        line: usize,
        /// Its epoch.
        epoch: u8,
        /// The other epoch.
        other: u8,
        /// Its line.
        other_line: usize,
    },
    /// The file holds no key.
    #[error("{path}: the key file holds no key (lines are `EPOCH HEX`)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

impl LinkKeys {
    /// Reads and parses the key file at `path`.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses key file text; errors name `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, KeyFileError> {
        let bad = |line: usize, reason: String| KeyFileError::BadLine {
            path: path.to_path_buf(),
            line,
            reason,
        };
        // (epoch, line) of every key so far.
        let mut seen: Vec<(u8, usize)> = Vec::new();
        let mut keys = Vec::new();
        for (i, raw_line) in text.lines().enumerate() {
            let line = i + 1;
            let content = raw_line.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let mut words = content.split_whitespace();
            let (Some(epoch_text), Some(hex), None) = (words.next(), words.next(), words.next())
            else {
                return Err(bad(line, "expected `EPOCH HEX` (two fields)".into()));
            };
            let epoch: u8 = epoch_text
                .parse()
                .map_err(|_| bad(line, format!("epoch {epoch_text:?} is not in 0..=255")))?;
            let key = parse_hex_key(hex).map_err(|reason| bad(line, reason))?;
            if let Some(&(_, first)) = seen.iter().find(|(e, _)| *e == epoch) {
                return Err(KeyFileError::DuplicateEpoch {
                    path: path.to_path_buf(),
                    line,
                    epoch,
                    first,
                });
            }
            if let Some(&(other, other_line)) = seen.iter().find(|(e, _)| e % 4 == epoch % 4) {
                return Err(KeyFileError::EpochClash {
                    path: path.to_path_buf(),
                    line,
                    epoch,
                    other,
                    other_line,
                });
            }
            seen.push((epoch, line));
            keys.push(EpochKey { epoch, key });
        }
        if keys.is_empty() {
            return Err(KeyFileError::Empty {
                path: path.to_path_buf(),
            });
        }
        keys.sort_by_key(|k| k.epoch);
        Ok(LinkKeys { keys })
    }

    /// The keys, oldest epoch first.
    pub fn keys(&self) -> &[EpochKey] {
        &self.keys
    }

    /// The newest epoch.
    pub fn newest(&self) -> u8 {
        self.keys.last().map_or(0, |k| k.epoch)
    }
}

/// A key of 32 or 64 hex digits.
fn parse_hex_key(hex: &str) -> Result<KeyBytes, String> {
    fn decode<const N: usize>(hex: &[u8]) -> Option<[u8; N]> {
        let mut out = [0u8; N];
        for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            *byte = (hi * 16 + lo) as u8;
        }
        Some(out)
    }
    let digits = hex.as_bytes();
    let not_hex = || "the key is not hexadecimal".to_string();
    match digits.len() {
        32 => decode::<16>(digits)
            .map(KeyBytes::Aes128)
            .ok_or_else(not_hex),
        64 => decode::<32>(digits)
            .map(KeyBytes::Aes256)
            .ok_or_else(not_hex),
        n => Err(format!(
            "the key has {n} hex digits; AES-128 needs 32 and AES-256 64"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;

    const K1: &str = "000102030405060708090a0b0c0d0e0f";

    fn parse(text: &str) -> Result<LinkKeys, String> {
        LinkKeys::parse(text, Path::new("k.key")).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_epochs_comments_and_both_sizes() {
        let text = format!("# link 3\n\n2 {}  # new\n1 {K1}\n", "ab".repeat(32));
        let keys = parse(&text).unwrap();
        assert_eq!(keys.keys().len(), 2);
        assert_eq!(keys.keys()[0].epoch, 1);
        assert_eq!(keys.keys()[0].key.as_bytes()[15], 0x0f);
        assert!(matches!(keys.keys()[1].key, KeyBytes::Aes256(_)));
        assert_eq!(keys.newest(), 2);
        assert_eq!(format!("{:?}", keys.keys()[0].key), "Aes128(..)");
    }

    #[test]
    fn reports_each_problem_with_its_line() {
        assert_eq!(
            parse("").unwrap_err(),
            "k.key: the key file holds no key (lines are `EPOCH HEX`)"
        );
        assert_eq!(
            parse(&format!("\n256 {K1}")).unwrap_err(),
            "k.key:2: epoch \"256\" is not in 0..=255"
        );
        assert_eq!(
            parse("0 abcd").unwrap_err(),
            "k.key:1: the key has 4 hex digits; AES-128 needs 32 and AES-256 64"
        );
        assert_eq!(
            parse(&format!("0 {}", "zz".repeat(16))).unwrap_err(),
            "k.key:1: the key is not hexadecimal"
        );
        assert_eq!(
            parse(K1).unwrap_err(),
            "k.key:1: expected `EPOCH HEX` (two fields)"
        );
        assert_eq!(
            parse(&format!("3 {K1}\n3 {K1}")).unwrap_err(),
            "k.key:2: duplicate epoch 3 (also on line 1)"
        );
        assert!(
            parse(&format!("1 {K1}\n5 {K1}"))
                .unwrap_err()
                .starts_with("k.key:2: epoch 5 and epoch 1 (line 1) are equal modulo 4")
        );
        let missing = LinkKeys::load(Path::new("/nonexistent/weft.key")).unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("/nonexistent/weft.key: cannot read the key file:")
        );
    }
}
