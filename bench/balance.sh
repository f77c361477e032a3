#!/usr/bin/env bash
# Balancing benchmark (issue 13): round robin against least connections, same router, same
# replicas, same run. Three replicas (busybox httpd CGI on loopback) of which one is slow
# (SLOW_MS per request); wrk sends `Connection: close`, so every request is a new client
# connection and a new choice of replica. Reports req/s and latency percentiles per policy,
# alternating ROUNDS times.
#
# Usage: bench/balance.sh   (builds examples/router_bench in release mode if missing)
# Env:   DURATION (10s) CONNECTIONS (32) SLOW_MS (100) ROUNDS (2)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${ROUTER_BENCH_BIN:-target/release/examples/router_bench}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
SLOW_MS=${SLOW_MS:-100}
ROUNDS=${ROUNDS:-2}
[[ -x $BIN ]] || cargo build --release --example router_bench
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

replica() { # name delay_us
  mkdir -p "$work/$1/cgi-bin"
  cat >"$work/$1/cgi-bin/page" <<CGI
#!/bin/busybox sh
[ $2 -gt 0 ] && /bin/busybox usleep $2
echo "Content-Type: text/plain"
echo
echo $1
CGI
  chmod +x "$work/$1/cgi-bin/page"
  local port; port=$(free_port)
  /bin/busybox httpd -f -p "127.0.0.1:$port" -h "$work/$1" >/dev/null 2>&1 &
  pids+=($!)
  upstreams+="${upstreams:+,}127.0.0.1:$port"
}
upstreams=
replica fast1 0
replica fast2 0
replica slow $((SLOW_MS * 1000))
sleep 0.3

measure() { # rr|lc
  local port; port=$(free_port)
  SCALEFOG_BALANCE=$1 SCALEFOG_LOG=error "$BIN" "127.0.0.1:$port" bench "$upstreams" >/dev/null 2>&1 &
  local pid=$!
  pids+=($pid)
  until curl -s -o /dev/null "http://127.0.0.1:$port/"; do sleep 0.1; done
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -H "Host: bench.localhost" -H "Connection: close" \
    "http://127.0.0.1:$port/cgi-bin/page" |
    awk -v name="$1" '/Requests\/sec/ {r=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Non-2xx|Socket errors/ {e=e" "$0}
      END {printf "%-20s %10.0f %10s %10s %s\n", name, r, p50, p99, e}'
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
printf '%-20s %10s %10s %10s\n' "policy" "req/s" "p50" "p99"
for _ in $(seq 1 "$ROUNDS"); do
  measure rr | sed 's/^rr  /round robin/'
  measure lc | sed 's/^lc  /least conns/'
done
