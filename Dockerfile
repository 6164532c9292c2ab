# tributary, built in a Rust image and run in a slim Debian image.
# Build context: the repository root (see docker-compose.yml).

FROM rust:1.91-bookworm AS build
# cmake and the curl headers build the bundled librdkafka (see stack/stack.sh for why
# the headers are needed even without curl support); its TLS links the image's OpenSSL
# (libssl-dev is in the rust image; the runtime's ca-certificates brings libssl3).
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake libcurl4-openssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin tributary

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 tributary
COPY --from=build /src/target/release/tributary /usr/local/bin/tributary
COPY config /etc/tributary
ENV TRIBUTARY_CONFIG_DIR=/etc/tributary
USER tributary
ENTRYPOINT ["tributary"]
