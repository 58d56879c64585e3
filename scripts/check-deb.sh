#!/usr/bin/env bash
# Checks the Debian packages scripts/build-deb.sh made in dist/:
#
# 1. every package: its control fields, that every file is root's with the
#    right mode, that the binary is built for the package's architecture,
#    that the unit runs /usr/bin/doorbridge;
# 2. with DOORBRIDGE_CHECK_DEB_INSTALL=1 (CI; as root, on a machine without
#    doorbridge installed), the package of this machine's architecture is
#    installed with dpkg -i, reinstalled, removed and purged, checking the
#    user, the directories' owners and modes, and what the maintainer
#    scripts ask of systemd (a stand-in systemctl on PATH, since CI runs no
#    systemd): nothing is enabled or started before
#    /etc/doorbridge/config.yaml exists; once it does, the service is
#    enabled and (re)started; remove stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "check-deb: FAIL: $*" >&2; exit 1; }
ok() { echo "    ok: $*"; }

shopt -s nullglob
debs=(dist/doorbridge_*.deb)
[ ${#debs[@]} -gt 0 ] || fail "no dist/doorbridge_*.deb: run scripts/build-release.sh and scripts/build-deb.sh"

check_contents() {
  local deb="$1" arch listing tmp
  arch="$(dpkg-deb --field "$deb" Architecture)"
  echo "==> $deb ($arch)"
  for f in Package Version Maintainer Description Depends; do
    [ -n "$(dpkg-deb --field "$deb" "$f")" ] || fail "$deb: control lacks $f"
  done
  listing="$(dpkg-deb --contents "$deb")"
  awk '$2 != "root/root" { print; bad = 1 } END { exit bad }' <<<"$listing" || fail "$deb: files not owned by root/root"
  want_mode() {
    grep -qE "^$1 +root/root +[0-9]+ [0-9-]+ [0-9:]+ \./$2\$" <<<"$listing" || fail "$deb: ./$2 is not $1"
  }
  want_mode drwxr-xr-x ""
  want_mode -rwxr-xr-x usr/bin/doorbridge
  want_mode -rw-r--r-- lib/systemd/system/doorbridge.service
  want_mode -rw-r--r-- etc/doorbridge/config.yaml.example
  want_mode -rw-r--r-- usr/share/doc/doorbridge/mosquitto/acl
  ok "owners and modes"
  [ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)" = /etc/doorbridge/config.yaml.example ] || fail "$deb: conffiles"
  tmp="$(mktemp -d)"
  dpkg-deb --extract "$deb" "$tmp"
  grep -qx 'ExecStart=/usr/bin/doorbridge run -c /etc/doorbridge/config.yaml' "$tmp/lib/systemd/system/doorbridge.service" || fail "$deb: unit's ExecStart"
  if command -v file >/dev/null; then
    local desc want
    desc="$(file -b "$tmp/usr/bin/doorbridge")"
    case "$arch" in amd64) want=x86-64 ;; arm64) want=aarch64 ;; armhf) want="ARM, EABI5" ;; esac
    grep -qF "$want" <<<"$desc" || fail "$deb: binary is '$desc', want $want"
    ok "binary: $desc"
  fi
  rm -rf "$tmp"
}
for deb in "${debs[@]}"; do check_contents "$deb"; done

if [ "${DOORBRIDGE_CHECK_DEB_INSTALL:-}" != 1 ]; then
  echo "==> dpkg -i not tried (DOORBRIDGE_CHECK_DEB_INSTALL=1 installs the package on this machine)"
  exit 0
fi

# --- install, reinstall with a config, remove, purge -----------------------
[ "$(id -u)" = 0 ] || fail "installing needs root"
native="$(dpkg --print-architecture)"
deb="$(ls dist/doorbridge_*_"$native".deb 2>/dev/null | head -1)"
[ -n "$deb" ] || fail "no package for this machine's architecture ($native)"
if dpkg-query -W doorbridge >/dev/null 2>&1 || [ -e /etc/doorbridge ]; then
  fail "doorbridge is installed here already (or /etc/doorbridge exists): not touching it"
fi
had_user=$(getent passwd doorbridge >/dev/null && echo 1 || echo 0)
new_groups=""
for g in gpio i2c; do getent group "$g" >/dev/null || new_groups="$new_groups $g"; done
fake="$(mktemp -d)"
log="$fake/systemctl.log"
cat >"$fake/systemctl" <<EOF
#!/bin/sh
echo "\$*" >>"$log"
EOF
chmod 0755 "$fake/systemctl"
cleanup() {
  dpkg --purge doorbridge >/dev/null 2>&1 || true
  rm -rf /etc/doorbridge "$fake"
  [ "$had_user" = 1 ] || userdel doorbridge 2>/dev/null || true
  for g in $new_groups; do groupdel "$g" 2>/dev/null || true; done
}
trap cleanup EXIT
as_systemd() { env DOORBRIDGE_TEST_SYSTEMD=1 PATH="$fake:$PATH" "$@"; }

echo "==> dpkg -i $deb (no config yet)"
out="$(as_systemd dpkg -i "$deb" 2>&1)" || { echo "$out"; fail "dpkg -i"; }
grep -q "not started: it has no config yet" <<<"$out" || fail "postinst did not say the service waits for a config:
$out"
touch "$log"
if grep -E 'enable|start' "$log"; then fail "postinst enabled or started the service without a config"; fi
ok "no service enabled or started before a config exists (systemctl: $(tr '\n' ';' <"$log"))"

user="$(getent passwd doorbridge)" || fail "no user doorbridge"
[ "$(cut -d: -f7 <<<"$user")" = /usr/sbin/nologin ] || fail "doorbridge's shell: $user"
for g in gpio i2c dialout; do id -nG doorbridge | tr ' ' '\n' | grep -qx "$g" || fail "doorbridge is not in group $g"; done
ok "user: $user; groups: $(id -nG doorbridge)"
want_dir() {
  [ "$(stat -c '%U:%G %a' "$1")" = "$2" ] || fail "$1 is $(stat -c '%U:%G %a' "$1"), want $2"
  ok "$1 $2"
}
want_dir /etc/doorbridge "root:doorbridge 750"
want_dir /var/lib/doorbridge "doorbridge:doorbridge 700"
v="$(/usr/bin/doorbridge version)"
grep -q "(commit [0-9a-f]\{7,\}" <<<"$v" || fail "doorbridge version: '$v', want the commit"
ok "$v"
/usr/bin/doorbridge check-config -skip-files -c /etc/doorbridge/config.yaml.example >/dev/null || fail "check-config of the example"
ok "check-config -skip-files -c /etc/doorbridge/config.yaml.example"
if command -v systemd-analyze >/dev/null; then
  # Groups and paths of this machine are not the target's; show, do not fail.
  systemd-analyze verify /lib/systemd/system/doorbridge.service 2>&1 | sed 's/^/    systemd-analyze: /' || true
fi

echo "==> with /etc/doorbridge/config.yaml: reinstall"
install -m 0640 -g doorbridge /etc/doorbridge/config.yaml.example /etc/doorbridge/config.yaml
: >"$log"
as_systemd dpkg -i "$deb" >/dev/null 2>&1 || fail "dpkg -i (reinstall)"
grep -qx "enable doorbridge.service" "$log" || fail "postinst did not enable the service once a config exists: $(cat "$log")"
grep -qx "restart doorbridge.service" "$log" || fail "postinst did not start the service once a config exists: $(cat "$log")"
want_dir /etc/doorbridge "root:doorbridge 750"
ok "enabled and started once a config exists (systemctl: $(tr '\n' ';' <"$log"))"

echo "==> dpkg -r, dpkg -P"
: >"$log"
as_systemd dpkg -r doorbridge >/dev/null 2>&1 || fail "dpkg -r"
grep -qx "disable --now doorbridge.service" "$log" || fail "prerm did not stop the service: $(cat "$log")"
[ ! -e /usr/bin/doorbridge ] || fail "/usr/bin/doorbridge left after remove"
[ -e /etc/doorbridge/config.yaml ] || fail "remove deleted the owner's config"
ok "remove stops the service, keeps the config"
as_systemd dpkg -P doorbridge >/dev/null 2>&1 || fail "dpkg -P"
[ ! -e /var/lib/doorbridge ] || fail "/var/lib/doorbridge left after purge"
[ ! -e /etc/doorbridge/config.yaml.example ] || fail "the example conffile left after purge"
ok "purge removes the state and the example; the owner's config.yaml stays"
echo "==> check-deb: all good"
