#!/usr/bin/env bash
# Cluster benchmark (issue 14), on a real two-node Docker Swarm: the host engine and a second
# dockerd in a network namespace (10.231.0.1/.2, see ../shared/TESTING.md), set up and torn down
# by the cluster tests themselves, which print the figures:
#
#   push to serving   from the push until the app answers through the router: on one machine
#                     with the cluster off (the baseline, same run), one replica on one remote
#                     node (the image streamed there first; also over SSH), and two replicas
#                     (one service, one replica per node) over two nodes.
#   deploy, rollback  requests and failed requests through the router while a new release, then
#                     a rollback, replaces two replicas spread over two nodes.
#   failover          the second machine killed (its dockerd, containerd, shims and containers,
#                     SIGKILL) while a request loop runs through the router: requests, failed
#                     requests, the time until the swarm ran the lost replica again on node 1,
#                     and when the last slow (>= 1 s) or failed request ended.
#
# The cluster tests share the host's swarm state with anyone else running them: the run holds
# /tmp/sfswarm.lock.
#
# Usage: bench/cluster.sh    (as root; needs docker, ip, nsenter, git, /bin/busybox)
set -euo pipefail
cd "$(dirname "$0")/.."
flock /tmp/sfswarm.lock \
  cargo test --locked --test api deploy::cluster:: -- --nocapture --test-threads=1 2>&1 |
  grep -E '^(bench|failover):|bench:|failover:|^test .* (ok|FAILED)$|test result'
