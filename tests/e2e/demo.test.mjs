// The demo page (web-demo/dist, served by a real relay with --static) in
// Chromium driven by playwright-core: two browser contexts in one room edit
// every widget at once and converge; one goes offline, both edit, it comes
// back and nothing typed is lost; a Yjs client in Node shares the notes;
// screenshots at desktop and phone width go to target/e2e-artifacts/.
//
// Every wait polls a condition against a deadline; nothing sleeps a fixed
// time. Every page must finish with no console error or warning and no
// uncaught exception.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { chromium } from 'playwright-core';
import { WebsocketProvider } from 'y-websocket';
import WebSocket from 'ws';
import * as Y from 'yjs';

import { launchChromium, ROOT, roomName, startRelay, waitFor } from '../npm/support.mjs';

const SITE = join(ROOT, 'web-demo/dist');
const ARTIFACTS = join(ROOT, 'target/e2e-artifacts');
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const LONG = 60_000;

describe('the demo page', () => {
  let relay;
  let browser;
  const contexts = [];
  const pages = [];

  before(async () => {
    assert.ok(existsSync(join(SITE, 'index.html')), `${SITE} is not built: run \`make web-demo\``);
    relay = await startRelay({ args: ['--static', SITE] });
    browser = await launchChromium(chromium);
  });

  after(async () => {
    // Pages first: their sockets close while the relay is still there.
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close().catch(() => {});
    await relay?.stop();
    // Checked last, so that a page's late error fails the run too.
    for (const p of pages) assert.deepEqual(p.problems, [], `console problems in ${p.label}`);
  });

  /** Opens the demo in a new browser context (its own storage: another person). */
  async function open(room, label, viewport = DESKTOP) {
    const context = await browser.newContext({ viewport });
    contexts.push(context);
    const page = await context.newPage();
    page.label = label;
    page.problems = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') page.problems.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.stack ?? e}`));
    pages.push(page);
    await page.goto(`${relay.httpUrl}/?room=${encodeURIComponent(room)}`);
    await waitFor(async () => (await status(page)) === 'online', { what: `${label} online`, timeout: LONG });
    return page;
  }

  const status = (page) => page.locator('#status').getAttribute('data-status');

  /** What a person sees, widget by widget. */
  const view = (page) =>
    page.evaluate(() => ({
      todos: [...document.querySelectorAll('#todos li')].map((li) => ({
        text: li.querySelector('.text').value,
        done: li.querySelector('.done').checked,
      })),
      votes: Object.fromEntries(
        [...document.querySelectorAll('#votes li')].map((li) => [li.dataset.key, Number(li.querySelector('output').textContent)]),
      ),
      tags: [...document.querySelectorAll('#tags li')].map((li) => li.dataset.key),
      notes: document.querySelector('#notes').value,
    }));

  const people = (page) => page.locator('#people li').allTextContents();

  /** Polls until both pages show the same state and `check(state)` holds; returns it. */
  async function converged(a, b, check, what) {
    let last;
    await waitFor(
      async () => {
        const [va, vb] = [await view(a), await view(b)];
        last = { [a.label]: va, [b.label]: vb };
        return JSON.stringify(va) === JSON.stringify(vb) && check(va);
      },
      { what, timeout: LONG },
    ).catch((e) => {
      e.message += `\nlast seen: ${JSON.stringify(last, null, 1)}`;
      throw e;
    });
    return last[a.label];
  }

  const addTodo = async (page, text) => {
    await page.getByLabel('New todo', { exact: true }).fill(text);
    await page.getByLabel('New todo', { exact: true }).press('Enter');
  };
  const addTag = async (page, tag) => {
    await page.getByLabel('New tag', { exact: true }).fill(tag);
    await page.getByLabel('New tag', { exact: true }).press('Enter');
  };
  const vote = async (page, label, times = 1) => {
    for (let i = 0; i < times; i++) await page.getByRole('button', { name: `Vote for ${label}`, exact: true }).click();
  };
  /** Types into the notes at `at` (a code unit index, or 'end'). */
  const typeNotes = async (page, at, s) => {
    const notes = page.getByRole('textbox', { name: 'Shared notes', exact: true });
    await notes.focus();
    await notes.evaluate((el, at) => {
      const i = at === 'end' ? el.value.length : at;
      el.setSelectionRange(i, i);
    }, at);
    await page.keyboard.type(s);
  };

  /** Whether `small`'s characters appear in `big` in order (concurrent typing interleaves). */
  const subsequence = (small, big) => {
    let i = 0;
    for (const ch of big) if (ch === small[i]) i++;
    return i === small.length;
  };

  test('two people edit every widget at once and converge', async () => {
    const room = roomName('e2e-edit');
    const a = await open(room, 'A');
    const b = await open(room, 'B');
    await waitFor(async () => (await people(a)).length === 2 && (await people(b)).length === 2, {
      what: 'both people listed on both pages',
      timeout: LONG,
    });

    // Round 1, at the same time on both pages.
    const notesA = 'Agenda from A. ';
    const notesB = 'B says hi. ';
    await Promise.all([
      (async () => {
        await addTodo(a, 'Alpha task');
        await addTag(a, 'alpha');
        await vote(a, 'Pizza', 2);
        await typeNotes(a, 0, notesA);
      })(),
      (async () => {
        await addTodo(b, 'Beta task');
        await addTag(b, 'beta');
        await vote(b, 'Pizza');
        await vote(b, 'Sushi');
        await typeNotes(b, 0, notesB);
      })(),
    ]);
    const v1 = await converged(
      a,
      b,
      (v) =>
        v.todos.length === 2 &&
        v.tags.length === 2 &&
        v.votes.pizza === 3 &&
        v.votes.sushi === 1 &&
        v.notes.length === notesA.length + notesB.length,
      'round 1',
    );
    assert.deepEqual(v1.todos.map((t) => t.text).sort(), ['Alpha task', 'Beta task']);
    assert.deepEqual([...v1.tags].sort(), ['alpha', 'beta']);
    assert.ok(subsequence(notesA, v1.notes) && subsequence(notesB, v1.notes), v1.notes);

    // Round 2: each changes what the other made, again at the same time.
    await Promise.all([
      (async () => {
        await a.getByLabel('Done: Beta task', { exact: true }).check();
        await a.getByRole('button', { name: 'Remove tag beta', exact: true }).click();
        await a.getByRole('button', { name: 'Take back a vote for Sushi', exact: true }).click();
        await typeNotes(a, 'end', '[A]');
      })(),
      (async () => {
        // A handle, not a locator: the field's label follows its text.
        const text = await b.getByLabel('Todo: Alpha task', { exact: true }).elementHandle();
        await text.fill('Alpha task, edited by B');
        await text.evaluate((el) => el.blur());
        await addTodo(b, 'Gamma task');
        await addTag(b, 'gamma');
        await vote(b, 'Tacos');
        await typeNotes(b, 0, '[B]');
      })(),
    ]);
    const v2 = await converged(
      a,
      b,
      (v) => v.todos.length === 3 && v.notes.includes('[A]') && v.notes.includes('[B]') && v.votes.tacos === 1 && v.votes.sushi === 0,
      'round 2',
    );
    assert.deepEqual(
      [...v2.todos].sort((x, y) => x.text.localeCompare(y.text)),
      [
        { text: 'Alpha task, edited by B', done: false },
        { text: 'Beta task', done: true },
        { text: 'Gamma task', done: false },
      ],
    );
    assert.deepEqual([...v2.tags].sort(), ['alpha', 'gamma']);
    assert.deepEqual(v2.votes, { pizza: 3, sushi: 0, tacos: 1 });

    // Round 3: removing a todo, while the other ticks another.
    await Promise.all([
      a.getByRole('button', { name: 'Remove todo: Gamma task', exact: true }).click(),
      b.getByLabel('Done: Alpha task, edited by B', { exact: true }).check(),
    ]);
    const v3 = await converged(a, b, (v) => v.todos.length === 2 && v.todos.every((t) => t.done), 'round 3');
    assert.deepEqual(v3.todos.map((t) => t.text).sort(), ['Alpha task, edited by B', 'Beta task']);
  });

  test("the caret stays at its place while the other person types before it", async () => {
    const room = roomName('e2e-caret');
    const a = await open(room, 'A (caret)');
    const b = await open(room, 'B (caret)');
    const notes = (p) => p.getByRole('textbox', { name: 'Shared notes', exact: true });
    const caret = (p) =>
      notes(p).evaluate((el) => ({
        start: el.selectionStart,
        end: el.selectionEnd,
        focused: document.activeElement === el,
        value: el.value,
      }));

    await typeNotes(a, 0, 'hello world');
    await converged(a, b, (v) => v.notes === 'hello world', 'the first line');

    // A selects "world"; B types before it.
    await notes(a).evaluate((el) => el.setSelectionRange(6, 11));
    await typeNotes(b, 0, '>> ');
    await waitFor(async () => (await caret(a)).value === '>> hello world', { what: "B's text on A", timeout: LONG });
    let c = await caret(a);
    assert.deepEqual({ start: c.start, end: c.end, focused: c.focused }, { start: 9, end: 14, focused: true });
    assert.equal(c.value.slice(c.start, c.end), 'world');

    // A types over the selection: it replaces "world", where A left it.
    await a.keyboard.type('there');
    await converged(a, b, (v) => v.notes === '>> hello there', 'the replacement');

    // B deletes before A's caret: A's caret moves back with the text.
    await notes(b).evaluate((el) => el.setSelectionRange(0, 3));
    await notes(b).press('Backspace');
    await waitFor(async () => (await caret(a)).value === 'hello there', { what: "B's delete on A", timeout: LONG });
    c = await caret(a);
    assert.deepEqual({ start: c.start, end: c.end, focused: c.focused }, { start: 11, end: 11, focused: true });

    // And A, typing on, continues after "there".
    await a.keyboard.type('!');
    await converged(a, b, (v) => v.notes === 'hello there!', 'typing on');

    // Replacing an emoji by one that shares its first UTF-16 code unit: the
    // splice must take the whole pair, or the text would hold half of one.
    await typeNotes(b, 'end', ' 😀.');
    await converged(a, b, (v) => v.notes === 'hello there! 😀.', 'the emoji');
    await notes(a).evaluate((el) => el.setSelectionRange(13, 15));
    await a.keyboard.type('😁');
    await converged(a, b, (v) => v.notes === 'hello there! 😁.', 'the replaced emoji');
  });

  test('one goes offline, both edit, it comes back: both converge and nothing is lost', async () => {
    const room = roomName('e2e-offline');
    const a = await open(room, 'A (offline)');
    const b = await open(room, 'B (offline)');
    await addTodo(a, 'Shared before');
    await addTag(a, 'old');
    await typeNotes(a, 0, 'Base line.');
    await converged(a, b, (v) => v.todos.length === 1 && v.tags.length === 1 && v.notes === 'Base line.', 'the start');
    await waitFor(async () => (await people(b)).length === 2, { what: 'A listed on B', timeout: LONG });

    const offline = a.getByRole('switch', { name: 'Offline', exact: true });
    await offline.check();
    await waitFor(async () => (await status(a)) === 'offline', { what: 'A offline', timeout: LONG });
    // B sees A leave (the relay announces it when the socket closes).
    await waitFor(async () => (await people(b)).length === 1, { what: 'A gone from B', timeout: LONG });

    await Promise.all([
      (async () => {
        await addTodo(a, 'Written offline by A');
        await a.getByLabel('Done: Shared before', { exact: true }).check();
        await addTag(a, 'offline');
        await vote(a, 'Tacos', 2);
        await typeNotes(a, 'end', ' A wrote this offline.');
      })(),
      (async () => {
        await addTodo(b, 'Written online by B');
        await b.getByRole('button', { name: 'Remove tag old', exact: true }).click();
        await vote(b, 'Tacos');
        await typeNotes(b, 0, 'B online: ');
      })(),
    ]);
    // While A is away, nothing of its edits reached B.
    const away = await view(b);
    assert.ok(!away.todos.some((t) => t.text === 'Written offline by A'), JSON.stringify(away));
    assert.ok(!away.notes.includes('offline'), away.notes);
    assert.equal(await status(a), 'offline');

    await offline.uncheck();
    await waitFor(async () => (await status(a)) === 'online', { what: 'A back online', timeout: LONG });
    const v = await converged(
      a,
      b,
      (v) => v.todos.length === 3 && v.notes.length === 'B online: Base line. A wrote this offline.'.length,
      'after A came back',
    );
    assert.equal(v.notes, 'B online: Base line. A wrote this offline.');
    assert.deepEqual(
      [...v.todos].sort((x, y) => x.text.localeCompare(y.text)),
      [
        { text: 'Shared before', done: true },
        { text: 'Written offline by A', done: false },
        { text: 'Written online by B', done: false },
      ],
    );
    assert.deepEqual(v.tags, ['offline']);
    assert.deepEqual(v.votes, { pizza: 0, sushi: 0, tacos: 3 });
    await waitFor(async () => (await people(a)).length === 2 && (await people(b)).length === 2, {
      what: 'both listed again',
      timeout: LONG,
    });
  });

  test('a Yjs client in Node shares the notes through /yjs', async () => {
    const room = roomName('e2e-yjs');
    const page = await open(room, 'A (yjs)');
    await typeNotes(page, 0, 'from the browser');

    const ydoc = new Y.Doc();
    const provider = new WebsocketProvider(`ws://${relay.addr}/yjs`, room, ydoc, {
      WebSocketPolyfill: WebSocket,
      disableBc: true,
    });
    try {
      provider.awareness.setLocalState({ name: 'Yjs bot', color: '#123456' });
      const ytext = ydoc.getText('notes');
      await waitFor(() => provider.synced && ytext.toString() === 'from the browser', {
        what: "the browser's notes in the Yjs client",
        timeout: LONG,
      });
      // The Yjs client is a person on the page too.
      await waitFor(async () => (await people(page)).includes('Yjs bot'), { what: 'Yjs bot listed', timeout: LONG });

      ytext.insert(0, '[yjs] ');
      await waitFor(async () => (await view(page)).notes === '[yjs] from the browser', {
        what: "the Yjs client's edit on the page",
        timeout: LONG,
      });
      await typeNotes(page, 'end', ' and back');
      await waitFor(() => ytext.toString() === '[yjs] from the browser and back', {
        what: "the browser's edit in the Yjs client",
        timeout: LONG,
      });
    } finally {
      provider.destroy();
      ydoc.destroy();
    }
  });

  test('screenshots at desktop and phone width; every control has a label', async () => {
    const room = roomName('e2e-shots');
    const a = await open(room, 'A (shots)');
    const b = await open(room, 'B (shots)', PHONE);
    await addTodo(a, 'Try the offline switch');
    await addTodo(b, 'Edit this on two devices');
    await addTag(a, 'demo');
    await addTag(b, 'crdt');
    await vote(a, 'Sushi', 2);
    await vote(b, 'Pizza');
    await typeNotes(a, 0, 'Notes everyone can edit.\n');
    await typeNotes(b, 'end', 'Typed on a phone.');
    await converged(a, b, (v) => v.todos.length === 2 && v.tags.length === 2 && v.notes.endsWith('phone.'), 'the content');
    await b.getByLabel('Done: Try the offline switch', { exact: true }).check();
    await converged(a, b, (v) => v.todos.some((t) => t.done), 'the tick');
    await waitFor(async () => (await people(a)).length === 2 && (await people(b)).length === 2, {
      what: 'both listed',
      timeout: LONG,
    });

    // Controls without an accessible name: none.
    for (const page of [a, b]) {
      const unlabeled = await page.evaluate(() =>
        [...document.querySelectorAll('input, button, textarea, select')]
          .filter((el) => {
            const named =
              el.getAttribute('aria-label') ||
              el.getAttribute('aria-labelledby') ||
              (el.labels && [...el.labels].some((l) => l.textContent.trim())) ||
              (el.tagName === 'BUTTON' && el.textContent.trim());
            return !named;
          })
          .map((el) => el.outerHTML),
      );
      assert.deepEqual(unlabeled, [], `unlabelled controls on ${page.label}`);
    }

    await mkdir(ARTIFACTS, { recursive: true });
    const saved = [];
    for (const [page, name] of [
      [a, 'a'],
      [b, 'b'],
    ]) {
      for (const [size, viewport] of [
        ['desktop', DESKTOP],
        ['phone', PHONE],
      ]) {
        await page.setViewportSize(viewport);
        // Nothing wider than the screen: no sideways scrolling.
        const width = await page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(width <= viewport.width, `${page.label} is ${width} px wide at ${viewport.width} px`);
        const path = join(ARTIFACTS, `demo-${name}-${size}.png`);
        await page.screenshot({ path, fullPage: true });
        saved.push(path);
      }
    }
    for (const path of saved) console.log(`screenshot: ${path}`);
  });
});
