//! Standard Webhooks `v1a`: Ed25519 signatures, verified with `whpk_` public keys (and with the
//! public half of `whsk_` signing keys, which can also sign for `send-test`).
//!
//! Built on `ring`: it is already compiled into the gateway for rustls, maintained, audited, and
//! its verification is strict (RFC 8032 checks), so `v1a` adds no new crypto dependency.

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

/// Ed25519 public keys and signatures have fixed sizes; anything else is malformed.
pub(crate) const PUBLIC_KEY_LEN: usize = 32;
/// See [`PUBLIC_KEY_LEN`].
pub(crate) const SIGNATURE_LEN: usize = 64;

/// A route's Ed25519 keys: every public key verifies, the first signing key signs.
#[derive(Debug, Default)]
pub(crate) struct AsymKeys {
    public: Vec<Vec<u8>>,
    signer: Option<Ed25519KeyPair>,
}

impl AsymKeys {
    /// Adds a `whpk_` key; `false` when it is not 32 bytes.
    pub(crate) fn add_public(&mut self, key: Vec<u8>) -> bool {
        let ok = key.len() == PUBLIC_KEY_LEN;
        if ok {
            self.public.push(key);
        }
        ok
    }

    /// Adds a `whsk_` key (a 32-byte seed): its public half verifies, the first one signs.
    pub(crate) fn add_secret(&mut self, seed: &[u8]) -> bool {
        let Ok(pair) = Ed25519KeyPair::from_seed_unchecked(seed) else {
            return false;
        };
        self.public.push(pair.public_key().as_ref().to_vec());
        self.signer.get_or_insert(pair);
        true
    }

    /// Whether there is any key at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.public.is_empty()
    }

    /// Whether some signature verifies `message` under some public key.
    pub(crate) fn verify(&self, message: &[u8], signatures: &[Vec<u8>]) -> bool {
        self.public.iter().any(|key| {
            let key = UnparsedPublicKey::new(&ED25519, key);
            signatures
                .iter()
                .any(|sig| key.verify(message, sig).is_ok())
        })
    }

    /// A signature by the first signing key, when the route has one.
    pub(crate) fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        let pair = self.signer.as_ref()?;
        Some(pair.sign(message).as_ref().to_vec())
    }
}
