#!/usr/bin/env bash
# API benchmark (issue 2): a user owning 1,000 instances, measured with wrk.
#   GET /v1/instances?per_page=50   target >= 10,000 req/s, p99 <= 5 ms
#   GET /instances (all 1,000)      target >= 1,500 req/s
#   idle RSS of `scalefog serve` with an empty store, target <= 20 MB
# Baseline in the same run: GET /v1/regions (no auth, no store scan, tiny body) shows what the
# HTTP stack itself does on this machine, so the figures above can be read against it.
#
# Usage: bench/api.sh            (builds nothing; uses $SCALEFOG_BIN or target/release/scalefog)
# Needs: wrk, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SCALEFOG_BIN:-target/release/scalefog}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
[ -x "$BIN" ] || { echo "no binary at $BIN: run 'cargo build --release' first" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }

work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SCALEFOG_LOG=warn "$BIN" --data-dir "$work/data" --http-listen "127.0.0.1:$port" \
  --ssh-listen 127.0.0.1:0 --proxy-listen 127.0.0.1:0 serve 2>"$work/log" &
pid=$!
API="http://127.0.0.1:$port"
for _ in $(seq 1 100); do curl -fs "$API/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
sleep 2
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
echo "idle RSS (empty store): $((rss_kb / 1024)) MB ($rss_kb kB)   target <= 20 MB"

curl -fs -d "username=bench&email=bench@example.com&password=bench-password" "$API/account/register" >/dev/null
TOKEN=$(curl -fs -d "username=bench&password=bench-password" "$API/account/getToken" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["token"])')

echo "creating 1,000 instances..."
python3 - "$port" "$TOKEN" <<'PY'
import http.client, sys, concurrent.futures
port, token = int(sys.argv[1]), sys.argv[2]
def create(chunk):
    c = http.client.HTTPConnection("127.0.0.1", port)
    for i in chunk:
        c.request("POST", "/instances/create", body=f"appname=app-{i:04d}",
                  headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse(); r.read()
        assert r.status == 200, r.status
with concurrent.futures.ThreadPoolExecutor(8) as ex:
    list(ex.map(create, [range(k, 1000, 8) for k in range(8)]))
PY
count=$(curl -fs -D - -o /dev/null -H "Authorization: Bearer $TOKEN" "$API/v1/instances?per_page=1" | awk -F': ' 'tolower($1)=="x-total-count" {print $2}' | tr -d '\r')
echo "instances owned: $count"

run() { # name url [auth]
  local name=$1 url=$2 out
  if [ "${3:-}" = auth ]; then
    out=$(wrk -t2 -c"$CONNS" -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" "$url")
  else
    out=$(wrk -t2 -c"$CONNS" -d"$DURATION" --latency "$url")
  fi
  local rps p99 errs
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errs=$(grep -E 'Non-2xx|Socket errors' <<<"$out" || true)
  printf '%-44s %12s req/s   p99 %8s   %s\n' "$name" "$rps" "$p99" "$errs"
}
echo "wrk: 2 threads, $CONNS connections, $DURATION each, keep-alive"
run "baseline GET /v1/regions" "$API/v1/regions"
run "GET /v1/instances?per_page=50" "$API/v1/instances?per_page=50" auth
run "GET /instances (all 1,000)" "$API/instances" auth
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
echo "RSS after load: $((rss_kb / 1024)) MB"
