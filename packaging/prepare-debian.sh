#!/usr/bin/env bash
# Prepares a Debian host for Scalefog: installs the Debian packages given as arguments that are
# missing (running `apt-get update` first), then starts `dockerd` in the background when the
# Docker engine does not answer, and waits for it. Used by the README's two commands (running
# Scalefog, and `.ci/run` for the tests).
#
# Usage: packaging/prepare-debian.sh docker.io git openssh-client
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "prepare: installing ${missing[*]}"
  as_root apt-get update -q
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q "${missing[@]}"
fi

if ! docker info >/dev/null 2>&1; then
  echo "prepare: starting dockerd"
  as_root sh -c 'nohup dockerd >/tmp/dockerd.log 2>&1 &'
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { echo "prepare: dockerd did not start"; tail -n 30 /tmp/dockerd.log; exit 1; }
fi
