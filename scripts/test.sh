#!/usr/bin/env bash
# The whole test suite: installs what it needs first (OpenSSH server,
# Chromium, Node: scripts/install-test-deps.sh), then formatting, lints,
# unit and integration tests (SQLite, and PostgreSQL on 127.0.0.1:5432),
# then the web UI's end-to-end tests in headless Chromium (tests/browser/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --all-targets
scripts/browser-test.sh
