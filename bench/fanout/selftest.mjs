// Checks the generator's pieces against Yjs itself: the fast update reader
// finds exactly the inserts Yjs decodes, in single and merged updates.
import * as Y from 'yjs'
import assert from 'node:assert/strict'
import { forEachStringItem, insertString, nowUs, Tally, Histogram, INSERT_LEN } from './protocol.mjs'

export function selftest () {
  const docs = []
  const updates = []
  for (let i = 0; i < 5; i++) {
    const d = new Y.Doc()
    d.clientID = 1000 + i
    d.on('update', (u) => updates.push({ client: d.clientID, u }))
    docs.push(d)
  }
  const t0 = nowUs()
  for (let n = 0; n < 4; n++) {
    for (const d of docs) { const t = d.getText('text'); t.insert(t.length, insertString(t0 + n)) }
  }
  // A receiver that applied some updates first, as a real client would.
  const merged = Y.mergeUpdates(updates.map((x) => x.u))
  const seen = []
  forEachStringItem(merged, (client, clock, len) => seen.push([client, clock, len]))
  const expected = []
  for (const s of Y.decodeUpdate(merged).structs) {
    if (s.content && s.content.str !== undefined) expected.push([s.id.client, s.id.clock, s.length])
  }
  assert.deepEqual(seen, expected)
  const hist = new Histogram()
  const tally = new Tally(1000, { t0: 0, interval: 1, clients: 5, from: 0, to: Infinity }, hist)
  for (const { u } of updates.slice(0, 7)) tally.update(u, nowUs())
  tally.update(merged, nowUs())
  // 16 inserts from the 4 other clients; client 1000's 4 are echoes (twice:
  // once alone, once merged), and what came alone first is a duplicate.
  assert.equal(tally.delivered, 16)
  assert.equal(tally.echoes, 2 + 4)
  assert.equal(tally.duplicates, 5)
  assert.equal(hist.total(), 16)
  const mirror = new Y.Doc()
  Y.applyUpdate(mirror, merged)
  assert.equal(mirror.getText('text').length, 20 * INSERT_LEN)
}

if (import.meta.url === `file://${process.argv[1]}`) {
  selftest()
  console.log('selftest ok')
}
