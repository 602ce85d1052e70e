// The y-websocket protocol as the load generator speaks it, with and without
// Hocuspocus's framing, and a fast reader of Yjs v1 updates that finds the
// benchmark's inserts in whatever the server sends (one update, or several
// merged into one).
//
// Message layout (lib0 varints):
//   y-websocket:  [type][...]                 type 0 = sync: [sub][varUint8Array]
//   Hocuspocus:   [varString doc][type][...]  type 0/4 = sync, 2 = auth, 8 = sync status
// Sync sub-messages: 0 = step 1 (state vector), 1 = step 2 (update), 2 = update.

import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'

export const MSG_SYNC = 0
export const MSG_AWARENESS = 1
export const MSG_AUTH = 2
export const MSG_SYNC_REPLY = 4 // Hocuspocus: a sync message that asks for no step 1 back
export const SYNC_STEP1 = 0
export const SYNC_STEP2 = 1
export const SYNC_UPDATE = 2

/** Every inserted string is this long: a fixed-width send time, then filler. */
export const INSERT_LEN = 16
const TIME_DIGITS = 11 // base 36, microseconds of CLOCK_MONOTONIC
const FILLER = 'abcdefghijklmnop'.slice(0, INSERT_LEN - TIME_DIGITS)

/** Microseconds of CLOCK_MONOTONIC: one clock for every process on the machine. */
export function nowUs () {
  return Number(process.hrtime.bigint() / 1000n)
}

/** The string a client inserts for one update sent at `us`. */
export function insertString (us) {
  return us.toString(36).padStart(TIME_DIGITS, '0') + FILLER
}

/** The send time written at `pos` of `bytes` by `insertString` (ASCII). */
function readTime (bytes, pos) {
  let v = 0
  for (let i = 0; i < TIME_DIGITS; i++) {
    const c = bytes[pos + i]
    v = v * 36 + (c <= 57 ? c - 48 : c - 87)
  }
  return v
}

/** A framing: y-websocket (`doc` undefined) or Hocuspocus (`doc` = the document name). */
export function framing (doc) {
  const prefix = (e) => { if (doc !== undefined) encoding.writeVarString(e, doc) }
  return {
    hocuspocus: doc !== undefined,
    sync (sub, payload) {
      const e = encoding.createEncoder()
      prefix(e)
      encoding.writeVarUint(e, MSG_SYNC)
      encoding.writeVarUint(e, sub)
      encoding.writeVarUint8Array(e, payload)
      return encoding.toUint8Array(e)
    },
    /** Hocuspocus's auth message (an empty token: no onAuthenticate hook is set). */
    auth () {
      const e = encoding.createEncoder()
      prefix(e)
      encoding.writeVarUint(e, MSG_AUTH)
      encoding.writeVarUint(e, 0) // AuthMessageType.Token
      encoding.writeVarString(e, '')
      return encoding.toUint8Array(e)
    },
    /**
     * Reads one server frame. Returns null for a message the generator does
     * not act on, or { sub, payload } for a sync message.
     */
    read (buf) {
      const d = decoding.createDecoder(buf)
      if (doc !== undefined) decoding.readVarString(d)
      const type = decoding.readVarUint(d)
      if (type !== MSG_SYNC && !(doc !== undefined && type === MSG_SYNC_REPLY)) return null
      const sub = decoding.readVarUint(d)
      const payload = decoding.readVarUint8Array(d)
      return { sub, payload }
    }
  }
}

// --- a fast reader of Yjs v1 updates --------------------------------------

class Reader {
  constructor (bytes) { this.b = bytes; this.p = 0 }
  u8 () { return this.b[this.p++] }
  uint () {
    let n = 0
    let mult = 1
    for (;;) {
      const r = this.b[this.p++]
      if (r === undefined) throw new Error('unexpected end of update')
      n += (r & 0x7f) * mult
      if (r < 0x80) return n
      mult *= 128
      if (mult > 2 ** 53) throw new Error('varint too long')
    }
  }
  skipString () { const len = this.uint(); this.p += len; return len }
}

/**
 * Calls `onInsert(client, clock, length, bytes, pos)` for every string item
 * of a Yjs v1 update (`bytes[pos..]` is the item's UTF-8 content). Throws on
 * content this benchmark never produces (the caller then falls back to Yjs's
 * own decoder) or on a malformed update. The delete set is not read.
 */
export function forEachStringItem (bytes, onInsert) {
  const r = new Reader(bytes)
  const clients = r.uint()
  for (let i = 0; i < clients; i++) {
    const structs = r.uint()
    const client = r.uint()
    let clock = r.uint()
    for (let j = 0; j < structs; j++) {
      const info = r.u8()
      const ref = info & 0x1f
      if (ref === 0 || ref === 10) { // GC, Skip
        clock += r.uint()
        continue
      }
      if (info & 0x80) { r.uint(); r.uint() } // origin
      if (info & 0x40) { r.uint(); r.uint() } // right origin
      if ((info & 0xc0) === 0) {
        if (r.uint() === 1) r.skipString() // parent: a root type's name
        else { r.uint(); r.uint() } // parent: an item's id
        if (info & 0x20) r.skipString() // parentSub
      }
      if (ref === 4) { // ContentString
        const start = r.p
        const n = r.uint()
        const at = r.p
        r.p += n
        // ASCII only in this benchmark: UTF-8 bytes = UTF-16 units = clock length.
        onInsert(client, clock, n, bytes, at, start)
        clock += n
      } else if (ref === 1) { // ContentDeleted
        clock += r.uint()
      } else {
        throw new Error(`content type ${ref} is not produced by this benchmark`)
      }
    }
  }
}

/**
 * Per-receiver accounting of the benchmark's inserts. Senders' Yjs client
 * ids are CLIENT_BASE + index; every insert is INSERT_LEN characters, so a
 * clock divided by INSERT_LEN is the sender's sequence number.
 */
export const CLIENT_BASE = 1000
export const MAX_CLIENTS = 100_000

export class Tally {
  constructor (ownClient, window, hist) {
    this.own = ownClient
    this.window = window // { t0, interval, clients, from, to }: the senders' schedule, µs
    this.hist = hist
    this.next = new Int32Array(256) // sender index -> next expected sequence number
    this.early = null // Map sender index -> Set of sequence numbers seen ahead of a gap
    this.delivered = 0 // every new insert from another client
    this.inWindow = 0 // those sent within the window
    this.echoes = 0
    this.duplicates = 0
    this.onInsert = (client, clock, len, bytes, pos) => {
      if (client === this.own) { this.echoes += Math.ceil(len / INSERT_LEN); return }
      // Every sequence number whose first character is in this item.
      let seq = Math.ceil(clock / INSERT_LEN)
      const end = clock + len
      for (; seq * INSERT_LEN < end; seq++) {
        const off = seq * INSERT_LEN - clock
        const sent = off + TIME_DIGITS <= len ? readTime(bytes, pos + off) : -1
        this.arrive(client, seq, sent, this.at)
      }
    }
  }

  /** Accounts for every insert in `update`, received at `atUs`. */
  update (update, atUs) {
    this.at = atUs
    forEachStringItem(update, this.onInsert)
  }

  /** The next expected sequence number from `client`. */
  expected (client) {
    const i = client - CLIENT_BASE
    return i >= 0 && i < this.next.length ? this.next[i] : 0
  }

  arrive (client, seq, sentUs, atUs) {
    const i = client - CLIENT_BASE
    if (i < 0 || i >= MAX_CLIENTS) throw new Error(`insert from unknown client ${client}`)
    if (i >= this.next.length) {
      const grown = new Int32Array(Math.max(i + 1, this.next.length * 2))
      grown.set(this.next)
      this.next = grown
    }
    const next = this.next[i]
    if (seq < next) { this.duplicates++; return }
    if (seq === next) {
      let n = next + 1
      const early = this.early && this.early.get(i)
      if (early) while (early.delete(n)) n++
      this.next[i] = n
    } else {
      this.early ??= new Map()
      let early = this.early.get(i)
      if (!early) this.early.set(i, (early = new Set()))
      if (early.has(seq)) { this.duplicates++; return }
      early.add(seq)
    }
    this.delivered++
    // Within the window: what the sender was due to send in it (its
    // schedule is known to every receiver; see worker.mjs).
    const w = this.window
    const due = w.t0 + (i / w.clients + seq) * w.interval
    if (due >= w.from && due < w.to) {
      this.inWindow++
      if (sentUs >= 0) this.hist.add(atUs - sentUs)
    }
  }
}

// --- latency histogram ------------------------------------------------------

// Buckets 50 µs wide up to 60 s (the last bucket takes everything later).
const BUCKET_US = 50
export const HIST_BUCKETS = 60e6 / BUCKET_US

export class Histogram {
  constructor (counts) { this.counts = counts || new Float64Array(HIST_BUCKETS) }
  add (us) {
    const i = us <= 0 ? 0 : Math.min(HIST_BUCKETS - 1, (us / BUCKET_US) | 0)
    this.counts[i]++
  }
  /** Adds another histogram's counts (a sparse [index, count] list or an array). */
  merge (other) {
    if (other.sparse) { for (const [i, c] of other.sparse) this.counts[i] += c; return }
    for (let i = 0; i < HIST_BUCKETS; i++) this.counts[i] += other[i]
  }
  /** The non-empty buckets, for sending over IPC. */
  toSparse () {
    const sparse = []
    for (let i = 0; i < HIST_BUCKETS; i++) if (this.counts[i]) sparse.push([i, this.counts[i]])
    return { sparse }
  }
  total () { let t = 0; for (const c of this.counts) t += c; return t }
  /** The q-quantile in ms (upper edge of its bucket), or NaN if empty. */
  quantileMs (q) {
    const total = this.total()
    if (total === 0) return NaN
    const want = q * total
    let seen = 0
    for (let i = 0; i < HIST_BUCKETS; i++) {
      seen += this.counts[i]
      if (seen >= want) return ((i + 1) * BUCKET_US) / 1000
    }
    return Infinity
  }
}
