#!/usr/bin/env python3
"""Crash soak: pushes and API changes while Scalefog is SIGKILLed at random moments.

Each round starts a few changes at once (a `git push` of a new page to one app, a config var
change on another, sometimes an app created or deleted), SIGKILLs the server at a random moment
(in 60% of rounds 0.05–3 s after they start, in the middle of them; otherwise up to 0.5 s after
they end), restarts it on the same data dir and checks, once it has settled:

  1. records: every app answers `GET /v1/instances/{name}` and has exactly one current release;
     every change the client saw succeed is there (a config var is at least the last value
     acknowledged and at most the last one sent; a deleted app stays deleted);
  2. serving: every app with a release serves the page of its current release's commit through
     the router, and that release is no older than the last push the client saw succeed;
  3. Docker: no container or image with this installation's labels that belongs to no app, no
     app process container of a release other than the current one, no leftover of a deleted app;
  4. audit (when the server has `GET /v1/audit`): every acknowledged change has its record.

Loopback only; everything the server made is removed at the end (by its installation label).

Usage: bench/soak.py [--rounds 30] [--apps 3] [--bin target/release/scalefog] [--seed S]
Needs: docker, git, ssh, /bin/busybox (busybox-static).
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Soak:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.work = tempfile.mkdtemp(prefix="scalefog-soak-")
        self.data = os.path.join(self.work, "data")
        self.http, self.ssh, self.proxy = free_port(), free_port(), free_port()
        self.proc = None
        self.log = open(os.path.join(self.work, "server.log"), "ab")
        self.token = None
        # What the client knows, per app: markers of pushed commits, the last push and config
        # value it saw acknowledged, and the highest value it ever sent.
        self.apps = {}
        self.deleted = set()
        self.delete_sent = set()
        self.acked = []  # (action, app) the server acknowledged, for the audit check
        self.violations = []
        self.stats = {"kills": 0, "pushes_ok": 0, "pushes_failed": 0, "env_ok": 0,
                      "env_failed": 0, "creates": 0, "deletes": 0, "restart_s": []}
        self.lock = threading.Lock()

    # --- the server -------------------------------------------------------------------------
    def start(self):
        env = dict(os.environ, SCALEFOG_LOG="warn")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [self.args.bin, "serve", "--data-dir", self.data,
             "--http-listen", f"127.0.0.1:{self.http}", "--ssh-listen", f"127.0.0.1:{self.ssh}",
             "--proxy-listen", f"127.0.0.1:{self.proxy}"],
            stdout=self.log, stderr=self.log, env=env)
        while True:
            if self.proc.poll() is not None:
                sys.exit(f"the server exited with {self.proc.returncode}; see {self.log.name}")
            try:
                if self.request("GET", "/healthz", auth=False)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        self.stats["restart_s"].append(time.monotonic() - t0)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.stats["kills"] += 1

    def install_id(self):
        with open(os.path.join(self.data, "install.id")) as f:
            return f.read().strip()

    # --- clients ----------------------------------------------------------------------------
    def request(self, method, path, body=None, auth=True, port=None, host=None, timeout=10):
        c = http.client.HTTPConnection("127.0.0.1", port or self.http, timeout=timeout)
        headers = {}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        if host:
            headers["Host"] = host
        data = None
        if isinstance(body, dict):
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        elif isinstance(body, str):
            data = body
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
        out = r.read()
        c.close()
        return r.status, out

    def api(self, method, path, body=None):
        status, out = self.request(method, path, body)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {out[:200]!r}")
        return json.loads(out) if out else None

    def git(self, repo, *args):
        return subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True,
                              env=self.git_env, timeout=120)

    def setup(self):
        self.start()
        form = "username=soak&email=soak@example.com&password=soak-password-1"
        status, _ = self.request("POST", "/account/register", form, auth=False)
        assert status == 200, status
        status, out = self.request("POST", "/account/getToken",
                                   "username=soak&password=soak-password-1", auth=False)
        self.token = json.loads(out)[0]["token"]
        key = os.path.join(self.work, "key")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        with open(key + ".pub") as f:
            pub = f.read().strip()
        self.request("POST", "/account/addkey", "sshkey=" + urllib.parse.quote(pub))
        self.git_env = dict(
            os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1",
            GIT_SSH_COMMAND=f"ssh -i {key} -o IdentitiesOnly=yes -o BatchMode=yes "
            "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
            "-o ConnectTimeout=5")
        for i in range(self.args.apps):
            self.create_app(f"soak-{i}")

    def create_app(self, name):
        status, out = self.request("POST", "/instances/create", f"appname={name}")
        if status != 200:
            return False
        repo = os.path.join(self.work, name)
        shutil.rmtree(repo, ignore_errors=True)
        os.makedirs(os.path.join(repo, "www"))
        shutil.copy("/bin/busybox", repo)
        with open(os.path.join(repo, "Dockerfile"), "w") as f:
            f.write("FROM scratch\nCOPY busybox /bin/busybox\nCOPY www /www\n"
                    'CMD ["/bin/busybox", "sh", "-c", '
                    '"exec /bin/busybox httpd -f -p $PORT -h /www"]\n')
        self.git(repo, "init", "-q", "-b", "main")
        with self.lock:
            self.apps[name] = {"repo": repo, "markers": {}, "push_ok": None, "push_sent": None,
                               "env_ok": 0, "env_sent": 0, "busy": False}
            self.acked.append(("app.create", name))
            self.stats["creates"] += 1
        return True

    # --- the changes of a round -------------------------------------------------------------
    def push(self, name, rnd):
        app = self.apps[name]
        marker = f"{name} round {rnd}"
        with open(os.path.join(app["repo"], "www", "index.html"), "w") as f:
            f.write(marker + "\n")
        self.git(app["repo"], "add", "-A")
        self.git(app["repo"], "-c", "user.name=s", "-c", "user.email=s@x", "commit", "-qm", marker)
        sha = self.git(app["repo"], "rev-parse", "HEAD").stdout.strip()
        app["markers"][sha] = rnd
        app["push_sent"] = rnd
        # `-f`: a push cut short may have moved the server's branch or not.
        r = self.git(app["repo"], "push", "-qf", f"ssh://git@127.0.0.1:{self.ssh}/{name}.git",
                     "main")
        with self.lock:
            if r.returncode == 0:
                app["push_ok"] = rnd
                self.stats["pushes_ok"] += 1
                self.acked.append(("deploy", name))
            else:
                self.stats["pushes_failed"] += 1

    def set_env(self, name, rnd):
        app = self.apps[name]
        app["env_sent"] = rnd
        try:
            status, _ = self.request("PATCH", f"/v1/instances/{name}/env", {"SOAK_ROUND": str(rnd)},
                                     timeout=30)
        except OSError:
            status = 0
        with self.lock:
            if status == 200:
                app["env_ok"] = rnd
                self.stats["env_ok"] += 1
                self.acked.append(("config.set", name))
            else:
                self.stats["env_failed"] += 1

    def delete(self, name):
        self.delete_sent.add(name)
        try:
            status, _ = self.request("DELETE", f"/v1/instances/{name}", timeout=30)
        except OSError:
            status = 0
        with self.lock:
            if status in (200, 202, 204):
                self.deleted.add(name)
                self.stats["deletes"] += 1
                self.acked.append(("app.delete", name))

    def round(self, rnd):
        names = [n for n in self.apps if n not in self.deleted]
        self.rng.shuffle(names)
        jobs = []
        if names:
            jobs.append(threading.Thread(target=self.push, args=(names[0], rnd)))
        if len(names) > 1:
            jobs.append(threading.Thread(target=self.set_env, args=(names[1], rnd)))
        extra = [n for n in names if n.startswith("soak-x")]
        if extra and self.rng.random() < 0.3:
            victim = extra[0]
            if victim not in names[:2]:
                jobs.append(threading.Thread(target=self.delete, args=(victim,)))
        if self.rng.random() < 0.3:
            jobs.append(threading.Thread(target=self.create_app, args=(f"soak-x{rnd}",)))
        for j in jobs:
            j.start()
        if self.rng.random() < 0.6:
            # In the middle of the changes.
            time.sleep(self.rng.uniform(0.05, 3.0))
            self.kill()
            for j in jobs:
                j.join()
        else:
            # Once they are done: during the clean-up that follows a deploy, or while idle.
            for j in jobs:
                j.join()
            time.sleep(self.rng.uniform(0.0, 0.5))
            self.kill()
        # A create acknowledged (or not) by a dying server: what the store says decides; the
        # client only knows it may exist. An app the store does not hold is forgotten.
        self.start()
        self.settle_and_check(rnd)

    # --- the checks -------------------------------------------------------------------------
    def fail(self, rnd, what):
        self.violations.append(f"round {rnd}: {what}")
        print(f"  VIOLATION round {rnd}: {what}", flush=True)

    def settle_and_check(self, rnd):
        listed = {a["name"] for a in self.api("GET", "/v1/instances?per_page=100")}
        for name in list(self.apps):
            if name in self.deleted:
                if name in listed:
                    st = self.api("GET", f"/v1/instances/{name}")["status"]
                    if st != "deleting":
                        self.fail(rnd, f"deleted app {name} is back ({st})")
                continue
            if name not in listed:
                if ("app.create", name) in self.acked and name not in self.delete_sent:
                    self.fail(rnd, f"app {name} was created and acknowledged but is gone")
                del self.apps[name]
                continue
            self.check_app(rnd, name)
        self.check_docker(rnd)

    def check_app(self, rnd, name):
        app = self.apps[name]
        env = self.api("GET", f"/v1/instances/{name}/env")
        value = int(env.get("SOAK_ROUND", "0"))
        if value < app["env_ok"] or value > app["env_sent"]:
            self.fail(rnd, f"{name}: SOAK_ROUND is {value}, acknowledged {app['env_ok']}, "
                           f"sent at most {app['env_sent']}")
        releases = self.api("GET", f"/v1/instances/{name}/releases?per_page=100")
        current = [r for r in releases if r["current"]]
        if len(releases) and len(current) != 1:
            self.fail(rnd, f"{name}: {len(current)} current releases")
            return
        pushed = [r for r in releases if r["commit"]]
        if not current or not pushed:
            if app["push_ok"] is not None:
                self.fail(rnd, f"{name}: push of round {app['push_ok']} acknowledged, no release")
            return
        rel = current[0]
        served_round = None
        for sha, r in app["markers"].items():
            if sha.startswith(rel["commit"]) or rel["commit"].startswith(sha):
                served_round = r
        if served_round is None:
            self.fail(rnd, f"{name}: current release v{rel['version']} has unknown commit "
                           f"{rel['commit']}")
            return
        if app["push_ok"] is not None and served_round < app["push_ok"]:
            self.fail(rnd, f"{name}: serves round {served_round}, push of round "
                           f"{app['push_ok']} was acknowledged")
        want = f"{name} round {served_round}"
        deadline = time.monotonic() + 60
        body = b""
        while time.monotonic() < deadline:
            try:
                status, body = self.request("GET", "/", auth=False, port=self.proxy,
                                            host=f"{name}.localhost", timeout=5)
                if status == 200 and body.decode().strip() == want:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.fail(rnd, f"{name}: the router serves {body[:80]!r}, release v{rel['version']} "
                       f"is {want!r}")

    def check_docker(self, rnd):
        install = self.install_id()
        live = {n for n in self.apps if n not in self.deleted}
        current = {}
        for n in live:
            inst = self.api("GET", f"/v1/instances/{n}")
            current[n] = inst["release"]
        # Reconcile runs at start; a removal it started may take a moment.
        deadline = time.monotonic() + 30
        while True:
            problems = []
            out = subprocess.run(
                ["docker", "ps", "-a", "--filter", f"label=scalefog.install={install}",
                 "--format", '{{.Names}}\t{{.Label "scalefog.app"}}\t'
                 '{{.Label "scalefog.release"}}\t{{.Label "scalefog.process"}}\t{{.State}}'],
                capture_output=True, text=True, check=True).stdout
            for line in out.splitlines():
                cname, app, release, process, state = (line.split("\t") + [""] * 5)[:5]
                if app not in live:
                    problems.append(f"container {cname} of {app or 'no app'} ({state})")
                elif process in ("", "web") and release and current[app] is not None \
                        and release != str(current[app]):
                    problems.append(f"container {cname} of {app} v{release}, current is "
                                    f"v{current[app]} ({state})")
            out = subprocess.run(
                ["docker", "images", "--filter", f"label=scalefog.install={install}",
                 "--format", '{{.Repository}}:{{.Tag}}\t{{.Label "scalefog.app"}}'],
                capture_output=True, text=True).stdout
            for line in out.splitlines():
                ref, app = (line.split("\t") + [""])[:2]
                if app and app not in live:
                    problems.append(f"image {ref} of {app}")
            if not problems or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        for p in problems:
            self.fail(rnd, "orphan: " + p)

    def check_audit(self):
        status, out = self.request("GET", "/v1/audit?per_page=1")
        if status == 404:
            print("audit: the server has no /v1/audit; not checked")
            return
        records, page = [], 1
        while True:
            status, out = self.request("GET", f"/v1/audit?per_page=100&page={page}")
            batch = json.loads(out)
            records += batch
            if len(batch) < 100:
                break
            page += 1
        def count(action, app):
            return sum(1 for r in records if r["action"] == action and r.get("app") == app)
        names = {"deploy": "app.deploy", "config.set": "app.config", "app.create": "app.create",
                 "app.delete": "app.delete"}
        # Every acknowledged change has its entry.
        wanted = {}
        for action, app in self.acked:
            wanted[(names[action], app)] = wanted.get((names[action], app), 0) + 1
        for (action, app), n in sorted(wanted.items()):
            if count(action, app) < n:
                self.fail("end", f"audit: {n} acknowledged {action} on {app}, "
                                 f"{count(action, app)} recorded")
        # And the log tells of no deploy that did not happen: one app.deploy per release a
        # deploy made, for every app still there.
        for name in self.apps:
            if name in self.deleted:
                continue
            releases = self.api("GET", f"/v1/instances/{name}/releases?per_page=100")
            deployed = sum(1 for r in releases if r["description"].startswith("deploy"))
            if deployed != count("app.deploy", name):
                self.fail("end", f"audit: {name} has {deployed} deployed releases and "
                                 f"{count('app.deploy', name)} app.deploy entries")
        print(f"audit: {len(records)} records; {sum(wanted.values())} acknowledged changes "
              f"checked")

    # --- the run ----------------------------------------------------------------------------
    def run(self):
        self.setup()
        for rnd in range(1, self.args.rounds + 1):
            self.round(rnd)
            s = self.stats
            print(f"round {rnd}/{self.args.rounds}: pushes {s['pushes_ok']} ok "
                  f"{s['pushes_failed']} cut, env {s['env_ok']} ok {s['env_failed']} cut, "
                  f"apps {len(self.apps) - len(self.deleted)}, "
                  f"violations {len(self.violations)}", flush=True)
        self.check_audit()
        s = self.stats
        starts = sorted(s["restart_s"])
        print(f"SOAK rounds={self.args.rounds} kills={s['kills']} pushes_ok={s['pushes_ok']} "
              f"pushes_cut={s['pushes_failed']} env_ok={s['env_ok']} env_cut={s['env_failed']} "
              f"creates={s['creates']} deletes={s['deletes']} "
              f"start_to_healthy_median={starts[len(starts) // 2]:.2f}s "
              f"violations={len(self.violations)}")

    def cleanup(self):
        install = None
        try:
            install = self.install_id()
        except OSError:
            pass
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=70)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if install:
            label = f"label=scalefog.install={install}"
            ids = subprocess.run(["docker", "ps", "-aq", "--filter", label],
                                 capture_output=True, text=True).stdout.split()
            if ids:
                subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
            ids = subprocess.run(["docker", "images", "-q", "--filter", label],
                                 capture_output=True, text=True).stdout.split()
            if ids:
                subprocess.run(["docker", "rmi", "-f", *sorted(set(ids))], capture_output=True)
            vols = subprocess.run(["docker", "volume", "ls", "-q", "--filter", label],
                                  capture_output=True, text=True).stdout.split()
            if vols:
                subprocess.run(["docker", "volume", "rm", "-f", *vols], capture_output=True)
        if self.violations:
            print(f"server log kept at {self.log.name}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--apps", type=int, default=3)
    p.add_argument("--bin", default="target/release/scalefog")
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args()
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    print(f"seed {args.seed}")
    soak = Soak(args)
    try:
        soak.run()
    finally:
        soak.cleanup()
    sys.exit(1 if soak.violations else 0)


if __name__ == "__main__":
    main()
