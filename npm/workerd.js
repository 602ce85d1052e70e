// Edge worker entry (workerd / Cloudflare Workers): the .wasm is imported as
// a module (workers may not compile WebAssembly from bytes at run time) and
// instantiated at import, so nothing needs awaiting.
import { initSync } from './dist/neuroplex_wasm.js';
import wasmModule from './dist/neuroplex_wasm_bg.wasm';
import { makeConnect } from './lib/connection.js';

initSync({ module: wasmModule });

export * from './dist/neuroplex_wasm.js';
export { Connection } from './lib/connection.js';

/** Connects `doc` to a relay room (`wss://host/sync/<room>`). */
export const connect = makeConnect(globalThis.WebSocket);

/** Nothing to do here (the module is ready at import); for symmetry. */
export function init() {
  return Promise.resolve();
}
export default init;
