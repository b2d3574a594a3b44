# syntax=docker/dockerfile:1
# The Mail API HTTP server (mailapi-api). Built from the repository root by compose.yaml:
#   docker build -f deploy/docker/api.Dockerfile -t mailapi-api .
# Configuration: MAILAPI_* environment variables (README, "Configuration reference").

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep the registry and incremental artifacts between builds; the binary is
# copied out of the (mounted, hence not kept) target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=mailapi-target-api \
    cargo build --release --locked -p api --bin mailapi-api \
    && install -D -m 0755 target/release/mailapi-api /out/mailapi-api

FROM debian:bookworm-slim
# Unpinned on purpose: ca-certificates should be the current one whenever the image is built.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin mailapi
COPY --from=build /out/mailapi-api /usr/local/bin/mailapi-api
USER 10001:10001
# Inside a container the API must listen on all interfaces to be reachable through a port.
ENV MAILAPI_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/mailapi-api"]
CMD ["serve"]
