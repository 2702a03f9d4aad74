//! nats-server configuration files from a [`Topology`], one per server.

use std::fmt::Write as _;

use super::RenderedFile;
use crate::model::security::{leaf_permissions, leaf_urls_file, leaf_user, APP_ACCOUNT};
use crate::model::{Cluster, Server, Topology};

/// `"a", "b"`: a list of subjects as the config writes it.
pub(crate) fn quoted(list: &[String]) -> String {
    list.iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The config file name of a server, relative to the state directory.
pub(crate) fn conf_file_name(server: &Server) -> String {
    format!("{}.conf", server.name)
}

/// One config file per server. Paths inside (`store_dir`) are relative to the directory the
/// server runs in, which is the profile's state directory in the process backend.
pub(crate) fn server_configs(topology: &Topology) -> Vec<RenderedFile> {
    topology
        .servers()
        .map(|(cluster, node)| RenderedFile {
            path: conf_file_name(node),
            contents: server_config(topology, cluster, node),
        })
        .collect()
}

/// The nats-server configuration of one server.
pub(crate) fn server_config(topology: &Topology, cluster: &Cluster, node: &Server) -> String {
    let s = &topology.settings;
    let host = &s.host;
    let mut out = String::new();
    let w = &mut out;
    // `writeln!` into a String cannot fail.
    let _ = writeln!(
        w,
        "# Rendered from the SEA topology model (profile {}); do not edit.",
        topology.profile
    );
    let _ = writeln!(w, "# Regenerate with `cargo xtask render`.");
    match &s.server_name_env {
        Some(var) => {
            let _ = writeln!(w, "server_name: ${var}");
        }
        None => {
            let _ = writeln!(w, "server_name: \"{}\"", node.name);
        }
    }
    let _ = writeln!(w, "listen: \"{host}:{}\"", node.client_port);
    let secure = s.security.is_secure();
    if secure {
        // Accounts, users (bcrypt hashes) or the token, and the leafnode URLs with their
        // credentials: the decrypted secrets, beside this file, never in it.
        let _ = writeln!(w, "include ./{AUTH_FILE}");
        tls_block(w, topology, node, "", Verify::Clients);
        // Monitoring over HTTPS with the same certificate (no client certificate asked).
        let _ = writeln!(w, "https: \"{host}:{}\"", node.monitor_port);
    } else {
        let _ = writeln!(w, "http: \"{host}:{}\"", node.monitor_port);
    }
    let _ = writeln!(w, "lame_duck_duration: \"{}\"", s.lame_duck_duration);
    let _ = writeln!(
        w,
        "lame_duck_grace_period: \"{}\"",
        s.lame_duck_grace_period
    );
    let _ = writeln!(w);
    let _ = writeln!(w, "jetstream {{");
    let store_dir = match &s.server_name_env {
        Some(_) => s.store_root.clone(),
        None => format!("{}/{}", s.store_root, node.name),
    };
    let _ = writeln!(w, "  store_dir: \"{store_dir}\"");
    let _ = writeln!(w, "  max_mem_store: {}", s.max_mem_store);
    let _ = writeln!(w, "  max_file_store: {}", s.max_file_store);
    let _ = writeln!(w, "  # How often data is fsynced: `always` survives power loss, a duration trades that for speed.");
    let _ = writeln!(w, "  sync_interval: \"{}\"", s.sync_interval);
    if let Some(domain) = &cluster.jetstream_domain {
        let _ = writeln!(w, "  domain: \"{domain}\"");
    }
    let _ = writeln!(w, "}}");
    if let Some(route_port) = node.route_port {
        let _ = writeln!(w);
        let _ = writeln!(w, "cluster {{");
        let _ = writeln!(w, "  name: \"{}\"", cluster.name);
        let _ = writeln!(w, "  listen: \"{host}:{route_port}\"");
        if let Some(advertise) = advertise(topology, node, route_port) {
            let _ = writeln!(w, "  advertise: {advertise}");
            // Clients keep the addresses they were given (a compose service's published host
            // port, a Kubernetes Service): the servers' own addresses are not theirs to reach.
            let _ = writeln!(w, "  no_advertise: true");
        }
        if secure {
            // Routes always verify the peer's certificate against the CA.
            tls_block(w, topology, node, "  ", Verify::Implied);
        }
        let _ = writeln!(w, "  routes: [");
        // A server cut off from its peers dials none of them, and none of them dials it. It
        // keeps one route, to itself: a clustered JetStream server refuses to start without a
        // configured route, and ignores a route to itself.
        let cut = |name: &String| cluster.cut_off.contains(name);
        let dialled: Vec<&String> = if cut(&node.name) {
            vec![&node.name]
        } else {
            node.routes.iter().filter(|p| !cut(p)).collect()
        };
        for peer in dialled.into_iter().filter_map(|p| cluster.server(p)) {
            if let Some(port) = peer.route_port {
                let _ = writeln!(
                    w,
                    "    \"nats-route://{}:{port}\"",
                    topology.dial_host(peer)
                );
            }
        }
        let _ = writeln!(w, "  ]");
        let _ = writeln!(w, "}}");
    }
    if let Some(port) = node.gateway_port {
        gateway_block(w, topology, cluster, node, port);
    }
    leafnode_block(w, topology, cluster, node);
    leaf_authorization(w, topology, cluster, node);
    out
}

/// The environment variable a pod's cluster advertise comes from, when one config serves every
/// pod: the StatefulSet sets it to the pod's DNS name through the headless Service.
pub(crate) const CLUSTER_ADVERTISE_ENV: &str = "CLUSTER_ADVERTISE";

/// What a server tells its peers to dial it on (routes, gateways, leafnodes gossip it): the
/// stable name peers dial where addresses are not stable (a compose service name, a pod's DNS
/// name), instead of a container's or pod's IP that changes when it is re-created. `None` for
/// processes on loopback, whose addresses never change.
fn advertise(topology: &Topology, server: &Server, port: u16) -> Option<String> {
    topology.settings.peer_host.as_ref()?;
    Some(match &topology.settings.server_name_env {
        Some(_) => format!("${CLUSTER_ADVERTISE_ENV}"),
        None => format!("\"{}:{port}\"", topology.dial_host(server)),
    })
}

/// Where the decrypted secrets a secured server includes live, relative to its config file.
pub(crate) const AUTH_FILE: &str = "secrets/auth.conf";

/// Whether a TLS listener asks clients for a certificate of the CA.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verify {
    /// Clients and leafnode remotes present a certificate of the deployment's CA.
    Clients,
    /// Routes and gateways always verify both sides; a remote presents its own.
    Implied,
}

/// A `tls {}` block with the server's certificate and the deployment's CA, indented by
/// `indent`. One configuration shared by every pod uses one certificate for all of them.
fn tls_block(w: &mut String, topology: &Topology, server: &Server, indent: &str, verify: Verify) {
    let dir = &topology.settings.secrets_dir;
    let name = match &topology.settings.server_name_env {
        Some(_) => "server",
        None => server.name.as_str(),
    };
    let _ = writeln!(w, "{indent}tls {{");
    let _ = writeln!(w, "{indent}  cert_file: \"{dir}/{name}.pem\"");
    let _ = writeln!(w, "{indent}  key_file: \"{dir}/{name}-key.pem\"");
    let _ = writeln!(w, "{indent}  ca_file: \"{dir}/ca.pem\"");
    if verify == Verify::Clients {
        let _ = writeln!(w, "{indent}  verify: true");
    }
    // The defaults (2 s, auth 3 s) are short for a loaded 2-core machine.
    let _ = writeln!(w, "{indent}  timeout: 5");
    let _ = writeln!(w, "{indent}}}");
}

/// The URLs `cluster`'s servers dial `remote`'s leafnode ports on, with the link's user and
/// `password` (`tls://` on a secured topology).
pub(crate) fn leaf_urls(
    topology: &Topology,
    cluster: &Cluster,
    remote: &Cluster,
    password: &str,
) -> Vec<String> {
    let scheme = if topology.settings.security.is_secure() {
        "tls"
    } else {
        "nats-leaf"
    };
    remote
        .servers
        .iter()
        .filter_map(|n| Some((topology.dial_host(n), n.leaf_port?)))
        .map(|(h, p)| format!("{scheme}://{}:{password}@{h}:{p}", leaf_user(&cluster.name)))
        .collect()
}

/// Development credential of the leafnode users, rendered into the configs of the local
/// profiles; a production deployment injects its own secret.
pub(crate) const LEAF_DEV_PASSWORD: &str = "sea-leaf-dev";

/// On a cell that accepts leafnodes: local clients keep full access (`no_auth_user`), while each
/// dialling cell's user may exchange only the federated subjects plus what a cross-domain mirror
/// of this cell's streams needs (this domain's JetStream API, mirror deliveries and flow
/// control).
fn leaf_authorization(w: &mut String, topology: &Topology, cluster: &Cluster, node: &Server) {
    if node.leaf_port.is_none() || topology.settings.security.is_secure() {
        return;
    }
    let dialers: Vec<&Cluster> = topology
        .clusters
        .iter()
        .filter(|c| c.leaf_remotes.contains(&cluster.name))
        .collect();
    if dialers.is_empty() {
        return;
    }
    let p = leaf_permissions(cluster.jetstream_domain.as_deref());
    let (publish, subscribe) = (quoted(&p.publish), quoted(&p.subscribe));
    let _ = writeln!(w);
    let _ = writeln!(w, "authorization {{");
    let _ = writeln!(w, "  users: [");
    let _ = writeln!(w, "    {{ user: \"local\" }}");
    for d in dialers {
        let _ = writeln!(
            w,
            "    {{ user: \"{}\", password: \"{LEAF_DEV_PASSWORD}\", permissions: {{ publish: {{ allow: [{publish}] }}, subscribe: {{ allow: [{subscribe}] }} }} }}",
            leaf_user(&d.name)
        );
    }
    let _ = writeln!(w, "  ]");
    let _ = writeln!(w, "}}");
    let _ = writeln!(
        w,
        "# Clients without credentials are the unrestricted local user."
    );
    let _ = writeln!(w, "no_auth_user: \"local\"");
}

/// `gateway`: this cluster's listener and every gateway-joined cluster with all its servers.
fn gateway_block(w: &mut String, topology: &Topology, cluster: &Cluster, node: &Server, port: u16) {
    let host = &topology.settings.host;
    let _ = writeln!(w);
    let _ = writeln!(w, "gateway {{");
    let _ = writeln!(w, "  name: \"{}\"", cluster.name);
    let _ = writeln!(w, "  listen: \"{host}:{port}\"");
    if let Some(advertise) = advertise(topology, node, port) {
        let _ = writeln!(w, "  advertise: {advertise}");
    }
    if topology.settings.security.is_secure() {
        tls_block(w, topology, node, "  ", Verify::Implied);
    }
    let _ = writeln!(w, "  gateways: [");
    for other in cluster.gateways.iter().filter_map(|g| topology.cluster(g)) {
        let urls: Vec<String> = other
            .servers
            .iter()
            .filter_map(|n| Some((topology.dial_host(n), n.gateway_port?)))
            .map(|(h, p)| format!("\"nats://{h}:{p}\""))
            .collect();
        let _ = writeln!(
            w,
            "    {{ name: \"{}\", urls: [{}] }}",
            other.name,
            urls.join(", ")
        );
    }
    let _ = writeln!(w, "  ]");
    let _ = writeln!(w, "}}");
}

/// `leafnodes`: a listener for other cells, and/or one remote per cell this one dials, listing
/// every server of that cell. Only the federated subjects may cross.
fn leafnode_block(w: &mut String, topology: &Topology, cluster: &Cluster, node: &Server) {
    if node.leaf_port.is_none() && cluster.leaf_remotes.is_empty() {
        return;
    }
    let host = &topology.settings.host;
    let _ = writeln!(w);
    let _ = writeln!(w, "leafnodes {{");
    let secure = topology.settings.security.is_secure();
    if let Some(port) = node.leaf_port {
        let _ = writeln!(w, "  listen: \"{host}:{port}\"");
        if let Some(advertise) = advertise(topology, node, port) {
            let _ = writeln!(w, "  advertise: {advertise}");
        }
        if secure {
            tls_block(w, topology, node, "  ", Verify::Clients);
        }
    }
    if !cluster.leaf_remotes.is_empty() {
        let _ = writeln!(w, "  remotes: [");
        for other in cluster
            .leaf_remotes
            .iter()
            .filter_map(|c| topology.cluster(c))
        {
            let _ = writeln!(w, "    {{");
            if secure {
                // The URLs carry the link's credentials: included from the secrets, only by
                // the servers that dial (a variable nobody uses is an unknown field).
                let _ = writeln!(w, "      include ./secrets/{}", leaf_urls_file(&other.name));
                let _ = writeln!(w, "      account: \"{APP_ACCOUNT}\"");
                tls_block(w, topology, node, "      ", Verify::Implied);
            } else {
                let urls: Vec<String> = leaf_urls(topology, cluster, other, LEAF_DEV_PASSWORD)
                    .iter()
                    .map(|u| format!("\"{u}\""))
                    .collect();
                let _ = writeln!(w, "      urls: [{}]", urls.join(", "));
            }
            if cluster.leaf_links_disabled {
                let _ = writeln!(w, "      disabled: true");
            }
            let _ = writeln!(w, "    }}");
        }
        let _ = writeln!(w, "  ]");
    }
    let _ = writeln!(w, "}}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Profile;

    #[test]
    fn rendering_is_deterministic() {
        for p in Profile::ALL {
            let t = Topology::for_profile(p);
            assert_eq!(server_configs(&t), server_configs(&t.clone()));
        }
    }

    #[test]
    fn every_peer_is_an_explicit_route() {
        let t = Topology::for_profile(Profile::Ha);
        let conf = &server_configs(&t)[0].contents;
        assert!(
            conf.contains("\"nats-route://127.0.0.1:6223\"\n    \"nats-route://127.0.0.1:6224\""),
            "{conf}"
        );
        assert!(
            !conf.contains("nats-route://127.0.0.1:6222"),
            "a node does not route to itself:\n{conf}"
        );
    }

    #[test]
    fn a_cut_off_server_dials_no_peer_and_no_peer_dials_it() {
        let mut t = Topology::for_profile(Profile::Ha);
        t.clusters[0].cut_off = vec!["nats-2".into()];
        let confs = server_configs(&t);
        let own: Vec<&str> = confs[1].contents.matches("nats-route://").collect();
        assert_eq!(own.len(), 1, "{}", confs[1].contents);
        assert!(confs[1].contents.contains("nats-route://127.0.0.1:6223\""));
        for conf in [&confs[0].contents, &confs[2].contents] {
            assert!(!conf.contains(":6223\""), "{conf}");
            assert_eq!(conf.matches("nats-route://").count(), 1, "{conf}");
        }
        t.clusters[0].cut_off.clear();
        assert_eq!(
            server_configs(&t),
            server_configs(&Topology::for_profile(Profile::Ha))
        );
    }

    #[test]
    fn single_has_no_cluster_block() {
        let t = Topology::for_profile(Profile::Single);
        let conf = &server_configs(&t)[0].contents;
        assert!(!conf.contains("cluster {"), "{conf}");
    }
}
