#!/usr/bin/env bash
# Runs the whole platform on this machine: installs and starts PostgreSQL, RabbitMQ and
# bubblewrap where absent, builds the services and the web UI, applies migrations, starts
# the gateway (serving the web UI), orchestrator and result-processor, and prints the
# URL and an admin token.
#   AIRLOCK_DEV_LOGIN=true scripts/run.sh     also offers the development sign-in form
#   AIRLOCK_OIDC_ISSUER=… AIRLOCK_OIDC_CLIENT_ID=… AIRLOCK_OIDC_CLIENT_SECRET=… scripts/run.sh
#                                              signs in through an OpenID Connect provider
# Stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

# Sourced, so a toolchain it installs is on this script's PATH.
. scripts/deps.sh

export AIRLOCK_DATABASE_URL=${AIRLOCK_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/airlock}
export AIRLOCK_AMQP_URL=${AIRLOCK_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
export AIRLOCK_SANDBOX_DIR=${AIRLOCK_SANDBOX_DIR:-$PWD/.airlock/sandboxes}
# Served over plain http on this machine: session cookies cannot be Secure here.
export AIRLOCK_COOKIE_SECURE=${AIRLOCK_COOKIE_SECURE:-false}
gateway_addr=${AIRLOCK_GATEWAY_ADDR:-127.0.0.1:8080}
logs=$PWD/.airlock/logs
mkdir -p "$logs"

echo "==> building (release)"
cargo build --release --bins
bin=$PWD/target/release

echo "==> building the web UI"
(cd frontend && npm ci --no-audit --no-fund --prefer-offline && npm run build)
export AIRLOCK_STATIC_DIR=$PWD/frontend/dist

# The database itself must exist before migrations run.
db_name=${AIRLOCK_DATABASE_URL##*/}
server_url=${AIRLOCK_DATABASE_URL%/*}
if ! psql "$server_url/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db_name'" | grep -q 1; then
  psql "$server_url/postgres" -qc "CREATE DATABASE \"$db_name\""
fi
"$bin/airlock-gateway" migrate

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

AIRLOCK_HTTP_ADDR=$gateway_addr "$bin/airlock-gateway" 2>"$logs/gateway.log" & pids+=($!)
AIRLOCK_HTTP_ADDR=${AIRLOCK_ORCHESTRATOR_ADDR:-127.0.0.1:8081} "$bin/airlock-orchestrator" 2>"$logs/orchestrator.log" & pids+=($!)
AIRLOCK_HTTP_ADDR=${AIRLOCK_RESULTS_ADDR:-127.0.0.1:8082} "$bin/airlock-result-processor" 2>"$logs/result-processor.log" & pids+=($!)

for _ in $(seq 1 100); do
  curl -fsS "http://$gateway_addr/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
token=$("$bin/airlock-gateway" admin create-token --user admin --team default --role admin)
cat <<MSG

Airlock is running.
  Web UI: http://$gateway_addr/  (sign in with the token below$([ "${AIRLOCK_DEV_LOGIN:-false}" = true ] && echo ", or with the development sign-in"))
  API:    http://$gateway_addr/api/v1  (OpenAPI: http://$gateway_addr/api/v1/openapi.json)
  Token:  $token
  Logs:   $logs
Try:
  curl -H "Authorization: Bearer $token" -H 'Content-Type: application/yaml' \\
       --data-binary @examples/hello.yaml http://$gateway_addr/api/v1/evaluations

Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}"
