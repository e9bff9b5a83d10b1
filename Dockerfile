# Build: the same toolchain and lock file as CI.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin hookgate

# Run: small, non-root; `hookgate healthcheck` instead of curl.
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home /var/lib/hookgate hookgate \
    && mkdir -p /var/lib/hookgate /etc/hookgate && chown hookgate /var/lib/hookgate
COPY --from=build /src/target/release/hookgate /usr/local/bin/hookgate
USER hookgate
WORKDIR /var/lib/hookgate
EXPOSE 8443 9090
HEALTHCHECK --interval=10s --timeout=3s CMD ["hookgate", "healthcheck"]
ENTRYPOINT ["hookgate"]
CMD ["serve", "-c", "/etc/hookgate/config.toml"]
