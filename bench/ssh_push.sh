#!/usr/bin/env bash
# Push throughput: Scalefog's SSH server vs OpenSSH's sshd, same repository, same client.
#
# Builds a repository holding ~50 MB of random data (incompressible, so the transfer is what is
# measured), then pushes it
#   1. over Scalefog's SSH (a fresh `scalefog serve` on loopback ports, user + key + app made
#      through the API), and
#   2. over Debian's OpenSSH sshd started on a loopback port with its own config, host key and
#      authorized_keys, to `git-receive-pack` on an equivalent bare repository;
# and prints both throughputs and their ratio (goal: Scalefog >= 0.9 x OpenSSH).
#
# Usage: bench/ssh_push.sh [MB]     (default 50)
#   SCALEFOG_BIN  the binary to measure (default target/release/scalefog)
#   RUNS          pushes per server, best one kept (default 3)
set -euo pipefail

MB=${1:-50}
RUNS=${RUNS:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${SCALEFOG_BIN:-$ROOT/target/release/scalefog}
SSHD=${SSHD:-$(command -v sshd || echo /usr/sbin/sshd)}

[ -x "$BIN" ] || { echo "no scalefog binary at $BIN (cargo build --release, or set SCALEFOG_BIN)" >&2; exit 2; }
[ -x "$SSHD" ] || { echo "no sshd (apt-get install openssh-server)" >&2; exit 2; }
for tool in git ssh ssh-keygen curl; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 2; }
done

WORK=$(mktemp -d)
SF_PID=""
SSHD_PID=""
cleanup() {
    [ -n "$SF_PID" ] && kill "$SF_PID" 2>/dev/null || true
    [ -n "$SSHD_PID" ] && kill "$SSHD_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

now() { date +%s.%N; }

export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com

# ----- the repository -----
echo "building a repository with ${MB} MB of random data..."
SRC=$WORK/src
git init -q -b main "$SRC"
head -c "$((MB * 1024 * 1024))" /dev/urandom > "$SRC/random.bin"
git -C "$SRC" add -A
git -C "$SRC" commit -q -m "random data"
# Pack once up front so both pushes send the same already-compressed objects.
git -C "$SRC" gc -q
PACK_BYTES=$(du -cb "$SRC"/.git/objects/pack/*.pack | tail -1 | cut -f1)

ssh-keygen -q -t ed25519 -N "" -C bench -f "$WORK/client_key"
SSH_BASE="ssh -i $WORK/client_key -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"

# Pushes $1 (remote URL) with GIT_SSH_COMMAND=$2 to a fresh ref each run; prints the best MB/s.
# `reset` is a function that makes the remote empty again between runs.
measure() {
    local remote=$1 sshcmd=$2 reset=$3 best=0
    for i in $(seq 1 "$RUNS"); do
        "$reset"
        local t0 t1
        t0=$(now)
        GIT_SSH_COMMAND="$sshcmd" git -C "$SRC" push -q "$remote" main >/dev/null 2>&1 \
            || { echo "push to $remote failed" >&2; GIT_SSH_COMMAND="$sshcmd" git -C "$SRC" push "$remote" main; exit 1; }
        t1=$(now)
        local rate
        rate=$(python3 -c "print(f'{$PACK_BYTES / ($t1 - $t0) / 1048576:.2f}')")
        echo "  run $i: $(python3 -c "print(f'{$t1 - $t0:.2f}')") s, $rate MB/s" >&2
        best=$(python3 -c "print(max($best, $rate))")
    done
    echo "$best"
}

# ----- Scalefog -----
SF_DATA=$WORK/scalefog-data
HTTP_PORT=$(free_port); SF_SSH_PORT=$(free_port); PROXY_PORT=$(free_port)
SCALEFOG_LOG=warn "$BIN" serve --data-dir "$SF_DATA" \
    --http-listen "127.0.0.1:$HTTP_PORT" --ssh-listen "127.0.0.1:$SF_SSH_PORT" \
    --proxy-listen "127.0.0.1:$PROXY_PORT" >"$WORK/scalefog.log" 2>&1 &
SF_PID=$!
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
API=http://127.0.0.1:$HTTP_PORT
curl -fs -o /dev/null "$API/account/register" -d username=bench -d email=bench@example.com -d password=bench-password
TOKEN=$(curl -fs "$API/account/getToken" -d username=bench -d password=bench-password | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["token"])')
curl -fs -o /dev/null -H "Authorization: Bearer $TOKEN" "$API/account/addkey" --data-urlencode "sshkey=$(cat "$WORK/client_key.pub")"

APP_N=0
SF_REMOTE=""
reset_scalefog() {
    # A new app per run: an empty repository, like the fresh bare repo on the sshd side.
    APP_N=$((APP_N + 1))
    local name="bench-app-$APP_N"
    curl -fs -o /dev/null -H "Authorization: Bearer $TOKEN" "$API/instances/create" -d "appname=$name"
    SF_REMOTE="ssh://git@127.0.0.1:$SF_SSH_PORT/$name.git"
}
# measure() needs the remote before reset runs; Scalefog's remote changes per run, so wrap.
sf_push_runs() {
    local best=0
    for i in $(seq 1 "$RUNS"); do
        reset_scalefog
        local t0 t1 rate
        t0=$(now)
        # A branch other than the deploy branch: the deploy engine records the push (the
        # pre-receive round trip still runs) but builds nothing, so only the transfer is timed.
        GIT_SSH_COMMAND="$SSH_BASE -p $SF_SSH_PORT" git -C "$SRC" push -q "$SF_REMOTE" main:refs/heads/bench >/dev/null 2>&1 \
            || { echo "push to scalefog failed; log:" >&2; tail -20 "$WORK/scalefog.log" >&2; exit 1; }
        t1=$(now)
        rate=$(python3 -c "print(f'{$PACK_BYTES / ($t1 - $t0) / 1048576:.2f}')")
        echo "  run $i: $(python3 -c "print(f'{$t1 - $t0:.2f}')") s, $rate MB/s" >&2
        best=$(python3 -c "print(max($best, $rate))")
    done
    echo "$best"
}

# ----- OpenSSH sshd -----
SSHD_DIR=$WORK/sshd
mkdir -p "$SSHD_DIR"
chmod 700 "$SSHD_DIR"
ssh-keygen -q -t ed25519 -N "" -f "$SSHD_DIR/host_key"
cp "$WORK/client_key.pub" "$SSHD_DIR/authorized_keys"
chmod 600 "$SSHD_DIR/authorized_keys"
SSHD_PORT=$(free_port)
BARE=$WORK/sshd-repo.git
cat > "$SSHD_DIR/sshd_config" <<CONF
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $SSHD_DIR/host_key
PidFile $SSHD_DIR/sshd.pid
AuthorizedKeysFile $SSHD_DIR/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AcceptEnv GIT_PROTOCOL
CONF
mkdir -p /run/sshd 2>/dev/null || true
"$SSHD" -D -e -f "$SSHD_DIR/sshd_config" 2>"$WORK/sshd.log" &
SSHD_PID=$!
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$SSHD_PORT") 2>/dev/null && break
    sleep 0.1
done
reset_sshd() {
    rm -rf "$BARE"
    git init -q --bare -b main "$BARE"
}
USER_NAME=$(id -un)
SSHD_REMOTE="ssh://$USER_NAME@127.0.0.1:$SSHD_PORT$BARE"

echo "pushing $(python3 -c "print(f'{$PACK_BYTES/1048576:.1f}')") MB of packed objects, best of $RUNS runs each"
echo "Scalefog SSH ($BIN):"
SF_RATE=$(sf_push_runs)
echo "OpenSSH sshd ($SSHD):"
SSHD_RATE=$(measure "$SSHD_REMOTE" "$SSH_BASE -p $SSHD_PORT" reset_sshd)

echo
echo "scalefog: $SF_RATE MB/s"
echo "openssh:  $SSHD_RATE MB/s"
echo "ratio:    $(python3 -c "print(f'{$SF_RATE / $SSHD_RATE:.2f}')") (goal >= 0.9)"
