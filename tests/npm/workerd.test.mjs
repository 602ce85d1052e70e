// The npm package in an edge worker (workerd, from the `workerd` npm
// package): the worker imports `neuroplex` through the package's `workerd`
// entry (the .wasm imported as a module), receives a document state over
// HTTP, merges it into its own document and answers with the merged state.

import assert from 'node:assert/strict';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Doc } from 'neuroplex';

import { removeDir, ROOT, stopProcess, tempDir, track, waitFor, freePort } from './support.mjs';

const require = createRequire(import.meta.url);

const WORKER = `
import { Doc, hasText } from 'neuroplex';

// Made on first use: workers may not draw random numbers at import time.
let doc;

export default {
  async fetch(request) {
    if (!doc) {
      doc = new Doc();
      doc.text('notes').insert(0, 'edge: ');
      doc.set('seen-by').add('worker');
    }
    if (request.method !== 'POST') {
      return new Response(JSON.stringify({ ready: true, hasText: hasText() }), {
        headers: { 'content-type': 'application/json' },
      });
    }
    const update = new Uint8Array(await request.arrayBuffer());
    try {
      doc.applyUpdate(update);
    } catch (e) {
      return new Response(e.constructor.name + ': ' + e.message, { status: 400 });
    }
    doc.counter('merges').increment();
    return new Response(doc.encodeState(), {
      headers: { 'content-type': 'application/octet-stream' },
    });
  },
};
`;

/** The package's files the worker needs, as workerd modules. */
const PACKAGE_MODULES = [
  ['neuroplex', 'workerd.js', 'esModule'],
  ['lib/connection.js', 'lib/connection.js', 'esModule'],
  ['dist/neuroplex_wasm.js', 'dist/neuroplex_wasm.js', 'esModule'],
  ['dist/neuroplex_wasm_bg.wasm', 'dist/neuroplex_wasm_bg.wasm', 'wasm'],
];

describe('workerd', () => {
  let dir;
  let proc;
  let url;

  before(async () => {
    dir = await tempDir('neuroplex-npm-workerd-');
    const pkg = dirname(require.resolve('neuroplex/package.json'));
    await writeFile(join(dir, 'worker.js'), WORKER);
    const modules = [`(name = "worker.js", esModule = embed "worker.js")`];
    for (const [name, file, kind] of PACKAGE_MODULES) {
      const local = join('pkg', file);
      await mkdir(dirname(join(dir, local)), { recursive: true });
      await copyFile(join(pkg, file), join(dir, local));
      modules.push(`(name = "${name}", ${kind} = embed "${local}")`);
    }
    const port = await freePort();
    await writeFile(
      join(dir, 'config.capnp'),
      `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [(name = "main", worker = .worker)],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
);
const worker :Workerd.Worker = (
  modules = [
    ${modules.join(',\n    ')}
  ],
  compatibilityDate = "2024-09-23",
);
`,
    );
    const bin = join(ROOT, 'tests/npm/node_modules/.bin/workerd');
    proc = track(bin, ['serve', join(dir, 'config.capnp'), '--verbose'], { cwd: dir });
    proc.child.stdout.on('data', (c) => proc.keep(c.toString()));
    url = `http://127.0.0.1:${port}/`;
    await waitFor(
      async () => {
        if (proc.child.exitCode !== null) throw new Error(`workerd exited:\n${proc.output()}`);
        const r = await fetch(url);
        return r.ok && (await r.json()).ready;
      },
      { what: `workerd to serve (${proc.output()})`, timeout: 60_000 },
    );
  });

  after(async () => {
    if (proc) await stopProcess(proc);
    if (dir) await removeDir(dir);
  });

  test('the worker merges a posted state and answers with the merged one', async () => {
    const mine = new Doc();
    mine.text('notes').insert(0, 'hello from node 😀');
    mine.set('seen-by').add('node');
    mine.map('meta').register('author').set({ name: 'node', n: 1 });
    const res = await fetch(url, { method: 'POST', body: mine.encodeState() });
    assert.equal(res.status, 200, await res.clone().text());
    const merged = new Doc();
    merged.applyUpdate(new Uint8Array(await res.arrayBuffer()));
    assert.deepEqual(merged.set('seen-by').values(), ['node', 'worker']);
    assert.equal(merged.counter('merges').value(), 1);
    assert.deepEqual(merged.map('meta').register('author').get(), { name: 'node', n: 1 });
    const text = merged.text('notes').toString();
    assert.equal(text.length, 'edge: hello from node 😀'.length);
    assert.equal(text.includes('edge: '), true);
    assert.equal(text.includes('hello from node 😀'), true);

    // Again: the worker kept its document, and our copy converges with it.
    mine.applyUpdate(merged.encodeState());
    mine.counter('merges').increment(10);
    const res2 = await fetch(url, { method: 'POST', body: mine.encodeState() });
    const again = new Doc();
    again.applyUpdate(new Uint8Array(await res2.arrayBuffer()));
    assert.equal(again.counter('merges').value(), 12);
    assert.equal(again.text('notes').toString(), text);
  });

  test('bad bytes get a clear error, and the worker goes on', async () => {
    const res = await fetch(url, { method: 'POST', body: new Uint8Array([9, 9, 9]) });
    assert.equal(res.status, 400);
    assert.match(await res.text(), /^Error: not a neuroplex document state/);
    const ok = await fetch(url, { method: 'POST', body: new Doc().encodeState() });
    assert.equal(ok.status, 200);
  });
});
