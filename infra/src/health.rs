//! The health gate: what "this cluster is up" means, evaluated from the monitoring endpoints only,
//! so every backend (processes, containers) shares it.
//!
//! A node passes when `/healthz` is ok (server ready, JetStream current with a meta leader, its
//! streams and consumers healthy), `/jsz` names a meta leader of the expected cluster size, and
//! `/routez` shows a route to every peer that is expected to be up.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::monitor::Monitor;
use crate::topology::{Cluster, Node, Topology};

/// One named check of one node.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// Everything the gate and `status` know about one node.
#[derive(Clone, Debug, Serialize)]
pub struct NodeHealth {
    pub cluster: String,
    pub name: String,
    pub client_url: String,
    pub monitor_url: String,
    pub healthy: bool,
    pub is_meta_leader: bool,
    pub meta_leader: Option<String>,
    pub routes: Vec<String>,
    pub checks: Vec<Check>,
}

impl NodeHealth {
    pub fn first_failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| !c.ok)
    }
}

/// The gate's verdict over a set of nodes.
#[derive(Clone, Debug, Serialize)]
pub struct HealthReport {
    pub nodes: Vec<NodeHealth>,
}

impl HealthReport {
    pub fn is_healthy(&self) -> bool {
        self.nodes.iter().all(|n| n.healthy)
    }

    /// The most telling failure: a node whose own `/healthz` fails (down, or not ready) comes
    /// before peers that merely miss their route to it.
    pub fn first_failure(&self) -> Option<(&NodeHealth, &Check)> {
        self.ranked_failures().next()
    }

    /// One line per failing node, root causes first: `nats-2: healthz: connection refused`.
    pub fn failures(&self) -> Vec<String> {
        self.ranked_failures()
            .map(|(n, c)| format!("{}: {}: {}", n.name, c.name, c.detail))
            .collect()
    }

    fn ranked_failures(&self) -> impl Iterator<Item = (&NodeHealth, &Check)> {
        let mut failing: Vec<_> = self
            .nodes
            .iter()
            .filter_map(|n| n.first_failure().map(|c| (n, c)))
            .collect();
        failing.sort_by_key(|(_, c)| c.name != "healthz");
        failing.into_iter()
    }
}

/// Checks the nodes named in `expected_up` (every node when `None`). Peers outside that set are
/// not required as routes: that is how a partial restart (one node down on purpose) is gated.
pub async fn check(
    monitor: &Monitor,
    topology: &Topology,
    expected_up: Option<&BTreeSet<String>>,
) -> HealthReport {
    let wanted = |name: &str| expected_up.is_none_or(|set| set.contains(name));
    let checks = topology
        .nodes()
        .filter(|(_, n)| wanted(&n.name))
        .map(|(cluster, node)| {
            let peers: BTreeSet<String> = cluster
                .nodes
                .iter()
                .filter(|p| p.name != node.name && wanted(&p.name))
                .map(|p| p.name.clone())
                .collect();
            check_node(monitor, topology, cluster, node, peers)
        });
    HealthReport {
        nodes: futures::future::join_all(checks).await,
    }
}

async fn check_node(
    monitor: &Monitor,
    topology: &Topology,
    cluster: &Cluster,
    node: &Node,
    peers: BTreeSet<String>,
) -> NodeHealth {
    let base = topology.monitor_url(node);
    let (healthz, jsz, routez) = tokio::join!(
        monitor.healthz(&base),
        monitor.jsz(&base),
        monitor.routez(&base)
    );
    let mut checks = Vec::new();

    checks.push(match healthz {
        Ok(h) if h.is_ok() => Check {
            name: "healthz",
            ok: true,
            detail: "ok".into(),
        },
        Ok(h) => Check {
            name: "healthz",
            ok: false,
            detail: format!("{}: {}", h.status, h.error.unwrap_or_default()),
        },
        Err(e) => Check {
            name: "healthz",
            ok: false,
            detail: e.to_string(),
        },
    });

    let mut meta_leader = None;
    let mut is_meta_leader = false;
    match jsz {
        Err(e) => checks.push(Check {
            name: "jetstream",
            ok: false,
            detail: e.to_string(),
        }),
        Ok(jsz) if !cluster.is_clustered() => {
            // A lone server has no meta group: it is the JetStream authority when JetStream is on.
            let on = jsz.config.is_some();
            is_meta_leader = on;
            meta_leader = on.then(|| node.name.clone());
            let detail = if on {
                "enabled (unclustered)"
            } else {
                "JetStream is not enabled"
            };
            checks.push(Check {
                name: "jetstream",
                ok: on,
                detail: detail.into(),
            });
        }
        Ok(jsz) => {
            let meta = jsz.meta_cluster.unwrap_or_default();
            meta_leader = meta.leader.clone().filter(|l| !l.is_empty());
            is_meta_leader = meta_leader.as_deref() == Some(node.name.as_str());
            checks.push(match &meta_leader {
                Some(l) => Check {
                    name: "meta-leader",
                    ok: true,
                    detail: l.clone(),
                },
                None => Check {
                    name: "meta-leader",
                    ok: false,
                    detail: "no JetStream meta leader".into(),
                },
            });
            let want = topology.meta_group_size(cluster);
            let size = meta.cluster_size.unwrap_or(0);
            checks.push(Check {
                name: "cluster-size",
                ok: size == want,
                detail: format!("meta group has {size} peer(s), expected {want}"),
            });
        }
    }

    let routes = routez.as_ref().map(|r| r.peer_names()).unwrap_or_default();
    if cluster.is_clustered() {
        checks.push(match &routez {
            Err(e) => Check {
                name: "routes",
                ok: false,
                detail: e.to_string(),
            },
            Ok(_) => {
                let missing: Vec<&String> = peers.iter().filter(|p| !routes.contains(p)).collect();
                if missing.is_empty() {
                    Check {
                        name: "routes",
                        ok: true,
                        detail: format!("routes to {}", routes.join(", ")),
                    }
                } else {
                    let missing: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                    Check {
                        name: "routes",
                        ok: false,
                        detail: format!("no route to {}", missing.join(", ")),
                    }
                }
            }
        });
    }

    checks.extend(federation_checks(monitor, cluster, node, &base).await);

    NodeHealth {
        cluster: cluster.name.clone(),
        name: node.name.clone(),
        client_url: topology.client_url(node),
        monitor_url: base,
        healthy: checks.iter().all(|c| c.ok),
        is_meta_leader,
        meta_leader,
        routes,
        checks,
    }
}

/// Gateways connected both ways to every joined cluster (`/gatewayz`), and a node that dials
/// other cells holding its leafnode connections (`/leafz`).
async fn federation_checks(
    monitor: &Monitor,
    cluster: &Cluster,
    node: &Node,
    base: &str,
) -> Vec<Check> {
    let mut checks = Vec::new();
    if node.gateway_port.is_some() && !cluster.gateways.is_empty() {
        checks.push(match monitor.gatewayz(base).await {
            Err(e) => Check {
                name: "gateways",
                ok: false,
                detail: e.to_string(),
            },
            Ok(g) => {
                let missing: Vec<&str> = cluster
                    .gateways
                    .iter()
                    .filter(|c| !g.connected_to(c))
                    .map(String::as_str)
                    .collect();
                Check {
                    name: "gateways",
                    ok: missing.is_empty(),
                    detail: if missing.is_empty() {
                        format!(
                            "outbound to {}, {} inbound",
                            cluster.gateways.join(", "),
                            g.inbound()
                        )
                    } else {
                        format!("no outbound gateway to {}", missing.join(", "))
                    },
                }
            }
        });
    }
    if !cluster.leaf_remotes.is_empty() {
        let want = cluster.leaf_remotes.len();
        checks.push(match monitor.leafz(base).await {
            Err(e) => Check {
                name: "leafnodes",
                ok: false,
                detail: e.to_string(),
            },
            Ok(l) => Check {
                name: "leafnodes",
                ok: l.leafnodes >= want,
                detail: format!(
                    "{} of {want} leafnode link(s) to {} up",
                    l.leafnodes.min(want),
                    cluster.leaf_remotes.join(", ")
                ),
            },
        });
    }
    checks
}
