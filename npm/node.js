// Node.js entry: the .wasm is loaded synchronously at import, so
// `import { Doc } from 'neuroplex'` is ready to use. Node 20 has no global
// WebSocket: connections use the `ws` package.
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { initSync } from './dist/neuroplex_wasm.js';
import { makeConnect } from './lib/connection.js';

initSync({ module: readFileSync(new URL('./dist/neuroplex_wasm_bg.wasm', import.meta.url)) });

export * from './dist/neuroplex_wasm.js';
export { Connection } from './lib/connection.js';

/** Connects `doc` to a relay room (`ws://host/sync/<room>`). */
export const connect = makeConnect(WebSocket);

/** Nothing to do in Node (the module is ready at import); for symmetry. */
export function init() {
  return Promise.resolve();
}
export default init;
