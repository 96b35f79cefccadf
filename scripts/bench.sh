#!/usr/bin/env bash
# Builds the services in release mode and runs the benchmarks. Not a test.
#   scripts/bench.sh            the platform benchmark (submissions/s, dispatch latency,
#                               event throughput, resident memory), then the replica
#                               benchmark (drain rate of 2,000 runs of /bin/true with 1 and
#                               3 orchestrators, and the time from a replica's kill -9 to
#                               the last of its runs taken over)
#                               and the Kubernetes benchmark (1,000 runs at once on a real
#                               kube-apiserver over 3 orchestrators, one killed at 500 pods:
#                               pods/s, pod Running -> run running lag, API errors)
#   scripts/bench.sh replicas   only the replica benchmark
#   scripts/bench.sh kubernetes only the Kubernetes benchmark (AIRLOCK_BENCH_PODS runs)
#   scripts/bench.sh -- ARGS    only the platform benchmark, with airlock-bench ARGS
# AIRLOCK_BENCH_DRAIN_RUNS changes the drain benchmark's run count.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
cargo build --release --bins

replicas() {
  cargo test --release -p airlock-e2e --test scale_out -- --ignored --nocapture --test-threads=1 \
    bench_drain_and_takeover 2>&1 | grep -oE '(drain|takeover): .*'
}

kubernetes() {
  cargo test --release -p airlock-e2e --test kube_apiserver -- --ignored --nocapture --test-threads=1 \
    bench_many_pods 2>&1 | grep -oE 'kubernetes: .*'
}

case "${1:-}" in
  replicas) replicas ;;
  kubernetes) kubernetes ;;
  --) shift; exec target/release/airlock-bench "$@" ;;
  *) target/release/airlock-bench "$@"; replicas; kubernetes ;;
esac
