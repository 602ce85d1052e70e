// Test harness for the Yjs interop suite: starts real `neuroplex-relay`
// processes, mints tokens, builds y-websocket providers and raw `ws` clients,
// and polls for conditions (never sleeps a fixed time to wait for one).
//
// The relay binary is NEUROPLEX_RELAY_BIN, or target/debug/neuroplex-relay
// of this repository (resolved from this file's location).

import { spawn, execFile } from 'node:child_process'
import { createInterface } from 'node:readline'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:net'

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'

export const RELAY_BIN = process.env.NEUROPLEX_RELAY_BIN ||
  fileURLToPath(new URL('../../target/debug/neuroplex-relay', import.meta.url))

// Protocol constants (y-websocket / y-protocols).
export const MSG_SYNC = 0
export const MSG_AWARENESS = 1
export const MSG_AUTH = 2
export const MSG_QUERY_AWARENESS = 3
export const SYNC_STEP1 = 0
export const SYNC_STEP2 = 1
export const SYNC_UPDATE = 2

const STOP_GRACE_MS = 10_000
const START_TIMEOUT_MS = 30_000

/** Every relay still running, so a crashing test run cannot leave one behind. */
const running = new Set()
process.on('exit', () => {
  for (const child of running) {
    try { child.kill('SIGKILL') } catch {}
  }
})

/**
 * Polls `cond` (sync or async) every 25 ms until it returns a truthy value,
 * which is returned. Throws, naming `what`, after `timeout` ms.
 */
export async function waitFor (cond, { timeout = 30_000, what = 'condition', interval = 25 } = {}) {
  const deadline = Date.now() + timeout
  let lastError
  for (;;) {
    try {
      const v = await cond()
      if (v) return v
    } catch (e) {
      lastError = e
    }
    if (Date.now() >= deadline) {
      const extra = lastError ? ` (last error: ${lastError.message})` : ''
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${extra}`)
    }
    await new Promise((resolve) => setTimeout(resolve, interval))
  }
}

/** A fresh, empty temporary directory. */
export function makeTempDir (prefix = 'neuroplex-yjs-') {
  return mkdtemp(join(tmpdir(), prefix))
}

export function removeDir (dir) {
  return rm(dir, { recursive: true, force: true })
}

/** The environment for a relay: ours without NEUROPLEX_* (so a developer's
 * settings cannot change what the tests exercise) plus `extra`. */
function relayEnv (extra = {}) {
  const env = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('NEUROPLEX_')) env[k] = v
  }
  return { ...env, ...extra }
}

/**
 * Starts `neuroplex-relay serve --listen 127.0.0.1:0 --data DIR ...args`.
 * Resolves once the relay printed its address. `dataDir` given: that
 * directory is used and kept; otherwise a fresh one is made and removed by
 * `stop()`.
 *
 * Returns { addr, url, httpUrl, dataDir, process, stderr(), stop(), exited }.
 * `url` is the y-websocket server URL (`ws://ADDR/yjs`). `stop()` sends
 * SIGTERM, then SIGKILL after 10 s, and resolves to { code, signal }; calling
 * it again returns the same result.
 */
export async function startRelay ({ args = [], dataDir, env = {} } = {}) {
  const ownDir = !dataDir
  const dir = dataDir || await makeTempDir()
  const child = spawn(RELAY_BIN, ['serve', '--listen', '127.0.0.1:0', '--data', dir, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: relayEnv({ RUST_LOG: process.env.RUST_LOG || 'info', ...env })
  })
  running.add(child)

  // Always drain stderr (a full pipe would block the relay); keep a tail.
  let stderrTail = ''
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (chunk) => {
    if (process.env.NEUROPLEX_TEST_VERBOSE) process.stderr.write(chunk)
    stderrTail = (stderrTail + chunk).slice(-20_000)
  })
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      running.delete(child)
      resolve({ code, signal })
    })
  })
  child.on('error', () => {}) // reported through `exited` / the start timeout

  const lines = createInterface({ input: child.stdout })
  const firstLine = new Promise((resolve) => lines.once('line', resolve))
  let timer
  const startTimeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve({ timeout: true }), START_TIMEOUT_MS)
  })
  const spawnError = new Promise((resolve) => child.once('error', (e) => resolve({ error: e })))
  const first = await Promise.race([
    firstLine.then((line) => ({ line })),
    exited.then((x) => ({ exit: x })),
    spawnError,
    startTimeout
  ])
  clearTimeout(timer)

  let stopped
  const stop = () => {
    if (!stopped) {
      stopped = (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM')
          let t
          const res = await Promise.race([
            exited,
            new Promise((resolve) => { t = setTimeout(() => resolve(null), STOP_GRACE_MS) })
          ])
          clearTimeout(t)
          if (res === null) {
            child.kill('SIGKILL')
            await exited
            lines.close()
            if (ownDir) await removeDir(dir)
            return { code: null, signal: 'SIGKILL', forced: true }
          }
        }
        const res = await exited
        lines.close()
        if (ownDir) await removeDir(dir)
        return res
      })()
    }
    return stopped
  }

  if (!first.line) {
    await stop()
    const why = first.error
      ? `could not be spawned: ${first.error.message}`
      : first.exit
        ? `exited (code ${first.exit.code}, signal ${first.exit.signal}) before printing its address`
        : `printed no address within ${START_TIMEOUT_MS} ms`
    throw new Error(`relay ${RELAY_BIN} ${why}\n--- relay stderr ---\n${stderrTail}`)
  }
  const addr = first.line.trim()
  if (!/^[\w.[\]:-]+:\d+$/.test(addr)) {
    await stop()
    throw new Error(`relay printed ${JSON.stringify(first.line)} instead of an address`)
  }
  lines.on('line', () => {}) // keep draining stdout
  return {
    addr,
    url: `ws://${addr}/yjs`,
    httpUrl: `http://${addr}`,
    dataDir: dir,
    process: child,
    exited,
    stderr: () => stderrTail,
    stop
  }
}

/** Runs `neuroplex-relay token ...` and returns the token (its last stdout line). */
export function mintToken ({ secretFile, room, rights, ttl }) {
  const args = ['token', '--secret-file', secretFile, '--room', room, '--rights', rights]
  if (ttl) args.push('--ttl', ttl)
  return new Promise((resolve, reject) => {
    execFile(RELAY_BIN, args, { env: relayEnv() }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`neuroplex-relay token failed: ${err.message}\n${stderr}`))
      const lines = stdout.split('\n').map((l) => l.trim()).filter(Boolean)
      if (lines.length === 0) return reject(new Error('neuroplex-relay token printed nothing'))
      resolve(lines[lines.length - 1])
    })
  })
}

/** Writes a fresh random secret into `dir` and returns the file's path. */
export async function makeSecretFile (dir) {
  const file = join(dir, 'secret')
  await writeFile(file, randomBytes(32).toString('hex') + '\n')
  return file
}

/** A loopback port free now (for a flag that needs one chosen ahead). */
export function freePort () {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

/** A room name no other test uses. */
export function uniqueRoom (label = 'room') {
  return `${label}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`
}

/**
 * A y-websocket client: a Y.Doc and a WebsocketProvider (BroadcastChannel
 * disabled, so providers in this process can only meet through the relay).
 * `closes` collects every 'connection-close' event the provider saw.
 * `destroy()` is idempotent.
 */
export function makeClient (url, room, { doc = new Y.Doc(), params, connect = true, ...opts } = {}) {
  const provider = new WebsocketProvider(url, room, doc, {
    WebSocketPolyfill: WebSocket,
    disableBc: true,
    connect,
    ...(params ? { params } : {}),
    ...opts
  })
  const closes = []
  provider.on('connection-close', (event) => {
    closes.push(event ? { code: event.code, reason: event.reason } : null)
  })
  let destroyed = false
  return {
    doc,
    provider,
    closes,
    text: doc.getText('text'),
    map: doc.getMap('map'),
    array: doc.getArray('array'),
    destroy () {
      if (destroyed) return
      destroyed = true
      provider.destroy()
      doc.destroy()
    }
  }
}

/** Resolves once the provider has synced with the relay. */
export function waitSynced (client, what = 'provider to sync') {
  return waitFor(() => client.provider.synced, { what })
}

/**
 * Tracks things to clean up at the end of a test, also when it fails:
 * `const c = cleanup(t)`, then `c.add(x)` for anything with destroy()/stop()
 * or a function.
 */
export function cleanup (t) {
  const items = []
  t.after(async () => {
    for (const item of items.reverse()) {
      try {
        if (typeof item === 'function') await item()
        else if (item.destroy) await item.destroy()
        else if (item.stop) await item.stop()
        else if (item.terminate) item.terminate()
      } catch (e) {
        console.error('cleanup failed:', e)
      }
    }
  })
  return { add (x) { items.push(x); return x } }
}

// ---------------------------------------------------------------------------
// Raw `ws` clients.

/**
 * Opens a raw WebSocket. Resolves to { ws } once open, or { status, body }
 * when the server answered the upgrade with an HTTP response (401, 403...).
 * Rejects on a network error. Every received frame is parsed into
 * `ws.messages` ({ type, sub?, payload, raw }), and a frame that is not
 * exactly one message is recorded in `ws.violations`.
 */
export function rawConnect (url, { headers } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers })
    ws.messages = []
    ws.violations = []
    ws.closeInfo = null
    ws.closed = new Promise((resolveClose) => {
      ws.on('close', (code, reason) => {
        ws.closeInfo = { code, reason: reason.toString() }
        resolveClose(ws.closeInfo)
      })
    })
    ws.on('message', (data, isBinary) => {
      if (!isBinary) {
        ws.violations.push('text frame from the relay')
        return
      }
      try {
        ws.messages.push(parseFrame(new Uint8Array(data)))
      } catch (e) {
        ws.violations.push(e.message)
      }
    })
    ws.on('unexpected-response', (req, res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c) => { body += c })
      res.on('end', () => {
        req.destroy()
        resolve({ status: res.statusCode, body })
      })
    })
    ws.on('open', () => resolve({ ws }))
    ws.on('error', (e) => {
      if (ws.readyState === WebSocket.CONNECTING) reject(e)
    })
  })
}

/**
 * Parses one server frame, which must hold exactly one y-websocket message
 * (the y-websocket 3.x client reads only the first message of a frame).
 */
export function parseFrame (buf) {
  const d = decoding.createDecoder(buf)
  const type = decoding.readVarUint(d)
  let msg
  if (type === MSG_SYNC) {
    const sub = decoding.readVarUint(d)
    msg = { type, sub, payload: decoding.readVarUint8Array(d) }
  } else if (type === MSG_AWARENESS) {
    msg = { type, payload: decoding.readVarUint8Array(d) }
  } else if (type === MSG_AUTH) {
    const sub = decoding.readVarUint(d)
    msg = { type, sub, payload: decoding.readVarString(d) }
  } else if (type === MSG_QUERY_AWARENESS) {
    msg = { type }
  } else {
    throw new Error(`frame of unknown message type ${type}`)
  }
  if (decoding.hasContent(d)) {
    throw new Error(`frame holds more than one message (type ${type}, ${buf.length - d.pos} bytes left over)`)
  }
  msg.raw = buf
  return msg
}

/** Decodes an awareness update into [{ clientID, clock, state }]. */
export function decodeAwareness (update) {
  const d = decoding.createDecoder(update)
  const n = decoding.readVarUint(d)
  const out = []
  for (let i = 0; i < n; i++) {
    const clientID = decoding.readVarUint(d)
    const clock = decoding.readVarUint(d)
    const state = JSON.parse(decoding.readVarString(d))
    out.push({ clientID, clock, state })
  }
  return out
}

/** Encodes an awareness message (type 1) for one client. */
export function encodeAwarenessMessage (clientID, clock, state) {
  const inner = encoding.createEncoder()
  encoding.writeVarUint(inner, 1)
  encoding.writeVarUint(inner, clientID)
  encoding.writeVarUint(inner, clock)
  encoding.writeVarString(inner, JSON.stringify(state))
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, MSG_AWARENESS)
  encoding.writeVarUint8Array(e, encoding.toUint8Array(inner))
  return encoding.toUint8Array(e)
}

/** Encodes a sync message (type 0) of the given sub-type around `payload`. */
export function encodeSyncMessage (sub, payload) {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, MSG_SYNC)
  encoding.writeVarUint(e, sub)
  encoding.writeVarUint8Array(e, payload)
  return encoding.toUint8Array(e)
}

// ---------------------------------------------------------------------------
// Metrics.

/** Sum of every sample of `name` whose labels include all of `labels`. */
export async function metricValue (httpUrl, name, labels = {}) {
  const res = await fetch(`${httpUrl}/metrics`)
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`)
  const text = await res.text()
  let sum = 0
  let found = false
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line)
    if (!m || m[1] !== name) continue
    const have = {}
    for (const lm of (m[3] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) have[lm[1]] = lm[2]
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) {
      sum += Number(m[4])
      found = true
    }
  }
  return found ? sum : 0
}
