#!/usr/bin/env bash
# Builds the npm package into npm/ (make npm): the full .wasm (with yrs)
# through wasm-pack, the JavaScript glue, and package.json's version taken
# from wasm/Cargo.toml. `npm pack` in npm/ then gives the tarball.
# Tools come from scripts/setup.sh (make setup).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

version="$(sed -n 's/^version = "\(.*\)"/\1/p' wasm/Cargo.toml | head -n1)"
node -e '
const fs = require("fs");
const file = process.argv[1], version = process.argv[2];
const pkg = JSON.parse(fs.readFileSync(file, "utf8"));
if (pkg.version !== version) {
  pkg.version = version;
  fs.writeFileSync(file, JSON.stringify(pkg, null, 2) + "\n");
  console.log(`npm-build: package.json version ${version}`);
}' npm/package.json "$version"

# wasm-pack runs the first wasm-opt on PATH: binaryen from npm (Debian's
# is too old for what rustc emits now).
export PATH="$root/npm/node_modules/.bin:$PATH"
nice wasm-pack build wasm --target web --out-dir ../npm/dist --out-name neuroplex_wasm \
    --no-pack --profile wasm-release
# wasm-pack's dist/.gitignore ("*") would keep the files out of the tarball;
# npm/.gitignore keeps dist/ out of git.
rm -f npm/dist/.gitignore
# wasm-bindgen cannot mark a parameter with a declared type optional: fix
# those few signatures (each replacement must match, or the build fails).
node -e '
const fs = require("fs");
const file = process.argv[1];
let d = fs.readFileSync(file, "utf8");
for (const [from, to] of [
  ["increment(n: number): void;", "increment(n?: number): void;"],
  ["decrement(n: number): void;", "decrement(n?: number): void;"],
  ["constructor(options: DocOptions);", "constructor(options?: DocOptions);"],
  ["transact(f: () => any): any;", "transact<T>(f: () => T): T;"],
]) {
  if (!d.includes(from)) { console.error(`npm-build: ${from} not found in ${file}`); process.exit(1); }
  d = d.split(from).join(to);
}
fs.writeFileSync(file, d);' npm/dist/neuroplex_wasm.d.ts
echo "npm-build: npm/ holds neuroplex@$version ($(wc -c < npm/dist/neuroplex_wasm_bg.wasm) bytes of wasm)"
