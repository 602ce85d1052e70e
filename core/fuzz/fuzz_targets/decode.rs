//! Feeds arbitrary bytes to the decoder of every wire type. Decoding must
//! return (never panic, never abort), and whatever decodes must re-encode and
//! decode to itself and join without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use neuroplex_core::document::DocStore;
use neuroplex_core::sync::{Config, Message, Replica};
use neuroplex_core::{
    AWSet, Causal, CausalContext, CausalCounter, EWFlag, Envelope, GCounter, GSet, Lattice,
    LwwRegister, MvRegister, ORMap, PNCounter, ReplicaId, VectorClock, codec,
};
use serde::{Serialize, de::DeserializeOwned};

fn check<T: Serialize + DeserializeOwned + PartialEq + core::fmt::Debug>(bytes: &[u8]) -> Option<T> {
    let value = codec::decode::<T>(bytes).ok()?;
    let again = codec::encode(&value).expect("encodes");
    assert_eq!(codec::decode::<T>(&again).expect("re-decodes"), value);
    Some(value)
}

fn lattice<T: Lattice + Serialize + DeserializeOwned + PartialEq + core::fmt::Debug>(bytes: &[u8]) {
    if let Some(v) = check::<T>(bytes) {
        let joined = v.clone().joined(v.clone());
        assert_eq!(joined, v, "join is idempotent on decoded values");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let mut bytes = Vec::with_capacity(rest.len() + 1);
    bytes.push(codec::VERSION);
    bytes.extend_from_slice(rest);
    match which % 14 {
        0 => drop(check::<VectorClock>(&bytes)),
        1 => drop(check::<CausalContext>(&bytes)),
        2 => lattice::<GCounter>(&bytes),
        3 => lattice::<PNCounter>(&bytes),
        4 => lattice::<GSet<u32>>(&bytes),
        5 => lattice::<LwwRegister<String>>(&bytes),
        6 => lattice::<Causal<AWSet<u64>>>(&bytes),
        7 => lattice::<Causal<MvRegister<Vec<u8>>>>(&bytes),
        8 => lattice::<Causal<EWFlag>>(&bytes),
        9 => lattice::<Causal<CausalCounter>>(&bytes),
        10 => lattice::<Causal<ORMap<String, ORMap<u32, AWSet<u64>>>>>(&bytes),
        11 => drop(check::<Envelope<Causal<ORMap<u8, CausalCounter>>>>(&bytes)),
        12 => {
            // A sync message, decoded and handed to a replica whole.
            let config = Config::default();
            if let Ok(msg) = Message::decode(&bytes, &config) {
                assert_eq!(Message::decode(&msg.encode(), &config).unwrap(), msg);
            }
            let mut replica: Replica<DocStore> = Replica::new(ReplicaId::new(1), 1, config);
            let before = replica.state().clone();
            if replica.receive_bytes(2, &bytes).is_err() {
                assert_eq!(replica.state(), &before);
            }
        }
        _ => drop(check::<Causal<DocStore>>(&bytes)),
    }
});
