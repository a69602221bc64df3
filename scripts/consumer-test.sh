#!/usr/bin/env bash
# Consumer test: what a user installing Stalewise from npm gets. Builds every package, packs it
# with pnpm (which applies publishConfig and rewrites workspace: ranges), checks what each tarball
# holds, installs the tarballs with npm into a scratch project outside the workspace, then runs a
# strict tsc over scripts/consumer/src, a smoke program per package (ESM), a CommonJS require()
# smoke, and imports @stalewise/rpc without its optional peer @effect/rpc.
# The Redis smoke starts its own redis-server; without one it is skipped (required when CI=true).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PNPM=(npx -y pnpm@10.34.8)
SCRATCH="$(mktemp -d)"
REDIS_PID=""
cleanup() {
  if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null || true; fi
  rm -rf "$SCRATCH"
}
trap cleanup EXIT

step() {
  printf '\n--> %s\n' "$*"
}

# The versions the workspace itself is tested with (peers and tools of the scratch project).
version() {
  node -e 'const p = require(process.argv[1]); const v = p.devDependencies?.[process.argv[2]] ?? p.dependencies?.[process.argv[2]]; if (!v) process.exit(1); console.log(v)' "$ROOT/$1" "$2"
}
EFFECT="effect@$(version packages/core/package.json effect)"
PLATFORM="@effect/platform@$(version packages/core/package.json @effect/platform)"
RPC="@effect/rpc@$(version packages/rpc/package.json @effect/rpc)"
VITEST="vitest@$(version packages/testing/package.json vitest)"
EFFECT_VITEST="@effect/vitest@$(version packages/testing/package.json @effect/vitest)"
TYPESCRIPT="typescript@$(version package.json typescript)"
ESBUILD="esbuild@$(version package.json esbuild)"
TYPES_NODE="@types/node@$(version package.json @types/node)"

step "Build"
cd "$ROOT"
"${PNPM[@]}" build

step "Pack"
mkdir -p "$SCRATCH/tarballs"
PACKAGES=()
for dir in "$ROOT"/packages/*/; do
  name="$(node -p 'require(process.argv[1]).name' "$dir/package.json")"
  PACKAGES+=("$name")
  (cd "$dir" && "${PNPM[@]}" pack --pack-destination "$SCRATCH/tarballs" >/dev/null)
done
ls -l "$SCRATCH/tarballs"

step "Check the tarballs' contents"
node "$ROOT/scripts/consumer/check-tarballs.mjs" "$SCRATCH/tarballs"

step "Install the tarballs with npm in $SCRATCH/app"
mkdir -p "$SCRATCH/app"
cp -r "$ROOT/scripts/consumer/." "$SCRATCH/app/"
rm "$SCRATCH/app/check-tarballs.mjs"
mv "$SCRATCH/app/bundle-size.mjs" "$SCRATCH/app/bundle-size.js"
mkdir -p "$SCRATCH/app/test"
mv "$SCRATCH/app/conformance.test.js" "$SCRATCH/app/test/"
cd "$SCRATCH/app"
printf '{ "name": "stalewise-consumer", "private": true, "type": "module" }\n' >package.json
npm install --no-audit --no-fund --loglevel=error \
  "$SCRATCH"/tarballs/*.tgz "$EFFECT" "$PLATFORM" "$RPC" "$VITEST" "$EFFECT_VITEST" "$TYPESCRIPT" "$TYPES_NODE" "$ESBUILD"
for name in "${PACKAGES[@]}"; do
  # npm must have used the tarball, not a registry copy
  node -e 'const p = require(process.argv[1]); if (p.version !== process.argv[2]) process.exit(1)' \
    "$SCRATCH/app/node_modules/$name/package.json" \
    "$(node -p 'require(process.argv[1]).version' "$ROOT/packages/${name#@stalewise/}/package.json")"
  test ! -e "$SCRATCH/app/node_modules/$name/node_modules/@stalewise" || {
    echo "$name has a nested @stalewise dependency: the tarballs do not satisfy each other" >&2
    exit 1
  }
done

step "Strict tsc (skipLibCheck off: the published .d.ts files are checked too)"
npx tsc -p tsconfig.json

step "Smoke programs (ESM)"
for program in core refresh promise rpc testing; do
  node "dist/$program.js"
done

step "The conformance suite from @stalewise/testing, run by vitest against a backend"
npx vitest run --root "$SCRATCH/app" --dir test

step "Bundles (esbuild, minified): a strategy without the backends it does not use"
node bundle-size.js

step "CommonJS require()"
node smoke.cjs

step "Redis"
if command -v redis-server >/dev/null 2>&1; then
  REDIS_PORT="$(node -e 'const s = require("node:net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close() })')"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >"$SCRATCH/redis.log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 50); do
    if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then break; fi
    sleep 0.1
  done
  REDIS_PORT="$REDIS_PORT" node dist/redis.js
elif [ "${CI:-}" = "true" ]; then
  echo "redis-server is not on the PATH (required when CI=true)" >&2
  exit 1
else
  echo "redis-server is not on the PATH: Redis smoke skipped"
fi

step "@stalewise/rpc without its optional peer @effect/rpc"
mkdir -p "$SCRATCH/minimal"
cd "$SCRATCH/minimal"
printf '{ "name": "stalewise-minimal", "private": true, "type": "module" }\n' >package.json
npm install --no-audit --no-fund --loglevel=error \
  "$SCRATCH"/tarballs/stalewise-core-*.tgz "$SCRATCH"/tarballs/stalewise-rpc-*.tgz "$EFFECT" "$PLATFORM"
test ! -e node_modules/@effect/rpc
node --input-type=module -e '
import { CachedService, CachedHttpClient } from "@stalewise/rpc"
if (typeof CachedService.layer !== "function" || typeof CachedHttpClient.layer !== "function") process.exit(1)
console.log("rpc without @effect/rpc: ok")
'

step "Consumer test passed (node $(node --version))"
