#!/usr/bin/env bash
# Start-up benchmark: time from exec to the first 200 from /healthz (the API listening, the store
# open, reconcile started), on an empty data dir and on one holding APPS deployed apps; the
# median of ROUNDS starts each. Also prints the binary's size.
#
# Usage: bench/startup.sh [binary]        (target/release/scalefog)
# Env:   APPS (50) ROUNDS (10)
# Needs: docker, git, ssh, curl, python3, /bin/busybox (busybox-static).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/scalefog}
APPS=${APPS:-50}
ROUNDS=${ROUNDS:-10}
work=$(mktemp -d)
pid=
stop() { [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; pid=; }
cleanup() {
  stop
  local install
  install=$(cat "$work/data/install.id" 2>/dev/null || true)
  if [[ -n $install ]]; then
    docker ps -aq --filter "label=scalefog.install=$install" | xargs -r docker rm -f >/dev/null
    docker images -q --filter "label=scalefog.install=$install" | sort -u | xargs -r docker rmi -f >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP=$(free_port); SSH=$(free_port); PROXY=$(free_port)
api=http://127.0.0.1:$HTTP
start() {
  SCALEFOG_LOG=warn "$BIN" serve --data-dir "$work/data" --http-listen "127.0.0.1:$HTTP" \
    --ssh-listen "127.0.0.1:$SSH" --proxy-listen "127.0.0.1:$PROXY" >>"$work/server.log" 2>&1 &
  pid=$!
}
# Seconds from exec to the first /healthz 200, with a clock that starts before the exec, in
# $took (not printed: a $(…) subshell would lose $pid).
timed_start() {
  local t0 t1
  t0=$(date +%s%N); start
  until curl -sf "$api/healthz" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
    sleep 0.005
  done
  t1=$(date +%s%N)
  took=$(echo "scale=3; ($t1 - $t0) / 1000000000" | bc)
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "binary: $BIN, $(du -h "$BIN" | cut -f1) ($(stat -c %s "$BIN") bytes)"
times=()
for _ in $(seq "$ROUNDS"); do
  rm -rf "$work/data"; timed_start; times+=("$took"); stop
done
echo "start to /healthz, empty data dir: median $(median "${times[@]}") s (${times[*]})"

timed_start
curl -sf -d "username=bench&email=bench@example.com&password=bench-password" "$api/account/register" >/dev/null
token=$(curl -sf -d "username=bench&password=bench-password" "$api/account/getToken" | sed 's/.*"token":"\([^"]*\)".*/\1/')
ssh-keygen -q -t ed25519 -N '' -f "$work/key"
curl -sf -H "Authorization: Bearer $token" --data-urlencode "sshkey=$(cat "$work/key.pub")" "$api/account/addkey" >/dev/null
export GIT_SSH_COMMAND="ssh -i $work/key -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
repo=$work/repo
mkdir -p "$repo/www"; cp /bin/busybox "$repo/"; echo hello >"$repo/www/index.html"
printf '%s\n' 'FROM scratch' 'COPY busybox /bin/busybox' 'COPY www /www' \
  'CMD ["/bin/busybox", "sh", "-c", "exec /bin/busybox httpd -f -p $PORT -h /www"]' >"$repo/Dockerfile"
git -C "$repo" init -q -b main
git -C "$repo" -c user.name=b -c user.email=b@x add -A
git -C "$repo" -c user.name=b -c user.email=b@x commit -qm init
for i in $(seq "$APPS"); do
  curl -sf -H "Authorization: Bearer $token" -d "appname=st-$i" "$api/instances/create" >/dev/null
  git -C "$repo" push -q "ssh://git@127.0.0.1:$SSH/st-$i.git" main 2>"$work/push.log" || { cat "$work/push.log"; exit 1; }
done
stop
times=()
for _ in $(seq "$ROUNDS"); do timed_start; times+=("$took"); sleep 1; stop; done
echo "start to /healthz, $APPS deployed apps: median $(median "${times[@]}") s (${times[*]})"
