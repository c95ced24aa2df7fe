# Multi-stage build: compile with the Rust toolchain, run on a slim Debian as
# an unprivileged user. The config path is fixed; secrets come from the
# environment (see deploy/bridge.toml).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin slack-oidc-bridge

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/slack-oidc-bridge --shell /usr/sbin/nologin bridge \
 && install -d -o bridge -g bridge -m 0700 /var/lib/slack-oidc-bridge/keys
COPY --from=build /src/target/release/slack-oidc-bridge /usr/local/bin/slack-oidc-bridge
COPY deploy/bridge.toml /etc/slack-oidc-bridge/bridge.toml
USER bridge
WORKDIR /var/lib/slack-oidc-bridge
EXPOSE 8080
VOLUME ["/var/lib/slack-oidc-bridge/keys"]
ENTRYPOINT ["/usr/local/bin/slack-oidc-bridge"]
CMD ["serve", "--config", "/etc/slack-oidc-bridge/bridge.toml"]
