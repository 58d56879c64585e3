#!/usr/bin/env bash
# Builds the Debian packages of doorbridge from the release binaries
# (scripts/build-release.sh), offline, with dpkg-deb only:
#
#   dist/doorbridge_<version>_amd64.deb  (dist/doorbridge-linux-amd64)
#   dist/doorbridge_<version>_arm64.deb  (dist/doorbridge-linux-arm64: Pi 3/4/5, 64-bit OS)
#   dist/doorbridge_<version>_armhf.deb  (dist/doorbridge-linux-arm-v7: Pi 2/3/4, 32-bit OS)
#
# What a package installs:
#   /usr/bin/doorbridge
#   /lib/systemd/system/doorbridge.service   configs/systemd's unit, ExecStart=/usr/bin/doorbridge
#   /etc/doorbridge/config.yaml.example      configs/examples/home.yaml (a conffile)
#   /usr/share/doc/doorbridge/               README, the examples, the mosquitto config and acl
# and its postinst adds the system user doorbridge (groups gpio, i2c,
# dialout; gpio and i2c are created when missing, since systemd refuses a
# unit whose SupplementaryGroups= do not exist), /etc/doorbridge
# (root:doorbridge 0750) and /var/lib/doorbridge (doorbridge 0700). The
# service is enabled and started only once /etc/doorbridge/config.yaml
# exists, and only where systemd runs: a bridge without its config would
# only restart in a loop.
#
#   scripts/build-deb.sh                 every architecture built in dist/
#   ARCHES=amd64 scripts/build-deb.sh
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "build-deb: $*" >&2; exit 1; }

# A Debian version starts with a digit: v1.2.3 -> 1.2.3; an untagged tree
# -> 0.0.0+git<commit>.
describe="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
if [[ "$describe" =~ ^v?[0-9]+\.[0-9] ]]; then
  DEBVERSION="${describe#v}"
else
  DEBVERSION="0.0.0+git${describe}"
fi
DEBVERSION="${DEBVERSION//-/+}"
ARCHES="${ARCHES:-amd64 arm64 armhf}"

binary_for() {
  case "$1" in
    amd64) echo dist/doorbridge-linux-amd64 ;;
    arm64) echo dist/doorbridge-linux-arm64 ;;
    armhf) echo dist/doorbridge-linux-arm-v7 ;;
    *) fail "unknown architecture $1 (amd64, arm64, armhf)" ;;
  esac
}

build_one() {
  local arch="$1" bin root deb
  bin="$(binary_for "$arch")"
  [ -x "$bin" ] || fail "$bin missing: run scripts/build-release.sh first"
  root="$(mktemp -d)"
  trap 'rm -rf "$root"' RETURN
  # mktemp's 0700 would become the mode of / on the target.
  chmod 0755 "$root"

  install -D -m 0755 "$bin" "$root/usr/bin/doorbridge"
  install -d -m 0755 "$root/lib/systemd/system"
  sed 's|^ExecStart=/usr/local/bin/doorbridge |ExecStart=/usr/bin/doorbridge |' \
    configs/systemd/doorbridge.service >"$root/lib/systemd/system/doorbridge.service"
  chmod 0644 "$root/lib/systemd/system/doorbridge.service"
  grep -q '^ExecStart=/usr/bin/doorbridge run -c /etc/doorbridge/config.yaml$' "$root/lib/systemd/system/doorbridge.service" ||
    fail "configs/systemd/doorbridge.service: ExecStart is no longer /usr/local/bin/doorbridge run -c /etc/doorbridge/config.yaml; update this script"
  install -D -m 0644 configs/examples/home.yaml "$root/etc/doorbridge/config.yaml.example"
  local doc="$root/usr/share/doc/doorbridge"
  install -D -m 0644 README.md "$doc/README.md"
  install -d -m 0755 "$doc/examples" "$doc/mosquitto"
  install -m 0644 configs/examples/*.yaml configs/demo.yaml "$doc/examples/"
  install -m 0644 configs/mosquitto/* "$doc/mosquitto/"

  install -d -m 0755 "$root/DEBIAN"
  cat >"$root/DEBIAN/control" <<EOF
Package: doorbridge
Version: $DEBVERSION
Architecture: $arch
Maintainer: doorbridge developers <doorbridge@users.noreply.github.com>
Section: net
Priority: optional
Depends: passwd
Recommends: mosquitto
Installed-Size: $(du -sk "$root" | cut -f1)
Homepage: https://github.com/doorbridge/doorbridge
Description: door-lock relays for Home Assistant over MQTT
 doorbridge drives the lock relays of doors (maglocks and strikes) from a
 Raspberry Pi relay HAT, an MCP23017 board or a Modbus relay board, and puts
 every door into Home Assistant over MQTT discovery. Every hazard (fire
 alarm, lost broker, power loss, a crash) turns lock power off.
EOF
  echo /etc/doorbridge/config.yaml.example >"$root/DEBIAN/conffiles"
  install -m 0755 scripts/deb/postinst scripts/deb/prerm scripts/deb/postrm "$root/DEBIAN/"

  deb="dist/doorbridge_${DEBVERSION}_${arch}.deb"
  # Owned by root in the archive whoever builds it; no fakeroot needed.
  dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
  echo "==> $deb"
}

for arch in $ARCHES; do build_one "$arch"; done
