#!/usr/bin/env bash
# Backup benchmark: `scalefog backup` of a running server holding N apps (default 50), each with
# a pushed repository like a small real app (the busybox test app: a 1 MB static binary, a
# Dockerfile, a page), then `scalefog restore` of the archive into a new data dir.
# Prints the time of each, the archive's size and the data dir's size.
#
# By default the repositories are pushed to a branch that does not deploy (`dev`), so that the
# 50 pushes take seconds, not 50 builds; DEPLOY=1 pushes to `main` (builds and runs every app,
# so the store also holds releases and deployments; needs Docker).
#
# Usage: SCALEFOG_BIN=target/release/scalefog bench/backup.sh
#        APPS=10 DEPLOY=1 SCALEFOG_BIN=target/debug/scalefog bench/backup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${SCALEFOG_BIN:?set SCALEFOG_BIN to the scalefog binary}"
APPS=${APPS:-50}
BRANCH=dev
[[ ${DEPLOY:-0} == 1 ]] && BRANCH=main
work=$(mktemp -d)
cleanup() {
  [[ -n ${pid:-} ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
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
"$SCALEFOG_BIN" serve --data-dir "$work/data" --http-listen 127.0.0.1:$HTTP \
  --ssh-listen 127.0.0.1:$SSH --proxy-listen 127.0.0.1:$PROXY \
  --max-concurrent-deploys 4 >"$work/server.log" 2>&1 &
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

src=$work/src
mkdir -p "$src/www"; cp /bin/busybox "$src/"
cat >"$src/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
COPY www /www
CMD ["/bin/busybox", "sh", "-c", "exec /bin/busybox httpd -f -p $PORT -h /www"]
DOCKERFILE
t0=$(date +%s.%N)
pids=()
for i in $(seq "$APPS"); do
  app=bench-$i
  curl -sf -H "Authorization: Bearer $token" -d "appname=$app" "$api/instances/create" >/dev/null
  cp -r "$src" "$work/$app"
  echo "$app" >"$work/$app/www/index.html"
  git -C "$work/$app" init -q -b "$BRANCH"
  git -C "$work/$app" -c user.name=b -c user.email=b@x add -A
  git -C "$work/$app" -c user.name=b -c user.email=b@x commit -qm init
  git -C "$work/$app" push -q "ssh://git@127.0.0.1:$SSH/$app.git" "$BRANCH" 2>"$work/$app.log" &
  pids+=($!)
  # A few pushes at a time: the SSH server and git share this machine's cores with the bench.
  if (( ${#pids[@]} >= 8 )); then for p in "${pids[@]}"; do wait "$p"; done; pids=(); fi
done
for p in "${pids[@]}"; do wait "$p"; done
echo "BENCH $APPS apps created and pushed to $BRANCH in $(echo "$(date +%s.%N) - $t0" | bc)s"

t0=$(date +%s.%N)
"$SCALEFOG_BIN" backup --data-dir "$work/data" "$work/backup.tar.zst"
t_backup=$(echo "$(date +%s.%N) - $t0" | bc)
archive=$(stat -c %s "$work/backup.tar.zst")
data=$(du -sb --exclude='*.sock' "$work/data" | cut -f1)
echo "BENCH backup of $APPS apps (server running): ${t_backup}s, archive $archive bytes ($(echo "scale=1; $archive / 1048576" | bc) MiB) of a $data-byte data dir ($(echo "scale=1; $data / 1048576" | bc) MiB)"

t0=$(date +%s.%N)
"$SCALEFOG_BIN" restore --data-dir "$work/restored" "$work/backup.tar.zst" >/dev/null
echo "BENCH restore: $(echo "$(date +%s.%N) - $t0" | bc)s"
