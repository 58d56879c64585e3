# syntax=docker/dockerfile:1
#
# doorbridge: a static binary in a distroless, non-root image.
#
#   docker build -t doorbridge .
#   docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 -t doorbridge .
#
# Run it with the config at /config/config.yaml and state under /data
# (bridge.state_dir: /data, also the default here; audit.file:
# /data/audit.jsonl). Without a volume on /data the fire release latch is
# lost when the container is re-created. The image runs as
# user nonroot (uid 65532); /data must be writable by it (a named volume is;
# for a bind mount: chown 65532:65532 the host directory).
#
#   docker run -d --name doorbridge --restart unless-stopped \
#     -v ./config.yaml:/config/config.yaml:ro -v doorbridge-data:/data \
#     -p 9180:9180 doorbridge
#
# Hardware: pass each device and the host group that owns it, never
# --privileged. The image's /etc/group does not know the host's groups, so
# give the numeric ids (getent group gpio i2c dialout):
#
#   GPIO (drivers type gpio):       --device /dev/gpiochip0 --group-add "$(getent group gpio | cut -d: -f3)"
#   I2C (type mcp23017):            --device /dev/i2c-1     --group-add "$(getent group i2c | cut -d: -f3)"
#   serial Modbus RTU (type modbus): --device /dev/ttyUSB0  --group-add "$(getent group dialout | cut -d: -f3)"
#
# Raspberry Pi OS gives /dev/gpiochip*, /dev/i2c-* and /dev/ttyUSB* to those
# groups with mode 0660; elsewhere add a udev rule, e.g.
#   SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"
# A device that does not exist at `docker run` time (a USB adapter plugged in
# later) needs --device-cgroup-rule and a bind mount of /dev instead.
#
# docker stop sends SIGTERM: every relay is written off and "offline" is
# published within about 3 s, well inside the default 10 s grace period.

ARG GO_VERSION=1.26.8

# The build runs on the build machine's own architecture and cross-compiles:
# no emulation, and the same command scripts/build-release.sh runs.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
ARG TARGETOS
ARG TARGETARCH
ARG TARGETVARIANT
ARG VERSION=dev
# docker build --build-arg COMMIT=$(git rev-parse HEAD): `doorbridge version` says it.
ARG COMMIT=unknown
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ENV OUT=/out/doorbridge
# Keep this line identical to the one in scripts/build-release.sh (its check
# compares them).
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS="$TARGETOS" GOARCH="$TARGETARCH" GOARM="${TARGETVARIANT#v}" go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT" -o "$OUT" ./cmd/doorbridge
RUN mkdir -p /out/data /out/config

# distroless/static: CA certificates (mqtts://), tzdata (TZ=...), /etc/passwd
# with nonroot, and nothing else: no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/doorbridge /doorbridge
COPY --from=build --chown=65532:65532 /out/data /data
COPY --from=build /out/config /config
ENV DOORBRIDGE_CONFIG=/config/config.yaml
# bridge.state_dir when the config leaves it empty (as systemd's
# StateDirectory= does): the fire release latch, lockdown and the battery
# budget must survive a restart of the container (R23). Keep /data a volume.
ENV STATE_DIRECTORY=/data
USER nonroot
VOLUME ["/data"]
# http.listen must be 0.0.0.0:9180 (or :9180) in the config for -p 9180:9180.
EXPOSE 9180
# `doorbridge healthcheck` asks /readyz on http.listen: connected to the
# broker and past start-up. Docker only marks the container unhealthy; the
# restart policy restarts it when it exits.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["/doorbridge", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/doorbridge"]
CMD ["run"]
