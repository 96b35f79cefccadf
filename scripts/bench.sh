#!/usr/bin/env bash
# Builds the services in release mode and runs the benchmark: submissions/s, dispatch
# latency, event throughput and resident memory, printed as a table. Not a test.
# Extra arguments go to airlock-bench (see `target/release/airlock-bench --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
cargo build --release --bins
exec target/release/airlock-bench "$@"
