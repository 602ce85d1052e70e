//! Yjs updates written by hand, byte by byte, for attacks that yrs's own
//! API cannot produce. Shared by the guard tests and the room simulation.

/// Appends `v` as a lib0 variable-length unsigned integer.
pub fn put_var(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_var(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_id(out: &mut Vec<u8>, client: u64, clock: u64) {
    put_var(out, client);
    put_var(out, clock);
}

/// A v1 update from `client` whose last item has its left origin in a
/// map type's list and its right origin in one of that type's entries,
/// and which deletes the type:
///
/// - `client#0`: a `Y.Map` in the root "r" (a list item);
/// - `client#1`: "x", a list item of that map (parent `client#0`);
/// - `client#2`: null at the map's key "k";
/// - `client#3`: "y" between `client#1` (left) and `client#2` (right);
/// - delete set: `client#0`.
///
/// With `right` false the last item has only its left origin (one
/// sequence: the map's list).
pub fn crossed_update(client: u64, right: bool) -> Vec<u8> {
    let mut u = Vec::new();
    put_var(&mut u, 1); // one client
    put_var(&mut u, 4); // four structs
    put_id(&mut u, client, 0); // from clock 0
    // #0: ContentType (7), no origins, parent a root by name; type ref 1.
    u.push(7);
    put_var(&mut u, 1);
    put_str(&mut u, "r");
    put_var(&mut u, 1); // Y.Map
    // #1: ContentString (4), parent by id.
    u.push(4);
    put_var(&mut u, 0);
    put_id(&mut u, client, 0);
    put_str(&mut u, "x");
    // #2: ContentAny (8) with a parent sub (0x20), parent by id.
    u.push(0x20 | 8);
    put_var(&mut u, 0);
    put_id(&mut u, client, 0);
    put_str(&mut u, "k");
    put_var(&mut u, 1); // one value
    u.push(126); // null
    // #3: ContentString with a left origin (0x80) and maybe a right one
    // (0x40); the parent follows from the origins.
    u.push(4 | 0x80 | if right { 0x40 } else { 0 });
    put_id(&mut u, client, 1);
    if right {
        put_id(&mut u, client, 2);
    }
    put_str(&mut u, "y");
    // Delete set: client#0, length 1.
    put_var(&mut u, 1);
    put_var(&mut u, client);
    put_var(&mut u, 1);
    put_var(&mut u, 0);
    put_var(&mut u, 1);
    u
}
