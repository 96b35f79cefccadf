#!/usr/bin/env bash
# Runs everything CI runs: formatting, lints, the deployment checks (Helm chart, images,
# compose file: scripts/check-deploy.sh), every Rust test
# (unit, integration and end-to-end against real PostgreSQL and RabbitMQ) and the web
# UI's checks (API types in sync with the OpenAPI document, types, lint, unit tests,
# build, browser tests in chromium against the real stack).
set -euo pipefail
cd "$(dirname "$0")/.."

# Sourced, so a toolchain it installs is on this script's PATH.
. scripts/deps.sh

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "==> deploy checks (Helm chart, Dockerfile, docker-compose.yml)"
scripts/check-deploy.sh

echo "==> cargo build (every binary the end-to-end tests start)"
cargo build --workspace --bins

echo "==> web UI"
frontend/scripts/ci.sh

echo "==> cargo test"
cargo test --workspace --no-fail-fast -- --test-threads=2
