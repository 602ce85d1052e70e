//! The validators file: the n = 3f + 1 members of a group, in order (a
//! member's place in the file is its replica index). Every member loads the
//! same file; clients use it to check certificates. TOML:
//!
//! ```toml
//! [[validator]]
//! public_key = "<64 hex digits: the node key's public half>"
//! quic = "host:port"          # UDP address the members talk QUIC on
//! url = "wss://host:port"     # where clients connect
//! ```

use std::collections::BTreeSet;
use std::path::Path;

use neuroplex_core::BftConfig;
use serde::Deserialize;

/// One member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    /// Its ed25519 public key.
    pub public_key: [u8; 32],
    /// Its QUIC address (UDP host:port).
    pub quic: String,
    /// Its client-facing URL (ws:// or wss://).
    pub url: String,
}

/// A checked validators file.
#[derive(Clone, Debug)]
pub struct Validators {
    members: Vec<Validator>,
    config: BftConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    validator: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    public_key: String,
    quic: String,
    url: String,
}

impl Validators {
    /// Reads and checks a validators file.
    pub fn load(path: &Path) -> Result<Validators, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the validators file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Checks a validators file's text: n = 3f + 1 members (f >= 1), each
    /// with a valid and distinct public key, a QUIC host:port and a ws(s)
    /// URL.
    pub fn parse(text: &str) -> Result<Validators, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut members = Vec::with_capacity(file.validator.len());
        let mut seen = BTreeSet::new();
        for (i, e) in file.validator.into_iter().enumerate() {
            let at = |why: String| format!("validator {i} ({}): {why}", e.public_key);
            let mut public_key = [0u8; 32];
            hex::decode_to_slice(e.public_key.trim(), &mut public_key)
                .map_err(|_| at("public_key must be 64 hexadecimal digits".into()))?;
            if !seen.insert(public_key) {
                return Err(at("the same public key is listed twice".into()));
            }
            let port = e
                .quic
                .rsplit_once(':')
                .map(|(host, port)| (host, port.parse::<u16>()));
            if !matches!(port, Some((host, Ok(p))) if !host.is_empty() && p != 0) {
                return Err(at(format!("quic = {:?} is not host:port", e.quic)));
            }
            if !(e.url.starts_with("ws://") || e.url.starts_with("wss://")) {
                return Err(at(format!(
                    "url = {:?} is not a ws:// or wss:// URL",
                    e.url
                )));
            }
            members.push(Validator {
                public_key,
                quic: e.quic,
                url: e.url,
            });
        }
        let config = BftConfig::new(members.iter().map(|m| m.public_key).collect());
        config.validate().map_err(|e| e.to_string())?;
        Ok(Validators { members, config })
    }

    /// The members, in order.
    pub fn members(&self) -> &[Validator] {
        &self.members
    }

    /// Faults tolerated: n = 3f + 1.
    pub fn f(&self) -> usize {
        self.config.f()
    }

    /// The group's PBFT configuration (default constants).
    pub fn config(&self) -> &BftConfig {
        &self.config
    }

    /// The index of the member with `public_key`.
    pub fn index_of(&self, public_key: &[u8; 32]) -> Option<usize> {
        self.members
            .iter()
            .position(|m| &m.public_key == public_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::NodeKey;

    fn file(keys: &[String]) -> String {
        keys.iter()
            .enumerate()
            .map(|(i, k)| {
                format!(
                    "[[validator]]\npublic_key = \"{k}\"\nquic = \"127.0.0.1:{}\"\nurl = \"ws://127.0.0.1:{}\"\n",
                    7000 + i,
                    8000 + i
                )
            })
            .collect()
    }

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|_| NodeKey::generate().public_hex()).collect()
    }

    #[test]
    fn groups_of_3f_plus_1_load_in_order() {
        for n in [4, 7] {
            let k = keys(n);
            let v = Validators::parse(&file(&k)).unwrap();
            assert_eq!(v.members().len(), n);
            assert_eq!(v.f(), (n - 1) / 3);
            let mut third = [0u8; 32];
            hex::decode_to_slice(&k[2], &mut third).unwrap();
            assert_eq!(v.index_of(&third), Some(2));
            assert_eq!(v.members()[2].quic, "127.0.0.1:7002");
        }
    }

    #[test]
    fn bad_files_are_refused_saying_why() {
        let k = keys(4);
        // 32 bytes that are not an ed25519 point.
        let not_a_point = (0..=255u8)
            .map(|b| [b; 32])
            .find(|b| ed25519_dalek::VerifyingKey::from_bytes(b).is_err())
            .map(hex::encode)
            .unwrap();
        let cases = [
            (file(&k[..3]), "3 replicas"),
            (file(&keys(5)), "5 replicas"),
            (
                file(&[k[0].clone(), k[1].clone(), k[2].clone(), k[0].clone()]),
                "twice",
            ),
            (file(&k).replace(&k[1], "abc"), "64 hexadecimal digits"),
            (
                file(&k).replace("127.0.0.1:7003", "127.0.0.1"),
                "not host:port",
            ),
            (
                file(&k).replace("ws://127.0.0.1:8001", "http://x"),
                "not a ws://",
            ),
            (file(&k) + "extra = 1\n", "unknown field"),
            // Not a point on the curve.
            (file(&k).replace(&k[3], &not_a_point), "invalid"),
        ];
        for (text, why) in cases {
            let e = Validators::parse(&text).unwrap_err();
            assert!(e.contains(why), "expected {why:?} in {e:?}");
        }
    }
}
