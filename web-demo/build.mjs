// Builds the demo into dist/: type-checks with tsc (no output), bundles
// src/main.ts with esbuild, and copies the page, the stylesheet and the
// package's .wasm beside the bundle (main.ts loads it from there).
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');

// Types first: a type error fails the build before anything is written.
try {
  execFileSync(join(here, 'node_modules/.bin/tsc'), ['--noEmit', '-p', here], { stdio: 'inherit' });
} catch {
  console.error('web-demo: type errors (above); nothing built');
  process.exit(1);
}

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
await build({
  entryPoints: [join(here, 'src/main.ts')],
  outfile: join(dist, 'app.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  logLevel: 'warning',
});
// The package exports its .wasm as `neuroplex/neuroplex_wasm_bg.wasm`.
const require = createRequire(import.meta.url);
const wasm = require.resolve('neuroplex/neuroplex_wasm_bg.wasm');
await copyFile(wasm, join(dist, 'neuroplex.wasm'));
await copyFile(join(here, 'index.html'), join(dist, 'index.html'));
await copyFile(join(here, 'style.css'), join(dist, 'style.css'));
console.log(`web-demo: built ${dist}`);
