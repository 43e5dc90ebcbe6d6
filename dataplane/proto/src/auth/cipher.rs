//! One direction's AES-GCM key of one epoch, and the derivation of the two direction keys from
//! the link key in the key file.
//!
//! Both ends read the same key file, and each end's nonces are unique only among its own
//! packets (incarnation ‖ packet number; two nodes may start in the same second with the same
//! incarnation). So neither end seals with the file's key itself: each direction has its own
//! key, `SHA-256("weft link key v1\0" ‖ u16 link ‖ u16 sending node ‖ u8 epoch ‖ u8 key length
//! ‖ file key)`, truncated to the key length (docs/wire.md "Authentication").
//!
//! Two interchangeable AES-GCM implementations sit behind [`Cipher`], chosen at build time: the
//! pure-Rust `aes-gcm` crate (the default, portable build) and aws-lc-rs (cargo feature
//! `aws-lc`, 2.4-3.2x faster on 1,400 B, perf/RESULTS.md "The AEAD alone"). Both produce the
//! same bytes on the wire; the tests pin them against one known answer.

use sha2::{Digest, Sha256};
use weft_shared::DropReason;
use weft_shared::config::KeyBytes;
use weft_shared::ids::{LinkId, NodeId};
use weft_shared::wire::{NONCE_LEN, TAG_LEN};

#[cfg(not(feature = "aws-lc"))]
use rust_crypto::Key;

#[cfg(feature = "aws-lc")]
use aws_lc::Key;

/// An AES-GCM key schedule of either size, from the backend this build uses.
#[derive(Clone)]
pub(crate) struct Cipher(Key);

impl core::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.0.name())
    }
}

impl Cipher {
    /// The key of the direction `sender` → its peer on `link`, epoch `epoch`, derived from the
    /// file key `key`.
    pub(crate) fn derive(key: &KeyBytes, link: LinkId, sender: NodeId, epoch: u8) -> Self {
        let file_key = key.as_bytes();
        let mut h = Sha256::new();
        h.update(b"weft link key v1\0");
        h.update(link.get().to_be_bytes());
        h.update(sender.get().to_be_bytes());
        h.update([epoch, file_key.len() as u8]);
        h.update(file_key);
        let derived = h.finalize();
        let len = match key {
            KeyBytes::Aes128(_) => 16,
            KeyBytes::Aes256(_) => 32,
        };
        Cipher(Key::new(&derived[..len]))
    }

    /// Encrypts `body` in place with `aad` and returns the tag.
    pub(crate) fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        body: &mut [u8],
    ) -> Result<[u8; TAG_LEN], DropReason> {
        self.0.seal(nonce, aad, body).ok_or(DropReason::BadLength {
            field: "auth.body",
            value: body.len(),
        })
    }

    /// Verifies `tag` over `aad` and `body` and, if it verifies, decrypts `body` in place. If it
    /// does not, `body` is garbage (the caller drops the packet).
    pub(crate) fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        body: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), DropReason> {
        if self.0.open(nonce, aad, body, tag) {
            Ok(())
        } else {
            Err(DropReason::BadTag)
        }
    }
}

/// The default backend: the pure-Rust `aes-gcm` crate (AES-NI and CLMUL picked at run time).
#[cfg(not(feature = "aws-lc"))]
mod rust_crypto {
    use aes_gcm::aead::{AeadInOut, KeyInit};
    use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce, Tag};
    use weft_shared::wire::{NONCE_LEN, TAG_LEN};

    /// An expanded key of either size.
    #[derive(Clone)]
    pub(super) enum Key {
        /// AES-128-GCM.
        Aes128(Box<Aes128Gcm>),
        /// AES-256-GCM.
        Aes256(Box<Aes256Gcm>),
    }

    impl Key {
        /// Expands a 16- or 32-byte key (any other length is a 256-bit key's prefix: the
        /// caller passes only those two).
        pub(super) fn new(key: &[u8]) -> Self {
            match <[u8; 16]>::try_from(key) {
                Ok(k) => Key::Aes128(Box::new(Aes128Gcm::new(&k.into()))),
                Err(_) => {
                    let mut k = [0u8; 32];
                    let n = key.len().min(32);
                    k[..n].copy_from_slice(&key[..n]);
                    Key::Aes256(Box::new(Aes256Gcm::new(&k.into())))
                }
            }
        }

        pub(super) fn name(&self) -> &'static str {
            match self {
                Key::Aes128(_) => "Aes128Gcm(aes-gcm, ..)",
                Key::Aes256(_) => "Aes256Gcm(aes-gcm, ..)",
            }
        }

        pub(super) fn seal(
            &self,
            nonce: &[u8; NONCE_LEN],
            aad: &[u8],
            body: &mut [u8],
        ) -> Option<[u8; TAG_LEN]> {
            let nonce = Nonce::from(*nonce);
            match self {
                Key::Aes128(c) => c.encrypt_inout_detached(&nonce, aad, body.into()),
                Key::Aes256(c) => c.encrypt_inout_detached(&nonce, aad, body.into()),
            }
            .ok()
            .map(Into::into)
        }

        pub(super) fn open(
            &self,
            nonce: &[u8; NONCE_LEN],
            aad: &[u8],
            body: &mut [u8],
            tag: &[u8; TAG_LEN],
        ) -> bool {
            let nonce = Nonce::from(*nonce);
            let tag = Tag::from(*tag);
            match self {
                Key::Aes128(c) => c.decrypt_inout_detached(&nonce, aad, body.into(), &tag),
                Key::Aes256(c) => c.decrypt_inout_detached(&nonce, aad, body.into(), &tag),
            }
            .is_ok()
        }
    }
}

/// The fast backend (feature `aws-lc`): AWS-LC's AES-GCM through aws-lc-rs.
#[cfg(feature = "aws-lc")]
mod aws_lc {
    use aws_lc_rs::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    use weft_shared::wire::{NONCE_LEN, TAG_LEN};

    /// An expanded key of either size. `LessSafeKey` because the nonce comes from the link
    /// header (incarnation ‖ packet number), unique per direction key by construction.
    pub(super) struct Key {
        key: LessSafeKey,
        name: &'static str,
        /// The raw key, to expand a copy from (`LessSafeKey` is not `Clone`).
        raw: [u8; 32],
        raw_len: usize,
    }

    impl Clone for Key {
        fn clone(&self) -> Self {
            Key::new(&self.raw[..self.raw_len])
        }
    }

    impl Drop for Key {
        fn drop(&mut self) {
            // Best effort: the expanded schedule inside AWS-LC is freed (and cleansed) by it.
            self.raw = [0; 32];
            core::hint::black_box(&self.raw);
        }
    }

    impl Key {
        /// Expands a 16- or 32-byte key.
        ///
        /// # Panics
        /// On any other length: the caller passes only those two (a derived, not a client's,
        /// key), so this is a bug.
        #[allow(
            clippy::panic,
            reason = "the caller passes 16 or 32 bytes, never input"
        )]
        pub(super) fn new(key: &[u8]) -> Self {
            let (alg, name) = if key.len() == 16 {
                (&AES_128_GCM, "Aes128Gcm(aws-lc, ..)")
            } else {
                (&AES_256_GCM, "Aes256Gcm(aws-lc, ..)")
            };
            let mut raw = [0u8; 32];
            let raw_len = key.len().min(32);
            raw[..raw_len].copy_from_slice(&key[..raw_len]);
            match UnboundKey::new(alg, key) {
                Ok(k) => Key {
                    key: LessSafeKey::new(k),
                    name,
                    raw,
                    raw_len,
                },
                Err(_) => panic!("an AES-GCM key of {} bytes", key.len()),
            }
        }

        pub(super) fn name(&self) -> &'static str {
            self.name
        }

        pub(super) fn seal(
            &self,
            nonce: &[u8; NONCE_LEN],
            aad: &[u8],
            body: &mut [u8],
        ) -> Option<[u8; TAG_LEN]> {
            let tag = self
                .key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(*nonce),
                    Aad::from(aad),
                    body,
                )
                .ok()?;
            tag.as_ref().try_into().ok()
        }

        pub(super) fn open(
            &self,
            nonce: &[u8; NONCE_LEN],
            aad: &[u8],
            body: &mut [u8],
            tag: &[u8; TAG_LEN],
        ) -> bool {
            self.key
                .open_in_place_separate_tag(
                    Nonce::assume_unique_for_key(*nonce),
                    Aad::from(aad),
                    tag,
                    body,
                )
                .is_ok()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;

    /// One known answer for each key size, the same for both backends (CI runs the auth tests
    /// in both builds), so a node built with `aws-lc` talks to one built without.
    #[test]
    fn both_backends_seal_to_the_same_known_answer() {
        let k: [u8; 32] = core::array::from_fn(|i| (i as u8).wrapping_mul(17));
        let mut k16 = [0u8; 16];
        k16.copy_from_slice(&k[..16]);
        let cases = [
            (
                KeyBytes::Aes128(k16),
                "35cfa26f03ad20dfb92480a916330d51ee1b23c751f1406e1fa518683d272600c21efd99dd59e69cca3755a015fdbce43c",
            ),
            (
                KeyBytes::Aes256(k),
                "38cad888f8cf5c6a5bd2ae6fc7aaba939f93c5c45576b79745a0e55546b82689b80c3c2c8777e0b13e6af43697aa5b2b5a",
            ),
        ];
        for (key, want) in cases {
            let link = LinkId::new(3).unwrap();
            let c = Cipher::derive(&key, link, NodeId::new(7).unwrap(), 2);
            let nonce = [1u8; NONCE_LEN];
            let aad = b"link header";
            let mut body = *b"a data record body of some length";
            let plain = body;
            let tag = c.seal(&nonce, aad, &mut body).unwrap();
            assert_ne!(body, plain, "{}", c.0.name());
            let got: String = body
                .iter()
                .chain(tag.iter())
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(got, want, "{}", c.0.name());
            c.open(&nonce, aad, &mut body, &tag).unwrap();
            assert_eq!(body, plain);
            let mut bad = tag;
            bad[0] ^= 1;
            let mut body2 = body;
            c.seal(&nonce, aad, &mut body2).unwrap();
            assert_eq!(
                c.open(&nonce, aad, &mut body2, &bad),
                Err(DropReason::BadTag)
            );
        }
    }
}
