# The anchorfed service image: a release build on Debian, run as an unprivileged user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && cp target/release/anchorfed /usr/local/bin/anchorfed

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/anchorfed --create-home anchorfed
COPY --from=build /usr/local/bin/anchorfed /usr/local/bin/anchorfed
USER anchorfed
WORKDIR /var/lib/anchorfed
ENV ANCHORFED_BIND=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["anchorfed"]
CMD ["serve"]
