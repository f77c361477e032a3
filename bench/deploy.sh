#!/usr/bin/env bash
# Deploy benchmark: push→serving of the busybox app (FROM scratch + Debian busybox-static httpd)
# on a warm build cache, against raw `docker build` + `docker run` + first 200 of the same
# context in the same run; then 20 concurrent deploys to 20 apps.
#
# Two drivers, because deploys can be triggered two ways depending on what the build contains:
#
#   MODE=inproc (default; works on every branch)
#     Runs the ignored integration test `bench_deploy_push_to_serving_against_raw_docker`, which
#     starts a real server in-process and calls the deploy engine's push handler exactly as the
#     SSH pre-receive hook does (a real bare repo, git archive, real Docker); the clock runs from
#     the handler call to the first 200 from the new container. It does not use $SCALEFOG_BIN.
#     PROFILE=release (default) or PROFILE=debug.
#
#   MODE=push (needs the SSH server and the router: the merged build)
#     Starts $SCALEFOG_BIN serve, registers a user and an SSH key, creates the app, and times a
#     real `git push` until the first 200 through the app router (Host: <app>.localhost), against
#     raw docker on the same context; then 20 concurrent `git push`es to 20 apps.
#
# Usage: SCALEFOG_BIN=target/release/scalefog bench/deploy.sh            (MODE=push)
#        MODE=inproc PROFILE=debug bench/deploy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${MODE:-inproc}
ROUNDS=${BENCH_ROUNDS:-5}

if [[ $MODE == inproc ]]; then
  flag=--release
  [[ ${PROFILE:-release} == debug ]] && flag=
  BENCH_ROUNDS=$ROUNDS cargo test $flag --test api deploy::bench_deploy -- --ignored --nocapture 2>&1 \
    | grep -E '^BENCH|test result|panicked'
  exit 0
fi

: "${SCALEFOG_BIN:?set SCALEFOG_BIN to the scalefog binary}"
work=$(mktemp -d)
label="scalefog-bench=$$"
cleanup() {
  [[ -n ${pid:-} ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  docker ps -aq --filter "label=$label" | xargs -r docker rm -f >/dev/null
  docker images -q --filter "label=$label" | xargs -r docker rmi -f >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP=$(free_port); SSH=$(free_port); PROXY=$(free_port)
"$SCALEFOG_BIN" serve --data-dir "$work/data" --http-listen 127.0.0.1:$HTTP \
  --ssh-listen 127.0.0.1:$SSH --proxy-listen 127.0.0.1:$PROXY \
  --max-concurrent-deploys 20 >"$work/server.log" 2>&1 &
pid=$!
api=http://127.0.0.1:$HTTP
until curl -sf "$api/healthz" >/dev/null; do sleep 0.1; done
curl -sf -d "username=bench&email=bench@example.com&password=bench-password" "$api/account/register" >/dev/null
token=$(curl -sf -d "username=bench&password=bench-password" "$api/account/getToken" | sed 's/.*"token":"\([0-9a-f]*\)".*/\1/')
ssh-keygen -q -t ed25519 -N '' -f "$work/key"
curl -sf -H "Authorization: Bearer $token" --data-urlencode "sshkey=$(cat "$work/key.pub")" "$api/account/addkey" >/dev/null
export GIT_SSH_COMMAND="ssh -i $work/key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"

mkrepo() { # dir app
  mkdir -p "$1/www"; cp /bin/busybox "$1/"
  cat >"$1/Dockerfile" <<DOCKERFILE
FROM scratch
COPY busybox /bin/busybox
COPY www /www
CMD ["/bin/busybox", "sh", "-c", "exec /bin/busybox httpd -f -p \$PORT -h /www"]
DOCKERFILE
  echo "$2" >"$1/www/index.html"
  git -C "$1" init -q -b main
  git -C "$1" -c user.name=b -c user.email=b@x add -A
  git -C "$1" -c user.name=b -c user.email=b@x commit -qm init
  git -C "$1" remote add scalefog "ssh://git@127.0.0.1:$SSH/$2.git"
}
wait_200() { # url [host]
  until [[ $(curl -s -o /dev/null -w '%{http_code}' ${2:+-H "Host: $2"} "$1") == 200 ]]; do sleep 0.005; done
}
now() { date +%s.%N; }

app=bench-$$
curl -sf -H "Authorization: Bearer $token" -d "appname=$app" "$api/instances/create" >/dev/null
mkrepo "$work/$app" "$app"
git -C "$work/$app" push -q scalefog main 2>/dev/null   # warm the build cache
ours=(); raw=()
for i in $(seq "$ROUNDS"); do
  echo "round $i" >"$work/$app/www/index.html"
  git -C "$work/$app" -c user.name=b -c user.email=b@x commit -qam "round $i"
  t0=$(now); git -C "$work/$app" push -q scalefog main 2>/dev/null
  wait_200 "http://127.0.0.1:$PROXY/" "$app.localhost"; ours+=("$(echo "$(now) - $t0" | bc)")
  t0=$(now)
  docker build -q --label "$label" -t "bench-raw-$$" "$work/$app" >/dev/null
  cid=$(docker run -d --label "$label" -e PORT=5000 -p 127.0.0.1::5000 "bench-raw-$$")
  port=$(docker port "$cid" 5000/tcp | head -1 | sed 's/.*://')
  wait_200 "http://127.0.0.1:$port/"; raw+=("$(echo "$(now) - $t0" | bc)")
  docker rm -f "$cid" >/dev/null
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
o=$(median "${ours[@]}"); r=$(median "${raw[@]}")
echo "BENCH push->serving median ${o}s (${ours[*]})"
echo "BENCH raw build+run+200 median ${r}s (${raw[*]})"
echo "BENCH ratio $(echo "scale=2; $o / $r" | bc)x"

for i in $(seq 20); do
  a=bench-$$-$i
  curl -sf -H "Authorization: Bearer $token" -d "appname=$a" "$api/instances/create" >/dev/null
  mkrepo "$work/$a" "$a"
done
t0=$(now); fails=0; pids=()
for i in $(seq 20); do git -C "$work/bench-$$-$i" push -q scalefog main 2>/dev/null & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
for i in $(seq 20); do wait_200 "http://127.0.0.1:$PROXY/" "bench-$$-$i.localhost"; done
echo "BENCH 20 concurrent pushes: $(echo "$(now) - $t0" | bc)s total, $fails failed"
# Scalefog's own containers and images are removed by deleting the apps.
for a in "$app" $(seq -f "bench-$$-%g" 20); do
  curl -sf -H "Authorization: Bearer $token" "$api/instances/delete/$a" >/dev/null || true
done
