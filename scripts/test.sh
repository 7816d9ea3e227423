#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests
# (SQLite, and PostgreSQL on 127.0.0.1:5432 when it is running), then the
# web UI's end-to-end tests in headless Chromium (tests/browser/).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --all-targets
scripts/browser-test.sh
