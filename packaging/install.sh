#!/usr/bin/env bash
# Installs Scalefog on Debian or Ubuntu as a systemd service. Run as root from the source tree:
#
#   packaging/install.sh                     # builds the .deb here (cargo deb) and installs it
#   packaging/install.sh scalefog_*.deb      # installs a .deb built elsewhere
#   packaging/install.sh --binary PATH       # no package: the binary plus packaging/'s files
#
# Installs Docker (Debian's docker.io) when no engine answers, starts the service, and prints
# the console URL and the first three steps.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "install: $*"; }
die() { say "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0 $*)"
# shellcheck disable=SC1091
. /etc/os-release
case " ${ID:-} ${ID_LIKE:-} " in
  *" debian "* | *" ubuntu "*) ;;
  *) die "this installer knows Debian and Ubuntu only (found ${ID:-unknown})" ;;
esac

apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return
  say "installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

systemd_running() { [ -d /run/systemd/system ]; }

# Docker: any engine that answers will do (docker-ce, docker.io); otherwise Debian's.
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || apt_install docker.io
  if systemd_running; then
    systemctl enable --now docker
  else
    say "systemd is not running: start dockerd yourself"
  fi
fi

case "${1:-}" in
  --binary)
    bin="${2:?--binary needs the path of the scalefog binary}"
    apt_install git adduser
    install -m755 "$bin" /usr/bin/scalefog
    install -Dm644 packaging/scalefog.service /lib/systemd/system/scalefog.service
    install -Dm644 packaging/scalefog.sysusers /usr/lib/sysusers.d/scalefog.conf
    install -Dm644 packaging/scalefog.tmpfiles /usr/lib/tmpfiles.d/scalefog.conf
    # An existing settings file is the operator's: never overwritten.
    [ -e /etc/scalefog/scalefog.toml ] || install -Dm640 packaging/scalefog.toml /etc/scalefog/scalefog.toml
    # The package's own set-up: the user, its docker group, the directories.
    sh packaging/debian/postinst configure
    ;;
  "")
    command -v cargo >/dev/null || die "cargo is needed to build the package (or give a .deb, or --binary PATH)"
    cargo deb --version >/dev/null 2>&1 || cargo install cargo-deb --locked
    say "building the package (a release build: about 10 minutes on 2 cores)"
    cargo deb --locked
    deb="$(ls -t target/debian/scalefog_*.deb | head -n1)"
    apt-get install -y -q "$(realpath "$deb")"
    ;;
  *.deb)
    apt-get install -y -q "$(realpath "$1")"
    ;;
  *) die "usage: $0 [scalefog.deb | --binary PATH]" ;;
esac

# The settings the summary needs, from the file (or their defaults).
setting() {
  local v
  v="$(sed -n "s/^$1[[:space:]]*=[[:space:]]*\"\(.*\)\"/\1/p" /etc/scalefog/scalefog.toml | tail -n1)"
  echo "${v:-$2}"
}
http="$(setting http_listen 127.0.0.1:8080)"
ssh_port="$(setting ssh_listen 0.0.0.0:2222)"
ssh_port="${ssh_port##*:}"
host="$(setting public_ssh_host "$(hostname -f 2>/dev/null || hostname)")"

if systemd_running; then
  systemctl daemon-reload
  systemctl enable scalefog >/dev/null
  systemctl restart scalefog
  command -v curl >/dev/null || apt_install curl
  for _ in $(seq 1 30); do
    curl -fsS "http://$http/healthz" >/dev/null 2>&1 && break
    sleep 1
  done
  curl -fsS "http://$http/healthz" >/dev/null 2>&1 \
    || die "scalefog did not answer on http://$http/healthz; see: journalctl -u scalefog"
  started="Scalefog is running (systemctl status scalefog; logs: journalctl -u scalefog)."
else
  started="systemd is not running here; start Scalefog with:
  runuser -u scalefog -- /usr/bin/scalefog serve --config /etc/scalefog/scalefog.toml"
fi

cat <<SUMMARY

$started
Settings: /etc/scalefog/scalefog.toml (set domain and public_ssh_host to this server's DNS
names, then: systemctl restart scalefog).

Console: http://$http/console
  (on loopback: from your machine, ssh -L 8080:$http root@$host, then open
  http://127.0.0.1:8080/console)

First steps:
  1. Open the console and register: the first account is the admin.
  2. Add your SSH public key: console, SSH keys (or POST /account/addkey).
  3. Create an app (console, New app) and push to it:
       git remote add scalefog ssh://git@$host:$ssh_port/APP.git && git push scalefog main
SUMMARY
