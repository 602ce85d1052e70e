//! The machine's state and the rules that change it.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use super::Principal;
use super::op::{Op, Outcome, Right};
use crate::bft::Digest;
use crate::codec;

/// Bounds on what clients may make the group hold. The same on every
/// member (they are part of the rules): a member with other limits would
/// execute differently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest room name, in bytes.
    pub max_room_name: usize,
    /// Longest register key or claimed name, in bytes.
    pub max_key: usize,
    /// Longest register value, in bytes.
    pub max_value: usize,
    /// Most registers and claims in one room.
    pub max_entries_per_room: usize,
    /// Most principals holding rights in one room.
    pub max_grants_per_room: usize,
    /// Most rooms one principal may own.
    pub max_rooms_per_owner: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_room_name: 512,
            max_key: 1024,
            max_value: 16 * 1024,
            max_entries_per_room: 10_000,
            max_grants_per_room: 1_000,
            max_rooms_per_owner: 1_000,
        }
    }
}

/// Something a shell must act on after an operation executed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// `principal` lost its rights on `room` (or some of them): close its
    /// connections to the room that the new right no longer allows.
    RightsChanged {
        /// The room.
        room: String,
        /// Whose.
        principal: Principal,
        /// What it may do now.
        now: Option<Right>,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Room {
    owner: Principal,
    rights: BTreeMap<Principal, Right>,
    registers: BTreeMap<Vec<u8>, Vec<u8>>,
    claims: BTreeMap<Vec<u8>, Principal>,
    checkpoint: Option<[u8; 32]>,
}

impl Room {
    fn right_of(&self, p: &Principal) -> Option<Right> {
        if *p == self.owner {
            Some(Right::Admin)
        } else {
            self.rights.get(p).copied()
        }
    }

    fn entries(&self) -> usize {
        self.registers.len() + self.claims.len()
    }
}

/// The ordered state machine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Machine {
    limits: Limits,
    rooms: BTreeMap<String, Room>,
    owned: BTreeMap<Principal, usize>,
}

#[derive(Serialize)]
struct SnapshotRef<'a> {
    rooms: &'a BTreeMap<String, Room>,
}

#[derive(Deserialize)]
struct Snapshot {
    rooms: BTreeMap<String, Room>,
}

impl Machine {
    /// An empty machine with these limits.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Executes one encoded operation for `principal`: the encoded
    /// [`Outcome`], and what the shell must act on. Bytes that are not an
    /// operation change nothing.
    pub fn execute(&mut self, principal: &Principal, op: &[u8]) -> (Vec<u8>, Option<Effect>) {
        let (outcome, effect) = match codec::decode::<Op>(op) {
            Ok(op) => self.apply(principal, op),
            Err(e) => (Outcome::Refused(format!("not an operation: {e}")), None),
        };
        let bytes = codec::encode(&outcome).expect("an outcome always encodes");
        (bytes, effect)
    }

    /// Executes one operation for `principal`.
    pub fn apply(&mut self, principal: &Principal, op: Op) -> (Outcome, Option<Effect>) {
        if let Err(why) = self.check_bounds(&op) {
            return (Outcome::Refused(why), None);
        }
        self.run(principal, op)
            .unwrap_or_else(|refused| (refused, None))
    }

    /// The rules; `Err` is an outcome that changed nothing.
    fn run(&mut self, principal: &Principal, op: Op) -> Result<(Outcome, Option<Effect>), Outcome> {
        let limits = self.limits.clone();
        Ok(match op {
            Op::CreateRoom { room } => {
                if self.rooms.contains_key(&room) {
                    return Err(Outcome::Denied(format!("room {room:?} exists")));
                }
                if self.owned.get(principal).copied().unwrap_or(0) >= limits.max_rooms_per_owner {
                    return Err(Outcome::Refused(format!(
                        "a principal may own at most {} rooms",
                        limits.max_rooms_per_owner
                    )));
                }
                *self.owned.entry(*principal).or_default() += 1;
                let r = Room {
                    owner: *principal,
                    ..Room::default()
                };
                self.rooms.insert(room, r);
                (Outcome::Done, None)
            }
            Op::Grant {
                room,
                principal: whom,
                right,
            } => {
                let r = self.room_with(&room, principal, Right::Admin)?;
                if whom == r.owner {
                    return Err(Outcome::Denied("the owner's rights do not change".into()));
                }
                if !r.rights.contains_key(&whom) && r.rights.len() >= limits.max_grants_per_room {
                    return Err(Outcome::Refused(format!(
                        "a room grants rights to at most {} principals",
                        limits.max_grants_per_room
                    )));
                }
                let before = r.rights.insert(whom, right);
                let effect = before
                    .is_some_and(|b| b > right)
                    .then_some(Effect::RightsChanged {
                        room,
                        principal: whom,
                        now: Some(right),
                    });
                (Outcome::Done, effect)
            }
            Op::Revoke {
                room,
                principal: whom,
            } => {
                let r = self.room_with(&room, principal, Right::Admin)?;
                if whom == r.owner {
                    return Err(Outcome::Denied(
                        "the owner's rights cannot be revoked".into(),
                    ));
                }
                let effect = r.rights.remove(&whom).map(|_| Effect::RightsChanged {
                    room,
                    principal: whom,
                    now: None,
                });
                (Outcome::Done, effect)
            }
            Op::Rights {
                room,
                principal: whom,
            } => {
                let r = self.room_with(&room, principal, Right::Read)?;
                (Outcome::Rights(r.right_of(&whom)), None)
            }
            Op::Put { room, key, value } => {
                let r = self.room_with(&room, principal, Right::Write)?;
                if !r.registers.contains_key(&key) && r.entries() >= limits.max_entries_per_room {
                    return Err(Outcome::Refused(full(&limits)));
                }
                r.registers.insert(key, value);
                (Outcome::Done, None)
            }
            Op::Get { room, key } => {
                let r = self.room_with(&room, principal, Right::Read)?;
                (Outcome::Value(r.registers.get(&key).cloned()), None)
            }
            Op::CompareAndSet {
                room,
                key,
                expected,
                value,
            } => {
                let r = self.room_with(&room, principal, Right::Write)?;
                let current = r.registers.get(&key);
                if current != expected.as_ref() {
                    return Err(Outcome::Mismatch(current.cloned()));
                }
                match value {
                    None => {
                        r.registers.remove(&key);
                    }
                    Some(v) => {
                        if current.is_none() && r.entries() >= limits.max_entries_per_room {
                            return Err(Outcome::Refused(full(&limits)));
                        }
                        r.registers.insert(key, v);
                    }
                }
                (Outcome::Done, None)
            }
            Op::Claim { room, name } => {
                let r = self.room_with(&room, principal, Right::Write)?;
                if let Some(by) = r.claims.get(&name) {
                    return Err(Outcome::ClaimedBy(*by));
                }
                if r.entries() >= limits.max_entries_per_room {
                    return Err(Outcome::Refused(full(&limits)));
                }
                r.claims.insert(name, *principal);
                (Outcome::ClaimedBy(*principal), None)
            }
            Op::Checkpoint { room, digest } => {
                let r = self.room_with(&room, principal, Right::Write)?;
                r.checkpoint = Some(digest);
                (Outcome::Done, None)
            }
        })
    }

    /// What `principal` may do in `room` (`None`: nothing, or no such room).
    pub fn right_of(&self, room: &str, principal: &Principal) -> Option<Right> {
        self.rooms.get(room).and_then(|r| r.right_of(principal))
    }

    /// The last certified digest of `room`'s document.
    pub fn checkpoint(&self, room: &str) -> Option<[u8; 32]> {
        self.rooms.get(room).and_then(|r| r.checkpoint)
    }

    /// The whole state, canonical: equal states encode to equal bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        codec::encode(&SnapshotRef { rooms: &self.rooms }).expect("the state always encodes")
    }

    /// The digest a PBFT checkpoint names this state by.
    pub fn digest(&self) -> Digest {
        Digest::of(b"neuroplex-ordered/state", &[&self.snapshot()])
    }

    /// A machine holding the state `snapshot` encodes (from a checkpoint).
    pub fn restore(limits: Limits, snapshot: &[u8]) -> Result<Machine, String> {
        let s: Snapshot = codec::decode(snapshot).map_err(|e| e.to_string())?;
        let mut owned = BTreeMap::new();
        for r in s.rooms.values() {
            *owned.entry(r.owner).or_insert(0usize) += 1;
        }
        Ok(Machine {
            limits,
            rooms: s.rooms,
            owned,
        })
    }

    /// The room, if `principal` holds at least `need` on it.
    fn room_with(
        &mut self,
        room: &str,
        principal: &Principal,
        need: Right,
    ) -> Result<&mut Room, Outcome> {
        let Some(r) = self.rooms.get_mut(room) else {
            return Err(Outcome::Denied(format!("no room {room:?}")));
        };
        if r.right_of(principal).is_none_or(|have| have < need) {
            return Err(Outcome::Denied(format!(
                "{need:?} right needed on {room:?}"
            )));
        }
        Ok(r)
    }

    fn check_bounds(&self, op: &Op) -> Result<(), String> {
        let l = &self.limits;
        let (room, key, values): Bounded<'_> = match op {
            Op::CreateRoom { room }
            | Op::Grant { room, .. }
            | Op::Revoke { room, .. }
            | Op::Rights { room, .. }
            | Op::Checkpoint { room, .. } => (room, None, [None, None]),
            Op::Get { room, key } => (room, Some(key), [None, None]),
            Op::Claim { room, name } => (room, Some(name), [None, None]),
            Op::Put { room, key, value } => (room, Some(key), [Some(value), None]),
            Op::CompareAndSet {
                room,
                key,
                expected,
                value,
            } => (room, Some(key), [expected.as_deref(), value.as_deref()]),
        };
        if room.is_empty() || room.len() > l.max_room_name {
            return Err(format!("a room name is 1 to {} bytes", l.max_room_name));
        }
        if key.is_some_and(|k| k.len() > l.max_key) {
            return Err(format!("a key or name is at most {} bytes", l.max_key));
        }
        if values.iter().flatten().any(|v| v.len() > l.max_value) {
            return Err(format!("a value is at most {} bytes", l.max_value));
        }
        Ok(())
    }
}

/// What of an operation is bounded: its room name, key, values.
type Bounded<'a> = (&'a str, Option<&'a [u8]>, [Option<&'a [u8]>; 2]);

fn full(l: &Limits) -> String {
    format!(
        "a room holds at most {} registers and claims",
        l.max_entries_per_room
    )
}
