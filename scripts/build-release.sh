#!/usr/bin/env bash
# Builds the release binaries exactly as the Dockerfile builds the image's,
# for every platform the image is published for, into dist/:
#
#   dist/doorbridge-linux-amd64  dist/doorbridge-linux-arm64  dist/doorbridge-linux-arm-v7
#
# There is no Docker engine in CI: this is the check that the image's binary
# builds, for each architecture, with the same command and flags. It also
# checks that each binary is static, that the build line below is still the
# Dockerfile's, and lints the Dockerfile.
#
#   scripts/build-release.sh                  VERSION from git describe
#   VERSION=v1.2.3 scripts/build-release.sh   (COMMIT defaults to git rev-parse HEAD)
#   PLATFORMS=linux/arm/v7 scripts/build-release.sh
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
COMMIT="${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo -dirty)}"
PLATFORMS="${PLATFORMS:-linux/amd64 linux/arm64 linux/arm/v7}"
fail() { echo "build-release: $*" >&2; exit 1; }

# The one build command, shared with the Dockerfile: the line that starts
# with CGO_ENABLED=0 in each file. Both must stay identical.
build_line() { grep -E '^[[:space:]]*CGO_ENABLED=0 GOOS=' "$1" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//'; }
for f in Dockerfile "$0"; do
  [ "$(build_line "$f" | wc -l)" -eq 1 ] || fail "$f: want exactly one build line (CGO_ENABLED=0 GOOS=... go build ...)"
done
if [ "$(build_line Dockerfile)" != "$(build_line "$0")" ]; then
  echo "Dockerfile:       $(build_line Dockerfile)" >&2
  echo "build-release.sh: $(build_line "$0")" >&2
  fail "the build lines differ: these binaries would not be the image's"
fi

# The Go version the image builds with.
want_go="$(sed -n 's/^ARG GO_VERSION=//p' Dockerfile)"
have_go="$(go env GOVERSION)"
if [ "go$want_go" != "$have_go" ]; then
  echo "build-release: warning: building with $have_go; the Dockerfile uses go$want_go (the binaries differ in the toolchain)" >&2
fi

mkdir -p dist
for platform in $PLATFORMS; do
  IFS=/ read -r TARGETOS TARGETARCH TARGETVARIANT <<<"$platform"
  OUT="dist/doorbridge-$TARGETOS-$TARGETARCH${TARGETVARIANT:+-$TARGETVARIANT}"
  echo "==> $platform -> $OUT"
  CGO_ENABLED=0 GOOS="$TARGETOS" GOARCH="$TARGETARCH" GOARM="${TARGETVARIANT#v}" go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT" -o "$OUT" ./cmd/doorbridge

  info="$(go version -m "$OUT")"
  for want in "CGO_ENABLED=0" "GOOS=$TARGETOS" "GOARCH=$TARGETARCH" "-trimpath=true"; do
    grep -qF -- "$want" <<<"$info" || fail "$OUT: 'go version -m' lacks $want"
  done
  # -trimpath leaves -ldflags out of the build info: look for the stamp.
  grep -aqF -- "$VERSION" "$OUT" || fail "$OUT: version $VERSION not stamped in"
  if [ -n "$TARGETVARIANT" ] && [ "$TARGETARCH" = arm ]; then
    grep -qF "GOARM=${TARGETVARIANT#v}" <<<"$info" || fail "$OUT: not built for GOARM=${TARGETVARIANT#v}"
  fi
  if command -v file >/dev/null; then
    desc="$(file -b "$OUT")"
    echo "    $desc"
    grep -q "statically linked" <<<"$desc" || fail "$OUT is not statically linked: $desc"
  else
    echo "    (no 'file' command: static linking checked through CGO_ENABLED=0 only; apt-get install file)"
  fi
done
# Run each binary: natively, or under qemu-user (apt-get install qemu-user)
# for the ARM builds.
for bin in dist/doorbridge-*; do
  case "$bin" in
    *-linux-amd64) runner=() ; [ "$(uname -m)" = x86_64 ] || continue ;;
    *-linux-arm64) command -v qemu-aarch64 >/dev/null || { echo "    (no qemu-aarch64: $bin not run)"; continue; }; runner=(qemu-aarch64) ;;
    *-linux-arm-v7) command -v qemu-arm >/dev/null || { echo "    (no qemu-arm: $bin not run)"; continue; }; runner=(qemu-arm) ;;
    *) continue ;;
  esac
  got="$("${runner[@]}" "$bin" version)"
  [ "$got" = "doorbridge $VERSION (commit $COMMIT)" ] || fail "$bin version says '$got', want 'doorbridge $VERSION (commit $COMMIT)'"
  "${runner[@]}" "$bin" check-config -c configs/demo.yaml >/dev/null || fail "$bin check-config -c configs/demo.yaml failed"
  echo "==> ran $bin${runner:+ under ${runner[*]}}: $got; check-config ok"
done
(cd dist && sha256sum doorbridge-* > SHA256SUMS)

# Lint the Dockerfile. hadolint is neither in Debian nor on npm as a
# self-contained package (the npm "hadolint" wrapper downloads a binary at
# run time), so hadolint is used when installed and dockerfile-utils (the
# Dockerfile language server's validator, from npm) otherwise.
if command -v hadolint >/dev/null; then
  echo "==> hadolint Dockerfile"
  hadolint Dockerfile
elif command -v npm >/dev/null; then
  lintdir="${XDG_CACHE_HOME:-$HOME/.cache}/doorbridge/dockerfile-utils"
  if [ ! -x "$lintdir/node_modules/.bin/dockerfile-utils" ]; then
    npm install --silent --no-audit --no-fund --prefix "$lintdir" dockerfile-utils@0.16.3 >/dev/null 2>&1 ||
      echo "build-release: warning: could not install dockerfile-utils from npm: Dockerfile not linted" >&2
  fi
  if [ -x "$lintdir/node_modules/.bin/dockerfile-utils" ]; then
    echo "==> dockerfile-utils lint Dockerfile"
    "$lintdir/node_modules/.bin/dockerfile-utils" lint Dockerfile || fail "Dockerfile lint failed"
  fi
else
  echo "build-release: warning: neither hadolint nor npm: Dockerfile not linted" >&2
fi
echo "==> dist/: $(cd dist && ls doorbridge-* | tr '\n' ' ')"
