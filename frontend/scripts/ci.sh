#!/usr/bin/env bash
# Every check of the web UI, in the order CI runs them. Browser tests need the stack
# launcher (target/debug/airlock-stack, or $AIRLOCK_STACK_BIN), Debian's chromium and the
# test identity provider (crates/test-support/idp).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  echo "==> installing chromium (Debian package)"
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi

echo "==> npm ci"
npm ci --no-audit --no-fund
echo "==> npm ci (the test identity provider the browser tests sign in through)"
(cd ../crates/test-support/idp && npm ci --no-audit --no-fund)
echo "==> API types match the OpenAPI document"
npm run check:api-types
echo "==> typecheck"
npm run typecheck
echo "==> lint"
npm run lint
echo "==> unit tests"
npm test
echo "==> build"
npm run build
echo "==> browser tests"
npm run test:browser
echo "Screenshots: $PWD/test-results/screenshots"
