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
#   MODE=push (needs the SSH server; uses the app router when it answers)
#     Starts $SCALEFOG_BIN serve, registers a user and an SSH key, creates the app, and times a
#     real `git push` (OpenSSH, the pre-receive hook, the deploy) until the first 200 from the new
#     release: through the app router (Host: <app>.localhost) when proxy_listen answers, else
#     through the new container's published port (found by its app and release labels). Raw
#     docker on the same context runs in the same rounds; then 20 concurrent `git push`es to
#     20 apps. VIA=router or VIA=port forces the path.
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
  # What the server created carries its installation id; the raw runs carry $label.
  local install
  install=$(cat "$work/data/install.id" 2>/dev/null || true)
  for l in "$label" ${install:+"scalefog.install=$install"}; do
    docker ps -aq --filter "label=$l" | xargs -r docker rm -f >/dev/null
    docker images -q --filter "label=$l" | sort -u | xargs -r docker rmi -f >/dev/null 2>&1 || true
  done
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
until curl -sf "$api/healthz" >/dev/null; do
  kill -0 "$pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.1
done
curl -sf -d "username=bench&email=bench@example.com&password=bench-password" "$api/account/register" >/dev/null
token=$(curl -sf -d "username=bench&password=bench-password" "$api/account/getToken" | sed 's/.*"token":"\([^"]*\)".*/\1/')
ssh-keygen -q -t ed25519 -N '' -f "$work/key"
curl -sf -H "Authorization: Bearer $token" --data-urlencode "sshkey=$(cat "$work/key.pub")" "$api/account/addkey" >/dev/null
export GIT_SSH_COMMAND="ssh -i $work/key -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1

VIA=${VIA:-auto}
if [[ $VIA == auto ]]; then
  # Any HTTP answer (the router's 404 page for an unknown host) means the router is there.
  if curl -s -o /dev/null "http://127.0.0.1:$PROXY/"; then VIA=router; else VIA=port; fi
fi
echo "BENCH first 200 through: $VIA"

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
  local give_up=$((SECONDS + 120))
  until [[ $(curl -s -o /dev/null -w '%{http_code}' ${2:+-H "Host: $2"} "$1") == 200 ]]; do
    ((SECONDS < give_up)) || { echo "no 200 from $1 ${2:-} in 120 s" >&2; exit 1; }
    sleep 0.005
  done
}
# First 200 from release $2 of app $1, through the router or the release's own container.
app_200() { # app release
  if [[ $VIA == router ]]; then
    wait_200 "http://127.0.0.1:$PROXY/" "$1.localhost"
  else
    local cid port
    local give_up=$((SECONDS + 120))
    until cid=$(docker ps -q --filter "label=scalefog.app=$1" --filter "label=scalefog.release=$2" | head -1) && [[ -n $cid ]]; do
      ((SECONDS < give_up)) || { echo "no container of $1 v$2 in 120 s" >&2; exit 1; }
      sleep 0.005
    done
    port=$(docker port "$cid" 5000/tcp | head -1)
    wait_200 "http://$port/"
  fi
}
push() { # dir
  git -C "$1" push -q scalefog main 2>"$1.push.log" || { cat "$1.push.log" >&2; return 1; }
}
now() { date +%s.%N; }

app=bench-$$
curl -sf -H "Authorization: Bearer $token" -d "appname=$app" "$api/instances/create" >/dev/null
mkrepo "$work/$app" "$app"
push "$work/$app"   # v1 warms the build cache
app_200 "$app" 1
ours=(); raw=()
for i in $(seq "$ROUNDS"); do
  echo "round $i" >"$work/$app/www/index.html"
  git -C "$work/$app" -c user.name=b -c user.email=b@x commit -qam "round $i"
  t0=$(now); push "$work/$app"
  app_200 "$app" $((i + 1)); ours+=("$(echo "$(now) - $t0" | bc)")
  t0=$(now)
  docker build -q --label "$label" -t "bench-raw-$$" "$work/$app" >/dev/null 2>&1
  cid=$(docker run -d --label "$label" -e PORT=5000 -p 127.0.0.1::5000 "bench-raw-$$")
  port=$(docker port "$cid" 5000/tcp | head -1)
  wait_200 "http://$port/"; raw+=("$(echo "$(now) - $t0" | bc)")
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
for i in $(seq 20); do push "$work/bench-$$-$i" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
((fails == 0)) || { echo "BENCH 20 concurrent pushes: $fails failed"; exit 1; }
for i in $(seq 20); do app_200 "bench-$$-$i" 1; done
echo "BENCH 20 concurrent pushes: $(echo "$(now) - $t0" | bc)s total, $fails failed"
# Deleting the apps removes their containers and images; cleanup() catches anything left.
for a in "$app" $(seq -f "bench-$$-%g" 20); do
  curl -sf -H "Authorization: Bearer $token" "$api/instances/delete/$a" >/dev/null || true
done
