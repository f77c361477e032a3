#!/usr/bin/env bash
# Benchmark of the app router against nginx, same backend, same run.
#
#   backend : nginx (1 worker) serving a small static file on 127.0.0.1:$BACKEND_PORT
#   nginx   : proxy_pass to the backend with an upstream keepalive pool, on $NGINX_PORT
#   router  : Scalefog's router (examples/router_bench: the real Application with one route
#             set on its route table, as the deploy engine sets it) on $ROUTER_PORT
#
# Both proxies run without access logs. wrk uses keep-alive connections. Both get the same
# CPUs: nginx runs `worker_processes auto` (one worker per core), the router one
# single-threaded runtime per core (src/router/workers.rs).
#
# Besides requests/s and p99, each line gives the proxy's CPU time per request (user + system
# time of its processes during the run, from /proc): on a machine shared with other work,
# throughput and latency move with the load, CPU per request much less.
#
# Usage: bench/router.sh            (builds the example in release mode if it is missing)
# Env:   ROUTER_BENCH_BIN  the router binary [target/release/examples/router_bench]
#        COMPARE_BIN       a second router binary (e.g. an older build), measured in the same
#                          rounds as `router-b` on $COMPARE_PORT
#        DURATION (10s) CONNECTIONS (64) THREADS (2) ROUNDS (2)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${ROUTER_BENCH_BIN:-target/release/examples/router_bench}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-2}
BACKEND_PORT=${BACKEND_PORT:-18081}
NGINX_PORT=${NGINX_PORT:-18082}
ROUTER_PORT=${ROUTER_PORT:-18083}
COMPARE_BIN=${COMPARE_BIN:-}
COMPARE_PORT=${COMPARE_PORT:-18084}

command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }
command -v nginx >/dev/null || { echo "nginx is required (apt-get install nginx-light)" >&2; exit 1; }
if [ ! -x "$BIN" ]; then
  cargo build --release --example router_bench
fi

WORK=$(mktemp -d)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/www" "$WORK/backend" "$WORK/proxy"
# A small page, about the size of nginx's default index.
head -c 600 /dev/zero | tr '\0' 'x' > "$WORK/www/index.html"

common() {  # $1 = prefix dir
  cat <<CONF
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
CONF
}
http_common() {  # $1 = prefix dir
  cat <<CONF
  access_log off;
  client_body_temp_path $1/body;
  proxy_temp_path $1/proxy;
  fastcgi_temp_path $1/fastcgi;
  uwsgi_temp_path $1/uwsgi;
  scgi_temp_path $1/scgi;
  keepalive_requests 1000000;
CONF
}

{ common "$WORK/backend"; cat <<CONF
worker_processes 1;
events { worker_connections 4096; }
http {
$(http_common "$WORK/backend")
  server {
    listen 127.0.0.1:$BACKEND_PORT;
    root $WORK/www;
  }
}
CONF
} > "$WORK/backend/nginx.conf"

{ common "$WORK/proxy"; cat <<CONF
worker_processes auto;
events { worker_connections 4096; }
http {
$(http_common "$WORK/proxy")
  upstream app { server 127.0.0.1:$BACKEND_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$host;
    }
  }
}
CONF
} > "$WORK/proxy/nginx.conf"

nginx -p "$WORK/backend" -c "$WORK/backend/nginx.conf" & PIDS+=($!)
nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" & PIDS+=($!)
NGINX_PID=$!
# Their logs go to files (shown if they do not answer): warnings such as an unreachable Docker
# engine have nothing to do with routing and would bury the figures.
"$BIN" "127.0.0.1:$ROUTER_PORT" bench "127.0.0.1:$BACKEND_PORT" 2>"$WORK/router.log" & PIDS+=($!)
ROUTER_PID=$!
if [ -n "$COMPARE_BIN" ]; then
  "$COMPARE_BIN" "127.0.0.1:$COMPARE_PORT" bench "127.0.0.1:$BACKEND_PORT" 2>"$WORK/router-b.log" & PIDS+=($!)
  COMPARE_PID=$!
fi

wait_for() {  # $1 = port
  for _ in $(seq 100); do
    if curl -sf -o /dev/null -H "Host: bench.localhost" "http://127.0.0.1:$1/index.html"; then return 0; fi
    sleep 0.1
  done
  echo "nothing answers on port $1" >&2
  tail -n 20 "$WORK"/*.log >&2 || true
  exit 1
}
wait_for "$BACKEND_PORT"; wait_for "$NGINX_PORT"; wait_for "$ROUTER_PORT"
[ -z "$COMPARE_BIN" ] || wait_for "$COMPARE_PORT"

# Clock ticks of user + system time of a process and its children's threads (nginx: the
# master and its workers).
cpu_ticks() {  # $1 = pid
  local total=0 p
  for p in $1 $(pgrep -P "$1" || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}

run() {  # $1 = name, $2 = port, $3 = pid
  local out before after
  before=$(cpu_ticks "$3")
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
    -H "Host: bench.localhost" "http://127.0.0.1:$2/index.html")
  after=$(cpu_ticks "$3")
  local rps p99 errors reqs cpu
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  cpu=$(( (after - before) * 1000000 / $(getconf CLK_TCK) / (reqs > 0 ? reqs : 1) ))
  errors=$(grep -E "Non-2xx|Socket errors" <<<"$out" | tr '\n' ' ' || true)
  printf '%-8s %12s req/s   p99 %8s   cpu %4s us/req   load %s   %s\n' \
    "$1" "$rps" "$p99" "$cpu" "$(cut -d' ' -f1 /proc/loadavg)" "$errors"
}

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, keep-alive, 600-byte static file"
# Warm both proxies (connection pools, caches) before measuring.
wrk -t1 -c8 -d2s -H "Host: bench.localhost" "http://127.0.0.1:$NGINX_PORT/index.html" >/dev/null
wrk -t1 -c8 -d2s -H "Host: bench.localhost" "http://127.0.0.1:$ROUTER_PORT/index.html" >/dev/null
[ -z "$COMPARE_BIN" ] ||
  wrk -t1 -c8 -d2s -H "Host: bench.localhost" "http://127.0.0.1:$COMPARE_PORT/index.html" >/dev/null
# Every other round runs in the opposite order, so that a machine getting busier or quieter
# during the run does not favour whichever goes first.
for round in $(seq "$ROUNDS"); do
  echo "round $round"
  if [ $((round % 2)) = 1 ]; then
    run nginx "$NGINX_PORT" "$NGINX_PID"
    run router "$ROUTER_PORT" "$ROUTER_PID"
    [ -z "$COMPARE_BIN" ] || run router-b "$COMPARE_PORT" "$COMPARE_PID"
  else
    [ -z "$COMPARE_BIN" ] || run router-b "$COMPARE_PORT" "$COMPARE_PID"
    run router "$ROUTER_PORT" "$ROUTER_PID"
    run nginx "$NGINX_PORT" "$NGINX_PID"
  fi
done
