// Interop suite: unmodified yjs + y-websocket 3.x clients (and raw `ws`
// sockets for what a well-behaved client never sends) against a real
// `neuroplex-relay` process, through WS /yjs/{room}.
//
// Run: cd tests/yjs && npm test   (NEUROPLEX_RELAY_BIN overrides the binary;
// NEUROPLEX_TEST_VERBOSE=1 echoes the relays' logs).

import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes, createHmac } from 'node:crypto'
import { readFile } from 'node:fs/promises'

import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'

import {
  startRelay, mintToken, makeSecretFile, makeTempDir, removeDir, uniqueRoom, freePort,
  makeClient, waitSynced, waitFor, cleanup, rawConnect, decodeAwareness,
  encodeAwarenessMessage, encodeSyncMessage, metricValue,
  MSG_SYNC, MSG_AWARENESS, SYNC_STEP1, SYNC_UPDATE
} from './harness.mjs'

const MiB = 1024 * 1024

/** JSON with sorted object keys, so two docs compare by content only. */
function canonical (value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`
  if (value && typeof value === 'object') {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(',')}}`
  }
  return JSON.stringify(value)
}

function snapshot (client) {
  return canonical({
    text: client.text.toString(),
    map: client.map.toJSON(),
    array: client.array.toJSON()
  })
}

function sameState (a, b) {
  return Buffer.from(Y.encodeStateVector(a.doc)).equals(Buffer.from(Y.encodeStateVector(b.doc))) &&
    snapshot(a) === snapshot(b)
}

/** Seeded PRNG (mulberry32), so a failing random run can be replayed. */
function prng (seed) {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function randomEdit (client, rnd, tag) {
  const pick = Math.floor(rnd() * 6)
  const { text, map, array } = client
  client.doc.transact(() => {
    switch (pick) {
      case 0:
      case 1: {
        const pos = Math.floor(rnd() * (text.length + 1))
        text.insert(pos, `${tag}${Math.floor(rnd() * 1000)} `)
        break
      }
      case 2: {
        if (text.length > 0) {
          const pos = Math.floor(rnd() * text.length)
          text.delete(pos, Math.min(1 + Math.floor(rnd() * 5), text.length - pos))
        }
        break
      }
      case 3:
        map.set(`k${Math.floor(rnd() * 8)}`, `${tag}${Math.floor(rnd() * 1000)}`)
        break
      case 4: {
        const pos = Math.floor(rnd() * (array.length + 1))
        array.insert(pos, [`${tag}${Math.floor(rnd() * 1000)}`])
        break
      }
      case 5:
        if (array.length > 0) array.delete(Math.floor(rnd() * array.length), 1)
        else map.delete(`k${Math.floor(rnd() * 8)}`)
        break
    }
  })
}

/** Two synced clients in `room` of `relay`, cleaned up after the test. */
async function twoClients (relay, room, c, opts = {}) {
  const a = c.add(makeClient(relay.url, room, opts))
  const b = c.add(makeClient(relay.url, room, opts))
  await waitSynced(a, 'client A to sync')
  await waitSynced(b, 'client B to sync')
  return [a, b]
}

/** A new edit on each side reaches the other. */
async function assertStillSyncing (a, b, label) {
  const ta = `[${label}:A]`
  const tb = `[${label}:B]`
  a.text.insert(a.text.length, ta)
  b.text.insert(b.text.length, tb)
  await waitFor(() => a.text.toString().includes(tb) && b.text.toString().includes(ta) && sameState(a, b),
    { what: `both clients to see each other's edit after ${label}` })
}

// ---------------------------------------------------------------------------

describe('y-websocket clients through one relay', () => {
  let relay
  before(async () => { relay = await startRelay() })
  after(async () => { if (relay) await relay.stop() })

  it('1. two providers converge on Y.Text, Y.Map and Y.Array with concurrent edits', async (t) => {
    const c = cleanup(t)
    const room = uniqueRoom('converge')
    const [a, b] = await twoClients(relay, room, c)

    // Concurrent: both sides edit in the same tick, before anything travels.
    a.text.insert(0, 'Hello from A. ')
    b.text.insert(0, 'Hello from B. ')
    a.map.set('a', 1)
    b.map.set('b', { nested: [1, 2, 3] })
    a.map.set('shared', 'A')
    b.map.set('shared', 'B')
    a.map.set('list', Y.Array.from(['x', 'y']))
    a.array.push(['a1', 'a2'])
    b.array.push(['b1'])
    b.array.insert(0, [42])

    await waitFor(() => sameState(a, b), { what: 'A and B to converge after the first concurrent edits' })
    for (const s of ['Hello from A. ', 'Hello from B. ']) assert.ok(a.text.toString().includes(s))
    assert.equal(a.text.length, 28)
    const m = a.map.toJSON()
    assert.equal(m.a, 1)
    assert.deepEqual(m.b, { nested: [1, 2, 3] })
    assert.deepEqual(m.list, ['x', 'y'])
    assert.ok(m.shared === 'A' || m.shared === 'B')
    assert.deepEqual([...a.array.toJSON()].sort(), [42, 'a1', 'a2', 'b1'].sort())

    // Sequential edits each way, including deletes and a nested type.
    a.text.delete(0, 5)
    await waitFor(() => b.text.length === 23, { what: 'B to see A\'s delete' })
    b.map.get('list').push(['z'])
    await waitFor(() => canonical(a.map.get('list').toJSON()) === '["x","y","z"]', { what: 'A to see B\'s push into the nested array' })
    b.map.delete('a')
    await waitFor(() => !a.map.has('a'), { what: 'A to see B\'s map delete' })

    // Many rounds of random concurrent edits on both sides, some rounds
    // without yielding so that updates pile up and cross on the wire.
    const seed = Number(process.env.NEUROPLEX_TEST_SEED || 0x5eed)
    const rnd = prng(seed)
    for (let round = 0; round < 40; round++) {
      const n = 1 + Math.floor(rnd() * 4)
      for (let i = 0; i < n; i++) {
        randomEdit(a, rnd, 'a')
        randomEdit(b, rnd, 'b')
      }
      if (round % 3 === 0) await new Promise((resolve) => setImmediate(resolve))
      if (round % 10 === 9) await waitFor(() => sameState(a, b), { what: `convergence after random round ${round} (seed ${seed})` })
    }
    await waitFor(() => sameState(a, b), { what: `convergence after the random rounds (seed ${seed})` })

    // A third client joining later gets the same document from the relay.
    const late = c.add(makeClient(relay.url, room))
    await waitSynced(late, 'the late client to sync')
    await waitFor(() => sameState(late, a), { what: 'the late client to hold the same document' })
  })

  it('2. awareness: each sees the other; states are removed on disconnect', async (t) => {
    const c = cleanup(t)
    const room = uniqueRoom('awareness')
    const [a, b] = await twoClients(relay, room, c)
    const idA = a.doc.clientID
    const idB = b.doc.clientID
    a.provider.awareness.setLocalStateField('user', { name: 'alice' })
    b.provider.awareness.setLocalStateField('user', { name: 'bob' })
    await waitFor(() => b.provider.awareness.getStates().get(idA)?.user?.name === 'alice', { what: 'B to see A\'s awareness' })
    await waitFor(() => a.provider.awareness.getStates().get(idB)?.user?.name === 'bob', { what: 'A to see B\'s awareness' })

    // A later state change travels too.
    a.provider.awareness.setLocalStateField('cursor', { index: 7 })
    await waitFor(() => b.provider.awareness.getStates().get(idA)?.cursor?.index === 7, { what: 'B to see A\'s cursor' })

    // A client joining now gets the room's current awareness on connect.
    const late = c.add(makeClient(relay.url, room))
    await waitFor(() => late.provider.awareness.getStates().get(idA)?.user?.name === 'alice' &&
      late.provider.awareness.getStates().get(idB)?.user?.name === 'bob',
    { what: 'the late client to receive the current awareness of A and B' })

    // Awareness goes to every connection, the sender included (clients drop
    // a connection that has been silent for 30 s), one message per frame.
    const { ws: raw } = await rawConnect(`${relay.url}/${room}`)
    c.add(() => raw.terminate())
    const rawId = 0x7fff0001
    raw.send(encodeAwarenessMessage(rawId, 1, { user: { name: 'raw' } }))
    await waitFor(() => raw.messages.some((m) => m.type === MSG_AWARENESS &&
      decodeAwareness(m.payload).some((s) => s.clientID === rawId && s.state?.user?.name === 'raw')),
    { what: 'the raw sender to receive its own awareness update back' })
    await waitFor(() => b.provider.awareness.getStates().get(rawId)?.user?.name === 'raw', { what: 'B to see the raw client\'s awareness' })
    assert.ok(raw.messages.some((m) => m.type === MSG_SYNC && m.sub === SYNC_STEP1), 'the relay sends sync step 1 on connect')
    assert.deepEqual(raw.violations, [], 'every frame from the relay holds exactly one message')

    // The raw client vanishes without a close frame and without clearing its
    // state: the relay itself must remove its awareness and tell the others.
    raw.terminate()
    await waitFor(() => !b.provider.awareness.getStates().has(rawId) && !a.provider.awareness.getStates().has(rawId),
      { what: 'A and B to see the vanished raw client\'s awareness removed' })

    // A provider that disconnects (destroy) disappears from the others' view.
    a.destroy()
    await waitFor(() => !b.provider.awareness.getStates().has(idA), { what: 'B to see A\'s awareness removed after A.destroy()' })
    await waitFor(() => !late.provider.awareness.getStates().has(idA), { what: 'the late client to see A\'s awareness removed' })
    assert.equal(b.provider.awareness.getStates().get(idB)?.user?.name, 'bob', 'B keeps its own state')
    assert.equal(late.provider.awareness.getStates().get(idB)?.user?.name, 'bob', 'the late client still sees B')
  })

  it('3. a ~4 MiB update inserted in one transaction arrives whole', async (t) => {
    const c = cleanup(t)
    const room = uniqueRoom('large')
    const [a, b] = await twoClients(relay, room, c)
    const big = randomBytes(3 * MiB).toString('base64') // 4 MiB of text
    assert.equal(big.length, 4 * MiB)
    a.doc.transact(() => {
      a.text.insert(0, big)
      a.map.set('after', 'the big insert')
    })
    await waitFor(() => b.text.length === big.length && b.map.get('after') === 'the big insert',
      { what: 'B to receive the 4 MiB insert', timeout: 60_000 })
    assert.ok(b.text.toString() === big, 'the text arrived byte for byte')
    // And the room still works both ways afterwards.
    await assertStillSyncing(a, b, 'the large update')
    const late = c.add(makeClient(relay.url, room))
    await waitFor(() => sameState(late, a),
      { what: 'a late client to load the large document', timeout: 60_000 })
  })

  it('4. offline edits are uploaded when the provider connects', async (t) => {
    const c = cleanup(t)
    const room = uniqueRoom('offline')
    const b = c.add(makeClient(relay.url, room))
    await waitSynced(b, 'B to sync')
    b.text.insert(0, 'B online. ')
    b.array.push(['from B'])

    // A edits a document before its provider exists.
    const doc = new Y.Doc()
    doc.getText('text').insert(0, 'A offline. ')
    doc.getMap('map').set('offline', true)
    doc.getArray('array').push(['from A'])
    const a = c.add(makeClient(relay.url, room, { doc }))
    await waitFor(() => b.text.toString().includes('A offline. ') && b.map.get('offline') === true &&
      b.array.toJSON().includes('from A'), { what: 'B to receive A\'s offline edits' })
    await waitFor(() => a.text.toString().includes('B online. ') && sameState(a, b), { what: 'A to receive B\'s edits and converge' })

    // Offline again: disconnect, edit, reconnect.
    a.provider.disconnect()
    await waitFor(() => !a.provider.wsconnected && a.provider.ws === null, { what: 'A to disconnect' })
    a.text.insert(a.text.length, 'A while disconnected.')
    a.map.set('second', 2)
    b.text.insert(0, 'B meanwhile. ')
    a.provider.connect()
    await waitFor(() => b.text.toString().includes('A while disconnected.') && b.map.get('second') === 2 &&
      a.text.toString().includes('B meanwhile. ') && sameState(a, b),
    { what: 'edits made on both sides during the disconnection to converge' })

    const late = c.add(makeClient(relay.url, room))
    await waitFor(() => sameState(late, a), { what: 'a late client to get every edit from the relay' })
  })

  it('8. a client frame holding several messages is read whole', async (t) => {
    const c = cleanup(t)
    const room = uniqueRoom('packed')
    const [a, b] = await twoClients(relay, room, c)
    // Build two updates and an awareness message, packed into one frame.
    const src = new Y.Doc()
    const updates = []
    src.on('update', (u) => updates.push(u))
    src.getText('text').insert(0, 'first ')
    src.getText('text').insert(6, 'second')
    assert.equal(updates.length, 2)
    const rawId = 0x7fff0002
    const frame = Buffer.concat([
      encodeSyncMessage(SYNC_UPDATE, updates[0]),
      encodeAwarenessMessage(rawId, 1, { user: { name: 'packed' } }),
      encodeSyncMessage(SYNC_UPDATE, updates[1])
    ])
    const { ws: raw } = await rawConnect(`${relay.url}/${room}`)
    c.add(() => raw.terminate())
    raw.send(frame)
    await waitFor(() => a.text.toString() === 'first second' && b.text.toString() === 'first second',
      { what: 'both updates of the packed frame to reach A and B' })
    await waitFor(() => a.provider.awareness.getStates().get(rawId)?.user?.name === 'packed',
      { what: 'the awareness message of the packed frame to reach A' })
    assert.equal(raw.closeInfo, null, 'the packed frame is not refused')
    assert.deepEqual(raw.violations, [], 'every frame from the relay holds exactly one message')
  })
})

// ---------------------------------------------------------------------------

describe('durability across a graceful restart', () => {
  let dataDir
  const relays = []
  before(async () => { dataDir = await makeTempDir() })
  after(async () => {
    for (const r of relays) await r.stop()
    await removeDir(dataDir)
  })

  it('5. content survives SIGTERM (exit 0) and a restart on the same data dir', async (t) => {
    const c = cleanup(t)
    const room = uniqueRoom('restart')
    const r1 = await startRelay({ dataDir })
    relays.push(r1)
    const [a, b] = await twoClients(r1, room, c)
    a.text.insert(0, 'survives ')
    b.text.insert(0, 'the restart: ')
    a.map.set('k', { deep: ['v'] })
    b.array.push([1, 2, 3])
    // Everything seen by the other client is durable (the relay persists
    // before forwarding).
    await waitFor(() => sameState(a, b) && a.text.length === 22 && a.array.length === 3 && b.map.has('k'),
      { what: 'A and B to converge before the restart' })
    const expected = snapshot(a)

    const exit = await r1.stop()
    assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null },
      `the relay exits 0 on SIGTERM\n--- relay stderr ---\n${r1.stderr()}`)
    await waitFor(() => a.closes.length > 0 && b.closes.length > 0, { what: 'both clients to see their connection closed' })
    const shutdownCloses = [a.closes[0], b.closes[0]]
    a.destroy()
    b.destroy()

    const r2 = await startRelay({ dataDir })
    relays.push(r2)
    const fresh = c.add(makeClient(r2.url, room))
    await waitSynced(fresh, 'a new client to sync with the restarted relay')
    await waitFor(() => snapshot(fresh) === expected, { what: 'the restarted relay to serve the content' })
    assert.equal(fresh.text.length, 22)
    for (const part of ['survives ', 'the restart: ']) assert.ok(fresh.text.toString().includes(part), `the text keeps ${JSON.stringify(part)}`)
    assert.deepEqual(fresh.map.get('k'), { deep: ['v'] })
    assert.deepEqual(fresh.array.toJSON(), [1, 2, 3])

    // Checked last, so that a wrong close code does not hide the durability
    // result above.
    for (const close of shutdownCloses) {
      assert.equal(close?.code, 1001, `on shutdown the relay closes connections with 1001 (going away); got ${JSON.stringify(close)}`)
    }
  })
})

// ---------------------------------------------------------------------------

/** A token signed with `secret` over an arbitrary payload (format v1). */
function signToken (secret, payload) {
  const b64 = (buf) => Buffer.from(buf).toString('base64url')
  const body = `v1.${b64(JSON.stringify(payload))}`
  return `${body}.${b64(createHmac('sha256', secret).update(body).digest())}`
}

describe('capability tokens', () => {
  let dir, secretFile, secret, relay, metricsUrl
  before(async () => {
    dir = await makeTempDir()
    secretFile = await makeSecretFile(dir)
    secret = (await readFile(secretFile, 'utf8')).trimEnd()
    // With a secret, /metrics is served on its own (loopback) listener only.
    const metricsPort = await freePort()
    metricsUrl = `http://127.0.0.1:${metricsPort}`
    relay = await startRelay({ args: ['--secret-file', secretFile, '--metrics-listen', `127.0.0.1:${metricsPort}`] })
  })
  after(async () => {
    if (relay) await relay.stop()
    if (dir) await removeDir(dir)
  })

  it('6a. missing, forged and expired tokens get 401; another room\'s token 403', async () => {
    const room = uniqueRoom('tokens')
    const at = (token) => `${relay.url}/${room}${token === undefined ? '' : `?token=${encodeURIComponent(token)}`}`
    const expectStatus = async (url, status, what, headers) => {
      const res = await rawConnect(url, { headers })
      if (res.ws) {
        res.ws.terminate()
        assert.fail(`${what}: the upgrade was accepted, expected HTTP ${status}`)
      }
      assert.equal(res.status, status, `${what}: HTTP status`)
    }

    await expectStatus(at(undefined), 401, 'no token')
    await expectStatus(at(''), 401, 'empty token')
    await expectStatus(at('garbage'), 401, 'garbage token')

    const write = await mintToken({ secretFile, room, rights: 'write' })
    // Forged: the payload changed, the signature kept; or signed with another key.
    const [v, , mac] = write.split('.')
    const forgedPayload = Buffer.from(JSON.stringify({ room, rights: 'write', exp: 4102444800 })).toString('base64url')
    await expectStatus(at(`${v}.${forgedPayload}.${mac}`), 401, 'payload altered')
    await expectStatus(at(signToken('not the secret', { room, rights: 'write', exp: 4102444800 })), 401, 'signed with another secret')
    // Alter a character in the middle of the MAC (its last character also
    // carries padding bits a lenient decoder may ignore).
    const i = write.length - 10
    await expectStatus(at(write.slice(0, i) + (write[i] === 'A' ? 'B' : 'A') + write.slice(i + 1)), 401, 'signature altered')

    // Expired, genuinely signed (forged with the server's secret).
    const now = Math.floor(Date.now() / 1000)
    await expectStatus(at(signToken(secret, { room, rights: 'write', exp: now - 60 })), 401, 'expired (signed with the secret)')
    // Sanity check of that forging: the same with a future expiry is accepted.
    const ok = await rawConnect(at(signToken(secret, { room, rights: 'write', exp: now + 3600 })))
    assert.ok(ok.ws, `a token signed with the secret and a future expiry is accepted (got HTTP ${ok.status})`)
    ok.ws.terminate()

    // Expired, minted by the CLI with --ttl 1s: poll the clock until its
    // expiry has passed.
    const short = await mintToken({ secretFile, room, rights: 'write', ttl: '1s' })
    const exp = JSON.parse(Buffer.from(short.split('.')[1], 'base64url').toString()).exp
    assert.ok(exp <= Math.floor(Date.now() / 1000) + 2, `--ttl 1s gives an expiry about a second away (exp ${exp})`)
    await waitFor(() => Date.now() / 1000 >= exp + 1.05, { what: 'the 1s token to expire', timeout: 10_000 })
    await expectStatus(at(short), 401, 'expired (--ttl 1s)')

    // Another room's genuine token: 403, for write and read tokens.
    const other = await mintToken({ secretFile, room: `${room}-other`, rights: 'write' })
    await expectStatus(at(other), 403, 'write token of another room')
    const otherRead = await mintToken({ secretFile, room: `${room}-other`, rights: 'read' })
    await expectStatus(at(otherRead), 403, 'read token of another room')
    // A room whose name is a prefix of the token's room is another room.
    await expectStatus(`${relay.url}/${room.slice(0, -1)}?token=${encodeURIComponent(write)}`, 403, 'token for a longer room name')

    // The same rules for `Authorization: Bearer`.
    await expectStatus(at(undefined), 401, 'forged bearer', { Authorization: 'Bearer garbage' })
    await expectStatus(at(undefined), 403, 'bearer of another room', { Authorization: `Bearer ${other}` })
    const bearer = await rawConnect(at(undefined), { headers: { Authorization: `Bearer ${write}` } })
    assert.ok(bearer.ws, `a valid bearer token is accepted (got HTTP ${bearer.status})`)
    bearer.ws.terminate()
  })

  it('6b. write tokens sync; a read-only provider gets the document but its edits go nowhere', async (t) => {
    const c = cleanup(t)
    const room = uniqueRoom('rights')
    const writeToken = await mintToken({ secretFile, room, rights: 'write' })
    const readToken = await mintToken({ secretFile, room, rights: 'read' })
    const [w1, w2] = await twoClients(relay, room, c, { params: { token: writeToken } })
    w1.text.insert(0, 'written by w1. ')
    w2.map.set('by', 'w2')
    await waitFor(() => sameState(w1, w2) && w2.text.toString() === 'written by w1. ' && w1.map.get('by') === 'w2',
      { what: 'the two write clients to sync' })

    const ro = c.add(makeClient(relay.url, room, { params: { token: readToken } }))
    await waitSynced(ro, 'the read-only client to sync')
    await waitFor(() => sameState(ro, w1), { what: 'the read-only client to receive the document' })
    w1.text.insert(w1.text.length, 'live. ')
    await waitFor(() => ro.text.toString().endsWith('live. '), { what: 'the read-only client to receive a live update' })

    // Make sure the relay has processed everything the read-only client sent
    // so far (its sync step 2 included): messages of one connection are
    // handled in order, so once its awareness reached w1, they were.
    ro.provider.awareness.setLocalStateField('user', { name: 'reader' })
    await waitFor(() => w1.provider.awareness.getStates().get(ro.doc.clientID)?.user?.name === 'reader',
      { what: 'the read-only client\'s awareness to reach w1' })

    const before = await metricValue(metricsUrl, 'neuroplex_rejected_total', { reason: 'read_only' })
    ro.text.insert(0, 'READ-ONLY EDIT ')
    ro.map.set('ro', true)
    await waitFor(async () => await metricValue(metricsUrl, 'neuroplex_rejected_total', { reason: 'read_only' }) > before,
      { what: 'neuroplex_rejected_total{reason="read_only"} to increase after the read-only edit' })

    // Flush: a later write travels w2 -> relay -> w1; anything the relay
    // forwarded before it has arrived by then.
    w2.array.push(['after the read-only edit'])
    await waitFor(() => w1.array.toJSON().includes('after the read-only edit') &&
      ro.array.toJSON().includes('after the read-only edit'), { what: 'the flush write to reach w1 and the reader' })
    for (const w of [w1, w2]) {
      assert.ok(!w.text.toString().includes('READ-ONLY'), 'the read-only text edit reached a write client')
      assert.ok(!w.map.has('ro'), 'the read-only map edit reached a write client')
    }
    assert.equal(ro.closes.length, 0, 'the read-only connection is not closed for trying')

    // Nor was it stored: a fresh client does not get it.
    const fresh = c.add(makeClient(relay.url, room, { params: { token: readToken } }))
    await waitSynced(fresh, 'a fresh client to sync')
    await waitFor(() => sameState(fresh, w1), { what: 'a fresh client to get the room\'s document' })
    assert.ok(!fresh.text.toString().includes('READ-ONLY'), 'the read-only edit was stored')
  })
})

// ---------------------------------------------------------------------------

describe('bad input closes only its own connection', () => {
  const LIMIT = MiB
  let relay
  before(async () => { relay = await startRelay({ args: ['--max-message-bytes', String(LIMIT)] }) })
  after(async () => { if (relay) await relay.stop() })

  const garbageUpdate = () => {
    const e = encoding.createEncoder()
    encoding.writeVarUint(e, MSG_SYNC)
    encoding.writeVarUint(e, SYNC_UPDATE)
    encoding.writeVarUint8Array(e, Buffer.from('this is not a Yjs update at all'))
    return encoding.toUint8Array(e)
  }
  /** A well-formed sync update message carrying `n` bytes of text. */
  const bigUpdate = (n) => {
    const doc = new Y.Doc()
    doc.getText('text').insert(0, 'x'.repeat(n))
    return encodeSyncMessage(SYNC_UPDATE, Y.encodeStateAsUpdate(doc))
  }

  const cases = [
    { name: 'a text frame', data: 'hello', code: 4415 },
    { name: 'garbage bytes (a truncated varint)', data: Buffer.from([0xff, 0xff, 0xff]), code: 4400 },
    { name: 'garbage bytes (an unknown sub-message)', data: Buffer.from([0x00, 0x07, 0x01, 0x00]), code: 4400 },
    { name: 'a sync message shorter than its length prefix', data: Buffer.from([0x00, 0x02, 0x20, 0x01, 0x02]), code: 4400 },
    { name: 'a sync update whose update bytes are garbage', data: garbageUpdate(), code: 4422 },
    { name: 'a 2 MiB message over --max-message-bytes 1 MiB', data: () => bigUpdate(2 * MiB), code: 4413 }
  ]

  it('7. each bad message closes the sender with its code; other clients keep syncing', async (t) => {
    const c = cleanup(t)
    const room = uniqueRoom('bad')
    const [a, b] = await twoClients(relay, room, c)
    a.text.insert(0, 'before. ')
    await waitFor(() => b.text.toString() === 'before. ', { what: 'the first edit to reach B' })

    for (const bad of cases) {
      const { ws: raw, status } = await rawConnect(`${relay.url}/${room}`)
      assert.ok(raw, `raw connection accepted (HTTP ${status})`)
      c.add(() => raw.terminate())
      // Wait until the relay has spoken to this connection (it is in the room).
      await waitFor(() => raw.messages.length > 0, { what: `the relay's first message before sending ${bad.name}` })
      raw.send(typeof bad.data === 'function' ? bad.data() : bad.data)
      const closed = await waitFor(() => raw.closeInfo, { what: `the relay to close the connection that sent ${bad.name}` })
      assert.equal(closed.code, bad.code, `close code for ${bad.name} (reason: ${JSON.stringify(closed.reason)})`)
      assert.ok(closed.reason.length > 0, `the close for ${bad.name} carries a reason`)
      assert.deepEqual(a.closes, [], `A's connection survives ${bad.name}`)
      assert.deepEqual(b.closes, [], `B's connection survives ${bad.name}`)
      await assertStillSyncing(a, b, bad.name)
    }

    // Just under the limit is fine: a ~900 KiB insert from a provider.
    const near = 'y'.repeat(900 * 1024)
    a.text.insert(0, near)
    await waitFor(() => b.text.length === a.text.length && b.text.toString().startsWith(near),
      { what: 'B to receive a ~900 KiB update under the limit' })
    assert.deepEqual(a.closes, [], 'A is not closed for a message under the limit')
    await assertStillSyncing(a, b, 'the update under the limit')
  })
})
