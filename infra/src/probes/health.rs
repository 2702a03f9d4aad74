//! The health gate: what "this cluster is up" means, judged from the monitoring endpoints only,
//! so every backend (processes, containers) shares it.
//!
//! A server passes when `/healthz` is ok (server ready, JetStream current with a meta leader,
//! its streams and consumers healthy), `/jsz` names a meta leader of the expected cluster size,
//! `/routez` shows a route to every peer that is expected to be up, and, where it has them, its
//! gateways and leafnode links are connected. [`check`] fetches; [`judge`] decides, from what
//! was fetched, without I/O.

use std::collections::BTreeSet;

use serde::Serialize;

use super::monitor::{Gatewayz, Healthz, Jsz, Leafz, Monitor, MonitorError, Routez};
use crate::model::{Cluster, Server, Topology};

/// The checks of one server, in the order they are reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckName {
    /// `/healthz`: the server's own verdict.
    Healthz,
    /// `/jsz` of an unclustered server: JetStream enabled.
    #[serde(rename = "jetstream")]
    JetStream,
    MetaLeader,
    /// The meta group has the expected number of peers.
    ClusterSize,
    Routes,
    Gateways,
    Leafnodes,
}

impl CheckName {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::Healthz => "healthz",
            CheckName::JetStream => "jetstream",
            CheckName::MetaLeader => "meta-leader",
            CheckName::ClusterSize => "cluster-size",
            CheckName::Routes => "routes",
            CheckName::Gateways => "gateways",
            CheckName::Leafnodes => "leafnodes",
        }
    }

    /// A failing `/healthz` (server down or not ready) is a root cause; the other checks often
    /// fail only because of it (a peer missing its route to a dead server).
    fn is_root_cause(self) -> bool {
        self == CheckName::Healthz
    }
}

/// One named check of one server.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: CheckName,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    fn new(name: CheckName, ok: bool, detail: impl Into<String>) -> Check {
        Check {
            name,
            ok,
            detail: detail.into(),
        }
    }
}

/// Everything the gate and `status` know about one server.
#[derive(Clone, Debug, Serialize)]
pub struct ServerHealth {
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

impl ServerHealth {
    pub fn first_failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| !c.ok)
    }
}

/// The gate's verdict over a set of servers.
#[derive(Clone, Debug, Serialize)]
pub struct HealthReport {
    pub servers: Vec<ServerHealth>,
}

impl HealthReport {
    pub fn is_healthy(&self) -> bool {
        self.servers.iter().all(|n| n.healthy)
    }

    /// The most telling failure: a server whose own `/healthz` fails (down, or not ready) comes
    /// before peers that merely miss their route to it.
    pub fn first_failure(&self) -> Option<(&ServerHealth, &Check)> {
        self.ranked_failures().next()
    }

    /// One line per failing server, root causes first: `nats-2: healthz: connection refused`.
    pub fn failures(&self) -> Vec<String> {
        self.ranked_failures()
            .map(|(n, c)| format!("{}: {}: {}", n.name, c.name.as_str(), c.detail))
            .collect()
    }

    fn ranked_failures(&self) -> impl Iterator<Item = (&ServerHealth, &Check)> {
        let mut failing: Vec<_> = self
            .servers
            .iter()
            .filter_map(|n| n.first_failure().map(|c| (n, c)))
            .collect();
        failing.sort_by_key(|(_, c)| !c.name.is_root_cause());
        failing.into_iter()
    }
}

/// What was fetched from one server's monitoring endpoints. `gatewayz` and `leafz` are fetched
/// only where the topology says the server has gateways or dials leafnodes.
pub(crate) struct Fetched {
    pub healthz: Result<Healthz, MonitorError>,
    pub jsz: Result<Jsz, MonitorError>,
    pub routez: Result<Routez, MonitorError>,
    pub gatewayz: Option<Result<Gatewayz, MonitorError>>,
    pub leafz: Option<Result<Leafz, MonitorError>>,
}

/// Checks the servers named in `expected_up` (every server when `None`). Peers outside that set
/// are not required as routes: that is how a partial restart (one server down on purpose) is
/// gated.
pub async fn check(
    monitor: &Monitor,
    topology: &Topology,
    expected_up: Option<&BTreeSet<String>>,
) -> HealthReport {
    let wanted = |name: &str| expected_up.is_none_or(|set| set.contains(name));
    let checks = topology
        .servers()
        .filter(|(_, s)| wanted(&s.name))
        .map(|(cluster, server)| {
            let peers: BTreeSet<String> = cluster
                .servers
                .iter()
                .filter(|p| p.name != server.name && wanted(&p.name))
                .map(|p| p.name.clone())
                .collect();
            async move {
                let fetched = fetch(monitor, topology, cluster, server).await;
                judge(topology, cluster, server, &peers, fetched)
            }
        });
    HealthReport {
        servers: futures::future::join_all(checks).await,
    }
}

async fn fetch(
    monitor: &Monitor,
    topology: &Topology,
    cluster: &Cluster,
    server: &Server,
) -> Fetched {
    let base = topology.monitor_url(server);
    let has_gateways = server.gateway_port.is_some() && !cluster.gateways.is_empty();
    let dials_leafs = !cluster.leaf_remotes.is_empty();
    let (healthz, jsz, routez, gatewayz, leafz) = tokio::join!(
        monitor.healthz(&base),
        monitor.jsz(&base),
        monitor.routez(&base),
        async {
            match has_gateways {
                true => Some(monitor.gatewayz(&base).await),
                false => None,
            }
        },
        async {
            match dials_leafs {
                true => Some(monitor.leafz(&base).await),
                false => None,
            }
        },
    );
    Fetched {
        healthz,
        jsz,
        routez,
        gatewayz,
        leafz,
    }
}

/// The verdict on one server from what was fetched: pure, so every rule is unit-tested.
pub(crate) fn judge(
    topology: &Topology,
    cluster: &Cluster,
    server: &Server,
    peers: &BTreeSet<String>,
    fetched: Fetched,
) -> ServerHealth {
    let mut checks = vec![match fetched.healthz {
        Ok(h) if h.is_ok() => Check::new(CheckName::Healthz, true, "ok"),
        Ok(h) => Check::new(
            CheckName::Healthz,
            false,
            format!("{}: {}", h.status, h.error.unwrap_or_default()),
        ),
        Err(e) => Check::new(CheckName::Healthz, false, e.to_string()),
    }];

    let mut meta_leader = None;
    let mut is_meta_leader = false;
    match fetched.jsz {
        Err(e) => checks.push(Check::new(CheckName::JetStream, false, e.to_string())),
        Ok(jsz) if !cluster.is_clustered() => {
            // A lone server has no meta group: it is the JetStream authority when JetStream is on.
            let on = jsz.config.is_some();
            is_meta_leader = on;
            meta_leader = on.then(|| server.name.clone());
            let detail = if on {
                "enabled (unclustered)"
            } else {
                "JetStream is not enabled"
            };
            checks.push(Check::new(CheckName::JetStream, on, detail));
        }
        Ok(jsz) => {
            let meta = jsz.meta_cluster.unwrap_or_default();
            meta_leader = meta.leader.clone().filter(|l| !l.is_empty());
            is_meta_leader = meta_leader.as_deref() == Some(server.name.as_str());
            checks.push(match &meta_leader {
                Some(l) => Check::new(CheckName::MetaLeader, true, l.clone()),
                None => Check::new(CheckName::MetaLeader, false, "no JetStream meta leader"),
            });
            let want = topology.meta_group_size(cluster);
            let size = meta.cluster_size.unwrap_or(0);
            checks.push(Check::new(
                CheckName::ClusterSize,
                size == want,
                format!("meta group has {size} peer(s), expected {want}"),
            ));
        }
    }

    let routes = fetched
        .routez
        .as_ref()
        .map(|r| r.peer_names())
        .unwrap_or_default();
    if cluster.is_clustered() {
        checks.push(match &fetched.routez {
            Err(e) => Check::new(CheckName::Routes, false, e.to_string()),
            Ok(_) => {
                let missing: Vec<&str> = peers
                    .iter()
                    .filter(|p| !routes.contains(p))
                    .map(String::as_str)
                    .collect();
                if missing.is_empty() {
                    Check::new(
                        CheckName::Routes,
                        true,
                        format!("routes to {}", routes.join(", ")),
                    )
                } else {
                    Check::new(
                        CheckName::Routes,
                        false,
                        format!("no route to {}", missing.join(", ")),
                    )
                }
            }
        });
    }

    if let Some(gatewayz) = fetched.gatewayz {
        checks.push(match gatewayz {
            Err(e) => Check::new(CheckName::Gateways, false, e.to_string()),
            Ok(g) => {
                let missing: Vec<&str> = cluster
                    .gateways
                    .iter()
                    .filter(|c| !g.connected_to(c))
                    .map(String::as_str)
                    .collect();
                let detail = if missing.is_empty() {
                    format!(
                        "outbound to {}, {} inbound",
                        cluster.gateways.join(", "),
                        g.inbound()
                    )
                } else {
                    format!("no outbound gateway to {}", missing.join(", "))
                };
                Check::new(CheckName::Gateways, missing.is_empty(), detail)
            }
        });
    }
    if let Some(leafz) = fetched.leafz {
        let want = cluster.leaf_remotes.len();
        checks.push(match leafz {
            Err(e) => Check::new(CheckName::Leafnodes, false, e.to_string()),
            Ok(l) => Check::new(
                CheckName::Leafnodes,
                l.leafnodes >= want,
                format!(
                    "{} of {want} leafnode link(s) to {} up",
                    l.leafnodes.min(want),
                    cluster.leaf_remotes.join(", ")
                ),
            ),
        });
    }

    ServerHealth {
        cluster: cluster.name.clone(),
        name: server.name.clone(),
        client_url: topology.client_url(server),
        monitor_url: topology.monitor_url(server),
        healthy: checks.iter().all(|c| c.ok),
        is_meta_leader,
        meta_leader,
        routes,
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Profile;

    fn parse<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, MonitorError> {
        Ok(serde_json::from_str(json).expect("fixture parses"))
    }

    fn down() -> MonitorError {
        MonitorError::Unreachable {
            url: "http://127.0.0.1:8222/healthz".into(),
            reason: "Connection refused".into(),
        }
    }

    /// What a healthy member of a three-server cluster answers.
    fn healthy(leader: &str, peers: &[&str]) -> Fetched {
        let routes: Vec<String> = peers
            .iter()
            .map(|p| format!(r#"{{"remote_name":"{p}"}}"#))
            .collect();
        Fetched {
            healthz: parse(r#"{"status":"ok"}"#),
            jsz: parse(&format!(
                r#"{{"config":{{}},"meta_cluster":{{"name":"sea-nats","leader":"{leader}","cluster_size":3}}}}"#
            )),
            routez: parse(&format!(r#"{{"routes":[{}]}}"#, routes.join(","))),
            gatewayz: None,
            leafz: None,
        }
    }

    fn judge_ha(name: &str, peers: &[&str], fetched: Fetched) -> ServerHealth {
        let t = Topology::for_profile(Profile::Ha);
        let (cluster, server) = t.server(name).unwrap();
        let peers: BTreeSet<String> = peers.iter().map(|p| p.to_string()).collect();
        judge(&t, cluster, server, &peers, fetched)
    }

    #[test]
    fn a_healthy_cluster_member_passes_every_check() {
        let h = judge_ha(
            "nats-1",
            &["nats-2", "nats-3"],
            healthy("nats-2", &["nats-2", "nats-3"]),
        );
        assert!(h.healthy, "{:?}", h.checks);
        let names: Vec<CheckName> = h.checks.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                CheckName::Healthz,
                CheckName::MetaLeader,
                CheckName::ClusterSize,
                CheckName::Routes
            ]
        );
        assert_eq!(h.meta_leader.as_deref(), Some("nats-2"));
        assert!(!h.is_meta_leader);
    }

    #[test]
    fn a_missing_route_a_missing_leader_and_a_small_meta_group_each_fail() {
        let mut f = healthy("", &["nats-2"]);
        f.jsz = parse(r#"{"meta_cluster":{"leader":"","cluster_size":2}}"#);
        let h = judge_ha("nats-1", &["nats-2", "nats-3"], f);
        let failed: Vec<(CheckName, &str)> = h
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| (c.name, c.detail.as_str()))
            .collect();
        assert_eq!(
            failed,
            [
                (CheckName::MetaLeader, "no JetStream meta leader"),
                (
                    CheckName::ClusterSize,
                    "meta group has 2 peer(s), expected 3"
                ),
                (CheckName::Routes, "no route to nats-3"),
            ]
        );
    }

    #[test]
    fn a_peer_expected_down_is_not_required_as_a_route() {
        let h = judge_ha("nats-1", &["nats-2"], healthy("nats-1", &["nats-2"]));
        assert!(h.healthy, "{:?}", h.checks);
        assert!(h.is_meta_leader);
    }

    #[test]
    fn the_dead_server_is_blamed_before_peers_missing_their_route_to_it() {
        let peer = judge_ha(
            "nats-1",
            &["nats-2", "nats-3"],
            healthy("nats-1", &["nats-2"]),
        );
        let dead = judge_ha(
            "nats-3",
            &["nats-1", "nats-2"],
            Fetched {
                healthz: Err(down()),
                jsz: Err(down()),
                routez: Err(down()),
                gatewayz: None,
                leafz: None,
            },
        );
        let report = HealthReport {
            servers: vec![peer, dead],
        };
        assert!(!report.is_healthy());
        let (server, check) = report.first_failure().unwrap();
        assert_eq!(
            (server.name.as_str(), check.name),
            ("nats-3", CheckName::Healthz)
        );
        assert!(report.failures()[1].starts_with("nats-1: routes: no route to nats-3"));
    }

    #[test]
    fn a_lone_server_needs_jetstream_and_no_meta_group() {
        let t = Topology::for_profile(Profile::Single);
        let (cluster, server) = t.server("nats-1").unwrap();
        let fetched = |jsz: &str| Fetched {
            healthz: parse(r#"{"status":"ok"}"#),
            jsz: parse(jsz),
            routez: parse("{}"),
            gatewayz: None,
            leafz: None,
        };
        let on = judge(
            &t,
            cluster,
            server,
            &BTreeSet::new(),
            fetched(r#"{"config":{}}"#),
        );
        assert!(on.healthy && on.is_meta_leader);
        let off = judge(&t, cluster, server, &BTreeSet::new(), fetched("{}"));
        assert_eq!(off.first_failure().unwrap().name, CheckName::JetStream);
    }

    #[test]
    fn federation_links_are_judged_where_the_topology_has_them() {
        let t = Topology::for_profile(Profile::Leaf);
        let dialer = t
            .clusters
            .iter()
            .find(|c| !c.leaf_remotes.is_empty())
            .unwrap();
        let server = &dialer.servers[0];
        let peers: BTreeSet<String> = dialer.servers[1..].iter().map(|s| s.name.clone()).collect();
        let routes: Vec<&str> = peers.iter().map(String::as_str).collect();
        let mut f = healthy(&dialer.servers[1].name, &routes);
        f.leafz = Some(parse(r#"{"leafnodes":0}"#));
        let h = judge(&t, dialer, server, &peers, f);
        let leaf = h
            .checks
            .iter()
            .find(|c| c.name == CheckName::Leafnodes)
            .unwrap();
        assert!(!leaf.ok, "{leaf:?}");
        assert!(
            leaf.detail.starts_with("0 of 1 leafnode link(s)"),
            "{}",
            leaf.detail
        );
    }

    #[test]
    fn check_names_serialize_as_the_cli_prints_them() {
        for name in [
            CheckName::Healthz,
            CheckName::JetStream,
            CheckName::MetaLeader,
            CheckName::ClusterSize,
            CheckName::Routes,
            CheckName::Gateways,
            CheckName::Leafnodes,
        ] {
            assert_eq!(
                serde_json::to_value(name).unwrap(),
                serde_json::Value::from(name.as_str())
            );
        }
    }
}
