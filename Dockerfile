# syntax=docker/dockerfile:1.7
# One Dockerfile, one target per image:
#   docker build --target gateway .             API + web UI; also runs `migrate`
#   docker build --target orchestrator .        Kubernetes runtime (the Helm chart's)
#   docker build --target result-processor .
#   docker build --target worker .              /airlock-worker for the run pods' init container
#   docker build --target orchestrator-local .  local (bubblewrap) runtime, for docker-compose
#
# The service images are distroless (glibc and CA certificates, no shell, no package
# manager), run as uid 10001 and write nothing outside /tmp, so they run with a read-only
# root file system. Base images are pinned; bump them deliberately.

FROM docker.io/library/rust:1.95.0-bookworm AS build
WORKDIR /src
COPY . .
# The service binaries, stripped; the worker for Kubernetes pods runs in users' images,
# whose libc varies, so it is linked statically (glibc's crt-static; it uses no NSS or
# dlopen).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --config 'profile.release.strip="symbols"' \
        --bin airlock-gateway --bin airlock-orchestrator \
        --bin airlock-result-processor --bin airlock-worker \
 && mkdir -p /out \
 && cp target/release/airlock-gateway target/release/airlock-orchestrator \
       target/release/airlock-result-processor target/release/airlock-worker /out/ \
 && target="$(uname -m)-unknown-linux-gnu" \
 && RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --config 'profile.release.strip="symbols"' \
        -p airlock-worker --target "$target" \
 && cp "target/$target/release/airlock-worker" /out/airlock-worker-static

# The web UI, built into static files the gateway serves.
FROM docker.io/library/node:20.20.2-bookworm-slim AS frontend
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend ./
COPY crates/gateway/openapi.json /src/crates/gateway/openapi.json
RUN npm run build

# checkov:skip=CKV_DOCKER_2: No shell or HTTP client in the distroless images; Kubernetes probes /healthz and /readyz (see the Helm chart), docker-compose waits on the dependencies' own health checks
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="Airlock" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
USER 10001:10001

FROM runtime AS gateway
COPY --from=build /out/airlock-gateway /usr/local/bin/airlock-gateway
COPY --from=frontend /src/frontend/dist /opt/airlock/frontend
ENV AIRLOCK_HTTP_ADDR=0.0.0.0:8080 AIRLOCK_STATIC_DIR=/opt/airlock/frontend
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/airlock-gateway"]

FROM runtime AS result-processor
COPY --from=build /out/airlock-result-processor /usr/local/bin/airlock-result-processor
ENV AIRLOCK_HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/airlock-result-processor"]

# The Kubernetes runtime: pods are created through the API server, nothing runs locally.
FROM runtime AS orchestrator
COPY --from=build /out/airlock-orchestrator /usr/local/bin/airlock-orchestrator
ENV AIRLOCK_HTTP_ADDR=0.0.0.0:8080 AIRLOCK_RUNTIME=kubernetes
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/airlock-orchestrator"]

# Carries only the statically linked worker, for the Kubernetes runtime's init container
# to copy into each pod (`/airlock-worker --install /airlock/bin`).
FROM scratch AS worker
COPY --from=build --chmod=0555 /out/airlock-worker-static /airlock-worker
USER 65532:65532
ENTRYPOINT ["/airlock-worker"]

# The local runtime (docker-compose): bubblewrap, and root inside the container so that
# every sandbox gets its own host uid and cgroup (the orchestrator drops to that uid before
# bubblewrap starts). See docker-compose.yml for the few privileges it is given.
# checkov:skip=CKV_DOCKER_8: The local runtime must switch each sandbox to its own uid and cgroup, which needs root in the container (ARCHITECTURE.md, "Local sandbox privileges"); the Kubernetes images run as uid 10001
# checkov:skip=CKV_DOCKER_3: Same reason: the local runtime's orchestrator runs as root inside its container
FROM docker.io/library/debian:12.11-slim AS orchestrator-local
# Debian's stable archive keeps one version of bubblewrap per release (security fixes
# replace it), so pinning its version would only break the build on the next update.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/airlock-orchestrator /out/airlock-worker /usr/local/bin/
ENV AIRLOCK_HTTP_ADDR=0.0.0.0:8080 AIRLOCK_RUNTIME=local AIRLOCK_SANDBOX_DIR=/var/lib/airlock/sandboxes
EXPOSE 8080
# hadolint ignore=DL3002
USER 0:0
ENTRYPOINT ["/usr/local/bin/airlock-orchestrator"]
