// One load-generator process: hosts a share of the benchmark's clients and
// is driven by run.mjs over the IPC channel.
//
// Every client is a Y.Doc with a raw WebSocket that speaks the y-websocket
// protocol (or Hocuspocus's framing of it): it does the sync handshake, then
// inserts a 16-character string into the shared Y.Text R times a second and
// sends the transaction's update. Each inserted string starts with its send
// time (CLOCK_MONOTONIC, shared by every process), so any receiver can tell
// the latency of every insert it finds in what the server sends, however
// the server batched or merged them. Echoes of a client's own inserts and
// duplicates are not counted.

import * as Y from 'yjs'
import WebSocket from 'ws'
import {
  framing, nowUs, insertString, Tally, Histogram, INSERT_LEN, CLIENT_BASE,
  SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE
} from './protocol.mjs'

/** Yjs client id of the benchmark client with global index `i`. */
export const clientIdOf = (i) => CLIENT_BASE + i

let clients = [] // this process's clients of the current run
let sharedHist = new Histogram() // latencies seen by every client of this process
const noWindow = { t0: 0, interval: 1, clients: 1, from: Infinity, to: Infinity }

function send (msg) {
  process.send(msg)
}

class Client {
  constructor ({ index, url, room, hocuspocus, verify, mirrorOnly }) {
    this.index = index
    this.clientID = clientIdOf(index)
    this.frame = framing(hocuspocus ? room : undefined)
    this.url = hocuspocus ? url : `${url}/${room}`
    this.synced = false
    this.closed = false
    this.closeInfo = null
    this.sent = 0
    this.sentInWindow = 0
    this.errors = 0
    this.tally = new Tally(this.clientID, noWindow, sharedHist)
    this.mirror = verify ? new Y.Doc() : null
    this.idle = mirrorOnly // memory test: handshake only, no document work
    this.doc = new Y.Doc()
    this.doc.clientID = this.clientID
    this.text = this.doc.getText('text')
    this.pending = null
    this.doc.on('update', (u) => { this.pending = u })
  }

  connect () {
    return new Promise((resolve) => {
      let done = false
      const finish = (ok) => { if (!done) { done = true; resolve(ok) } }
      const ws = new WebSocket(this.url, { perMessageDeflate: false, maxPayload: 256 << 20 })
      ws.binaryType = 'nodebuffer'
      this.ws = ws
      this.onSynced = () => finish(true)
      ws.on('open', () => {
        if (this.frame.hocuspocus) ws.send(this.frame.auth())
        ws.send(this.frame.sync(SYNC_STEP1, Y.encodeStateVector(this.doc)))
      })
      ws.on('message', (data) => this.receive(data))
      ws.on('error', () => { this.errors++; finish(false) })
      ws.on('close', (code, reason) => {
        this.closed = true
        this.closeInfo = { code, reason: reason.toString() }
        finish(false)
      })
    })
  }

  receive (data) {
    const at = nowUs()
    let m
    try {
      m = this.frame.read(data)
    } catch {
      this.errors++
      return
    }
    if (m === null) return
    if (m.sub === SYNC_STEP1) {
      // The server's step 1: answer with what this client has.
      this.ws.send(this.frame.sync(SYNC_STEP2, Y.encodeStateAsUpdate(this.doc, m.payload)))
      return
    }
    if (m.sub !== SYNC_STEP2 && m.sub !== SYNC_UPDATE) return
    if (!this.idle) {
      try {
        this.tally.update(m.payload, at)
      } catch {
        // Content this reader does not know: let Yjs decode it.
        this.errors++
      }
      if (this.mirror) Y.applyUpdate(this.mirror, m.payload)
    }
    if (m.sub === SYNC_STEP2 && !this.synced) {
      this.synced = true
      this.onSynced()
    }
  }

  /** Inserts one string stamped `us` and sends the update. */
  edit (inWindow) {
    const us = nowUs()
    this.text.insert(this.text.length, insertString(us))
    const u = this.pending
    this.pending = null
    if (this.ws.readyState !== WebSocket.OPEN) { this.errors++; return }
    this.ws.send(this.frame.sync(SYNC_UPDATE, u))
    this.sent++
    if (inWindow) this.sentInWindow++
  }

  /** Checks the fast reader against Yjs: what the mirror integrated per client. */
  verify () {
    if (!this.mirror) return null
    const sv = Y.decodeStateVector(Y.encodeStateVector(this.mirror))
    let checked = 0
    let mismatched = 0
    for (const [client, clock] of sv) {
      if (client === this.clientID) continue
      checked++
      const counted = this.tally.expected(client) * INSERT_LEN
      if (counted !== clock) mismatched++
    }
    return { checked, mismatched, pendingStructs: this.mirror.store.pendingStructs !== null }
  }
}

async function connectAll (cmd) {
  const { url, hocuspocus, conns, concurrency = 64, verifyFirst = false, idle = false } = cmd
  clients = conns.map(({ index, room }, k) => new Client({
    index, url, room, hocuspocus, verify: verifyFirst && k === 0, mirrorOnly: idle
  }))
  let failed = 0
  let next = 0
  const lane = async () => {
    while (next < clients.length) {
      const c = clients[next++]
      if (!(await c.connect())) failed++
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, clients.length) }, lane))
  const first = clients.find((c) => c.closeInfo)
  send({ ev: 'connected', n: clients.length, failed, firstClose: first ? first.closeInfo : null })
}

function run (cmd) {
  sharedHist = new Histogram()
  for (const c of clients) c.tally.hist = sharedHist
  const { t0, rate, totalClients, warmupS, windowS, graceS, settleS } = cmd
  const interval = 1e6 / rate
  const from = t0 + warmupS * 1e6
  const to = from + windowS * 1e6
  const endSend = to + graceS * 1e6
  // Client i sends its n-th update at t0 + (i / C + n) / R: spread evenly,
  // and known to every receiver, which counts an update as one of the
  // window's if it was due in the window.
  const window = { t0, interval, clients: totalClients, from, to }
  for (const c of clients) c.tally.window = window
  const due = clients.map((c) => t0 + (c.index / totalClients) * interval)
  const lag = new Histogram()
  let asked = 0
  let cpuStart = null
  let cpuWindow = null
  let loopLagMax = 0
  let lastTick = 0

  const tick = () => {
    const now = nowUs()
    if (lastTick && now - lastTick > loopLagMax) loopLagMax = now - lastTick
    lastTick = now
    if (cpuStart === null && now >= from) cpuStart = { cpu: process.cpuUsage(), at: now }
    if (cpuStart !== null && cpuWindow === null && now >= to) {
      const d = process.cpuUsage(cpuStart.cpu)
      cpuWindow = (d.user + d.system) / (now - cpuStart.at)
    }
    for (let i = 0; i < clients.length; i++) {
      const c = clients[i]
      while (due[i] <= now && due[i] < endSend) {
        const inWindow = due[i] >= from && due[i] < to
        if (inWindow) { asked++; lag.add(now - due[i]) }
        c.edit(inWindow)
        due[i] += interval
      }
    }
    if (now < endSend) setTimeout(tick, 1)
    else setTimeout(report, settleS * 1000)
  }

  const report = () => {
    const hist = sharedHist
    let sent = 0; let sentInWindow = 0; let delivered = 0; let inWindow = 0
    let echoes = 0; let duplicates = 0; let errors = 0; let closed = 0
    let verify = null
    for (const c of clients) {
      sent += c.sent
      sentInWindow += c.sentInWindow
      delivered += c.tally.delivered
      inWindow += c.tally.inWindow
      echoes += c.tally.echoes
      duplicates += c.tally.duplicates
      errors += c.errors
      if (c.closed) closed++
      verify = verify || c.verify()
    }
    send({
      ev: 'result',
      clients: clients.length,
      asked,
      sent,
      sentInWindow,
      delivered,
      inWindow,
      echoes,
      duplicates,
      errors,
      closed,
      hist: hist.toSparse(),
      lagP99Ms: lag.quantileMs(0.99),
      loopLagMaxMs: loopLagMax / 1000,
      cpu: cpuWindow,
      verify
    })
  }

  setTimeout(tick, Math.max(0, (t0 - nowUs()) / 1000))
}

function closeAll () {
  let open = 0
  for (const c of clients) {
    if (c.ws && c.ws.readyState !== WebSocket.CLOSED) {
      open++
      c.ws.terminate()
    }
    c.doc.destroy()
    if (c.mirror) c.mirror.destroy()
  }
  clients = []
  send({ ev: 'closed', open })
}

function status () {
  let open = 0; let synced = 0
  for (const c of clients) {
    if (c.ws && c.ws.readyState === WebSocket.OPEN) open++
    if (c.synced) synced++
  }
  send({ ev: 'status', open, synced, n: clients.length })
}

process.on('message', (cmd) => {
  switch (cmd.cmd) {
    case 'connect': connectAll(cmd); break
    case 'run': run(cmd); break
    case 'status': status(); break
    case 'close': closeAll(); break
    case 'exit': process.exit(0); break
  }
})
process.on('disconnect', () => process.exit(0))
send({ ev: 'ready' })
