//! Key material: what each replica and client holds, and [`Dealer`], which
//! derives a whole group's keys from one secret.
//!
//! The dealer is for tests, benchmarks and single-operator deployments:
//! whoever holds its secret can impersonate every member. Real deployments
//! generate signing keys per replica and agree session keys in the shell.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use ed25519_dalek::SigningKey;

use super::{ClientMacs, Ed25519Auth, Identity, MacAuth};
use crate::bft::{ClientId, Config, ConfigError, Digest, ReplicaIndex};

/// Everything secret a replica holds.
#[derive(Clone)]
pub struct ReplicaKeys {
    /// This replica.
    pub index: ReplicaIndex,
    /// Its ed25519 secret key.
    pub signing: [u8; 32],
    /// `peers[j]`: the MAC session key shared with replica j.
    pub peers: Vec<[u8; 32]>,
    /// The MAC key shared with each client.
    pub clients: BTreeMap<ClientId, [u8; 32]>,
}

impl ReplicaKeys {
    /// The signing identity, checked against `config`.
    pub fn identity(&self, config: &Config) -> Result<Identity, ConfigError> {
        let public = config.validate()?;
        Ok(Identity::new(self.index, &self.signing, public))
    }

    /// A signature authenticator for this replica.
    pub fn ed25519(&self, config: &Config) -> Result<Ed25519Auth, ConfigError> {
        Ok(Ed25519Auth::new(self.identity(config)?))
    }

    /// A MAC-vector authenticator for this replica.
    pub fn mac(&self) -> MacAuth {
        MacAuth::new(self.index, &self.peers)
    }
}

/// Everything secret a client holds.
#[derive(Clone)]
pub struct ClientKeys {
    /// This client.
    pub client: ClientId,
    /// `replicas[i]`: the MAC key shared with replica i.
    pub replicas: Vec<[u8; 32]>,
}

impl ClientKeys {
    /// The loaded keys.
    pub fn macs(&self) -> ClientMacs {
        ClientMacs::new(&self.replicas)
    }
}

/// Derives every key of a group from one secret (see the module doc).
#[derive(Clone)]
pub struct Dealer {
    secret: [u8; 32],
    n: usize,
}

impl Dealer {
    /// A dealer for `n` replicas.
    pub fn new(secret: [u8; 32], n: usize) -> Self {
        Self { secret, n }
    }

    fn derive(&self, what: &[u8], a: u64, b: u64) -> [u8; 32] {
        Digest::of(
            b"neuroplex-bft/dealer",
            &[&self.secret, what, &a.to_le_bytes(), &b.to_le_bytes()],
        )
        .0
    }

    /// Replica i's ed25519 secret key.
    pub fn signing_key(&self, i: ReplicaIndex) -> [u8; 32] {
        self.derive(b"sign", u64::from(i), 0)
    }

    /// The group's configuration (default constants).
    pub fn config(&self) -> Config {
        let public = (0..self.n as u32)
            .map(|i| {
                SigningKey::from_bytes(&self.signing_key(i))
                    .verifying_key()
                    .to_bytes()
            })
            .collect();
        Config::new(public)
    }

    fn peer_key(&self, i: ReplicaIndex, j: ReplicaIndex) -> [u8; 32] {
        let (a, b) = if i < j { (i, j) } else { (j, i) };
        self.derive(b"peer", u64::from(a), u64::from(b))
    }

    fn client_key(&self, c: ClientId, i: ReplicaIndex) -> [u8; 32] {
        self.derive(b"client", c, u64::from(i))
    }

    /// Replica i's keys, with session keys for `clients`.
    pub fn replica(&self, i: ReplicaIndex, clients: &[ClientId]) -> ReplicaKeys {
        ReplicaKeys {
            index: i,
            signing: self.signing_key(i),
            peers: (0..self.n as u32).map(|j| self.peer_key(i, j)).collect(),
            clients: clients
                .iter()
                .map(|&c| (c, self.client_key(c, i)))
                .collect(),
        }
    }

    /// Client `c`'s keys.
    pub fn client(&self, c: ClientId) -> ClientKeys {
        ClientKeys {
            client: c,
            replicas: (0..self.n as u32).map(|i| self.client_key(c, i)).collect(),
        }
    }
}
