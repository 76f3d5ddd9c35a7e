# faultline/chat-node: one static binary, no base image (nothing is pulled from any registry).
#
# Built by `make image`, which compiles the static-pie binary and sends a context of just
# this file and that binary to the engine:
#   RUSTFLAGS='-C target-feature=+crt-static' \
#     cargo build --release --target x86_64-unknown-linux-gnu -p chat-node
# By hand from the repository root (.dockerignore keeps the context to the binary):
#   docker build --build-arg BINARY=target/x86_64-unknown-linux-gnu/release/chat-node \
#     -t faultline/chat-node:latest .
FROM scratch

# Path of the static binary inside the build context.
ARG BINARY=chat-node
COPY ${BINARY} /chat-node

# The node keeps its durable epoch, vote and log here (`--data-dir /data`); WORKDIR creates it.
WORKDIR /data

# 7070/tcp clients; 7400/udp discovery and peer datagrams; 7401/udp multicast heartbeats.
EXPOSE 7070/tcp 7400/udp 7401/udp

# No shell in the image: the binary asks the local node for its status itself.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/chat-node", "health"]

# PID 1 is the node: it handles SIGTERM itself (graceful leave); SIGKILL is a crash.
ENTRYPOINT ["/chat-node"]
CMD ["serve"]
