#!/usr/bin/env bash
# Replicas benchmark (issue 13): the same app at 1 and at 3 `web` replicas, in the same run.
#
#   throughput  wrk through the app router (Host: <app>.localhost) on a CGI page that costs CPU
#               per request (a busybox sh loop), at web=1, then web=3. Each replica has the
#               app's default CPU limit (1 core), so req/s should grow with replicas until the
#               machine's cores are the limit.
#   deploy      `git push` of a one-line change until the push returns (all replicas built,
#               started, health-checked and switched), at web=3 and at web=1.
#
# Usage: bench/replicas.sh [binary]   (default target/release/scalefog)
# Env:   DURATION (10s) CONNECTIONS (16) LOOPS (3000: shell iterations per request) PUSHES (3)
# Needs: docker, git, ssh, wrk, curl, python3, /bin/busybox (busybox-static).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/scalefog}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16}
LOOPS=${LOOPS:-3000}
PUSHES=${PUSHES:-3}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }

work=$(mktemp -d)
pid=
cleanup() {
  if [[ -n $pid ]]; then
    local install; install=$(cat "$work/data/install.id" 2>/dev/null || true)
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    if [[ -n $install ]]; then
      docker ps -aq --filter "label=scalefog.install=$install" | xargs -r docker rm -f >/dev/null
      docker images -q --filter "label=scalefog.install=$install" | sort -u | xargs -r docker rmi -f >/dev/null 2>&1 || true
      docker network ls -q --filter "label=scalefog.install=$install" | xargs -r docker network rm >/dev/null 2>&1 || true
    fi
  fi
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

repo=$work/repo
mkdir -p "$repo/www/cgi-bin"; cp /bin/busybox "$repo/"
cat >"$repo/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
COPY www /www
DOCKERFILE
cat >"$repo/www/cgi-bin/work" <<CGI
#!/bin/busybox sh
i=0
while [ \$i -lt $LOOPS ]; do i=\$((i+1)); done
echo "Content-Type: text/plain"
echo
echo "done \$i"
CGI
chmod +x "$repo/www/cgi-bin/work"
echo "web: /bin/busybox httpd -f -p \$PORT -h /www" >"$repo/Procfile"
echo v1 >"$repo/www/index.html"
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
git -C "$repo" init -q -b main
commit() { echo "$1" >"$repo/www/index.html"; git -C "$repo" -c user.name=b -c user.email=b@x add -A; git -C "$repo" -c user.name=b -c user.email=b@x commit -qm "$1"; }
commit v1
ssh-keygen -q -t ed25519 -N '' -f "$work/key"
export GIT_SSH_COMMAND="ssh -i $work/key -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"

http=$(free_port) ssh=$(free_port) proxy=$(free_port)
SCALEFOG_LOG=warn "$BIN" serve --data-dir "$work/data" --http-listen "127.0.0.1:$http" \
  --ssh-listen "127.0.0.1:$ssh" --proxy-listen "127.0.0.1:$proxy" >"$work/server.log" 2>&1 &
pid=$!
api=http://127.0.0.1:$http
until curl -sf "$api/healthz" >/dev/null; do kill -0 "$pid" || { cat "$work/server.log"; exit 1; }; sleep 0.1; done
curl -sf -d "username=bench&email=bench@example.com&password=bench-password" "$api/account/register" >/dev/null
token=$(curl -sf -d "username=bench&password=bench-password" "$api/account/getToken" | sed 's/.*"token":"\([^"]*\)".*/\1/')
curl -sf -H "Authorization: Bearer $token" --data-urlencode "sshkey=$(cat "$work/key.pub")" "$api/account/addkey" >/dev/null
curl -sf -H "Authorization: Bearer $token" -d "appname=replicas" "$api/instances/create" >/dev/null
remote="ssh://git@127.0.0.1:$ssh/replicas.git"
git -C "$repo" push -q "$remote" main 2>"$work/push.log" || { cat "$work/push.log"; exit 1; }

scale() {
  curl -sf -X PATCH -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d "{\"web\": $1}" "$api/v1/instances/replicas/formation" >/dev/null
}
rps() {
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" -H "Host: replicas.localhost" \
    "http://127.0.0.1:$proxy/cgi-bin/work" | awk '/Requests\/sec/ {r=$2} /Non-2xx|Socket errors/ {e=e" "$0} END {printf "%.0f%s", r, e}'
}
# The median of PUSHES pushes of a one-line change, in seconds.
push_time() {
  local n=$1 times=()
  for i in $(seq 1 "$PUSHES"); do
    commit "web$n-$i"
    local t0; t0=$(date +%s.%N)
    git -C "$repo" push -q "$remote" main 2>"$work/push.log" || { cat "$work/push.log"; exit 1; }
    times+=("$(echo "$(date +%s.%N) - $t0" | bc)")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]}'
}

curl -sf -H "Host: replicas.localhost" "http://127.0.0.1:$proxy/cgi-bin/work" >/dev/null
r1=$(rps)
scale 3
r3=$(rps)
d3=$(push_time 3)
scale 1
d1=$(push_time 1)
printf '%-10s %12s %14s\n' "web" "CGI req/s" "push → live"
printf '%-10s %12s %13ss\n' "1 replica" "$r1" "$d1"
printf '%-10s %12s %13ss\n' "3 replicas" "$r3" "$d3"
