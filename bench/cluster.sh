#!/usr/bin/env bash
# Cluster benchmark (issue 14), on a real two-node Docker Swarm: the host engine and a second
# dockerd in a network namespace (10.231.0.1/.2, see ../shared/TESTING.md), set up and torn down
# by the cluster tests themselves, which print the figures:
#
#   push to serving   from the push until the app answers through the router: one replica on one
#                     remote node (the image streamed there first), and two replicas over two
#                     nodes.
#   failover          the second machine cut off (its veth taken down: connections time out, as
#                     with a dead server) while a request loop runs through the router: requests,
#                     failed requests, and the time until the swarm ran the lost replica again on
#                     node 1.
#
# Usage: bench/cluster.sh    (as root; needs docker, ip, nsenter, git, /bin/busybox)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked --test api deploy::cluster:: -- --nocapture --test-threads=1 2>&1 |
  grep -E '^(bench|failover):|^test .* (ok|FAILED)$|test result'
