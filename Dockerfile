# syntax=docker/dockerfile:1
# One Dockerfile, one target per service:
#   docker build --target gateway .        (also: orchestrator, result-processor, worker)

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bins \
 && mkdir -p /out \
 && cp target/release/airlock-gateway target/release/airlock-orchestrator \
       target/release/airlock-result-processor target/release/airlock-worker /out/
# The worker for Kubernetes pods runs in users' images, whose libc varies: link it
# statically (glibc's crt-static; it uses no NSS or dlopen).
RUN RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release -p airlock-worker --target x86_64-unknown-linux-gnu \
 && cp target/x86_64-unknown-linux-gnu/release/airlock-worker /out/airlock-worker-static

# The web UI, built into static files the gateway serves.
FROM node:20-bookworm-slim AS frontend
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend ./
COPY crates/gateway/openapi.json /src/crates/gateway/openapi.json
RUN npm run build

FROM debian:bookworm-slim AS runtime-base
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin airlock

FROM runtime-base AS gateway
COPY --from=build /out/airlock-gateway /usr/local/bin/airlock-gateway
COPY migrations /opt/airlock/migrations
COPY --from=frontend /src/frontend/dist /opt/airlock/frontend
USER 10001
ENV AIRLOCK_HTTP_ADDR=0.0.0.0:8080 AIRLOCK_STATIC_DIR=/opt/airlock/frontend
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/airlock-gateway"]

FROM runtime-base AS result-processor
COPY --from=build /out/airlock-result-processor /usr/local/bin/airlock-result-processor
USER 10001
ENV AIRLOCK_HTTP_ADDR=0.0.0.0:8082
EXPOSE 8082
ENTRYPOINT ["/usr/local/bin/airlock-result-processor"]

# The local runtime needs bubblewrap and must switch sandboxes to their own uids, so this
# image runs as root inside its container; see docker-compose.yml for the privileges.
FROM runtime-base AS orchestrator
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/airlock-orchestrator /out/airlock-worker /usr/local/bin/
ENV AIRLOCK_HTTP_ADDR=0.0.0.0:8081 AIRLOCK_SANDBOX_DIR=/var/lib/airlock/sandboxes
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/airlock-orchestrator"]

# Carries only the statically linked worker, for the Kubernetes runtime's init container
# to copy into each pod (`/airlock-worker --install /airlock/bin`).
FROM scratch AS worker
COPY --from=build --chmod=0555 /out/airlock-worker-static /airlock-worker
USER 65532
ENTRYPOINT ["/airlock-worker"]
