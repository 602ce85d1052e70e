// The npm package in Chromium (playwright-core driving /usr/bin/chromium):
// a real page served by the relay (--static) loads the package, two pages
// converge through the relay, and edits made while the relay is away
// converge once it is back.

import assert from 'node:assert/strict';
import { symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { chromium } from 'playwright-core';

import { launchChromium, removeDir, ROOT, roomName, startRelay, tempDir, waitFor } from './support.mjs';


const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>neuroplex test page</title>
<script type="module">
  import init, { Doc, connect, version } from './neuroplex/browser.js';
  await init();
  window.np = { Doc, connect, version };
  window.ready = true;
</script>
`;

describe('Chromium', () => {
  let browser;
  let site;
  let relay;
  let dataDir;
  const cleanups = [];

  before(async () => {
    site = await tempDir('neuroplex-npm-site-');
    dataDir = await tempDir('neuroplex-npm-data-');
    await writeFile(join(site, 'index.html'), PAGE);
    await symlink(join(ROOT, 'npm'), join(site, 'neuroplex'));
    browser = await launchChromium(chromium);
  });

  after(async () => {
    for (const f of cleanups.reverse()) await f();
    await browser?.close();
    await relay?.stop();
    if (site) await removeDir(site);
    if (dataDir) await removeDir(dataDir);
  });

  async function openPage(addr) {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e));
    await page.goto(`http://${addr}/index.html`);
    await page.waitForFunction(() => window.ready === true, null, { timeout: 30_000 });
    page.errors = errors;
    cleanups.push(() => page.close());
    return page;
  }

  /** Starts a document and a connection in the page (window.doc, window.conn). */
  async function joinRoom(page, url) {
    await page.evaluate((url) => {
      window.doc = new window.np.Doc();
      window.conn = window.np.connect(window.doc, url, { backoffMin: 50, backoffMax: 500 });
    }, url);
  }

  const state = (page) =>
    page.evaluate(() => ({
      status: window.conn.status,
      text: window.doc.text('t').toString(),
      count: window.doc.counter('c').value(),
      tags: window.doc.set('tags').values(),
      synced: window.conn.synced,
    }));

  test('a page loads the package and uses it', async () => {
    relay = await startRelay({ dataDir, args: ['--static', site] });
    const page = await openPage(relay.addr);
    const r = await page.evaluate(() => {
      const d = new window.np.Doc();
      const t = d.text('t');
      t.insert(0, 'héllo 😀');
      t.insert(8, '!');
      let err;
      try {
        d.set('s').add(undefined);
      } catch (e) {
        err = e.constructor.name;
      }
      return { version: window.np.version(), text: t.toString(), length: t.length, err };
    });
    assert.match(r.version, /^\d+\.\d+\.\d+/);
    assert.equal(r.text, 'héllo 😀!');
    assert.equal(r.length, 'héllo 😀!'.length);
    assert.equal(r.err, 'TypeError');
    assert.deepEqual(page.errors, []);
  });

  test('two pages converge through the relay, also after going offline', async () => {
    const room = roomName('browser');
    const url = `ws://${relay.addr}/sync/${room}`;
    const a = await openPage(relay.addr);
    const b = await openPage(relay.addr);
    await joinRoom(a, url);
    await joinRoom(b, url);
    await waitFor(async () => (await state(a)).status === 'online' && (await state(b)).status === 'online', {
      what: 'both pages online',
    });

    await a.evaluate(() => {
      window.doc.text('t').insert(0, 'from a');
      window.doc.counter('c').increment(2);
    });
    await b.evaluate(() => {
      window.doc.counter('c').increment(3);
      window.doc.set('tags').add({ page: 'b' });
    });
    await waitFor(
      async () => {
        const [sa, sb] = [await state(a), await state(b)];
        return sa.count === 5 && sb.count === 5 && sb.text === 'from a' && sa.tags.length === 1;
      },
      { what: 'convergence' },
    );

    // The relay goes away: both pages go offline and keep editing.
    const port = relay.port;
    await relay.stop();
    await waitFor(async () => (await state(a)).status !== 'online' && (await state(b)).status !== 'online', {
      what: 'both pages offline',
    });
    await a.evaluate(() => {
      const t = window.doc.text('t');
      t.insert(t.length, ' + offline a');
      window.doc.counter('c').increment();
    });
    await b.evaluate(() => {
      window.doc.text('t').insert(0, 'offline b: ');
      window.doc.set('tags').add('offline');
    });
    // Back on the same address, with the same data.
    relay = await startRelay({ dataDir, port, args: ['--static', site] });
    await waitFor(
      async () => {
        const [sa, sb] = [await state(a), await state(b)];
        return (
          sa.status === 'online' &&
          sb.status === 'online' &&
          sa.count === 6 &&
          sb.count === 6 &&
          sa.tags.length === 2 &&
          sb.tags.length === 2 &&
          sa.text === 'offline b: from a + offline a' &&
          sb.text === sa.text
        );
      },
      { what: 'convergence after the relay came back', timeout: 60_000 },
    );
    assert.deepEqual(a.errors, []);
    assert.deepEqual(b.errors, []);
  });
});
