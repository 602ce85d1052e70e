//! The Yjs update guard (`core::doc::guard`) against yrs itself: everything
//! yrs emits passes, and hostile bytes (deep nesting, huge claimed counts,
//! truncations, mutations) are refused without a panic, an abort or an
//! allocation the input does not justify.
#![cfg(feature = "yrs")]

mod crafted;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use neuroplex_core::ReplicaId;
use neuroplex_core::doc::guard::{
    GuardError, MAX_DEPTH, check_json_depth, check_state_vector_v1, check_update_v1,
};
use neuroplex_core::doc::{CloseCode, DocError, SharedDoc};
use neuroplex_core::sync::Config;
use proptest::prelude::*;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    Any, Array, ArrayPrelim, Doc, GetString, Map, MapPrelim, Number, ReadTxn, StateVector, Text,
    Transact, Update, WriteTxn, Xml, XmlElementPrelim, XmlFragment, XmlTextPrelim,
};

// ---- allocation accounting (per thread, so parallel tests do not mix) ----

struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: defers to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + layout.size()));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes allocated on this thread while running `f`.
fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATED.with(Cell::get);
    let out = f();
    (out, ALLOCATED.with(Cell::get) - before)
}

// ---- hand-built updates ----

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// One client (1) at clock 0, one item under the root "a" with `content`
/// (the info byte's low bits are `kind`), then an empty delete set.
fn item_update(kind: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![1, 1, 1, 0, kind, 1, 1, b'a'];
    out.extend_from_slice(content);
    out.push(0);
    out
}

/// An Any item whose one value is `depth` nested arrays around a null.
fn nested_any_update(depth: usize) -> Vec<u8> {
    let mut value = vec![1]; // one value in the Any content
    value.reserve(depth * 2 + 1);
    for _ in 0..depth {
        value.extend_from_slice(&[117, 1]);
    }
    value.push(126);
    item_update(8, &value)
}

/// The same with maps: {"k": {"k": ... null}}.
fn nested_map_update(depth: usize) -> Vec<u8> {
    let mut value = vec![1];
    for _ in 0..depth {
        value.extend_from_slice(&[118, 1, 1, b'k']);
    }
    value.push(126);
    item_update(8, &value)
}

fn string_content(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    varint(s.len() as u64, &mut out);
    out.extend_from_slice(s.as_bytes());
    out
}

fn new_doc(n: u64) -> SharedDoc {
    SharedDoc::new(ReplicaId::new(n), n, n, Config::default())
}

// ---- random documents ----

fn any_value() -> impl Strategy<Value = Any> {
    let leaf = prop_oneof![
        Just(Any::Null),
        any::<bool>().prop_map(Any::Bool),
        (-1e12f64..1e12).prop_map(|f| Any::Number(Number::Float(f))),
        any::<i64>().prop_map(|i| Any::Number(Number::Int(i))),
        "[a-z\u{e9}\u{1f600}]{0,6}".prop_map(|s| Any::String(s.into())),
        proptest::collection::vec(any::<u8>(), 0..6).prop_map(|b| Any::Buffer(b.into())),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|v| Any::Array(v.into())),
            proptest::collection::hash_map("[a-c]{1,2}", inner, 0..4)
                .prop_map(|m| Any::Map(Arc::new(m))),
        ]
    })
}

/// JSON-safe values (embeds and formatting attributes travel as JSON, which
/// has no buffers; yrs would turn them into arrays of numbers anyway).
fn json_value() -> impl Strategy<Value = Any> {
    let leaf = prop_oneof![
        Just(Any::Null),
        any::<bool>().prop_map(Any::Bool),
        (-1000i64..1000).prop_map(|i| Any::Number(Number::Int(i))),
        "[a-z\"\\\\\\[{]{0,5}".prop_map(|s| Any::String(s.into())),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(|v| Any::Array(v.into())),
            proptest::collection::hash_map("[a-c]", inner, 0..3)
                .prop_map(|m| Any::Map(Arc::new(m))),
        ]
    })
}

#[derive(Debug, Clone)]
enum Op {
    TextInsert(u32, String, Option<(String, Any)>),
    TextEmbed(u32, Any),
    TextFormat(u32, u32, String, Any),
    TextDelete(u32, u32),
    MapSet(String, Any),
    MapRemove(String),
    NestedMap(String, String, Any),
    ArrayInsert(u32, Any),
    ArrayDelete(u32, u32),
    Xml(String, String, String),
}

fn op() -> impl Strategy<Value = Op> {
    let key = "[a-d]{1,2}";
    prop_oneof![
        (
            any::<u32>(),
            "[a-z ]{1,8}",
            proptest::option::of(("[bi]", json_value()))
        )
            .prop_map(|(i, s, a)| Op::TextInsert(i, s, a)),
        (any::<u32>(), json_value()).prop_map(|(i, v)| Op::TextEmbed(i, v)),
        (any::<u32>(), 1u32..5, "[bu]", json_value())
            .prop_map(|(i, n, k, v)| Op::TextFormat(i, n, k, v)),
        (any::<u32>(), 1u32..4).prop_map(|(i, n)| Op::TextDelete(i, n)),
        (key, any_value()).prop_map(|(k, v)| Op::MapSet(k, v)),
        key.prop_map(Op::MapRemove),
        (key, key, any_value()).prop_map(|(k, j, v)| Op::NestedMap(k, j, v)),
        (any::<u32>(), any_value()).prop_map(|(i, v)| Op::ArrayInsert(i, v)),
        (any::<u32>(), 1u32..3).prop_map(|(i, n)| Op::ArrayDelete(i, n)),
        ("[a-z]{1,4}", "[a-z]{1,3}", "[a-z ]{0,6}").prop_map(|(t, a, s)| Op::Xml(t, a, s)),
        // No subdocuments: the guard refuses them (`subdocuments_are_refused`).
    ]
}

fn apply(txn: &mut yrs::TransactionMut<'_>, op: &Op) {
    let text = txn.get_or_insert_text("text");
    let map = txn.get_or_insert_map("map");
    let array = txn.get_or_insert_array("array");
    let xml = txn.get_or_insert_xml_fragment("xml");
    match op {
        Op::TextInsert(i, s, attrs) => {
            let at = i % (text.len(txn) + 1);
            match attrs {
                Some((k, v)) => {
                    let attrs = HashMap::from([(Arc::<str>::from(k.as_str()), v.clone())]);
                    text.insert_with_attributes(txn, at, s, attrs)
                }
                None => text.insert(txn, at, s),
            }
        }
        Op::TextEmbed(i, v) => {
            let at = i % (text.len(txn) + 1);
            text.insert_embed(txn, at, v.clone());
        }
        Op::TextFormat(i, n, k, v) => {
            let len = text.len(txn);
            if len > 0 {
                let at = i % len;
                let n = (*n).min(len - at);
                let attrs = HashMap::from([(Arc::<str>::from(k.as_str()), v.clone())]);
                text.format(txn, at, n, attrs);
            }
        }
        Op::TextDelete(i, n) => {
            let len = text.len(txn);
            if len > 0 {
                let at = i % len;
                text.remove_range(txn, at, (*n).min(len - at));
            }
        }
        Op::MapSet(k, v) => {
            map.insert(txn, k.as_str(), v.clone());
        }
        Op::MapRemove(k) => {
            map.remove(txn, k);
        }
        Op::NestedMap(k, j, v) => {
            let inner = map.insert(txn, k.as_str(), MapPrelim::default());
            inner.insert(txn, j.as_str(), v.clone());
            let list = inner.insert(txn, "list", ArrayPrelim::default());
            list.push_back(txn, v.clone());
        }
        Op::ArrayInsert(i, v) => {
            let at = i % (array.len(txn) + 1);
            array.insert(txn, at, v.clone());
        }
        Op::ArrayDelete(i, n) => {
            let len = array.len(txn);
            if len > 0 {
                let at = i % len;
                array.remove_range(txn, at, (*n).min(len - at));
            }
        }
        Op::Xml(tag, attr, s) => {
            let el = xml.push_back(txn, XmlElementPrelim::empty(tag.as_str()));
            el.insert_attribute(txn, attr.as_str(), s.as_str());
            el.push_back(txn, XmlTextPrelim::new(s.as_str()));
        }
    }
}

/// Runs `txns` (each a list of ops) on a fresh doc: the update of every
/// transaction, then the whole state.
fn updates_of(client: u64, txns: &[Vec<Op>]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let doc = Doc::with_client_id(client);
    let mut per_txn = Vec::new();
    for ops in txns {
        let mut txn = doc.transact_mut();
        for op in ops {
            apply(&mut txn, op);
        }
        per_txn.push(txn.encode_update_v1());
    }
    let whole = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    (per_txn, whole)
}

fn accept(bytes: &[u8]) {
    assert_eq!(
        check_update_v1(bytes, MAX_DEPTH),
        Ok(()),
        "the guard refused an update yrs produced: {bytes:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every update yrs produces (per transaction, whole state, merged,
    /// diffs against a state vector) passes, and so does its state vector.
    #[test]
    fn updates_yrs_produces_pass(
        a in proptest::collection::vec(proptest::collection::vec(op(), 1..6), 1..5),
        b in proptest::collection::vec(proptest::collection::vec(op(), 1..6), 1..4),
    ) {
        let (a_txns, a_whole) = updates_of(1, &a);
        let (b_txns, b_whole) = updates_of(2, &b);
        for u in a_txns.iter().chain(&b_txns) {
            accept(u);
        }
        accept(&a_whole);
        accept(&b_whole);
        let all: Vec<&[u8]> = a_txns.iter().chain(&b_txns).map(Vec::as_slice).collect();
        let merged = yrs::merge_updates_v1(&all).unwrap();
        accept(&merged);
        accept(&SharedDoc::merge_yrs_updates(&[&a_whole, &b_whole]).unwrap());

        // Through SharedDoc: both halves, then a diff and the state vector.
        let mut doc = new_doc(3);
        doc.apply_yrs_update(&a_whole).unwrap();
        doc.apply_yrs_update(&b_whole).unwrap();
        let sv = doc.yrs_state_vector();
        prop_assert_eq!(check_state_vector_v1(&sv), Ok(()));
        let partial = new_doc(4);
        let diff = doc.yrs_diff(&partial.yrs_state_vector()).unwrap();
        accept(&diff);
        accept(&doc.yrs_diff(&sv).unwrap());
        accept(&doc.snapshot().yrs);
    }

    /// Every strict prefix of a valid update is refused, never with a panic.
    #[test]
    fn every_truncation_is_refused(
        a in proptest::collection::vec(proptest::collection::vec(op(), 1..4), 1..3),
    ) {
        let (_, whole) = updates_of(5, &a);
        for cut in 0..whole.len() {
            prop_assert!(check_update_v1(&whole[..cut], MAX_DEPTH).is_err(), "prefix {cut}");
        }
        let sv = Doc::with_client_id(5).transact().state_vector().encode_v1();
        for cut in 0..sv.len() {
            prop_assert!(check_state_vector_v1(&sv[..cut]).is_err());
        }
    }

    /// Mutated updates never panic the guard; whatever it accepts, yrs
    /// decodes without panicking (differential).
    #[test]
    fn mutations_never_panic(
        a in proptest::collection::vec(proptest::collection::vec(op(), 1..4), 1..3),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..6),
    ) {
        let (_, mut bytes) = updates_of(6, &a);
        for (at, byte, how) in edits {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            match how {
                0 => bytes[i] ^= byte | 1,
                1 => bytes[i] = byte,
                2 => bytes.insert(i, byte),
                _ => drop(bytes.remove(i)),
            }
        }
        if check_update_v1(&bytes, MAX_DEPTH).is_ok() {
            let _ = Update::decode_v1(&bytes);
            let _ = SharedDoc::check_yrs_update(&bytes);
        }
        let _ = check_state_vector_v1(&bytes);
    }

    /// Arbitrary bytes: the same, with no valid update to start from.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if check_update_v1(&bytes, MAX_DEPTH).is_ok() {
            let _ = Update::decode_v1(&bytes);
        }
        if check_state_vector_v1(&bytes).is_ok() {
            prop_assert!(StateVector::decode_v1(&bytes).is_ok());
        }
    }
}

#[test]
fn a_million_levels_are_refused_quickly() {
    let bytes = nested_any_update(1_000_000);
    assert!(bytes.len() > 1_900_000);
    let start = Instant::now();
    let (result, allocated) = allocated_by(|| check_update_v1(&bytes, MAX_DEPTH));
    assert_eq!(
        result,
        Err(GuardError::TooDeep {
            depth: MAX_DEPTH + 1,
            max: MAX_DEPTH
        })
    );
    assert!(start.elapsed() < Duration::from_secs(1));
    // The walk's stack holds at most MAX_DEPTH open containers.
    assert!(allocated < 16 * 1024, "allocated {allocated} bytes");
    assert!(matches!(
        check_update_v1(&nested_map_update(300_000), MAX_DEPTH),
        Err(GuardError::TooDeep { .. })
    ));
}

#[test]
fn max_depth_passes_and_yrs_applies_it() {
    for (deep, name) in [
        (nested_any_update(MAX_DEPTH), "arrays"),
        (nested_map_update(MAX_DEPTH), "maps"),
    ] {
        assert_eq!(check_update_v1(&deep, MAX_DEPTH), Ok(()), "{name}");
        let mut doc = new_doc(1);
        assert_eq!(doc.apply_yrs_update(&deep), Ok(true), "{name}");
        // The value is there, and the document re-encodes and re-applies.
        let snapshot = doc.snapshot();
        accept(&snapshot.yrs);
        let mut copy = new_doc(2);
        copy.apply_yrs_update(&snapshot.yrs).unwrap();
    }
    for deep in [
        nested_any_update(MAX_DEPTH + 1),
        nested_map_update(MAX_DEPTH + 1),
    ] {
        assert_eq!(
            check_update_v1(&deep, MAX_DEPTH),
            Err(GuardError::TooDeep {
                depth: MAX_DEPTH + 1,
                max: MAX_DEPTH
            })
        );
    }
}

#[test]
fn deep_updates_leave_the_document_unchanged() {
    let mut doc = new_doc(1);
    let base = {
        let d = Doc::with_client_id(9);
        let text = d.get_or_insert_text("t");
        text.insert(&mut d.transact_mut(), 0, "hello");
        d.transact()
            .encode_state_as_update_v1(&StateVector::default())
    };
    doc.apply_yrs_update(&base).unwrap();
    let before = doc.snapshot();
    let sv = doc.yrs_state_vector();
    for deep in [
        nested_any_update(1_000_000),
        nested_any_update(MAX_DEPTH + 1),
        nested_map_update(10_000),
    ] {
        let err = doc.apply_yrs_update(&deep).unwrap_err();
        assert!(matches!(err, DocError::TooDeep(_)), "{err:?}");
        assert!(matches!(
            SharedDoc::check_yrs_update(&deep),
            Err(DocError::TooDeep(_))
        ));
        assert!(matches!(
            SharedDoc::merge_yrs_updates(&[&base, &deep]),
            Err(DocError::TooDeep(_))
        ));
    }
    assert_eq!(doc.snapshot(), before);
    assert_eq!(doc.yrs_state_vector(), sv);
    assert_eq!(
        doc.yrs()
            .get_or_insert_text("t")
            .get_string(&doc.yrs().transact()),
        "hello"
    );
    // Malformed bytes are still BadYrsEncoding, distinct from TooDeep.
    assert!(matches!(
        doc.apply_yrs_update(&[0, 0, 0]),
        Err(DocError::BadYrsEncoding(_))
    ));
    assert!(matches!(
        doc.yrs_diff(&[0xff, 0xff, 0xff, 0xff, 0x0f]),
        Err(DocError::BadYrsEncoding(_))
    ));
    assert_eq!(CloseCode::TOO_NESTED, 4420);
    // Restoring from stored bytes goes through the guard too.
    let restored = SharedDoc::restore(
        ReplicaId::new(5),
        5,
        5,
        Config::default(),
        None,
        [],
        [base.as_slice(), nested_any_update(500).as_slice()],
    );
    assert!(matches!(restored, Err(DocError::TooDeep(_))));
}

#[test]
fn deep_json_in_content_is_refused() {
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
    // Embed (5), Format (6: key then JSON).
    let embed = |json: &str| item_update(5, &string_content(json));
    let format = |json: &str| {
        let mut c = string_content("bold");
        c.extend(string_content(json));
        item_update(6, &c)
    };
    for build in [&embed as &dyn Fn(&str) -> Vec<u8>, &format] {
        assert!(matches!(
            check_update_v1(&build(&deep), MAX_DEPTH),
            Err(GuardError::TooDeep { .. })
        ));
        assert_eq!(check_update_v1(&build(&ok), MAX_DEPTH), Ok(()));
    }
    let mut doc = new_doc(1);
    // The deepest JSON serde_json (yrs's parser) takes is 127 levels: the
    // guard's 128 is refused by yrs with an error, never a crash.
    assert!(matches!(
        doc.apply_yrs_update(&embed(&ok)),
        Err(DocError::BadYrsEncoding(_))
    ));
    let deepest = "[".repeat(127) + &"]".repeat(127);
    assert_eq!(doc.apply_yrs_update(&embed(&deepest)), Ok(true));
    // Presence states use the same scan.
    assert!(check_json_depth(&deep, MAX_DEPTH).is_err());
    assert_eq!(check_json_depth(r#"{"user":{"name":"[{"}}"#, 2), Ok(()));
}

/// Legacy JSON content: yrs 0.28 writes `len` strings and reads `len + 1`,
/// so a document holding one cannot reload its own snapshot. The guard
/// refuses it, which keeps stored state loadable.
#[test]
fn legacy_json_content_is_refused_because_yrs_cannot_round_trip_it() {
    let mut c = vec![0];
    c.extend(string_content("1"));
    let bytes = item_update(2, &c);
    // What yrs would do with it: accept it, then refuse its own snapshot.
    let doc = Doc::with_client_id(1);
    doc.transact_mut()
        .apply_update(Update::decode_v1(&bytes).unwrap())
        .unwrap();
    let snapshot = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    assert!(Update::decode_v1(&snapshot).is_err());
    // So the guard refuses it up front.
    assert!(matches!(
        check_update_v1(&bytes, MAX_DEPTH),
        Err(GuardError::Malformed(_))
    ));
    assert!(matches!(
        new_doc(1).apply_yrs_update(&bytes),
        Err(DocError::BadYrsEncoding(_))
    ));
}

/// yrs 0.28 never frees a document that integrated a subdocument (the item
/// keeps a reference to its own document): refused, whatever its options,
/// before yrs reads it. Before, the `doc` fuzz target's memory grew by the
/// whole document (~13 KB) for every load of such an update.
#[test]
fn subdocuments_are_refused() {
    // Doc content (9): guid, then an Any for the options.
    let mut plain = string_content("guid");
    plain.push(126);
    let mut deep = string_content("guid");
    for _ in 0..1000 {
        deep.extend_from_slice(&[117, 1]);
    }
    deep.push(126);
    let doc = Doc::with_client_id(1);
    let made_by_yrs = {
        let mut txn = doc.transact_mut();
        let map = txn.get_or_insert_map("map");
        map.insert(&mut txn, "sub", Doc::new());
        txn.encode_update_v1()
    };
    for bytes in [item_update(9, &plain), item_update(9, &deep), made_by_yrs] {
        assert!(matches!(
            check_update_v1(&bytes, MAX_DEPTH),
            Err(GuardError::Unsupported(_))
        ));
        assert!(matches!(
            new_doc(1).apply_yrs_update(&bytes),
            Err(DocError::BadYrsEncoding(_))
        ));
    }
}

#[test]
fn huge_claims_are_refused_without_allocating() {
    let big = |n: u64| {
        let mut v = Vec::new();
        varint(n, &mut v);
        v
    };
    let n = 1u64 << 32;
    let max32 = u64::from(u32::MAX);
    let cases: [(&str, Vec<u8>); 9] = [
        // 2^32 - 1 clients.
        ("clients", [big(max32), vec![0]].concat()),
        // One client with 2^32 - 1 structs.
        ("structs", [vec![1], big(max32), vec![1, 0, 0]].concat()),
        // Empty struct list, then a delete set claiming 2^32 - 1 clients.
        ("ds clients", [vec![0], big(max32)].concat()),
        // A delete set client with 2^32 - 1 ranges.
        (
            "ds ranges",
            [vec![0, 1, 1], big(max32), vec![0, 0]].concat(),
        ),
        // An Any content of 2^32 - 1 values, an Any array / map of 2^32 and
        // 2^40 entries, a string and a buffer of 2^32 - 1 bytes.
        ("any content", item_update(8, &big(max32))),
        (
            "any array",
            item_update(8, &[vec![1, 117], big(n)].concat()),
        ),
        (
            "any map",
            item_update(8, &[vec![1, 118], big(1 << 40)].concat()),
        ),
        ("string", item_update(4, &big(max32))),
        ("buffer", item_update(3, &big(max32))),
    ];
    for (name, bytes) in &cases {
        let (result, allocated) = allocated_by(|| check_update_v1(bytes, MAX_DEPTH));
        assert!(
            matches!(
                result,
                Err(GuardError::ClaimTooLarge { .. } | GuardError::Truncated)
            ),
            "{name}: {result:?}"
        );
        assert!(allocated <= bytes.len(), "{name}: allocated {allocated}");
    }
    let sv = [big(max32), vec![1, 1]].concat();
    let (result, allocated) = allocated_by(|| check_state_vector_v1(&sv));
    assert!(matches!(result, Err(GuardError::ClaimTooLarge { .. })));
    assert_eq!(allocated, 0);
}

#[test]
fn a_valid_walk_allocates_only_its_depth() {
    let (_, whole) = updates_of(
        3,
        &[vec![
            Op::TextInsert(0, "hello".into(), None),
            Op::MapSet(
                "k".into(),
                Any::Array(vec![Any::Null, Any::Array(vec![Any::Bool(true)].into())].into()),
            ),
        ]],
    );
    let (result, allocated) = allocated_by(|| check_update_v1(&whole, MAX_DEPTH));
    assert_eq!(result, Ok(()));
    assert!(allocated <= 256, "allocated {allocated}");
}

/// Found by the `yjs_update` fuzz target: an origin whose client id has
/// bits above 53 made yrs's `ClientID::new` assert (debug) — in release it
/// ORs them away and two clients become one. Refused now.
#[test]
fn client_ids_above_53_bits_are_refused() {
    let crash = [
        0x01, 0x03, 0x01, 0xff, 0x02, 0x03, 0x00, 0x05, 0x01, 0x01, 0x74, 0x07, 0x02, 0x7b, 0x2f,
        0x00, 0x07, 0xf5, 0x01, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0x74, 0x02, 0x05, 0x02,
        0x05, 0x00, 0x22, 0x00,
    ];
    assert_eq!(
        check_update_v1(&crash, MAX_DEPTH),
        Err(GuardError::Malformed("a client id of 2^53 or more"))
    );
    let mut big = Vec::new();
    varint(1 << 53, &mut big);
    // As the section's client, in the delete set and in a state vector.
    let section = [vec![1, 1], big.clone(), vec![0, 0, 1, 0]].concat();
    let ds = [vec![0, 1], big.clone(), vec![0]].concat();
    let sv = [vec![1], big, vec![0]].concat();
    assert!(check_update_v1(&section, MAX_DEPTH).is_err());
    assert!(check_update_v1(&ds, MAX_DEPTH).is_err());
    assert!(check_state_vector_v1(&sv).is_err());
}

/// Found by the `yjs_update` fuzz target, and beyond the guard: a
/// well-formed update (a GC block at clock ~2^31, a delete range at 8..33 of
/// the same client) made yrs 0.28 underflow in `BlockStore::find_index`
/// while integrating it after a placeholder for the missing clocks. Such an
/// update now waits in `doc::Hold`, unseen by yrs.
#[test]
fn an_update_beyond_a_gap_waits_instead_of_reaching_yrs() {
    let bytes = [1, 1, 0, 136, 136, 136, 136, 9, 0, 97, 1, 0, 1, 8, 25];
    assert_eq!(check_update_v1(&bytes, MAX_DEPTH), Ok(()));
    let mut doc = new_doc(1);
    let applied = doc
        .apply_yrs_update_releasing(&bytes)
        .expect("held, not refused");
    assert!(applied.waits);
    assert_eq!(doc.held(), 1);
}

/// Found by the `yjs_update` fuzz target, and beyond the guard: a
/// well-formed update without gaps whose integration makes yrs 0.28
/// subtract with overflow (`transaction.rs:795`, a debug build; a release
/// build wraps and carries on). The encoding is valid; the panic depends
/// on the document's state. `SharedDoc` catches it (`Panicked`: discard the
/// doc) — but in wasm, where panics abort, it is a trap. The relay's test
/// `a_panic_in_yrs_reloads_the_room` sends the same bytes.
#[test]
fn a_yrs_integration_panic_is_caught() {
    assert_eq!(check_update_v1(YRS_PANIC, MAX_DEPTH), Ok(()));
    assert!(Update::decode_v1(YRS_PANIC).is_ok());
    let result = new_doc(1).apply_yrs_update(YRS_PANIC);
    if cfg!(debug_assertions) {
        assert_eq!(result, Err(DocError::Panicked));
    }
}

/// See [`a_yrs_integration_panic_is_caught`].
const YRS_PANIC: &[u8] = include_bytes!("inputs/yrs-integration-panic.bin");

/// Found by the `yjs_update` fuzz target: an update naming the same client
/// in several sections made yrs overflow a clock when it later merged its
/// own pending structs (in `encode_state_as_update_v1`). Encoders write each
/// client once, in descending order; the guard insists.
#[test]
fn repeated_or_unordered_client_sections_are_refused() {
    let crash = "BgEFAQoKCgoGAQURAQIKCgr/////CgoKCgoKCgABAQAIATABAQEAEgoKCgoKCv////8KCgoK//8FAQECAWEBAQEBAf9hAAEKCgEKCgoKCgoKCgotCgASASMBAQEKCgoKCgoKCgoKABIBAAIBIwEBAQEBAQEBASNdAQEBAQEBAQEACAEBAQph";
    let crash = base64(crash);
    assert!(matches!(
        check_update_v1(&crash, MAX_DEPTH),
        Err(GuardError::Malformed(_))
    ));
    // Two sections, one GC block each: clients 2 then 1 pass; 1 then 2, or
    // 1 twice, do not.
    let two = |a: u8, b: u8| [2, 1, a, 0, 0, 1, 1, b, 0, 0, 1, 0];
    assert_eq!(check_update_v1(&two(2, 1), MAX_DEPTH), Ok(()));
    assert!(check_update_v1(&two(1, 2), MAX_DEPTH).is_err());
    assert!(check_update_v1(&two(1, 1), MAX_DEPTH).is_err());
}

fn base64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Found by the `doc` fuzz target (52.7M runs): an item whose left origin
/// is in a map type's list and whose right origin is in one of that type's
/// entries, in an update that also deletes the type. yrs 0.28 links the
/// item into both chains, frees the type at garbage collection while an
/// item still points at it, and reads freed memory (AddressSanitizer: a
/// heap use-after-free; without it a later encode segfaulted about one
/// process in three). Refused before yrs sees it, and the document stays
/// usable.
#[test]
fn an_item_with_origins_in_two_sequences_is_refused() {
    let update = include_bytes!("inputs/yrs-crossed-origins.bin");
    // Well-formed: only the sequence check refuses it.
    assert_eq!(check_update_v1(update, MAX_DEPTH), Ok(()));
    let mut doc = SharedDoc::new(ReplicaId::new(1), 1, 1, Config::default());
    match doc.apply_yrs_update(update) {
        Err(DocError::BadYrsEncoding(why)) => {
            assert!(why.contains("two different sequences"), "{why}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(doc.yrs_state_vector(), vec![0], "nothing was integrated");
    let mut copy = SharedDoc::new(ReplicaId::new(2), 2, 2, Config::default());
    copy.apply_yrs_update(&doc.snapshot().yrs)
        .expect("the document still encodes");
}

#[test]
fn a_hand_built_crossing_is_refused_and_its_one_sequence_twin_is_not() {
    for client in [1, 0xBAD, (1 << 53) - 1] {
        let crossed = crafted::crossed_update(client, true);
        // yrs reads it as a valid update; only the sequence check refuses.
        Update::decode_v1(&crossed).expect("yrs decodes it");
        assert_eq!(check_update_v1(&crossed, MAX_DEPTH), Ok(()));
        let mut doc = SharedDoc::new(ReplicaId::new(7), 7, 7, Config::default());
        match doc.apply_yrs_update(&crossed) {
            Err(DocError::BadYrsEncoding(why)) => {
                assert!(why.contains("two different sequences"), "{why}")
            }
            other => panic!("client {client}: expected a refusal, got {other:?}"),
        }
        assert_eq!(doc.yrs_state_vector(), vec![0], "nothing was integrated");
        // Without the right origin the item is in one sequence: accepted.
        doc.apply_yrs_update(&crafted::crossed_update(client, false))
            .expect("one sequence");
        let mut copy = SharedDoc::new(ReplicaId::new(8), 8, 8, Config::default());
        copy.apply_yrs_update(&doc.snapshot().yrs)
            .expect("the document encodes");
    }
}
