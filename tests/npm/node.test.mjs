// The npm package in Node 20: the whole API, bad values, non-ASCII text
// with UTF-16 indices, two documents syncing by hand, and Node clients
// syncing through a real relay process (offline edits included).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { connect, Doc, hasText, version } from 'neuroplex';

import { removeDir, roomName, startRelay, tempDir, waitFor } from './support.mjs';

const tick = () => new Promise((r) => setTimeout(r, 0));

/** Applies a Yjs-style delta to a string. */
function applyDelta(text, delta) {
  let out = '';
  let at = 0;
  for (const op of delta) {
    if ('retain' in op) {
      out += text.slice(at, at + op.retain);
      at += op.retain;
    } else if ('delete' in op) {
      at += op.delete;
    } else {
      out += op.insert;
    }
  }
  return out + text.slice(at);
}

/** Exchanges full states both ways. */
function syncByHand(a, b) {
  b.applyUpdate(a.encodeState());
  a.applyUpdate(b.encodeState());
}

describe('module', () => {
  test('loads with no init call and reports its build', () => {
    assert.match(version(), /^\d+\.\d+\.\d+/);
    assert.equal(hasText(), true);
  });

  test('TypeScript declarations cover the API (types/usage.ts compiles, misuse does not)', async () => {
    const tsc = fileURLToPath(new URL('./node_modules/.bin/tsc', import.meta.url));
    const project = fileURLToPath(new URL('./types/tsconfig.json', import.meta.url));
    try {
      await promisify(execFile)(tsc, ['-p', project]);
    } catch (e) {
      assert.fail(`tsc failed:\n${e.stdout}${e.stderr}`);
    }
  });
});

describe('Doc', () => {
  test('replica ids: random by default, or the given name', () => {
    const a = new Doc();
    const b = new Doc();
    assert.notEqual(a.replica, b.replica);
    assert.equal(new Doc({ replica: 'alice' }).replica, 'alice');
    assert.equal(new Doc({}).replica.length > 0, true);
    assert.throws(() => new Doc({ replica: 42 }), TypeError);
    assert.throws(() => new Doc({ replica: '' }), TypeError);
  });

  test('counter', () => {
    const d = new Doc();
    const c = d.counter('likes');
    assert.equal(c.value(), 0);
    c.increment();
    c.increment(10);
    c.decrement();
    c.decrement(3);
    assert.equal(c.value(), 7);
    assert.equal(d.counter('likes').value(), 7, 'a second handle sees the same value');
    for (const bad of [1.5, NaN, '3', {}, true, 2 ** 60]) {
      assert.throws(() => c.increment(bad), TypeError, `increment(${String(bad)})`);
    }
    assert.equal(c.value(), 7, 'refused steps change nothing');
  });

  test('set of JSON-like values', () => {
    const d = new Doc();
    const s = d.set('tags');
    const values = [
      null,
      true,
      false,
      0,
      -5,
      2.5,
      'text',
      'héllo 😀',
      new Uint8Array([1, 2, 3]),
      [1, 'two', [3]],
      { b: 1, a: [true, null], nested: { x: 'y' } },
      2n ** 62n,
    ];
    for (const v of values) s.add(v);
    for (const v of values) assert.equal(s.has(v), true, `has ${String(v)}`);
    assert.equal(s.size, values.length);
    assert.equal(s.has({ a: [true, null], nested: { x: 'y' }, b: 1 }), true, 'key order does not matter');
    assert.equal(s.has(3), false);
    s.add(-0);
    assert.equal(s.has(0), true, '-0 is 0');
    assert.equal(s.size, values.length);
    s.add(7.0);
    assert.equal(s.has(7), true, 'integral floats are integers');
    s.remove('text');
    s.remove('never there');
    assert.equal(s.has('text'), false);
    const back = s.values();
    assert.deepEqual(
      back.find((v) => v instanceof Uint8Array),
      new Uint8Array([1, 2, 3]),
    );
    assert.deepEqual(
      back.find((v) => v && typeof v === 'object' && 'nested' in v),
      { a: [true, null], b: 1, nested: { x: 'y' } },
    );
    assert.equal(back.includes(2n ** 62n), true, 'large integers come back as bigints');
  });

  test('bad values throw TypeError and change nothing', () => {
    const d = new Doc();
    const s = d.set('s');
    const r = d.register('r');
    class Point {
      constructor() {
        this.x = 1;
      }
    }
    let deep = 1;
    for (let i = 0; i < 9; i++) deep = [deep];
    const bad = [
      undefined,
      NaN,
      Infinity,
      -Infinity,
      () => 1,
      Symbol('s'),
      new Date(),
      new Map(),
      new Point(),
      [1, undefined],
      { a: undefined },
      [1, , 3], // eslint-disable-line no-sparse-arrays
      { x: NaN },
      2n ** 64n,
      new Uint16Array(2),
      deep,
    ];
    for (const v of bad) {
      assert.throws(() => s.add(v), TypeError, `set.add(${String(v)})`);
      assert.throws(() => r.set(v), TypeError, `register.set(${String(v)})`);
      assert.throws(() => s.has(v), TypeError);
    }
    let ok = 1;
    for (let i = 0; i < 8; i++) ok = [ok];
    s.add(ok);
    assert.equal(s.size, 1, 'eight levels are fine');
    assert.equal(r.get(), undefined);
    const cyclic = { a: 1 };
    cyclic.self = cyclic;
    assert.throws(() => s.add(cyclic), TypeError);
    // The document still works and encodes.
    const copy = new Doc();
    copy.applyUpdate(d.encodeState());
    assert.equal(copy.set('s').size, 1);
  });

  test('register: value, conflicts, and one winner everywhere', () => {
    const a = new Doc();
    const b = new Doc();
    const ra = a.register('title');
    assert.equal(ra.get(), undefined);
    assert.deepEqual(ra.conflicts(), []);
    ra.set('first');
    ra.set({ text: 'second' });
    assert.deepEqual(ra.get(), { text: 'second' });
    assert.deepEqual(ra.conflicts(), [{ text: 'second' }]);
    syncByHand(a, b);
    assert.deepEqual(b.register('title').get(), { text: 'second' });
    // Concurrent writes: both kept as conflicts, the same winner on both.
    ra.set('from a');
    b.register('title').set('from b');
    syncByHand(a, b);
    assert.deepEqual(a.register('title').get(), b.register('title').get());
    assert.deepEqual(new Set(a.register('title').conflicts()), new Set(['from a', 'from b']));
    assert.deepEqual(a.register('title').conflicts(), b.register('title').conflicts());
    assert.equal(a.register('title').conflicts()[0], a.register('title').get(), 'winner first');
    // A later write resolves the conflict.
    b.register('title').set('settled');
    syncByHand(a, b);
    assert.deepEqual(a.register('title').conflicts(), ['settled']);
  });

  test('flag: enable wins over a concurrent disable', () => {
    const a = new Doc();
    const b = new Doc();
    const f = a.flag('done');
    assert.equal(f.value(), false);
    f.enable();
    assert.equal(f.value(), true);
    syncByHand(a, b);
    a.flag('done').disable();
    b.flag('done').enable();
    syncByHand(a, b);
    assert.equal(a.flag('done').value(), true);
    assert.equal(b.flag('done').value(), true);
    a.flag('done').disable();
    syncByHand(a, b);
    assert.equal(b.flag('done').value(), false);
  });

  test('maps nest, remove and list keys', () => {
    const d = new Doc();
    const todo = d.map('todo');
    todo.counter('votes').increment(2);
    todo.set('tags').add('urgent');
    todo.register('title').set('write tests');
    todo.flag('done').enable();
    const sub = todo.map('meta');
    sub.register('owner').set('ana');
    sub.map('deeper').counter('n').increment();
    assert.deepEqual(todo.keys(), ['done', 'meta', 'tags', 'title', 'votes']);
    assert.equal(todo.has('meta'), true);
    assert.equal(d.map('todo').map('meta').register('owner').get(), 'ana');
    assert.throws(() => sub.map('deeper').map('too-deep'), RangeError);
    assert.equal(d.map('a').map('b').map('c').counter('d').value(), 0, 'four names deep is fine');
    assert.throws(() => d.map('a').map('b').map('c').map('d'), RangeError);
    todo.remove('meta');
    assert.equal(todo.has('meta'), false);
    assert.equal(todo.map('meta').register('owner').get(), undefined);
    assert.deepEqual(d.keys(), ['todo']);
    d.remove('todo');
    assert.deepEqual(d.keys(), []);
    assert.equal(d.map('todo').counter('votes').value(), 0);
  });

  test('an update concurrent with a remove survives (observed-remove)', () => {
    const a = new Doc();
    const b = new Doc();
    a.map('m').counter('x').increment();
    syncByHand(a, b);
    a.remove('m');
    b.map('m').set('s').add('kept');
    syncByHand(a, b);
    assert.deepEqual(a.map('m').set('s').values(), ['kept']);
    assert.equal(a.map('m').counter('x').value(), 0);
  });
});

describe('Text', () => {
  test('insert, delete, toString, length with UTF-16 indices', () => {
    const d = new Doc();
    const t = d.text('body');
    assert.equal(t.name, 'body');
    assert.equal(t.length, 0);
    t.insert(0, 'héllo wörld');
    assert.equal(t.toString(), 'héllo wörld');
    assert.equal(t.length, 'héllo wörld'.length);
    // Astral characters count two UTF-16 units, as in JS strings.
    t.insert(6, '😀 ');
    let expected = 'héllo 😀 wörld';
    assert.equal(t.toString(), expected);
    assert.equal(t.length, expected.length);
    t.insert(expected.length, ' 中文');
    expected += ' 中文';
    t.delete(6, 3); // the emoji (2 units) and the space
    expected = expected.slice(0, 6) + expected.slice(9);
    assert.equal(t.toString(), expected);
    assert.equal(t.length, expected.length);
    t.delete(expected.indexOf('中'), 1);
    expected = expected.replace('中', '');
    assert.equal(t.toString(), expected);
    // A second handle, and a committed state, agree.
    d.commit();
    assert.equal(d.text('body').toString(), expected);
  });

  test('out-of-range and bad indices throw', () => {
    const d = new Doc();
    const t = d.text('t');
    t.insert(0, 'abc');
    assert.throws(() => t.insert(4, 'x'), RangeError);
    assert.throws(() => t.insert(-1, 'x'), RangeError);
    assert.throws(() => t.insert(1.5, 'x'), TypeError);
    assert.throws(() => t.insert(NaN, 'x'), TypeError);
    assert.throws(() => t.delete(2, 2), RangeError);
    assert.throws(() => t.delete(0, -1), RangeError);
    assert.equal(t.toString(), 'abc');
  });

  test('merged edits (typing, backspace, forward delete) read back right', () => {
    const d = new Doc();
    const t = d.text('t');
    let model = '';
    const ins = (i, s) => {
      t.insert(i, s);
      model = model.slice(0, i) + s + model.slice(i);
    };
    const del = (i, n) => {
      t.delete(i, n);
      model = model.slice(0, i) + model.slice(i + n);
    };
    for (const ch of 'hello world') ins(model.length, ch);
    del(model.length - 1, 1);
    del(model.length - 1, 1);
    ins(0, '> ');
    del(2, 1);
    del(2, 1);
    ins(3, 'é😀');
    assert.equal(t.length, model.length);
    assert.equal(t.toString(), model);
    // Pseudo-random edits against a string model.
    let seed = 7;
    const rand = (n) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 2000; i++) {
      if (model.length > 0 && rand(3) === 0) {
        const at = rand(model.length);
        del(at, Math.min(1 + rand(3), model.length - at));
      } else {
        ins(rand(model.length + 1), ['a', 'bc', 'é', 'ü', 'x'][rand(5)]);
      }
      if (i % 97 === 0) d.commit();
      if (i % 13 === 0) assert.equal(t.length, model.length);
    }
    assert.equal(t.toString(), model);
    const other = new Doc();
    other.applyUpdate(d.encodeState());
    assert.equal(other.text('t').toString(), model);
  });

  test('observe reports deltas; change events fire by the next microtask', async () => {
    const d = new Doc();
    const t = d.text('t');
    const deltas = [];
    const changes = [];
    const stopText = t.observe((e) => deltas.push(e));
    const stop = d.on('change', (e) => changes.push(e));
    t.insert(0, 'abc');
    d.counter('n').increment();
    assert.equal(changes.length, 0, 'not yet: the change is still open');
    await Promise.resolve();
    assert.equal(changes.length, 1);
    assert.deepEqual(changes[0], { local: true, names: ['n'], texts: ['t'] });
    assert.deepEqual(deltas, [{ delta: [{ insert: 'abc' }], local: true }]);
    t.insert(1, '😀');
    t.delete(0, 1);
    await tick();
    assert.equal(deltas[1].local, true);
    assert.equal(applyDelta('abc', deltas[1].delta), '😀bc');
    // transact commits synchronously, once.
    d.transact(() => {
      t.insert(0, 'x');
      d.set('s').add(1);
    });
    assert.equal(changes.length, 3);
    assert.deepEqual(changes[2].names, ['s']);
    // Unsubscribing, twice, is fine.
    stop();
    stop();
    stopText();
    t.insert(0, 'y');
    await tick();
    assert.equal(changes.length, 3);
    assert.equal(deltas.length, 3);
    assert.throws(() => d.on('nope', () => {}), TypeError);
  });

  test('nested transact commits once, with the outermost; a throw still commits', () => {
    const d = new Doc();
    const changes = [];
    d.on('change', (e) => changes.push(e));
    const r = d.transact(() => {
      d.counter('a').increment();
      d.transact(() => d.counter('b').increment());
      assert.equal(changes.length, 0, 'not committed inside');
      return 'result';
    });
    assert.equal(r, 'result');
    assert.deepEqual(changes, [{ local: true, names: ['a', 'b'], texts: [] }]);
    assert.throws(
      () =>
        d.transact(() => {
          d.counter('c').increment();
          throw new Error('boom');
        }),
      /boom/,
    );
    assert.equal(changes.length, 2);
    assert.equal(d.counter('c').value(), 1);
  });

  test('remote changes are reported as such', async () => {
    const a = new Doc();
    const b = new Doc();
    const tb = b.text('t');
    const seen = [];
    tb.observe((e) => seen.push(e));
    const changes = [];
    b.on('change', (e) => changes.push(e));
    a.text('t').insert(0, 'hi');
    a.counter('c').increment();
    b.applyUpdate(a.encodeState());
    assert.deepEqual(seen, [{ delta: [{ insert: 'hi' }], local: false }]);
    assert.deepEqual(changes, [{ local: false, names: ['c'], texts: ['t'] }]);
  });

  test('sticky index follows concurrent edits', () => {
    const a = new Doc();
    const b = new Doc();
    a.text('t').insert(0, 'hello world');
    syncByHand(a, b);
    const pos = a.text('t').stickyIndex(6); // before "world"
    assert.equal(pos.resolve(), 6);
    b.text('t').insert(0, '😀 ');
    b.text('t').delete(b.text('t').length - 5, 5);
    b.text('t').insert(b.text('t').length, 'there');
    syncByHand(a, b);
    assert.equal(a.text('t').toString(), '😀 hello there');
    assert.equal(pos.resolve(), 9);
    // Across replicas, as bytes.
    const copy = b.text('t').stickyIndexFromBytes(pos.toBytes());
    assert.equal(copy.resolve(), 9);
    assert.throws(() => a.text('t').stickyIndex(100), RangeError);
    assert.throws(() => a.text('t').stickyIndexFromBytes(new Uint8Array([255, 255])), Error);
  });

  test('undo and redo: own changes only', () => {
    const a = new Doc();
    const b = new Doc();
    const t = a.text('t');
    assert.equal(a.undo(), false);
    t.insert(0, 'one');
    a.stopCapturing();
    t.insert(3, ' two');
    a.stopCapturing();
    assert.equal(t.toString(), 'one two');
    // A peer's edit is not undone here.
    syncByHand(a, b);
    b.text('t').insert(0, '> ');
    a.applyUpdate(b.encodeState());
    assert.equal(t.toString(), '> one two');
    assert.equal(a.undo(), true);
    assert.equal(t.toString(), '> one');
    assert.equal(a.undo(), true);
    assert.equal(t.toString(), '> ');
    assert.equal(a.undo(), false);
    assert.equal(a.redo(), true);
    assert.equal(t.toString(), '> one');
    // Undo is an edit like any other: it syncs.
    b.applyUpdate(a.encodeState());
    assert.equal(b.text('t').toString(), '> one');
  });
});

describe('sync by hand', () => {
  test('two documents converge after concurrent edits of every kind', () => {
    const a = new Doc();
    const b = new Doc();
    a.counter('c').increment(5);
    b.counter('c').increment(2);
    a.set('s').add('x');
    b.set('s').add({ y: [1] });
    a.text('t').insert(0, 'hello');
    b.text('t').insert(0, 'world');
    a.map('m').register('r').set(1);
    b.map('m').flag('f').enable();
    syncByHand(a, b);
    for (const d of [a, b]) {
      assert.equal(d.counter('c').value(), 7);
      assert.equal(d.set('s').size, 2);
      assert.equal(d.map('m').register('r').get(), 1);
      assert.equal(d.map('m').flag('f').value(), true);
    }
    assert.equal(a.text('t').toString(), b.text('t').toString());
    assert.equal(a.text('t').length, 10);
    // Applying the same state again changes nothing.
    const before = a.encodeState();
    a.applyUpdate(b.encodeState());
    a.applyUpdate(before);
    assert.deepEqual(a.encodeState(), before);
  });

  test('bad bytes throw an Error and leave the document as it was', () => {
    const d = new Doc();
    d.text('t').insert(0, 'keep');
    d.counter('c').increment(3);
    const before = d.encodeState();
    const good = new Doc();
    good.text('t').insert(0, 'other');
    const goodState = good.encodeState();
    const bads = [
      new Uint8Array([]),
      new Uint8Array([1, 2, 3]),
      new Uint8Array(64).fill(255),
      goodState.slice(0, goodState.length - 3),
      Uint8Array.from(goodState, (x, i) => (i > 8 && i % 5 === 0 ? x ^ 0x5a : x)),
    ];
    for (const bytes of bads) {
      let err;
      try {
        d.applyUpdate(bytes);
      } catch (e) {
        err = e;
      }
      if (err) {
        assert.equal(err instanceof Error, true);
        assert.equal(err instanceof WebAssembly.RuntimeError, false, `not a trap: ${err.message}`);
        assert.match(err.message, /not a (valid|neuroplex) document state/);
        assert.deepEqual(d.encodeState(), before, 'unchanged');
      }
    }
    // Still fully usable.
    d.text('t').insert(4, '!');
    assert.equal(d.text('t').toString(), 'keep!');
    assert.equal(d.counter('c').value(), 3);
  });

  test('an update nested a million levels deep throws, not traps', () => {
    // A Yjs update written by hand: map "m", key "k" = [[[ ... null ... ]]]
    // (ContentAny), `depth` arrays deep; wrapped as a neuroplex state with
    // no CRDT part. yrs decodes such values recursively: in wasm a stack
    // overflow is a trap, so the guard must refuse it first.
    const varint = (n) => {
      const out = [];
      while (n >= 0x80) {
        out.push((n & 0x7f) | 0x80);
        n = Math.floor(n / 128);
      }
      out.push(n);
      return out;
    };
    const deepUpdate = (depth) => {
      const u = [1, 1, ...varint(0xbad), 0, 8 | 0x20, 1, 1, 109, 1, 107, 1];
      for (let i = 0; i < depth; i++) u.push(117, 1);
      u.push(126, 0);
      return u;
    };
    const version = new Doc().encodeState()[0];
    const state = (depth) => {
      const yrs = deepUpdate(depth);
      return Uint8Array.from([version, 0, ...varint(yrs.length), ...yrs]);
    };
    // The same bytes, shallow, are a valid state.
    const d = new Doc();
    d.applyUpdate(state(3));
    const before = d.encodeState();
    for (const depth of [200, 1_000_000]) {
      let err;
      try {
        d.applyUpdate(state(depth));
      } catch (e) {
        err = e;
      }
      assert.ok(err, `depth ${depth} was applied`);
      assert.equal(err instanceof WebAssembly.RuntimeError, false, `not a trap: ${err.message}`);
      assert.match(err.message, /nests \d+ levels deep/);
      assert.deepEqual(d.encodeState(), before, 'unchanged');
    }
    d.text('t').insert(0, 'still usable');
    assert.equal(d.text('t').toString(), 'still usable');
  });

  test('free() and handles', () => {
    const d = new Doc();
    const t = d.text('t');
    t.insert(0, 'x');
    d.free();
    // Handles keep the document alive until freed themselves.
    assert.equal(t.toString(), 'x');
    t.free();
  });
});

describe('through a relay', () => {
  const cleanups = [];
  after(async () => {
    for (const f of cleanups.reverse()) await f();
  });

  async function relay(opts) {
    const r = await startRelay(opts);
    cleanups.push(() => r.stop());
    return r;
  }

  function client(url, opts) {
    const doc = new Doc();
    const conn = connect(doc, url, { backoffMin: 50, backoffMax: 500, ...opts });
    cleanups.push(() => conn.close());
    return { doc, conn };
  }

  test('two Node clients converge, with presence', async () => {
    const r = await relay();
    const room = roomName();
    const a = client(r.wsUrl(room));
    const b = client(r.wsUrl(room));
    const statuses = [];
    a.conn.on('status', (s) => statuses.push(s));
    await waitFor(() => a.conn.status === 'online' && b.conn.status === 'online', { what: 'online' });
    assert.deepEqual(statuses.at(-1), 'online');
    assert.equal(a.conn.writable, true);

    a.doc.text('t').insert(0, 'hello from a');
    a.doc.counter('c').increment(2);
    b.doc.counter('c').increment(3);
    b.doc.set('s').add({ who: 'b' });
    b.doc.text('t').insert(0, 'b says: ');
    await waitFor(
      () =>
        a.doc.counter('c').value() === 5 &&
        b.doc.counter('c').value() === 5 &&
        a.doc.set('s').has({ who: 'b' }) &&
        a.doc.text('t').toString() === b.doc.text('t').toString() &&
        a.doc.text('t').length === 'hello from ab says: '.length,
      { what: 'convergence' },
    );
    await waitFor(() => a.conn.synced && b.conn.synced, { what: 'synced' });

    // Presence.
    const changes = [];
    b.conn.presence.on('change', (c) => changes.push(c));
    a.conn.presence.set({ name: 'ana', cursor: 3 });
    await waitFor(() => b.conn.presence.states().get(a.conn.presence.clientId)?.name === 'ana', {
      what: 'presence',
    });
    assert.deepEqual(a.conn.presence.states().get(a.conn.presence.clientId), { name: 'ana', cursor: 3 });
    assert.equal(changes.some((c) => c.added.includes(a.conn.presence.clientId)), true);
    a.conn.close();
    assert.equal(a.conn.status, 'offline');
    await waitFor(() => !b.conn.presence.states().has(a.conn.presence.clientId), {
      what: 'presence removed after close',
    });
  });

  test('presence counts at once when a document connects again', async () => {
    const r = await relay();
    const room = roomName();
    const url = r.wsUrl(room);
    const doc = new Doc();
    const first = connect(doc, url, { backoffMin: 50, backoffMax: 500 });
    cleanups.push(() => first.close());
    const b = client(url);
    const id = first.presence.clientId;
    await waitFor(() => first.status === 'online' && b.conn.status === 'online', { what: 'online' });
    first.presence.set({ name: 'ana' });
    b.conn.presence.set({ name: 'bo' });
    await waitFor(() => b.conn.presence.states().get(id)?.name === 'ana', { what: 'presence' });
    first.close();
    await waitFor(() => !b.conn.presence.states().has(id), { what: 'presence removed after close' });

    // The same document connects again (an "offline" switch turned off).
    const again = connect(doc, url, { backoffMin: 50, backoffMax: 500 });
    cleanups.push(() => again.close());
    await waitFor(() => again.status === 'online', { what: 'online again' });
    again.presence.set({ name: 'ana', back: true });
    // Let the presence frame go out, then make an edit: once the edit is
    // durable, the relay has handled the presence sent before it on the
    // same connection.
    await new Promise((resolve) => setImmediate(resolve));
    doc.counter('n').increment();
    await waitFor(() => again.synced && doc.counter('n').value() === 1, { what: 'the edit durable' });
    // A newcomer is told who is here when it joins: the relay took the new
    // state (it used to ignore it until renewals outbid the old removal).
    const c = client(url);
    await waitFor(() => c.conn.presence.states().get(b.conn.presence.clientId)?.name === 'bo', {
      what: 'the newcomer to hear who is here',
    });
    assert.deepEqual(c.conn.presence.states().get(id), { name: 'ana', back: true });
  });

  test('a late joiner gets everything', async () => {
    const r = await relay();
    const room = roomName();
    const a = client(r.wsUrl(room));
    a.doc.map('cfg').register('theme').set('dark');
    a.doc.text('doc').insert(0, 'ünïcödé 😀');
    await waitFor(() => a.conn.synced, { what: 'a synced' });
    const b = client(r.wsUrl(room));
    await waitFor(
      () =>
        b.doc.map('cfg').register('theme').get() === 'dark' &&
        b.doc.text('doc').toString() === 'ünïcödé 😀',
      { what: 'late joiner' },
    );
  });

  test('edits made offline sync when the relay comes back', async () => {
    const dataDir = await tempDir('neuroplex-npm-restart-');
    cleanups.push(() => removeDir(dataDir));
    let r = await relay({ dataDir });
    const port = r.port;
    const room = roomName();
    const a = client(r.wsUrl(room));
    const b = client(r.wsUrl(room));
    a.doc.text('t').insert(0, 'base');
    await waitFor(() => b.doc.text('t').toString() === 'base' && a.conn.synced, { what: 'base' });

    await r.stop();
    await waitFor(() => a.conn.status !== 'online' && b.conn.status !== 'online', { what: 'offline' });
    a.doc.text('t').insert(4, ' from a');
    a.doc.counter('offline').increment();
    b.doc.text('t').insert(0, 'b: ');
    b.doc.counter('offline').increment();
    b.doc.set('s').add('made offline');

    r = await relay({ dataDir, port });
    await waitFor(
      () =>
        a.conn.status === 'online' &&
        b.conn.status === 'online' &&
        a.doc.counter('offline').value() === 2 &&
        b.doc.counter('offline').value() === 2 &&
        a.doc.set('s').has('made offline') &&
        a.doc.text('t').toString() === 'b: base from a' &&
        b.doc.text('t').toString() === 'b: base from a',
      { what: 'convergence after the relay came back', timeout: 60_000 },
    );
  });

  test('a bad URL or a refused connection goes offline, close() stops retries', async () => {
    const r = await relay();
    const { conn } = client(`ws://${r.addr}/nowhere/x`);
    await waitFor(() => conn.status === 'offline' || conn.lastError, { what: 'refused' });
    conn.close();
    assert.equal(conn.status, 'offline');
  });
});
