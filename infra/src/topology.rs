//! The typed topology model: profiles -> clusters -> nodes, with names and ports.
//!
//! Everything that starts, renders or checks NATS servers reads this model, so a port or a name
//! is decided in exactly one place. The fixed ports are a contract (see `docs/configuration.md`);
//! tests re-map them onto free ports with [`Topology::remap_ports`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A named, supported deployment shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// One JetStream server, no clustering: the smallest thing that works.
    Single,
    /// Three JetStream servers in one cluster; primary streams get 3 replicas.
    Ha,
}

impl Profile {
    pub const ALL: [Profile; 2] = [Profile::Single, Profile::Ha];

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Single => "single",
            Profile::Ha => "ha",
        }
    }

    /// Profiles whose streams are replicated need at least three servers per cluster.
    pub fn is_replicated(self) -> bool {
        matches!(self, Profile::Ha)
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Profile {
    type Err = UnknownProfile;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownProfile(s.to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown profile `{0}`: use one of single, ha")]
pub struct UnknownProfile(pub String);

/// Settings every server of a topology shares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSettings {
    /// Address the process backend binds every listener to.
    pub host: String,
    /// JetStream memory store limit, in nats-server size syntax (`256MB`).
    pub max_mem_store: String,
    /// JetStream file store limit (`4GB`).
    pub max_file_store: String,
    /// How often JetStream fsyncs: a duration (`2m`, the server's default) or `always`.
    /// `always` survives a coordinated power loss at a throughput cost (see docs/runbooks).
    pub sync_interval: String,
    /// Lame-duck mode spreads client reconnects over this long before shutdown.
    pub lame_duck_duration: String,
    /// Time after entering lame-duck mode before clients start being closed.
    pub lame_duck_grace_period: String,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            host: "127.0.0.1".to_owned(),
            max_mem_store: "256MB".to_owned(),
            max_file_store: "4GB".to_owned(),
            sync_interval: "2m".to_owned(),
            lame_duck_duration: "30s".to_owned(),
            lame_duck_grace_period: "10s".to_owned(),
        }
    }
}

/// One nats-server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub client_port: u16,
    pub monitor_port: u16,
    /// Cluster (route) port; `None` for an unclustered single server.
    pub route_port: Option<u16>,
    /// Names of the peers this node dials. Explicit per node: a comma-separated env value in a
    /// `routes` array makes the server try only its first URL (measured, see DESIGN.md).
    pub routes: Vec<String>,
}

/// A set of servers joined by routes, forming one JetStream meta group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub name: String,
    /// JetStream domain; `None` leaves the server's default (no domain).
    pub jetstream_domain: Option<String>,
    pub nodes: Vec<Node>,
}

impl Cluster {
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Clustered when the servers are joined by routes (even a one-node cluster).
    pub fn is_clustered(&self) -> bool {
        self.nodes.iter().any(|n| n.route_port.is_some())
    }
}

/// A whole deployment: the input of every renderer and backend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub profile: Profile,
    pub clusters: Vec<Cluster>,
    pub settings: ServerSettings,
}

/// The port ranges of the naming and port contract.
const CLIENT_BASE: u16 = 4222;
const MONITOR_BASE: u16 = 8222;
const ROUTE_BASE: u16 = 6222;

/// The cluster name every single-cluster profile uses.
pub const CLUSTER_NAME: &str = "sea-nats";

impl Topology {
    /// The profile on its fixed, documented ports.
    pub fn for_profile(profile: Profile) -> Topology {
        let clusters = match profile {
            Profile::Single => vec![Cluster {
                name: CLUSTER_NAME.to_owned(),
                jetstream_domain: None,
                nodes: vec![Node {
                    name: "nats-1".to_owned(),
                    client_port: CLIENT_BASE,
                    monitor_port: MONITOR_BASE,
                    route_port: None,
                    routes: Vec::new(),
                }],
            }],
            Profile::Ha => vec![routed_cluster(
                CLUSTER_NAME,
                "nats",
                3,
                CLIENT_BASE,
                MONITOR_BASE,
                ROUTE_BASE,
            )],
        };
        Topology {
            profile,
            clusters,
            settings: ServerSettings::default(),
        }
    }

    /// Every node with the cluster it belongs to, in declaration order.
    pub fn nodes(&self) -> impl Iterator<Item = (&Cluster, &Node)> {
        self.clusters
            .iter()
            .flat_map(|c| c.nodes.iter().map(move |n| (c, n)))
    }

    pub fn node(&self, name: &str) -> Option<(&Cluster, &Node)> {
        self.nodes().find(|(_, n)| n.name == name)
    }

    /// Client URLs of every node of every cluster, comma-separated: the `NATS_SERVERS` value.
    pub fn nats_servers(&self) -> String {
        self.nodes()
            .map(|(_, n)| self.client_url(n))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn client_url(&self, node: &Node) -> String {
        format!("nats://{}:{}", self.settings.host, node.client_port)
    }

    pub fn monitor_url(&self, node: &Node) -> String {
        format!("http://{}:{}", self.settings.host, node.monitor_port)
    }

    /// Every port the topology binds, with its owner, in a stable order.
    pub fn ports(&self) -> Vec<PortUse> {
        let mut out = Vec::new();
        for (_, n) in self.nodes() {
            out.push(PortUse {
                port: n.client_port,
                node: n.name.clone(),
                role: PortRole::Client,
            });
            out.push(PortUse {
                port: n.monitor_port,
                node: n.name.clone(),
                role: PortRole::Monitor,
            });
            if let Some(p) = n.route_port {
                out.push(PortUse {
                    port: p,
                    node: n.name.clone(),
                    role: PortRole::Route,
                });
            }
        }
        out
    }

    /// Replaces every port with one from `next_port` (tests use free ports, never the fixed ones).
    pub fn remap_ports(mut self, mut next_port: impl FnMut() -> u16) -> Topology {
        for node in self.clusters.iter_mut().flat_map(|c| c.nodes.iter_mut()) {
            node.client_port = next_port();
            node.monitor_port = next_port();
            if let Some(p) = node.route_port.as_mut() {
                *p = next_port();
            }
        }
        self
    }

    /// Checks the invariants every renderer and backend relies on.
    pub fn validate(&self) -> Result<(), TopologyError> {
        if self.clusters.is_empty() {
            return Err(TopologyError::NoClusters);
        }
        let mut names = BTreeSet::new();
        for (_, node) in self.nodes() {
            check_name("server", &node.name)?;
            if !names.insert(node.name.as_str()) {
                return Err(TopologyError::DuplicateName(node.name.clone()));
            }
        }
        let mut clusters = BTreeSet::new();
        for cluster in &self.clusters {
            check_name("cluster", &cluster.name)?;
            if !clusters.insert(cluster.name.as_str()) {
                return Err(TopologyError::DuplicateName(cluster.name.clone()));
            }
            if self.profile.is_replicated() && cluster.nodes.len() < 3 {
                return Err(TopologyError::TooFewServers {
                    cluster: cluster.name.clone(),
                    profile: self.profile,
                    count: cluster.nodes.len(),
                });
            }
            let clustered = cluster.is_clustered();
            for node in &cluster.nodes {
                if clustered && node.route_port.is_none() {
                    return Err(TopologyError::MissingRoutePort {
                        node: node.name.clone(),
                    });
                }
                for peer in &node.routes {
                    if cluster.node(peer).is_none() {
                        return Err(TopologyError::UnknownRoute {
                            node: node.name.clone(),
                            peer: peer.clone(),
                            cluster: cluster.name.clone(),
                        });
                    }
                }
            }
        }
        let mut seen: BTreeMap<u16, PortUse> = BTreeMap::new();
        for usage in self.ports() {
            if usage.port == 0 {
                return Err(TopologyError::ZeroPort(usage));
            }
            if let Some(first) = seen.get(&usage.port) {
                return Err(TopologyError::DuplicatePort {
                    first: first.clone(),
                    second: usage,
                });
            }
            seen.insert(usage.port, usage);
        }
        Ok(())
    }
}

/// A cluster of `size` nodes named `<prefix>-1..N` on consecutive ports, each routing to every peer.
fn routed_cluster(
    name: &str,
    prefix: &str,
    size: u16,
    client: u16,
    monitor: u16,
    route: u16,
) -> Cluster {
    let names: Vec<String> = (1..=size).map(|i| format!("{prefix}-{i}")).collect();
    let nodes = names
        .iter()
        .zip(0u16..)
        .map(|(node, i)| Node {
            name: node.clone(),
            client_port: client + i,
            monitor_port: monitor + i,
            route_port: Some(route + i),
            routes: names.iter().filter(|peer| *peer != node).cloned().collect(),
        })
        .collect();
    Cluster {
        name: name.to_owned(),
        jetstream_domain: None,
        nodes,
    }
}

fn check_name(kind: &'static str, name: &str) -> Result<(), TopologyError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(TopologyError::BadName {
            kind,
            name: name.to_owned(),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortRole {
    Client,
    Monitor,
    Route,
}

impl fmt::Display for PortRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortRole::Client => "client",
            PortRole::Monitor => "monitor",
            PortRole::Route => "route",
        })
    }
}

/// One port of one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortUse {
    pub port: u16,
    pub node: String,
    pub role: PortRole,
}

impl fmt::Display for PortUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} port of {})", self.port, self.role, self.node)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopologyError {
    #[error("the topology has no cluster: add at least one")]
    NoClusters,
    #[error("name `{0}` is used twice: server and cluster names must be unique")]
    DuplicateName(String),
    #[error("{kind} name `{name}` is invalid: use letters, digits, `-` and `_`")]
    BadName { kind: &'static str, name: String },
    #[error("port {} is used twice: by {first} and by {second}; give each listener its own port", first.port)]
    DuplicatePort { first: PortUse, second: PortUse },
    #[error("port 0 for {0}: every listener needs a fixed port")]
    ZeroPort(PortUse),
    #[error("cluster `{cluster}` of profile {profile} has {count} server(s): a replicated profile needs at least 3 for quorum")]
    TooFewServers {
        cluster: String,
        profile: Profile,
        count: usize,
    },
    #[error("server `{node}` routes to `{peer}`, which is not a server of cluster `{cluster}`")]
    UnknownRoute {
        node: String,
        peer: String,
        cluster: String,
    },
    #[error("server `{node}` is in a routed cluster but has no route port")]
    MissingRoutePort { node: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_ports_follow_the_contract() {
        let ha = Topology::for_profile(Profile::Ha);
        let ports: Vec<_> = ha
            .nodes()
            .map(|(_, n)| (n.client_port, n.monitor_port, n.route_port))
            .collect();
        assert_eq!(
            ports,
            [
                (4222, 8222, Some(6222)),
                (4223, 8223, Some(6223)),
                (4224, 8224, Some(6224))
            ]
        );
        assert_eq!(
            ha.nats_servers(),
            "nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224"
        );
        assert_eq!(ha.clusters[0].nodes[1].routes, ["nats-1", "nats-3"]);
        let single = Topology::for_profile(Profile::Single);
        assert_eq!(single.nats_servers(), "nats://127.0.0.1:4222");
        assert!(!single.clusters[0].is_clustered());
        for p in Profile::ALL {
            Topology::for_profile(p).validate().unwrap();
        }
    }

    #[test]
    fn profiles_parse_and_reject_unknown_names() {
        assert_eq!("ha".parse::<Profile>().unwrap(), Profile::Ha);
        let err = "triple".parse::<Profile>().unwrap_err().to_string();
        assert_eq!(err, "unknown profile `triple`: use one of single, ha");
    }

    #[test]
    fn remapping_keeps_the_shape() {
        let mut next = 30000;
        let t = Topology::for_profile(Profile::Ha).remap_ports(|| {
            next += 1;
            next
        });
        t.validate().unwrap();
        assert_eq!(t.clusters[0].nodes[0].client_port, 30001);
        assert_eq!(t.clusters[0].nodes[2].route_port, Some(30009));
    }

    #[test]
    fn duplicate_port_is_refused_naming_both_users() {
        let mut t = Topology::for_profile(Profile::Ha);
        t.clusters[0].nodes[1].monitor_port = 4222;
        let err = t.validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "port 4222 is used twice: by 4222 (client port of nats-1) and by 4222 (monitor port of nats-2); \
             give each listener its own port"
        );
    }

    #[test]
    fn duplicate_name_is_refused() {
        let mut t = Topology::for_profile(Profile::Ha);
        t.clusters[0].nodes[2].name = "nats-1".into();
        assert_eq!(
            t.validate().unwrap_err(),
            TopologyError::DuplicateName("nats-1".into())
        );
    }

    #[test]
    fn route_to_unknown_node_is_refused() {
        let mut t = Topology::for_profile(Profile::Ha);
        t.clusters[0].nodes[0].routes.push("nats-9".into());
        let err = t.validate().unwrap_err();
        assert!(
            matches!(err, TopologyError::UnknownRoute { ref peer, .. } if peer == "nats-9"),
            "{err}"
        );
    }

    #[test]
    fn replicated_profile_needs_three_servers() {
        let mut t = Topology::for_profile(Profile::Ha);
        t.clusters[0].nodes.truncate(2);
        t.clusters[0].nodes[0].routes.retain(|r| r != "nats-3");
        t.clusters[0].nodes[1].routes.retain(|r| r != "nats-3");
        let err = t.validate().unwrap_err();
        assert!(
            err.to_string()
                .contains("has 2 server(s): a replicated profile needs at least 3"),
            "{err}"
        );
    }

    #[test]
    fn bad_names_and_zero_ports_are_refused() {
        let mut t = Topology::for_profile(Profile::Single);
        t.clusters[0].nodes[0].name = "nats 1".into();
        assert!(matches!(t.validate(), Err(TopologyError::BadName { .. })));
        let mut t = Topology::for_profile(Profile::Single);
        t.clusters[0].nodes[0].monitor_port = 0;
        assert!(matches!(t.validate(), Err(TopologyError::ZeroPort(_))));
        let mut t = Topology::for_profile(Profile::Ha);
        t.clusters[0].nodes[1].route_port = None;
        assert!(matches!(
            t.validate(),
            Err(TopologyError::MissingRoutePort { .. })
        ));
    }
}
