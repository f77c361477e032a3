#!/usr/bin/env bash
# Footprint benchmark: the resident memory (RSS) of `scalefog serve` at the moments users meet it.
#
#   fresh        empty store, 2 s after start
#   sign-ins     after 20 sign-ins (POST /account/getToken) from 4 threads at once; the peak
#                (VmHWM) during them and the sign-in latency (one at a time, median of 10)
#   50 apps      after 50 apps were deployed by `git push` over SSH, one after another
#   API load     after 1,000 more apps and `wrk` on GET /v1/instances?per_page=50 and
#                GET /instances (all apps), 10 s each
#   +60 s        one minute after the load ended
# Goals (issue 18): <= 22 MB after sign-ins, <= 30 MB with 50 apps, <= 30 MB a minute after load.
#
# Several builds or settings can be measured side by side in the same run: each argument is
# `name=binary`, or `name=ENV=value,ENV2=value:binary` to start that binary with variables set
# (for comparing an allocator setting without rebuilding).
#
# Usage: bench/footprint.sh                       (target/release/scalefog)
#        bench/footprint.sh new=target/release/scalefog old=/tmp/old/scalefog
# Env:   APPS (50) LOAD_APPS (1000) DURATION (10s) SETTLE (60)
# Needs: docker, git, ssh, wrk, curl, python3, /bin/busybox (busybox-static).
set -euo pipefail
cd "$(dirname "$0")/.."
APPS=${APPS:-50}
LOAD_APPS=${LOAD_APPS:-1000}
DURATION=${DURATION:-10s}
SETTLE=${SETTLE:-60}
[[ $# -gt 0 ]] || set -- "scalefog=target/release/scalefog"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }

work=$(mktemp -d)
pid=
stop_server() {
  [[ -n $pid ]] || return 0
  local install
  install=$(cat "$work/data/install.id" 2>/dev/null || true)
  kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  pid=
  if [[ -n $install ]]; then
    docker ps -aq --filter "label=scalefog.install=$install" | xargs -r docker rm -f >/dev/null
    docker images -q --filter "label=scalefog.install=$install" | sort -u | xargs -r docker rmi -f >/dev/null 2>&1 || true
  fi
}
cleanup() { stop_server; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$pid/status"; }
hwm() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$pid/status"; }

# One app repository, pushed to every app (a FROM scratch image serving a page with busybox).
repo=$work/repo
mkdir -p "$repo/www"; cp /bin/busybox "$repo/"
cat >"$repo/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
COPY www /www
CMD ["/bin/busybox", "sh", "-c", "exec /bin/busybox httpd -f -p $PORT -h /www"]
DOCKERFILE
echo hello >"$repo/www/index.html"
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
git -C "$repo" init -q -b main
git -C "$repo" -c user.name=b -c user.email=b@x add -A
git -C "$repo" -c user.name=b -c user.email=b@x commit -qm init
ssh-keygen -q -t ed25519 -N '' -f "$work/key"
export GIT_SSH_COMMAND="ssh -i $work/key -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"

measure() { # name env binary
  local name=$1 env=$2 bin=$3
  rm -rf "$work/data"
  local http ssh proxy
  http=$(free_port); ssh=$(free_port); proxy=$(free_port)
  local -a vars=()
  [[ -n $env ]] && IFS=, read -ra vars <<<"$env"
  env ${vars[@]+"${vars[@]}"} SCALEFOG_LOG=warn "$bin" serve --data-dir "$work/data" \
    --http-listen "127.0.0.1:$http" --ssh-listen "127.0.0.1:$ssh" \
    --proxy-listen "127.0.0.1:$proxy" >"$work/server.log" 2>&1 &
  pid=$!
  local api=http://127.0.0.1:$http
  until curl -sf "$api/healthz" >/dev/null; do
    kill -0 "$pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
    sleep 0.1
  done
  sleep 2
  local fresh; fresh=$(rss)

  curl -sf -d "username=bench&email=bench@example.com&password=bench-password" "$api/account/register" >/dev/null
  local latency
  latency=$(python3 - "$http" <<'PY'
import http.client, sys, time, statistics, concurrent.futures
port = int(sys.argv[1])
def sign_in():
    c = http.client.HTTPConnection("127.0.0.1", port)
    t = time.perf_counter()
    c.request("POST", "/account/getToken", body="username=bench&password=bench-password",
              headers={"Content-Type": "application/x-www-form-urlencoded"})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
    return time.perf_counter() - t
# 20 at once from 4 threads, then 10 alone for the latency.
with concurrent.futures.ThreadPoolExecutor(4) as ex:
    list(ex.map(lambda _: sign_in(), range(20)))
print(f"{statistics.median(sign_in() for _ in range(10)) * 1000:.0f}")
PY
)
  local signin_peak signin; signin_peak=$(hwm); signin=$(rss)
  local token
  token=$(curl -sf -d "username=bench&password=bench-password" "$api/account/getToken" | sed 's/.*"token":"\([^"]*\)".*/\1/')
  curl -sf -H "Authorization: Bearer $token" --data-urlencode "sshkey=$(cat "$work/key.pub")" "$api/account/addkey" >/dev/null

  local i
  for i in $(seq 1 "$APPS"); do
    curl -sf -H "Authorization: Bearer $token" -d "appname=fp-$i" "$api/instances/create" >/dev/null
    git -C "$repo" push -q "ssh://git@127.0.0.1:$ssh/fp-$i.git" main 2>"$work/push.log" \
      || { cat "$work/push.log"; exit 1; }
  done
  sleep 2
  local deployed; deployed=$(rss)

  python3 - "$http" "$token" "$LOAD_APPS" <<'PY'
import http.client, sys, concurrent.futures
port, token, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
def create(chunk):
    c = http.client.HTTPConnection("127.0.0.1", port)
    for i in chunk:
        c.request("POST", "/instances/create", body=f"appname=load-{i:05d}",
                  headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse(); r.read()
        assert r.status == 200, r.status
with concurrent.futures.ThreadPoolExecutor(8) as ex:
    list(ex.map(create, [range(k, n, 8) for k in range(8)]))
PY
  local rps1 rps2
  rps1=$(wrk -t2 -c32 -d"$DURATION" -H "Authorization: Bearer $token" "$api/v1/instances?per_page=50" | awk '/Requests\/sec/ {printf "%.0f", $2}')
  rps2=$(wrk -t2 -c32 -d"$DURATION" -H "Authorization: Bearer $token" "$api/instances" | awk '/Requests\/sec/ {printf "%.0f", $2}')
  local loaded; loaded=$(rss)
  sleep "$SETTLE"
  local settled; settled=$(rss)
  printf '%-22s %7s %9s %9s %8s %9s %8s %9s %11s %9s\n' "$name" "$fresh" "$signin_peak" "$signin" \
    "${latency}ms" "$deployed" "$loaded" "$settled" "$rps1" "$rps2"
  stop_server
}

printf '%-22s %7s %9s %9s %8s %9s %8s %9s %11s %9s\n' "RSS in MB" fresh "sign-in↑" sign-ins \
  "sign-in" "$APPS apps" "load" "+${SETTLE}s" "page req/s" "all req/s"
for arg in "$@"; do
  name=${arg%%=*}; rest=${arg#*=}
  if [[ $rest == *:* ]]; then env=${rest%%:*}; bin=${rest#*:}; else env=; bin=$rest; fi
  [[ -x $bin ]] || { echo "no binary at $bin" >&2; exit 1; }
  measure "$name" "$env" "$bin"
done
