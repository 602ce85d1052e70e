// Shared test support for the npm package's suites: real relay processes
// on free loopback ports, polling with deadlines (never fixed sleeps), and
// clean-up of everything started, also when a test fails.
//
// The relay binary is NEUROPLEX_RELAY_BIN, or target/debug/neuroplex-relay
// of this repository.

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const RELAY_BIN =
  process.env.NEUROPLEX_RELAY_BIN || join(ROOT, 'target/debug/neuroplex-relay');

/** Every child process still running: killed if the test process exits. */
const running = new Set();
process.on('exit', () => {
  for (const child of running) {
    try {
      child.kill('SIGKILL');
    } catch {
      // Already gone.
    }
  }
});

/** Polls `cond` until it returns a truthy value (returned); throws after `timeout` ms. */
export async function waitFor(cond, { timeout = 30_000, what = 'condition', interval = 20 } = {}) {
  const deadline = Date.now() + timeout;
  let lastError;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline) {
      const extra = lastError ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${extra}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

export function tempDir(prefix = 'neuroplex-npm-') {
  return mkdtemp(join(tmpdir(), prefix));
}

export function removeDir(dir) {
  return rm(dir, { recursive: true, force: true });
}

/** A port free right now on 127.0.0.1 (for programs that need one named). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts a child process, tracked so that it is killed if the tests exit.
 * Returns { child, exited, output() } (stdout + stderr tail).
 */
export function track(cmd, args, options = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  running.add(child);
  let tail = '';
  const keep = (chunk) => {
    if (process.env.NEUROPLEX_TEST_VERBOSE) process.stderr.write(chunk);
    tail = (tail + chunk).slice(-20_000);
  };
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', keep);
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
  });
  child.on('error', (e) => keep(`spawn error: ${e.message}\n`));
  return { child, exited, output: () => tail, keep };
}

/** Stops a tracked process: SIGTERM, then SIGKILL after `grace` ms. */
export async function stopProcess({ child, exited }, grace = 10_000) {
  if (child.exitCode !== null || child.signalCode !== null) return exited;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), grace);
  const r = await exited;
  clearTimeout(timer);
  return r;
}

/**
 * Starts `neuroplex-relay serve --listen 127.0.0.1:<port> --data DIR`
 * (port 0: a free one) and resolves once it printed its address.
 * Returns { addr, wsUrl(room), httpUrl, dataDir, stop() }; `stop()` also
 * removes a data directory it made.
 */
export async function startRelay({ port = 0, dataDir, args = [] } = {}) {
  const ownDir = !dataDir;
  const dir = dataDir ?? (await tempDir('neuroplex-npm-relay-'));
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('NEUROPLEX_')) env[k] = v;
  const proc = track(RELAY_BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--data', dir, ...args], {
    env: { ...env, RUST_LOG: process.env.RUST_LOG || 'info' },
  });
  const lines = createInterface({ input: proc.child.stdout });
  const addr = await Promise.race([
    new Promise((resolve) => lines.once('line', (l) => resolve(l.trim()))),
    proc.exited.then(({ code, signal }) => {
      throw new Error(`relay exited (${code ?? signal}) before printing its address:\n${proc.output()}`);
    }),
    new Promise((_, reject) =>
      setTimeout(() => reject(new Error(`relay did not start in 30 s:\n${proc.output()}`)), 30_000).unref(),
    ),
  ]);
  proc.child.stdout.on('data', () => {});
  let stopped;
  return {
    addr,
    dataDir: dir,
    port: Number(addr.split(':').pop()),
    httpUrl: `http://${addr}`,
    wsUrl: (room) => `ws://${addr}/sync/${room}`,
    output: proc.output,
    stop() {
      stopped ??= (async () => {
        const r = await stopProcess(proc);
        if (ownDir) await removeDir(dir);
        return r;
      })();
      return stopped;
    },
  };
}

/** A room name no other test uses. */
export function roomName(prefix = 'room') {
  return `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
}

/**
 * Launches Debian's Chromium (CHROMIUM_BIN, default /usr/bin/chromium)
 * headless through the caller's playwright-core `chromium` (playwright's
 * own browser download is not available here).
 */
export function launchChromium(chromium) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
  });
}
