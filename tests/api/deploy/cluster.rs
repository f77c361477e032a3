//! The cluster against a real two-node Docker Swarm: the host engine (manager, advertised on
//! 10.231.0.1) and a second `dockerd` in its own network namespace (10.231.0.2), reachable only
//! through a veth pair (see ../shared/TESTING.md). The tests run one at a time ([`SERIAL`]) and
//! tear everything down even when they fail ([`SecondEngine`]'s `Drop`, and a clean-up of
//! leftovers before starting).

use super::*;
use fixture::*;

/// The cluster in the console (a browser test sharing this module's second engine).
mod console;
/// Losing a machine, and deploys and rollbacks across nodes.
mod failover;
/// The second engine, the server with the cluster on, and what the tests look at.
mod fixture;
/// Running apps moving onto the swarm when the cluster is turned on.
mod moving;
/// Old images removed on nodes.
mod node_images;
/// Placement by region, and removing a node.
mod regions;
mod registry;
/// A node added over SSH (`ssh://root@10.231.0.2`, an sshd in the namespace).
mod ssh;
/// A node added over TLS (`--tlsverify` on 2376) with client certificates made in the test.
mod tls;
