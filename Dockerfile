# chatgate: a small runtime image (distroless, glibc, no shell), running as a non-root user.
#
#   docker build -t chatgate .
#   docker run -p 8080:8080 -v chatgate-data:/var/lib/chatgate \
#     -v "$PWD/channels.toml:/etc/chatgate/channels.toml:ro" -e CHATGATE_API_TOKEN=... chatgate
#
# The health check is the binary itself (`chatgate health` calls GET /healthz): the runtime
# image has no shell and no curl.

# --- build -------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target folders are BuildKit caches, so a rebuild compiles only what changed.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p chatgate \
 && cp target/release/chatgate /usr/local/bin/chatgate \
 && mkdir -p /rootfs/var/lib/chatgate /rootfs/etc/chatgate

# --- runtime -----------------------------------------------------------------------------
# glibc and CA certificates, no shell, user `nonroot` (65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/chatgate /usr/local/bin/chatgate
COPY --from=build --chown=65532:65532 /rootfs/var/lib/chatgate /var/lib/chatgate
COPY channels.toml /etc/chatgate/channels.toml
ENV CHATGATE_CONFIG=/etc/chatgate/channels.toml \
    CHATGATE_DATA_DIR=/var/lib/chatgate \
    CHATGATE_LISTEN=0.0.0.0:8080 \
    CHATGATE_LOG_FORMAT=json \
    CHATGATE_HEALTH_URL=http://127.0.0.1:8080/healthz
USER 65532:65532
VOLUME ["/var/lib/chatgate"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["/usr/local/bin/chatgate", "health"]
ENTRYPOINT ["/usr/local/bin/chatgate"]
CMD ["serve"]
