#!/usr/bin/env bash
# Builds the shipped tracker web/static/tracker/op1.js from its readable source op1.src.js with terser,
# pinned in tests/js/package.json (install it with: cd tests/js && npm ci).
#   bash scripts/build_tracker.sh            rewrite web/static/tracker/op1.js
#   bash scripts/build_tracker.sh --stdout   print the build instead (tests/test_tracker_size.py compares it)
# The output depends only on the source, these options and the terser version, so a rebuild is byte-exact.
set -euo pipefail
cd "$(dirname "$0")/.."

SRC=web/static/tracker/op1.src.js
OUT=web/static/tracker/op1.js
JS=tests/js

want=$(node -p "require('./$JS/package.json').devDependencies.terser")
have=$(node -p "require('./$JS/node_modules/terser/package.json').version" 2>/dev/null || echo none)
if [ "$want" != "$have" ]; then
  echo "build_tracker: need terser $want in $JS/node_modules (found: $have); run: cd $JS && npm ci" >&2
  exit 1
fi

build() {
  printf '/*! op1.js v1, openpanel-lite tracker. Built from %s by: bash scripts/build_tracker.sh */\n' "$SRC"
  "$JS/node_modules/.bin/terser" "$SRC" --ecma 2020 --compress passes=3 --mangle # ends with a newline
}

if [ "${1:-}" = "--stdout" ]; then
  build
else
  build >"$OUT.tmp"
  mv "$OUT.tmp" "$OUT"
  echo "wrote $OUT: $(wc -c <"$OUT") bytes, $(gzip -9n <"$OUT" | wc -c) gzipped"
fi
