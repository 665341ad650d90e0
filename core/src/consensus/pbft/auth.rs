//! Digests, MACs and signatures, modelled (Castro & Liskov 1999, §3 and §5): no real
//! cryptography, but the model keeps the one property the protocol relies on — a replica
//! can authenticate only as itself.
//!
//! - A **digest** is a 64-bit stable hash of a value ([`digest`]).
//! - A **MAC** authenticates one link: a keyed hash of (sender, receiver, content digest)
//!   under the key that only that pair shares. Every envelope carries one; the receiver
//!   recomputes it with the key it shares with the claimed sender and drops the envelope
//!   on a mismatch. A Byzantine replica that claims to be another replica has no key for
//!   that pair, so its forgery is detected.
//! - A **signature** is a keyed hash of a content digest under the signer's own key, which
//!   anyone can check (the model plays the public-key infrastructure). The paper signs
//!   the messages that are forwarded as proof — prepared certificates inside VIEW-CHANGE,
//!   checkpoint certificates, the VIEW-CHANGE messages inside NEW-VIEW — and so does the
//!   model, on every protocol message, so a message can be kept and shown on as proof.
//!
//! Why keyed hashes and not real crypto: a 64-bit tag is unguessable to the model's
//! Byzantine code, which only ever calls [`KeyRing`] with its own identity; the point is
//! to show that forging is detected, not to resist a real adversary.

use std::hash::{Hash, Hasher};

use crate::sim::NodeId;
use crate::sim::trace::StableHasher;

/// A stable 64-bit digest of a value.
pub fn digest<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut h = StableHasher::default();
    value.hash(&mut h);
    h.finish()
}

fn keyed(key: u64, words: &[u64]) -> u64 {
    let mut h = StableHasher::default();
    key.hash(&mut h);
    for w in words {
        w.hash(&mut h);
    }
    key.hash(&mut h);
    h.finish()
}

/// One replica's keys: the pairwise MAC keys it shares and its signing key. Built from
/// the group's secret (the config's key seed) and the replica's own id; every method
/// authenticates as `me` and nobody else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyRing {
    secret: u64,
    me: NodeId,
}

impl KeyRing {
    pub fn new(secret: u64, me: NodeId) -> Self {
        KeyRing { secret, me }
    }

    pub fn me(&self) -> NodeId {
        self.me
    }

    fn pair_key(&self, a: NodeId, b: NodeId) -> u64 {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        keyed(self.secret, &[1, u64::from(lo), u64::from(hi)])
    }

    fn signing_key(&self, signer: NodeId) -> u64 {
        keyed(self.secret, &[2, u64::from(signer)])
    }

    /// The MAC of `content` on the link from this replica to `to`.
    pub fn mac_to(&self, to: NodeId, content: u64) -> u64 {
        let key = self.pair_key(self.me, to);
        keyed(key, &[u64::from(self.me), u64::from(to), content])
    }

    /// Whether `mac` is what `sender` would compute for `content` sent to this replica.
    pub fn mac_from_ok(&self, sender: NodeId, content: u64, mac: u64) -> bool {
        let key = self.pair_key(sender, self.me);
        keyed(key, &[u64::from(sender), u64::from(self.me), content]) == mac
    }

    /// This replica's signature of `content`.
    pub fn sign(&self, content: u64) -> u64 {
        keyed(self.signing_key(self.me), &[content])
    }

    /// Whether `sig` is `signer`'s signature of `content` (the model's public-key check).
    pub fn signature_ok(&self, signer: NodeId, content: u64, sig: u64) -> bool {
        keyed(self.signing_key(signer), &[content]) == sig
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_pair_can_mac_and_only_the_signer_can_sign() {
        let a = KeyRing::new(7, 0);
        let b = KeyRing::new(7, 1);
        let liar = KeyRing::new(7, 2);
        let m = digest("pre-prepare");
        assert!(b.mac_from_ok(0, m, a.mac_to(1, m)));
        // The liar claims to be 0: its MAC is under the key of the pair (2, 1).
        assert!(!b.mac_from_ok(0, m, liar.mac_to(1, m)));
        assert!(!b.mac_from_ok(0, digest("other"), a.mac_to(1, m)));
        assert!(b.signature_ok(0, m, a.sign(m)));
        assert!(!b.signature_ok(0, m, liar.sign(m)));
        // Another group's secret gives other keys.
        assert!(!KeyRing::new(8, 1).mac_from_ok(0, m, a.mac_to(1, m)));
    }
}
