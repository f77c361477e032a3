#!/usr/bin/env bash
# Sign-in latency, side by side: every build given is started on its own data dir, one account
# is registered on each, then ROUNDS rounds each time one sign-in (POST /account/getToken) per
# build in turn, so load from anything else on the machine falls on all builds alike.
# Prints the median and 90th percentile per build, and its RSS after the rounds.
#
# Usage: bench/signin.sh new=target/release/scalefog old=/tmp/old/scalefog
# Env:   ROUNDS (40)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-40}
[[ $# -gt 0 ]] || set -- "scalefog=target/release/scalefog"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

specs=()
for arg in "$@"; do
  name=${arg%%=*} bin=${arg#*=}
  http=$(free_port) ssh=$(free_port) proxy=$(free_port)
  SCALEFOG_LOG=warn "$bin" serve --data-dir "$work/$name" --http-listen "127.0.0.1:$http" \
    --ssh-listen "127.0.0.1:$ssh" --proxy-listen "127.0.0.1:$proxy" >"$work/$name.log" 2>&1 &
  pids+=($!)
  until curl -sf "http://127.0.0.1:$http/healthz" >/dev/null; do sleep 0.1; done
  curl -sf -d "username=bench&email=bench@example.com&password=bench-password" \
    "http://127.0.0.1:$http/account/register" >/dev/null
  specs+=("$name:$http:$!")
done

python3 - "$ROUNDS" "${specs[@]}" <<'PY'
import http.client, sys, time, statistics
rounds, specs = int(sys.argv[1]), [s.split(":") for s in sys.argv[2:]]
times = {name: [] for name, _, _ in specs}
for _ in range(rounds):
    for name, port, _ in specs:
        c = http.client.HTTPConnection("127.0.0.1", int(port))
        t = time.perf_counter()
        c.request("POST", "/account/getToken", body="username=bench&password=bench-password",
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse(); r.read()
        assert r.status == 200, r.status
        times[name].append((time.perf_counter() - t) * 1000)
print(f"{'sign-in':<12} {'median':>8} {'p90':>8} {'RSS after':>10}")
for name, _, pid in specs:
    ts = sorted(times[name])
    rss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS"))
    print(f"{name:<12} {statistics.median(ts):>6.1f}ms {ts[int(len(ts) * 0.9)]:>6.1f}ms {rss / 1024:>8.1f}MB")
PY
