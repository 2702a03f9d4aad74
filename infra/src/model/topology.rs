//! The typed topology model: profiles -> clusters -> servers, with names and ports.
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
    /// A supercluster: clusters `sea-a` and `sea-b` of three servers each, joined by gateways,
    /// one JetStream domain (one meta group of six).
    Mesh,
    /// Two cells `cell-a` and `cell-b` of three servers each, each its own JetStream domain,
    /// joined by leafnode links that carry only the federated subjects.
    Leaf,
}

/// The variable that names the compose profile the one-shot provisioner (`sea-mq-worker
/// provision`, service `sea-provision` of the compose files) provisions, seen from inside the
/// compose network ([`Topology::in_containers`]).
pub const ENV_COMPOSE_PROFILE: &str = "SEA_COMPOSE_PROFILE";

impl Profile {
    pub const ALL: [Profile; 4] = [Profile::Single, Profile::Ha, Profile::Mesh, Profile::Leaf];

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Single => "single",
            Profile::Ha => "ha",
            Profile::Mesh => "mesh",
            Profile::Leaf => "leaf",
        }
    }

    /// Profiles whose streams are replicated need at least three servers per cluster.
    pub fn is_replicated(self) -> bool {
        !matches!(self, Profile::Single)
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Profile {
    type Err = UnknownProfile;

    /// `ha`, or the compose profile's name `nats-ha` (what the compose files and the seeds say).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.strip_prefix("nats-").unwrap_or(s);
        Profile::ALL
            .into_iter()
            .find(|p| p.as_str() == name)
            .ok_or_else(|| UnknownProfile(s.to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown profile `{0}`: use one of single, ha, mesh, leaf (or nats-single, nats-ha, nats-mesh, nats-leaf)")]
pub struct UnknownProfile(pub String);

/// Settings every server of a topology shares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSettings {
    /// Address the process backend binds every listener to.
    pub host: String,
    /// JetStream memory store limit, in nats-server size syntax (`256MB`).
    pub max_mem_store: String,
    /// JetStream file store limit (`8GB`).
    pub max_file_store: String,
    /// How often JetStream fsyncs: a duration (`2m`, the server's default) or `always`.
    /// `always` survives a coordinated power loss at a throughput cost (see docs/runbooks).
    pub sync_interval: String,
    /// Lame-duck mode spreads client reconnects over this long before shutdown.
    pub lame_duck_duration: String,
    /// Time after entering lame-duck mode before clients start being closed.
    pub lame_duck_grace_period: String,
    /// How peers and clients reach a server: `None` is `host`; otherwise `{server}` in it is
    /// replaced by the server's name (a container's service name, a pod's DNS name).
    #[serde(default)]
    pub peer_host: Option<String>,
    /// Directory under which each server's JetStream store lives (relative to the server's
    /// working directory, or absolute in a container).
    #[serde(default = "default_store_root")]
    pub store_root: String,
    /// Takes `server_name` from this environment variable: one config shared by every pod of a
    /// StatefulSet. The store is then `store_root` itself (each pod has its own volume).
    #[serde(default)]
    pub server_name_env: Option<String>,
    /// TLS and authentication of every listener.
    #[serde(default)]
    pub security: crate::model::Security,
    /// Where a secured server finds its certificates and keys, as its config names them:
    /// relative to its working directory for processes, absolute in containers and pods. The
    /// accounts file is always included from `secrets/` beside the config.
    #[serde(default = "default_secrets_dir")]
    pub secrets_dir: String,
}

fn default_secrets_dir() -> String {
    "secrets".to_owned()
}

impl ServerSettings {
    /// `lame_duck_duration` in whole seconds (what stop timeouts are sized from); 30 when it
    /// does not parse.
    pub fn lame_duck_secs(&self) -> u64 {
        crate::env::parse_duration(&self.lame_duck_duration).map_or(30, |d| d.as_secs())
    }
}

/// The server's own `sync_interval` (nats-server fsyncs every 2 minutes unless told otherwise):
/// what `default` selects.
pub const DEFAULT_SYNC_INTERVAL: &str = "2m";

/// A `sync_interval` as a command line gives it: `default` (the server's own, 2 minutes),
/// `always` (fsync before every acknowledgement: the durable variant) or a duration the server
/// parses (`500ms`, `10s`, `1m`, `1h`). The value to render.
pub fn parse_sync_interval(s: &str) -> Result<String, String> {
    match s.trim() {
        "default" => Ok(DEFAULT_SYNC_INTERVAL.to_owned()),
        "always" => Ok("always".to_owned()),
        d if d.ends_with('d') => Err(format!(
            "`{d}`: the server takes ms, s, m or h; use default, always or e.g. 10s"
        )),
        d => match crate::env::parse_duration(d) {
            Ok(x) if !x.is_zero() => Ok(d.to_owned()),
            _ => Err(format!(
                "`{d}` is not a sync interval: use default (the server's 2m), always, or a duration such as 10s"
            )),
        },
    }
}

fn default_store_root() -> String {
    "data".to_owned()
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            host: "127.0.0.1".to_owned(),
            max_mem_store: "256MB".to_owned(),
            max_file_store: "8GB".to_owned(),
            sync_interval: DEFAULT_SYNC_INTERVAL.to_owned(),
            lame_duck_duration: "30s".to_owned(),
            lame_duck_grace_period: "10s".to_owned(),
            peer_host: None,
            store_root: default_store_root(),
            server_name_env: None,
            security: crate::model::Security::Plain,
            secrets_dir: default_secrets_dir(),
        }
    }
}

/// One nats-server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    pub name: String,
    pub client_port: u16,
    pub monitor_port: u16,
    /// Cluster (route) port; `None` for an unclustered single server.
    pub route_port: Option<u16>,
    /// Names of the peers this server dials. Explicit per server: a comma-separated env value in a
    /// `routes` array makes the server try only its first URL (measured on 2.15.1).
    pub routes: Vec<String>,
    /// Gateway port, for a cluster joined to others by gateways.
    #[serde(default)]
    pub gateway_port: Option<u16>,
    /// Port accepting leafnode connections from other cells.
    #[serde(default)]
    pub leaf_port: Option<u16>,
}

/// A set of servers joined by routes, forming one JetStream meta group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub name: String,
    /// JetStream domain; `None` leaves the server's default (no domain).
    pub jetstream_domain: Option<String>,
    #[serde(alias = "nodes")] // topology.json files written before the rename
    pub servers: Vec<Server>,
    /// Clusters this one is joined to by gateways (a supercluster: one JetStream domain).
    #[serde(default)]
    pub gateways: Vec<String>,
    /// Clusters whose leafnode ports this one's servers dial (every server of the other cell, so
    /// losing one server does not cut the link).
    #[serde(default)]
    pub leaf_remotes: Vec<String>,
    /// Renders this cluster's leafnode remotes `disabled` (the link cut on purpose, by the
    /// `leaf-partition` drill); a running server picks it up on reload.
    #[serde(default)]
    pub leaf_links_disabled: bool,
    /// Servers of this cluster cut off from their peers on purpose (the process backend's
    /// partition): they dial no route and no peer dials them; running servers pick it up on
    /// reload.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cut_off: Vec<String>,
}

impl Cluster {
    pub fn server(&self, name: &str) -> Option<&Server> {
        self.servers.iter().find(|n| n.name == name)
    }

    /// Clustered when the servers are joined by routes (even a one-server cluster).
    pub fn is_clustered(&self) -> bool {
        self.servers.iter().any(|n| n.route_port.is_some())
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

/// The ports every server listens on inside its own container or pod (nats-server's defaults).
pub struct ContainerPorts {
    pub client: u16,
    pub monitor: u16,
    pub route: u16,
    pub gateway: u16,
    pub leaf: u16,
}

pub const CONTAINER_PORTS: ContainerPorts = ContainerPorts {
    client: 4222,
    monitor: 8222,
    route: 6222,
    gateway: 7222,
    leaf: 7422,
};

/// The cluster name every single-cluster profile uses.
pub const CLUSTER_NAME: &str = "sea-nats";

/// The only subjects that cross a leafnode link between cells: federation exports exactly these
/// (events and dead letters), nothing else a cell does.
pub const FEDERATED_SUBJECTS: [&str; 2] = ["*.event.>", "*.dlq.>"];

impl Topology {
    /// The profile on its fixed, documented ports.
    pub fn for_profile(profile: Profile) -> Topology {
        let clusters = match profile {
            Profile::Single => vec![Cluster {
                name: CLUSTER_NAME.to_owned(),
                jetstream_domain: None,
                servers: vec![Server {
                    name: "nats-1".to_owned(),
                    client_port: CLIENT_BASE,
                    monitor_port: MONITOR_BASE,
                    route_port: None,
                    routes: Vec::new(),
                    gateway_port: None,
                    leaf_port: None,
                }],
                gateways: Vec::new(),
                leaf_remotes: Vec::new(),
                leaf_links_disabled: false,
                cut_off: Vec::new(),
            }],
            Profile::Ha => vec![routed_cluster(
                CLUSTER_NAME,
                "nats",
                Ports::at(CLIENT_BASE, MONITOR_BASE, ROUTE_BASE),
            )],
            // Ports: the names-and-ports contract (README, docs/configuration.md) fixes client and
            // monitor ports; routes, gateways and leafnodes are
            // the project's choice (docs/configuration.md), clear of every other profile.
            Profile::Mesh => {
                let mut a = routed_cluster("sea-a", "sea-a", Ports::at(4422, 8422, 6422));
                let mut b = routed_cluster("sea-b", "sea-b", Ports::at(5422, 9422, 6522));
                set_ports(&mut a, |n| &mut n.gateway_port, 7422);
                set_ports(&mut b, |n| &mut n.gateway_port, 7522);
                a.gateways = vec![b.name.clone()];
                b.gateways = vec![a.name.clone()];
                vec![a, b]
            }
            Profile::Leaf => {
                let mut a = routed_cluster("cell-a", "cell-a", Ports::at(4622, 8622, 6622));
                let mut b = routed_cluster("cell-b", "cell-b", Ports::at(5622, 9622, 6722));
                a.jetstream_domain = Some("cell-a".to_owned());
                b.jetstream_domain = Some("cell-b".to_owned());
                set_ports(&mut a, |n| &mut n.leaf_port, 7622);
                b.leaf_remotes = vec![a.name.clone()];
                vec![a, b]
            }
        };
        Topology {
            profile,
            clusters,
            settings: ServerSettings::default(),
        }
    }

    /// Every server with the cluster it belongs to, in declaration order.
    pub fn servers(&self) -> impl Iterator<Item = (&Cluster, &Server)> {
        self.clusters
            .iter()
            .flat_map(|c| c.servers.iter().map(move |n| (c, n)))
    }

    pub fn server(&self, name: &str) -> Option<(&Cluster, &Server)> {
        self.servers().find(|(_, n)| n.name == name)
    }

    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.name == name)
    }

    /// Servers in the JetStream meta group of `cluster`: its own plus those of every cluster it
    /// reaches through gateways (a supercluster shares one meta group).
    pub(crate) fn meta_group_size(&self, cluster: &Cluster) -> usize {
        let mut seen = BTreeSet::from([cluster.name.as_str()]);
        let mut todo = vec![cluster];
        while let Some(c) = todo.pop() {
            for other in c.gateways.iter().filter_map(|g| self.cluster(g)) {
                if seen.insert(other.name.as_str()) {
                    todo.push(other);
                }
            }
        }
        seen.iter()
            .filter_map(|n| self.cluster(n))
            .map(|c| c.servers.len())
            .sum()
    }

    /// Client URLs of one cluster's servers.
    pub fn client_urls(&self, cluster: &Cluster) -> Vec<String> {
        cluster.servers.iter().map(|n| self.client_url(n)).collect()
    }

    /// Client URLs of one cluster's servers, comma-separated (a cell's `NATS_SERVERS`).
    pub fn cluster_servers(&self, cluster: &Cluster) -> String {
        self.client_urls(cluster).join(",")
    }

    /// Client URLs of every server of every cluster, comma-separated: the `NATS_SERVERS` value.
    pub fn nats_servers(&self) -> String {
        self.servers()
            .map(|(_, n)| self.client_url(n))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The address peers and clients dial `server` on.
    pub(crate) fn dial_host(&self, server: &Server) -> String {
        match &self.settings.peer_host {
            Some(template) => template.replace("{server}", &server.name),
            None => self.settings.host.clone(),
        }
    }

    /// `nats://host:port`, or `tls://` when every listener requires TLS.
    pub fn client_url(&self, server: &Server) -> String {
        let scheme = if self.settings.security.is_secure() {
            "tls"
        } else {
            "nats"
        };
        format!(
            "{scheme}://{}:{}",
            self.dial_host(server),
            server.client_port
        )
    }

    /// The monitoring endpoint: `http://`, or `https://` on a secured deployment.
    pub fn monitor_url(&self, server: &Server) -> String {
        let scheme = if self.settings.security.is_secure() {
            "https"
        } else {
            "http"
        };
        format!(
            "{scheme}://{}:{}",
            self.dial_host(server),
            server.monitor_port
        )
    }

    /// The same servers as seen inside a container network: every listener on all interfaces
    /// at the standard ports, peers dialled by service name, stores under `/data`. Compose
    /// publishes this topology's own ports on the host, so host-side tools keep using `self`.
    pub fn in_containers(&self) -> Topology {
        let mut t = self.clone();
        t.settings.host = "0.0.0.0".to_owned();
        t.settings.peer_host = Some("{server}".to_owned());
        t.settings.store_root = "/data".to_owned();
        t.settings.secrets_dir = "/etc/nats/secrets".to_owned();
        for server in t.clusters.iter_mut().flat_map(|c| c.servers.iter_mut()) {
            server.client_port = CONTAINER_PORTS.client;
            server.monitor_port = CONTAINER_PORTS.monitor;
            server.route_port = server.route_port.map(|_| CONTAINER_PORTS.route);
            server.gateway_port = server.gateway_port.map(|_| CONTAINER_PORTS.gateway);
            server.leaf_port = server.leaf_port.map(|_| CONTAINER_PORTS.leaf);
        }
        t
    }

    /// The same topology with every listener secured (`Accounts` or `Token`), or plain again.
    pub fn secured(mut self, security: crate::model::Security) -> Topology {
        self.settings.security = security;
        self
    }

    /// Every port the topology binds, with its owner, in a stable order.
    pub fn ports(&self) -> Vec<PortUse> {
        let mut out = Vec::new();
        for (_, n) in self.servers() {
            out.push(PortUse {
                port: n.client_port,
                server: n.name.clone(),
                role: PortRole::Client,
            });
            out.push(PortUse {
                port: n.monitor_port,
                server: n.name.clone(),
                role: PortRole::Monitor,
            });
            let optional = [
                (n.route_port, PortRole::Route),
                (n.gateway_port, PortRole::Gateway),
                (n.leaf_port, PortRole::Leafnode),
            ];
            for (port, role) in optional {
                if let Some(port) = port {
                    out.push(PortUse {
                        port,
                        server: n.name.clone(),
                        role,
                    });
                }
            }
        }
        out
    }

    /// Replaces every port with one from `next_port` (tests use free ports, never the fixed ones).
    pub fn remap_ports(mut self, mut next_port: impl FnMut() -> u16) -> Topology {
        for server in self.clusters.iter_mut().flat_map(|c| c.servers.iter_mut()) {
            server.client_port = next_port();
            server.monitor_port = next_port();
            for port in [
                &mut server.route_port,
                &mut server.gateway_port,
                &mut server.leaf_port,
            ] {
                if let Some(p) = port.as_mut() {
                    *p = next_port();
                }
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
        for (_, server) in self.servers() {
            check_name("server", &server.name)?;
            if !names.insert(server.name.as_str()) {
                return Err(TopologyError::DuplicateName(server.name.clone()));
            }
        }
        let mut clusters = BTreeSet::new();
        for cluster in &self.clusters {
            check_name("cluster", &cluster.name)?;
            if !clusters.insert(cluster.name.as_str()) {
                return Err(TopologyError::DuplicateName(cluster.name.clone()));
            }
            if self.profile.is_replicated() && cluster.servers.len() < 3 {
                return Err(TopologyError::TooFewServers {
                    cluster: cluster.name.clone(),
                    profile: self.profile,
                    count: cluster.servers.len(),
                });
            }
            let clustered = cluster.is_clustered();
            for server in &cluster.servers {
                if clustered && server.route_port.is_none() {
                    return Err(TopologyError::MissingRoutePort {
                        server: server.name.clone(),
                    });
                }
                for peer in &server.routes {
                    if cluster.server(peer).is_none() {
                        return Err(TopologyError::UnknownRoute {
                            server: server.name.clone(),
                            peer: peer.clone(),
                            cluster: cluster.name.clone(),
                        });
                    }
                }
            }
        }
        for cluster in &self.clusters {
            for peer in &cluster.gateways {
                let Some(other) = self.cluster(peer) else {
                    return Err(TopologyError::UnknownCluster {
                        cluster: cluster.name.clone(),
                        link: "gateway",
                        peer: peer.clone(),
                    });
                };
                if other.jetstream_domain != cluster.jetstream_domain {
                    return Err(TopologyError::GatewayDomains {
                        a: cluster.name.clone(),
                        a_domain: domain_label(&cluster.jetstream_domain),
                        b: other.name.clone(),
                        b_domain: domain_label(&other.jetstream_domain),
                    });
                }
                if cluster
                    .servers
                    .iter()
                    .chain(&other.servers)
                    .any(|n| n.gateway_port.is_none())
                {
                    return Err(TopologyError::MissingPort {
                        cluster: peer.clone(),
                        role: PortRole::Gateway,
                    });
                }
            }
            for peer in &cluster.leaf_remotes {
                let Some(other) = self.cluster(peer) else {
                    return Err(TopologyError::UnknownCluster {
                        cluster: cluster.name.clone(),
                        link: "leafnode",
                        peer: peer.clone(),
                    });
                };
                if other.servers.iter().any(|n| n.leaf_port.is_none()) {
                    return Err(TopologyError::MissingPort {
                        cluster: peer.clone(),
                        role: PortRole::Leafnode,
                    });
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

/// The first client, monitor and route port of a cluster; its servers count up from there.
struct Ports {
    client: u16,
    monitor: u16,
    route: u16,
}

impl Ports {
    fn at(client: u16, monitor: u16, route: u16) -> Ports {
        Ports {
            client,
            monitor,
            route,
        }
    }
}

/// Servers per replicated cluster: three, the smallest quorum that survives one loss.
const CLUSTER_SIZE: u16 = 3;

/// A cluster of three servers named `<prefix>-1..3` on consecutive ports, each routing to every
/// peer.
fn routed_cluster(name: &str, prefix: &str, ports: Ports) -> Cluster {
    let names: Vec<String> = (1..=CLUSTER_SIZE)
        .map(|i| format!("{prefix}-{i}"))
        .collect();
    let servers = names
        .iter()
        .zip(0u16..)
        .map(|(server, i)| Server {
            name: server.clone(),
            client_port: ports.client + i,
            monitor_port: ports.monitor + i,
            route_port: Some(ports.route + i),
            routes: names
                .iter()
                .filter(|peer| *peer != server)
                .cloned()
                .collect(),
            gateway_port: None,
            leaf_port: None,
        })
        .collect();
    Cluster {
        name: name.to_owned(),
        jetstream_domain: None,
        servers,
        gateways: Vec::new(),
        leaf_remotes: Vec::new(),
        leaf_links_disabled: false,
        cut_off: Vec::new(),
    }
}

/// Gives every server of `cluster` a port of one kind, counting up from `base`.
fn set_ports(cluster: &mut Cluster, field: impl Fn(&mut Server) -> &mut Option<u16>, base: u16) {
    for (server, i) in cluster.servers.iter_mut().zip(0u16..) {
        *field(server) = Some(base + i);
    }
}

fn domain_label(domain: &Option<String>) -> String {
    domain.as_deref().map_or_else(
        || "the default domain".to_owned(),
        |d| format!("domain `{d}`"),
    )
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
    Gateway,
    Leafnode,
}

impl fmt::Display for PortRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortRole::Client => "client",
            PortRole::Monitor => "monitor",
            PortRole::Route => "route",
            PortRole::Gateway => "gateway",
            PortRole::Leafnode => "leafnode",
        })
    }
}

/// One port of one server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortUse {
    pub port: u16,
    pub server: String,
    pub role: PortRole,
}

impl fmt::Display for PortUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} port of {})", self.port, self.role, self.server)
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
    #[error("server `{server}` routes to `{peer}`, which is not a server of cluster `{cluster}`")]
    UnknownRoute {
        server: String,
        peer: String,
        cluster: String,
    },
    #[error("server `{server}` is in a routed cluster but has no route port")]
    MissingRoutePort { server: String },
    #[error("cluster `{cluster}` has a {link} link to `{peer}`, which is not a cluster of this topology")]
    UnknownCluster {
        cluster: String,
        link: &'static str,
        peer: String,
    },
    #[error("cluster `{cluster}` needs a {role} port on every server")]
    MissingPort { cluster: String, role: PortRole },
    #[error("clusters `{a}` ({a_domain}) and `{b}` ({b_domain}) are joined by gateways but have different JetStream domains: a supercluster is one meta group, and with two domains one cluster is left without a meta leader (JetStream unavailable there). Give them the same domain, or join cells with different domains by leafnodes instead")]
    GatewayDomains {
        a: String,
        a_domain: String,
        b: String,
        b_domain: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_ports_follow_the_contract() {
        let ha = Topology::for_profile(Profile::Ha);
        let ports: Vec<_> = ha
            .servers()
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
        assert_eq!(ha.clusters[0].servers[1].routes, ["nats-1", "nats-3"]);
        let single = Topology::for_profile(Profile::Single);
        assert_eq!(single.nats_servers(), "nats://127.0.0.1:4222");
        assert!(!single.clusters[0].is_clustered());
        for p in Profile::ALL {
            Topology::for_profile(p).validate().unwrap();
        }
    }

    #[test]
    fn mesh_is_two_gateway_joined_clusters_of_one_domain() {
        let mesh = Topology::for_profile(Profile::Mesh);
        let names: Vec<&str> = mesh.clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["sea-a", "sea-b"]);
        assert_eq!(
            mesh.cluster_servers(&mesh.clusters[1]),
            "nats://127.0.0.1:5422,nats://127.0.0.1:5423,nats://127.0.0.1:5424"
        );
        assert_eq!(mesh.clusters[0].servers[0].monitor_port, 8422);
        assert_eq!(mesh.clusters[1].servers[2].monitor_port, 9424);
        assert_eq!(mesh.clusters[0].gateways, ["sea-b"]);
        assert_eq!(mesh.meta_group_size(&mesh.clusters[0]), 6);
    }

    #[test]
    fn leaf_cells_have_their_own_domains_and_meta_groups() {
        let leaf = Topology::for_profile(Profile::Leaf);
        let domains: Vec<_> = leaf
            .clusters
            .iter()
            .map(|c| c.jetstream_domain.clone().unwrap())
            .collect();
        assert_eq!(domains, ["cell-a", "cell-b"]);
        assert_eq!(leaf.clusters[1].leaf_remotes, ["cell-a"]);
        assert!(leaf.clusters[0]
            .servers
            .iter()
            .all(|n| n.leaf_port.is_some()));
        assert_eq!(leaf.meta_group_size(&leaf.clusters[1]), 3);
    }

    #[test]
    fn gateways_between_different_domains_are_refused_with_the_reason() {
        let mut mesh = Topology::for_profile(Profile::Mesh);
        mesh.clusters[1].jetstream_domain = Some("b".into());
        let err = mesh.validate().unwrap_err().to_string();
        assert!(err.contains("different JetStream domains"), "{err}");
        assert!(err.contains("without a meta leader"), "{err}");
        assert!(err.contains("leafnodes instead"), "{err}");
    }

    #[test]
    fn links_to_unknown_clusters_are_refused() {
        let mut leaf = Topology::for_profile(Profile::Leaf);
        leaf.clusters[1].leaf_remotes = vec!["cell-z".into()];
        assert_eq!(
            leaf.validate().unwrap_err().to_string(),
            "cluster `cell-b` has a leafnode link to `cell-z`, which is not a cluster of this topology"
        );
    }

    #[test]
    fn sync_intervals_parse_as_the_server_takes_them() {
        assert_eq!(parse_sync_interval("default").unwrap(), "2m");
        assert_eq!(parse_sync_interval("always").unwrap(), "always");
        assert_eq!(parse_sync_interval("10s").unwrap(), "10s");
        assert_eq!(parse_sync_interval("500ms").unwrap(), "500ms");
        for bad in ["1d", "0s", "often", ""] {
            assert!(parse_sync_interval(bad).is_err(), "{bad}");
        }
        assert_eq!(
            ServerSettings::default().sync_interval,
            DEFAULT_SYNC_INTERVAL
        );
    }

    #[test]
    fn profiles_parse_and_reject_unknown_names() {
        assert_eq!("ha".parse::<Profile>().unwrap(), Profile::Ha);
        assert_eq!("nats-ha".parse::<Profile>().unwrap(), Profile::Ha);
        assert_eq!("nats-mesh".parse::<Profile>().unwrap(), Profile::Mesh);
        let err = "triple".parse::<Profile>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown profile `triple`: use one of single, ha, mesh, leaf (or nats-single, nats-ha, nats-mesh, nats-leaf)"
        );
    }

    #[test]
    fn remapping_keeps_the_shape() {
        let mut next = 30000;
        let t = Topology::for_profile(Profile::Ha).remap_ports(|| {
            next += 1;
            next
        });
        t.validate().unwrap();
        assert_eq!(t.clusters[0].servers[0].client_port, 30001);
        assert_eq!(t.clusters[0].servers[2].route_port, Some(30009));
    }

    #[test]
    fn duplicate_port_is_refused_naming_both_users() {
        let mut t = Topology::for_profile(Profile::Ha);
        t.clusters[0].servers[1].monitor_port = 4222;
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
        t.clusters[0].servers[2].name = "nats-1".into();
        assert_eq!(
            t.validate().unwrap_err(),
            TopologyError::DuplicateName("nats-1".into())
        );
    }

    #[test]
    fn route_to_unknown_node_is_refused() {
        let mut t = Topology::for_profile(Profile::Ha);
        t.clusters[0].servers[0].routes.push("nats-9".into());
        let err = t.validate().unwrap_err();
        assert!(
            matches!(err, TopologyError::UnknownRoute { ref peer, .. } if peer == "nats-9"),
            "{err}"
        );
    }

    #[test]
    fn replicated_profile_needs_three_servers() {
        let mut t = Topology::for_profile(Profile::Ha);
        t.clusters[0].servers.truncate(2);
        t.clusters[0].servers[0].routes.retain(|r| r != "nats-3");
        t.clusters[0].servers[1].routes.retain(|r| r != "nats-3");
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
        t.clusters[0].servers[0].name = "nats 1".into();
        assert!(matches!(t.validate(), Err(TopologyError::BadName { .. })));
        let mut t = Topology::for_profile(Profile::Single);
        t.clusters[0].servers[0].monitor_port = 0;
        assert!(matches!(t.validate(), Err(TopologyError::ZeroPort(_))));
        let mut t = Topology::for_profile(Profile::Ha);
        t.clusters[0].servers[1].route_port = None;
        assert!(matches!(
            t.validate(),
            Err(TopologyError::MissingRoutePort { .. })
        ));
    }
}
