//! HMAC-SHA256 authenticators: MAC vectors between replicas ([`MacAuth`])
//! and the MACs between a client and each replica ([`ClientMacs`]).
//!
//! Keys are pre-loaded (the HMAC state after the key block is kept and
//! cloned), so a tag over a short payload costs two SHA-256 compressions.

use alloc::vec::Vec;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{Auth, Authenticator, Tag, Tags, ct_eq};
use crate::bft::ReplicaIndex;

type HmacSha256 = Hmac<Sha256>;

/// A pre-keyed HMAC-SHA256.
#[derive(Clone)]
pub struct MacKey(HmacSha256);

impl MacKey {
    /// Loads `key`.
    pub fn new(key: &[u8; 32]) -> Self {
        // A 32-byte key is always a valid HMAC key.
        MacKey(<HmacSha256 as KeyInit>::new_from_slice(key).expect("any key length is valid"))
    }

    /// The tag of `payload`.
    pub fn tag(&self, payload: &[u8]) -> Tag {
        self.tag_parts(&[payload])
    }

    /// The tag of the concatenation of `parts` (without concatenating).
    pub fn tag_parts(&self, parts: &[&[u8]]) -> Tag {
        let mut m = self.0.clone();
        for p in parts {
            m.update(p);
        }
        let out = m.finalize().into_bytes();
        let mut tag = [0; 16];
        tag.copy_from_slice(&out[..16]);
        tag
    }

    /// True if `tag` is the tag of `payload`.
    pub fn check(&self, payload: &[u8], tag: &Tag) -> bool {
        ct_eq(&self.tag(payload), tag)
    }

    /// True if `tag` is the tag of the concatenation of `parts`.
    pub fn check_parts(&self, parts: &[&[u8]], tag: &Tag) -> bool {
        ct_eq(&self.tag_parts(parts), tag)
    }
}

/// The tag of `payload` under `key` (unkeyed convenience, for measuring).
pub fn mac_tag(key: &[u8; 32], payload: &[u8]) -> Tag {
    MacKey::new(key).tag(payload)
}

/// MAC vectors over pairwise session keys.
#[derive(Clone)]
pub struct MacAuth {
    me: ReplicaIndex,
    /// `keys[j]`: the key shared with replica j (`keys[me]` unused).
    keys: Vec<MacKey>,
}

impl MacAuth {
    /// Replica `me` with `keys[j]` shared with replica j.
    pub fn new(me: ReplicaIndex, keys: &[[u8; 32]]) -> Self {
        Self {
            me,
            keys: keys.iter().map(MacKey::new).collect(),
        }
    }
}

impl Authenticator for MacAuth {
    fn seal(&self, payload: &[u8]) -> Auth {
        let tags = self
            .keys
            .iter()
            .enumerate()
            .map(|(j, k)| {
                if j == self.me as usize {
                    [0; 16]
                } else {
                    k.tag(payload)
                }
            })
            .collect();
        Auth::Macs(tags)
    }

    fn verify(&self, from: ReplicaIndex, payload: &[u8], auth: &Auth) -> bool {
        let Auth::Macs(tags) = auth else {
            return false;
        };
        if from == self.me || tags.len() != self.keys.len() {
            return false;
        }
        match (self.keys.get(from as usize), tags.get(self.me as usize)) {
            (Some(key), Some(tag)) => key.check(payload, tag),
            _ => false,
        }
    }

    fn transferable(&self) -> bool {
        false
    }
}

/// The MAC keys between one party and the other side: a client's keys for
/// each replica, or a replica's key for one client.
#[derive(Clone)]
pub struct ClientMacs {
    keys: Vec<MacKey>,
}

impl ClientMacs {
    /// From raw keys, `keys[i]` for replica i (or a single key).
    pub fn new(keys: &[[u8; 32]]) -> Self {
        Self {
            keys: keys.iter().map(MacKey::new).collect(),
        }
    }

    /// The key at `i`.
    pub fn key(&self, i: usize) -> Option<&MacKey> {
        self.keys.get(i)
    }

    /// One tag per key.
    pub fn tags(&self, payload: &[u8]) -> Tags {
        self.keys.iter().map(|k| k.tag(payload)).collect()
    }
}
