// B4: the automerge-paper editing trace (259,778 patches) applied with one
// call per patch through neuroplex, yjs, ywasm and loro-crdt, each in its
// own Node process (node --expose-gc) so that they do not share a heap.
//
//   node b4.mjs                 all four (and neuroplex committing after
//                               every patch), one line each:
//   b4 lib=<name> ms=<t> ok=<true|false> heap_bytes=<n>
//   node b4.mjs --lib yjs       one (what the parent runs in each child)
//
// ms covers applying every patch and reading the final text (for neuroplex
// that includes committing its open transaction). heap_bytes is what the
// finished document keeps alive: JS heap + external memory (where a
// WebAssembly.Memory is counted) after a full GC, minus the same before the
// document was made.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { gunzipSync } from 'node:zlib';

const TRACE = new URL('../../../shared/data/editing-traces/automerge-paper.json.gz', import.meta.url);
const LIBS = ['neuroplex', 'yjs', 'ywasm', 'loro', 'neuroplex-commit-each'];

function loadTrace() {
  const trace = JSON.parse(gunzipSync(readFileSync(process.env.B4_TRACE ?? TRACE)).toString('utf8'));
  const patches = [];
  for (const txn of trace.txns) for (const p of txn.patches) patches.push(p);
  return { patches, end: trace.endContent };
}

const require = createRequire(import.meta.url);

async function makeRunner(lib) {
  switch (lib) {
    case 'neuroplex': {
      const { Doc } = await import('neuroplex');
      return () => {
        const doc = new Doc();
        const text = doc.text('t');
        return {
          doc,
          insert: (i, s) => text.insert(i, s),
          del: (i, n) => text.delete(i, n),
          finish: () => {
            doc.commit();
            return text.toString();
          },
        };
      };
    }
    // Worst case: a commit (what the next microtask does) after every
    // patch, as when each keystroke arrives in its own event-loop task:
    // nothing is merged, every patch is one yrs transaction.
    case 'neuroplex-commit-each': {
      const { Doc } = await import('neuroplex');
      return () => {
        const doc = new Doc();
        const text = doc.text('t');
        return {
          doc,
          insert: (i, s) => {
            text.insert(i, s);
            doc.commit();
          },
          del: (i, n) => {
            text.delete(i, n);
            doc.commit();
          },
          finish: () => text.toString(),
        };
      };
    }
    case 'yjs': {
      const Y = await import('yjs');
      return () => {
        const doc = new Y.Doc();
        const text = doc.getText('t');
        return {
          doc,
          insert: (i, s) => text.insert(i, s),
          del: (i, n) => text.delete(i, n),
          finish: () => text.toString(),
        };
      };
    }
    case 'ywasm': {
      const Y = require('ywasm');
      return () => {
        const doc = new Y.YDoc({});
        const text = doc.getText('t');
        return {
          doc,
          insert: (i, s) => text.insert(i, s, undefined, undefined),
          del: (i, n) => text.delete(i, n, undefined),
          finish: () => text.toString(undefined),
        };
      };
    }
    case 'loro': {
      const { LoroDoc } = await import('loro-crdt');
      return () => {
        const doc = new LoroDoc();
        const text = doc.getText('t');
        return {
          doc,
          insert: (i, s) => text.insert(i, s),
          del: (i, n) => text.delete(i, n),
          finish: () => {
            doc.commit();
            return text.toString();
          },
        };
      };
    }
    default:
      throw new Error(`unknown lib ${lib}`);
  }
}

async function memory() {
  // External memory (Buffers) is released after the GC, asynchronously.
  for (let i = 0; i < 4; i++) {
    globalThis.gc();
    await new Promise((r) => setTimeout(r, 20));
  }
  const m = process.memoryUsage();
  if (process.env.B4_DEBUG) console.error(m);
  return m.heapUsed + m.external;
}

async function child(lib) {
  const { patches, end } = loadTrace();
  const make = await makeRunner(lib);
  const before = await memory();
  const start = performance.now();
  const d = make();
  for (const [pos, del, ins] of patches) {
    if (del > 0) d.del(pos, del);
    if (ins.length > 0) d.insert(pos, ins);
  }
  const result = d.finish();
  const ms = performance.now() - start;
  const heap = (await memory()) - before;
  console.log(`b4 lib=${lib} ms=${Math.round(ms)} ok=${result === end} heap_bytes=${heap}`);
  // Keep the trace and the document alive until after the measurement.
  if (d.doc === undefined || patches.length === 0) console.log('');
}

const i = process.argv.indexOf('--lib');
if (i >= 0) {
  await child(process.argv[i + 1]);
} else {
  for (const lib of LIBS) {
    const out = execFileSync(process.execPath, ['--expose-gc', new URL(import.meta.url).pathname, '--lib', lib], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    process.stdout.write(out);
  }
}
