// Compiled (not run) by the Node suite: the package's declarations cover
// its public API, and misuse is a type error.
import init, { connect, Doc, type ChangeEvent, type Connection, type Value } from 'neuroplex';

export async function usage(): Promise<void> {
  await init();
  const doc = new Doc();
  const named = new Doc({ replica: 'alice' });
  const c = doc.counter('likes');
  c.increment();
  c.decrement(2);
  const n: number = c.value();
  const s = doc.set('tags');
  s.add({ a: [1, 'x', null, new Uint8Array(1)] });
  const has: boolean = s.has('x');
  const vals: Value[] = s.values();
  const size: number = s.size;
  const r = doc.register('title');
  r.set('x');
  const got: Value | undefined = r.get();
  const all: Value[] = r.conflicts();
  doc.flag('done').enable();
  const m = doc.map('m');
  m.map('sub').counter('k').increment(3);
  const keys: string[] = m.keys();
  const t = doc.text('body');
  t.insert(0, 'hi');
  t.delete(0, 1);
  const len: number = t.length;
  const str: string = t.toString();
  const stop: () => void = t.observe((e) => {
    for (const op of e.delta) if ('insert' in op) console.log(op.insert);
  });
  const pos = t.stickyIndex(1);
  const at: number | undefined = pos.resolve();
  const off: () => void = doc.on('change', (e: ChangeEvent) => console.log(e.names, e.texts, e.local));
  const total: number = doc.transact(() => 42);
  named.applyUpdate(doc.encodeState());
  const undone: boolean = doc.undo() || doc.redo();
  const conn: Connection = connect(doc, 'ws://127.0.0.1:1/sync/r', { token: 't', backoffMin: 10 });
  conn.on('status', (st) => console.log(st === 'online'));
  conn.presence.set({ name: 'a' });
  conn.presence.on('change', ({ added, updated, removed }) => console.log(added, updated, removed));
  const states: Map<number, unknown> = conn.presence.states();
  const synced: boolean = conn.synced;
  conn.close();
  stop();
  off();
  doc.free();
  // @ts-expect-error: not a value
  s.add(undefined);
  // @ts-expect-error: unknown event
  doc.on('nope', () => {});
  // @ts-expect-error: index must be a number
  t.insert('0', 'x');
  console.log(n, has, vals, size, got, all, keys, len, str, at, total, undone, states, synced);
}
