#!/usr/bin/env node
// A Yjs peer for the Rust Yjs <-> native interop test:
//
//   node peer.mjs <ws://ADDR/yjs> <room> <text-to-insert> <substring-to-wait-for>
//
// Connects an unmodified y-websocket WebsocketProvider to the room, appends
// <text-to-insert> to doc.getText('text') once synced, waits (polling, up to
// 60 s) until the text contains <substring-to-wait-for>, then prints one line
// `FINAL <JSON.stringify(text)>` and exits 0. On timeout it prints why on
// stderr and exits 1. The provider is destroyed before exiting either way.
// Extra query parameters (e.g. a token) can be given as NEUROPLEX_PEER_TOKEN.

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const TIMEOUT_MS = 60_000
const POLL_MS = 25

const [url, room, insert, waitFor] = process.argv.slice(2)
if (url === undefined || room === undefined || insert === undefined || waitFor === undefined) {
  process.stderr.write('usage: node peer.mjs <ws://ADDR/yjs> <room> <text-to-insert> <substring-to-wait-for>\n')
  process.exit(2)
}

const doc = new Y.Doc()
const text = doc.getText('text')
const params = process.env.NEUROPLEX_PEER_TOKEN ? { token: process.env.NEUROPLEX_PEER_TOKEN } : {}
const provider = new WebsocketProvider(url, room, doc, {
  WebSocketPolyfill: WebSocket,
  disableBc: true,
  params
})
let lastClose = null
provider.on('connection-close', (event) => {
  if (event) lastClose = `${event.code} ${event.reason || ''}`.trim()
})

const deadline = Date.now() + TIMEOUT_MS
let inserted = false

function finish (code, line, stream) {
  clearInterval(timer)
  provider.destroy()
  doc.destroy()
  stream.write(line + '\n', () => process.exit(code))
}

const timer = setInterval(() => {
  if (!inserted && provider.synced) {
    text.insert(text.length, insert)
    inserted = true
  }
  if (inserted && text.toString().includes(waitFor)) {
    finish(0, `FINAL ${JSON.stringify(text.toString())}`, process.stdout)
    return
  }
  if (Date.now() >= deadline) {
    const state = !provider.synced
      ? 'never synced with the relay'
      : `the text never contained ${JSON.stringify(waitFor)}`
    finish(1, `peer.mjs: timed out after ${TIMEOUT_MS / 1000} s: ${state}; ` +
      `text is ${JSON.stringify(text.toString())}` +
      (lastClose ? `; last connection close: ${lastClose}` : ''), process.stderr)
  }
}, POLL_MS)
