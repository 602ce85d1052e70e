// Starts and stops the three servers under test, each as its own process on
// a free loopback port, and reads their resource use from /proc.

import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const HERE = fileURLToPath(new URL('.', import.meta.url))
export const RELAY_BIN = process.env.NEUROPLEX_RELAY_BIN ||
  join(HERE, '../../target/release/neuroplex-relay')
// The relay's data directory goes on the same disk as the repository (not
// a tmpfs), so that its fsyncs are real.
const DATA_PARENT = process.env.FANOUT_DATA_DIR || join(HERE, '../../target/bench-relay')

export const SERVERS = ['neuroplex', 'hocuspocus', 'y-websocket']

/** Every server process still running, so that no exit path leaves one behind. */
const running = new Set()

export function killAll () {
  for (const child of running) {
    try { child.kill('SIGKILL') } catch {}
  }
  running.clear()
}

function freePort () {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

/** Spawns `cmd`, waits for a stdout line matching `re`, returns its match. */
async function spawnAndWait (name, cmd, args, env, re) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  running.add(child)
  let tail = ''
  const keep = (chunk) => { tail = (tail + chunk).slice(-8000) }
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', keep)
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => {
    running.delete(child)
    resolve({ code, signal })
  }))
  child.on('error', () => {})
  const lines = createInterface({ input: child.stdout })
  const match = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), 30_000)
    lines.on('line', (line) => {
      keep(line + '\n')
      const m = re.exec(line)
      if (m) { clearTimeout(timer); resolve(m) }
    })
    exited.then(() => { clearTimeout(timer); resolve(null) })
  })
  if (!match) {
    child.kill('SIGKILL')
    throw new Error(`${name} did not start\n--- its output ---\n${tail}`)
  }
  let stopping
  const stop = () => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        let t
        const r = await Promise.race([exited, new Promise((resolve) => { t = setTimeout(() => resolve(null), 10_000) })])
        clearTimeout(t)
        if (r === null) child.kill('SIGKILL')
      }
      await exited
      lines.close()
    })()
    return stopping
  }
  return { child, match, stop, output: () => tail }
}

/**
 * Starts server `name` fresh. Returns { name, url, pid, stop(), rssBytes(), cpuSeconds() }.
 * `url` is what a client appends `/<room>` to (Hocuspocus ignores the path).
 */
export async function startServer (name) {
  let proc
  let url
  let cleanup = () => {}
  if (name === 'neuroplex' || name === 'neuroplex-baseline') {
    // neuroplex-baseline: another build of the relay (FANOUT_BASELINE_BIN),
    // to compare a change before and after in one run.
    const bin = name === 'neuroplex' ? RELAY_BIN : process.env.FANOUT_BASELINE_BIN
    if (!bin) throw new Error('neuroplex-baseline needs FANOUT_BASELINE_BIN')
    const data = mkdtempSync(join(mkdirp(DATA_PARENT), 'data-'))
    cleanup = () => rmSync(data, { recursive: true, force: true })
    // The peers have no connection limits: the relay's (10,000 in all, 256
    // per address; every generator connects from 127.0.0.1) are raised
    // for the 10,000-connection memory part. A baseline build older than
    // those flags is run without them.
    const limits = name === 'neuroplex' ? ['--max-connections', '20000', '--max-connections-per-ip', '20000'] : []
    proc = await spawnAndWait(name, bin, ['serve', '--listen', '127.0.0.1:0', '--data', data, ...limits], {}, /^(\S+:\d+)$/)
    url = `ws://${proc.match[1]}/yjs`
  } else if (name === 'hocuspocus') {
    proc = await spawnAndWait(name, process.execPath, [join(HERE, 'hocuspocus-server.mjs')], {}, /^(\S+:\d+)$/)
    url = `ws://${proc.match[1]}`
  } else if (name === 'y-websocket') {
    // The reference server as shipped (bin/server.js), on a port found free.
    const port = await freePort()
    proc = await spawnAndWait(name, process.execPath, [join(HERE, 'node_modules/y-websocket/bin/server.js')],
      { HOST: '127.0.0.1', PORT: String(port) }, /running at .* on port (\d+)/)
    url = `ws://127.0.0.1:${port}`
  } else {
    throw new Error(`unknown server ${name}`)
  }
  const pid = proc.child.pid
  return {
    name,
    url,
    pid,
    async stop () { await proc.stop(); cleanup() },
    rssBytes () {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
      return Number(m[1]) * 1024
    },
    /** CPU seconds (user + system) the process has used so far. */
    cpuSeconds () {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      return (Number(fields[11]) + Number(fields[12])) / 100 // utime, stime in ticks (USER_HZ = 100)
    },
    output: proc.output
  }
}

function mkdirp (dir) {
  mkdirSync(dir, { recursive: true })
  return dir
}
