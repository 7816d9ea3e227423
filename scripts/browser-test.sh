#!/usr/bin/env bash
# End-to-end tests of the web UI: builds `batchcred`, then drives the real
# server in headless Chromium with playwright-core (no browser download:
# it uses the system Chromium, /usr/bin/chromium or $CHROMIUM).
# Screenshots land in target/screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --bin batchcred
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
cd tests/browser
if [ ! -d node_modules/playwright-core ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
fi
BATCHCRED_BIN="$target_dir/debug/batchcred" npm test
