# syntax=docker/dockerfile:1
# Build: a static binary (CGO off). tw.js is built by esbuild's Go API at
# start-up, so no Node is needed in either stage.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/tagway . \
 && mkdir -p /out/data

# Run: distroless static, non-root, nothing but the binary and CA certificates.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tagway /usr/local/bin/tagway
# The local spool directory (TAGWAY_DATA_DIR), writable by the nonroot user (65532).
COPY --from=build --chown=65532:65532 /out/data /var/lib/tagway
USER nonroot:nonroot
# /metrics, /healthz and /readyz also on a private port, for Prometheus
# inside the container network; do not publish it to the internet.
ENV TAGWAY_ADDR=:8080 \
    TAGWAY_METRICS_ADDR=:9090 \
    TAGWAY_DATA_DIR=/var/lib/tagway
VOLUME ["/var/lib/tagway"]
EXPOSE 8080 9090
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/tagway", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/tagway"]
CMD ["serve"]
