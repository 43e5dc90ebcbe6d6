//! One direction's AES-GCM key of one epoch, and the derivation of the two direction keys from
//! the link key in the key file.
//!
//! Both ends read the same key file, and each end's nonces are unique only among its own
//! packets (incarnation ‖ packet number; two nodes may start in the same second with the same
//! incarnation). So neither end seals with the file's key itself: each direction has its own
//! key, `SHA-256("weft link key v1\0" ‖ u16 link ‖ u16 sending node ‖ u8 epoch ‖ u8 key length
//! ‖ file key)`, truncated to the key length (docs/wire.md "Authentication").

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce, Tag};
use sha2::{Digest, Sha256};
use weft_shared::DropReason;
use weft_shared::config::KeyBytes;
use weft_shared::ids::{LinkId, NodeId};
use weft_shared::wire::{NONCE_LEN, TAG_LEN};

/// An AES-GCM key schedule of either size.
#[derive(Clone)]
pub(crate) enum Cipher {
    /// AES-128-GCM.
    Aes128(Box<Aes128Gcm>),
    /// AES-256-GCM.
    Aes256(Box<Aes256Gcm>),
}

impl core::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Cipher::Aes128(_) => "Aes128Gcm(..)",
            Cipher::Aes256(_) => "Aes256Gcm(..)",
        })
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
        match key {
            KeyBytes::Aes128(_) => {
                let mut k = [0u8; 16];
                k.copy_from_slice(&derived[..16]);
                Cipher::Aes128(Box::new(Aes128Gcm::new(&k.into())))
            }
            KeyBytes::Aes256(_) => {
                let mut k = [0u8; 32];
                k.copy_from_slice(&derived[..32]);
                Cipher::Aes256(Box::new(Aes256Gcm::new(&k.into())))
            }
        }
    }

    /// Encrypts `body` in place with `aad` and returns the tag.
    pub(crate) fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        body: &mut [u8],
    ) -> Result<[u8; TAG_LEN], DropReason> {
        let nonce = Nonce::from(*nonce);
        let tag = match self {
            Cipher::Aes128(c) => c.encrypt_inout_detached(&nonce, aad, body.into()),
            Cipher::Aes256(c) => c.encrypt_inout_detached(&nonce, aad, body.into()),
        }
        .map_err(|_| DropReason::BadLength {
            field: "auth.body",
            value: body.len(),
        })?;
        Ok(tag.into())
    }

    /// Verifies `tag` over `aad` and `body` and, if it verifies, decrypts `body` in place (it
    /// is left as it was otherwise).
    pub(crate) fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        body: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), DropReason> {
        let nonce = Nonce::from(*nonce);
        let tag = Tag::from(*tag);
        match self {
            Cipher::Aes128(c) => c.decrypt_inout_detached(&nonce, aad, body.into(), &tag),
            Cipher::Aes256(c) => c.decrypt_inout_detached(&nonce, aad, body.into(), &tag),
        }
        .map_err(|_| DropReason::BadTag)
    }
}
