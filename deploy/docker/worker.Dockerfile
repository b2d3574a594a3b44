# syntax=docker/dockerfile:1
# The Mail API worker (mailapi-worker). Built from the repository root by compose.yaml:
#   docker build -f deploy/docker/worker.Dockerfile -t mailapi-worker .
# Configuration: MAILAPI_* environment variables (README, "Configuration reference").

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep the registry and incremental artifacts between builds; the binary is
# copied out of the (mounted, hence not kept) target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=mailapi-target-worker \
    cargo build --release --locked -p worker --bin mailapi-worker \
    && install -D -m 0755 target/release/mailapi-worker /out/mailapi-worker

FROM debian:bookworm-slim
# Unpinned on purpose: ca-certificates should be the current one whenever the image is built.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin mailapi
COPY --from=build /out/mailapi-worker /usr/local/bin/mailapi-worker
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/mailapi-worker"]
