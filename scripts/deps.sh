#!/usr/bin/env bash
# Makes sure what Airlock needs on this machine is installed and running:
# PostgreSQL, RabbitMQ, bubblewrap (the local sandbox), docker-compose (to validate
# the compose file) and Prometheus (the metrics test scrapes the services with it). Installs missing Debian/Ubuntu packages, starts stopped services,
# and waits until each accepts connections. Safe to run again.
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v bwrap >/dev/null || missing+=(bubblewrap)
[ -x /usr/bin/prometheus ] || missing+=(prometheus)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v psql >/dev/null || missing+=(postgresql postgresql-client)
command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server)
command -v curl >/dev/null || missing+=(curl)
command -v npm >/dev/null || missing+=(nodejs npm)
fresh_postgres=0
if ! command -v pg_ctlcluster >/dev/null && ! ls /etc/postgresql/*/main >/dev/null 2>&1; then fresh_postgres=1; fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The web UI builds with Node.js 20.19 or newer (Vite's minimum).
node_version=$(node --version 2>/dev/null || echo v0)
node_major=${node_version#v}; node_major=${node_major%%.*}
if [ "$node_major" -lt 20 ]; then
  log "Node.js $node_version is too old for the web UI: install Node.js 20 or newer (e.g. from nodejs.org or NodeSource) and run again"
  exit 1
fi

# The Rust toolchain (1.94 or newer), from rustup when absent.
if ! command -v cargo >/dev/null; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    log "installing the Rust toolchain with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 120); do
    if port_open "$port"; then return 0; fi
    sleep 0.5
  done
  log "$name did not open port $port"; return 1
}

# PostgreSQL on 127.0.0.1:5432, user postgres without password (local development).
if ! port_open 5432; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  if [ "$fresh_postgres" -eq 1 ] || ! grep -q '^host all postgres 127.0.0.1/32 trust' "/etc/postgresql/$version/main/pg_hba.conf"; then
    log "allowing local password-less connections for user postgres (development set-up)"
    as_root sed -i '1i host all postgres 127.0.0.1/32 trust' "/etc/postgresql/$version/main/pg_hba.conf"
  fi
  log "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || as_root pg_ctlcluster "$version" main start
fi
wait_port 5432 PostgreSQL

# RabbitMQ on 127.0.0.1:5672 with guest/guest.
if ! port_open 5672; then
  log "starting RabbitMQ"
  as_root rabbitmq-server -detached || true
fi
for _ in $(seq 1 120); do
  if as_root rabbitmq-diagnostics -q check_running >/dev/null 2>&1 && port_open 5672; then break; fi
  sleep 1
done
wait_port 5672 RabbitMQ
log "PostgreSQL, RabbitMQ, bubblewrap and Prometheus are ready"

# A real Kubernetes API server for the Kubernetes tests (etcd, kube-apiserver, kubectl
# in the envtest layout): KUBEBUILDER_ASSETS when set; otherwise the envtest archive named
# by AIRLOCK_ENVTEST_ARCHIVE or found beside the checkout (../shared/k8s/envtest.tar.xz)
# is unpacked once into target/envtest. With it the tests must use it
# (AIRLOCK_REQUIRE_KUBE_APISERVER=1); without it they say they skipped.
if [ -z "${KUBEBUILDER_ASSETS:-}" ]; then
  envtest_dir="$PWD/target/envtest/envtest"
  if [ ! -x "$envtest_dir/kube-apiserver" ]; then
    for archive in "${AIRLOCK_ENVTEST_ARCHIVE:-}" "$PWD/../shared/k8s/envtest.tar.xz" /work/shared/k8s/envtest.tar.xz; do
      if [ -n "$archive" ] && [ -f "$archive" ]; then
        log "unpacking the Kubernetes API server for tests from $archive"
        mkdir -p "$PWD/target/envtest"
        tar -xJf "$archive" -C "$PWD/target/envtest"
        break
      fi
    done
  fi
  if [ -x "$envtest_dir/kube-apiserver" ]; then
    export KUBEBUILDER_ASSETS="$envtest_dir"
  fi
fi
if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  export AIRLOCK_REQUIRE_KUBE_APISERVER=1
  log "Kubernetes API server for tests: $KUBEBUILDER_ASSETS"
else
  log "no Kubernetes API server for tests (set KUBEBUILDER_ASSETS): those tests will skip"
fi
