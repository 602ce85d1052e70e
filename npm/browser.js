// Browser (and bundler) entry: `await init()` once before using anything;
// it fetches dist/neuroplex_wasm_bg.wasm next to this module (or `input`:
// a URL, a Response, bytes or a WebAssembly.Module).
import wasmInit from './dist/neuroplex_wasm.js';
import { makeConnect } from './lib/connection.js';

export * from './dist/neuroplex_wasm.js';
export { Connection } from './lib/connection.js';

let ready;

/** Loads the WebAssembly module (once; later calls return the same promise). */
export function init(input) {
  ready ??= wasmInit(input === undefined ? undefined : { module_or_path: input });
  return ready;
}
export default init;

/** Connects `doc` to a relay room (`ws://host/sync/<room>`). */
export const connect = makeConnect(globalThis.WebSocket);
