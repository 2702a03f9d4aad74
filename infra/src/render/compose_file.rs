//! Renders the Docker Compose files (and the container-view nats-server configs they mount)
//! from the same [`Topology`] the process backend runs.
//!
//! Inside the compose network every server listens on the standard ports and dials its peers
//! by service name ([`Topology::in_containers`]); on the host, compose publishes the
//! topology's own ports, so health gates, provisioning and drills reach the containers exactly
//! as they reach the processes.

use std::fmt::Write as _;

use crate::model::PINNED_VERSION;
use crate::model::{Profile, Topology, CONTAINER_PORTS};
use crate::render::compose_observe::{self, ObserveHosting};
use crate::render::compose_worker::{self, WorkerHosting};
use crate::render::{self, RenderedFile};

/// The image every server runs unless `NATS_IMAGE` says otherwise.
pub fn default_nats_image() -> String {
    format!("nats:{PINNED_VERSION}-alpine")
}

/// The variable that overrides the server image in the compose files.
pub const ENV_NATS_IMAGE: &str = "NATS_IMAGE";

/// The variable the secure compose files take the secrets directory from (mounted read-only at
/// `/etc/nats/secrets`): `cargo xtask up --backend compose --secure` writes it and sets it.
pub const ENV_NATS_SECRETS_DIR: &str = "SEA_NATS_SECRETS_DIR";

/// What a rendering is called: container, network and volume names all start with `prefix`,
/// so a throw-away copy (tests) never collides with the committed one.
#[derive(Clone, Debug)]
pub struct ComposeNames {
    pub prefix: String,
    /// A throw-away copy: its containers are never restarted by the daemon, so a test killed
    /// before its cleanup leaves stopped containers, not running ones.
    pub throwaway: bool,
    /// Where the workers' HTTP ports and databases are on the host.
    pub workers: WorkerHosting,
    /// Where the exporter and Prometheus (compose profile `observe`) are on the host.
    pub observe: ObserveHosting,
}

impl Default for ComposeNames {
    fn default() -> Self {
        ComposeNames {
            prefix: "sea".to_owned(),
            throwaway: false,
            workers: WorkerHosting::Committed,
            observe: ObserveHosting::Committed,
        }
    }
}

impl ComposeNames {
    /// `sea-nats-1` for `nats-1`; a node already named `sea-…` keeps its name (`sea-a-1`).
    pub fn container(&self, node: &str) -> String {
        format!(
            "{}-{}",
            self.prefix,
            node.strip_prefix("sea-").unwrap_or(node)
        )
    }

    /// `sea_nats_data_1` for `nats-1`, `sea_cell_a_data_2` for `cell-a-2`.
    pub fn volume(&self, node: &str) -> String {
        let node = node.strip_prefix("sea-").unwrap_or(node);
        let (stem, index) = node.rsplit_once('-').unwrap_or((node, ""));
        format!("{}_{}_data_{index}", self.prefix, stem.replace('-', "_"))
    }

    /// `sea-net` for `ha` (the contract's name), `sea-<profile>-net` for the others: each
    /// profile has its own, so one can be taken down while another runs.
    pub fn network(&self, profile: Profile) -> String {
        match profile {
            Profile::Ha | Profile::Single => format!("{}-net", self.prefix),
            other => format!("{}-{other}-net", self.prefix),
        }
    }

    pub(crate) fn worker_volume(&self, cluster: &str) -> String {
        format!("{}_worker_{}", self.prefix, cluster.replace('-', "_"))
    }
}

/// The compose file of a profile, relative to `infra/docker/`, or its secure variant (TLS on
/// every listener, accounts or a token from the mounted secrets); `None` for `single`, which
/// has no compose file (use `ha`).
pub fn file_name(profile: Profile, secure: bool) -> Option<&'static str> {
    Some(match (profile, secure) {
        (Profile::Single, _) => return None,
        (Profile::Ha, false) => "docker-compose.dev.yml",
        (Profile::Ha, true) => "docker-compose.dev.secure.yml",
        (Profile::Mesh, false) => "docker-compose.mesh.yml",
        (Profile::Mesh, true) => "docker-compose.mesh.secure.yml",
        (Profile::Leaf, false) => "docker-compose.leaf.yml",
        (Profile::Leaf, true) => "docker-compose.leaf.secure.yml",
    })
}

/// The directory of a rendering's mounted configs, relative to the compose file: `nats/ha`,
/// `nats/ha-secure`.
fn config_dir(topology: &Topology) -> String {
    if topology.settings.security.is_secure() {
        format!("nats/{}-secure", topology.profile)
    } else {
        format!("nats/{}", topology.profile)
    }
}

/// The compose profile that selects the servers of `profile` (`nats-ha`, …).
pub(crate) fn compose_profile(profile: Profile) -> String {
    format!("nats-{profile}")
}

/// The compose file and the configs it mounts, relative to the directory of the compose file.
pub(crate) fn files(topology: &Topology, names: &ComposeNames) -> Vec<RenderedFile> {
    let secure = topology.settings.security.is_secure();
    let Some(compose) = file_name(topology.profile, secure) else {
        return Vec::new();
    };
    let inner = topology.in_containers();
    let dir = config_dir(topology);
    let mut out: Vec<RenderedFile> = render::nats_conf::server_configs(&inner)
        .into_iter()
        .map(|f| RenderedFile {
            path: format!("{dir}/{}", f.path),
            contents: f.contents,
        })
        .collect();
    if !secure {
        let workers = compose_worker::services(topology, names);
        out.push(compose_observe::prometheus_file(topology.profile, &workers));
    }
    out.push(RenderedFile {
        path: compose.to_owned(),
        contents: compose_yaml(topology, &inner, names),
    });
    out
}

/// Where the committed compose files live, relative to the project root.
pub const COMPOSE_DIR: &str = "infra/docker";

/// Every committed compose file and mounted config (plain and secure), relative to the project
/// root.
pub fn committed_files() -> Vec<RenderedFile> {
    Profile::ALL
        .into_iter()
        .flat_map(|p| {
            let plain = Topology::for_profile(p);
            let secure = plain.clone().secured(crate::model::Security::Accounts);
            [plain, secure]
        })
        .flat_map(|t| files(&t, &ComposeNames::default()))
        .map(|f| RenderedFile {
            path: format!("{COMPOSE_DIR}/{}", f.path),
            contents: f.contents,
        })
        .collect()
}

fn compose_yaml(host: &Topology, inner: &Topology, names: &ComposeNames) -> String {
    let profile = host.profile;
    let secure = host.settings.security.is_secure();
    let file = file_name(profile, secure).unwrap_or_default();
    let cprofile = compose_profile(profile);
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "# Rendered from the SEA topology model (profile {profile}); do not edit."
    );
    let _ = writeln!(w, "# Regenerate with `cargo xtask render`.");
    let _ = writeln!(w, "#");
    let _ = writeln!(
        w,
        "#   docker-compose -p sea-{profile} -f infra/docker/{file} --profile {cprofile} up -d"
    );
    let _ = writeln!(
        w,
        "#   (or `docker compose ...`; `cargo xtask up --backend compose --profile {profile}` does the same and waits for the health gate)"
    );
    let _ = writeln!(
        w,
        "# No registry? `cargo xtask image` builds a local {} from scratch.",
        default_nats_image()
    );
    if !secure {
        let _ = writeln!(
            w,
            "# Add `--profile worker` for the workers (`cargo xtask image --worker` builds their image):"
        );
        let _ = writeln!(
            w,
            "# the one-shot `sea-provision` provisions the streams and consumers first, then they start."
        );
        let (exporter, prometheus) = compose_observe::host_ports(profile, names);
        let _ = writeln!(
            w,
            "# Add `--profile {}` for sea-nats-exporter (:{exporter}) and Prometheus (:{prometheus}) with the alert rules",
            compose_observe::OBSERVE_PROFILE
        );
        let _ = writeln!(
            w,
            "# (`cargo xtask image --exporter --prometheus` builds their images)."
        );
    }
    if secure {
        let _ = writeln!(
            w,
            "# Secure: TLS on every listener, HTTPS monitoring, accounts (or a token) from the secrets"
        );
        let _ = writeln!(
            w,
            "# directory in ${ENV_NATS_SECRETS_DIR} (`cargo xtask up --backend compose --secure --profile {profile}`"
        );
        let _ = writeln!(
            w,
            "# writes it and sets the variable). No worker services: workers connect with the lines it prints."
        );
    }
    let _ = writeln!(w, "services:");
    // Docker's stop timeout: the lame-duck duration plus a margin, so a stop is never a kill.
    let grace = format!("{}s", host.settings.lame_duck_secs() + 15);
    let network = names.network(profile);
    let restart = if names.throwaway {
        "\"no\""
    } else {
        "unless-stopped"
    };
    for ((_, node), (_, inner_node)) in host.servers().zip(inner.servers()) {
        let name = &node.name;
        let _ = writeln!(w, "  {name}:");
        let _ = writeln!(
            w,
            "    image: ${{{ENV_NATS_IMAGE}:-{}}}",
            default_nats_image()
        );
        let _ = writeln!(w, "    container_name: {}", names.container(name));
        let _ = writeln!(w, "    hostname: {name}");
        let _ = writeln!(w, "    profiles: [\"{cprofile}\"]");
        let _ = writeln!(w, "    command: [\"--config\", \"/etc/nats/nats.conf\"]");
        let _ = writeln!(w, "    ports:");
        let published = [
            (Some(node.client_port), Some(inner_node.client_port)),
            (Some(node.monitor_port), Some(inner_node.monitor_port)),
            (node.route_port, inner_node.route_port),
            (node.gateway_port, inner_node.gateway_port),
            (node.leaf_port, inner_node.leaf_port),
        ];
        for (outside, inside) in published {
            if let (Some(o), Some(i)) = (outside, inside) {
                let _ = writeln!(w, "      - \"127.0.0.1:{o}:{i}\"");
            }
        }
        let _ = writeln!(w, "    volumes:");
        let _ = writeln!(
            w,
            "      - \"./{}/{}:/etc/nats/nats.conf:ro\"",
            config_dir(host),
            render::nats_conf::conf_file_name(node)
        );
        if secure {
            let _ = writeln!(
                w,
                "      - \"${{{ENV_NATS_SECRETS_DIR}:?set {ENV_NATS_SECRETS_DIR} to the secrets directory}}:/etc/nats/secrets:ro\""
            );
        }
        let _ = writeln!(w, "      - \"{}:/data\"", names.volume(name));
        let _ = writeln!(w, "    networks: [\"{network}\"]");
        let _ = writeln!(w, "    healthcheck:");
        if secure {
            // busybox's TLS client fails the handshake with nats-server inside a container
            // (measured: "missing signature_algorithms", while the same binary succeeds on the
            // host), so the check reads the client port's plaintext INFO instead; the host's
            // health gate reads /healthz over HTTPS with the CA.
            let _ = writeln!(
                w,
                "      test: [\"CMD-SHELL\", \"nc -w 2 127.0.0.1 {} </dev/null | grep -q tls_required\"]",
                CONTAINER_PORTS.client
            );
        } else {
            let _ = writeln!(
                w,
                "      test: [\"CMD\", \"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:{}/healthz?js-enabled-only=true\"]",
                CONTAINER_PORTS.monitor
            );
        }
        let _ = writeln!(w, "      interval: 5s");
        let _ = writeln!(w, "      timeout: 3s");
        let _ = writeln!(w, "      retries: 3");
        let _ = writeln!(w, "      start_period: 10s");
        let _ = writeln!(w, "    stop_grace_period: {grace}");
        let _ = writeln!(w, "    restart: {restart}");
    }
    let workers = if secure {
        Vec::new()
    } else {
        compose_worker::services(host, names)
    };
    compose_worker::write_services(w, &workers, inner, names, restart);
    if !secure {
        compose_observe::write_services(w, host, inner, names, restart);
    }
    let _ = writeln!(w, "volumes:");
    for (_, node) in host.servers() {
        let v = names.volume(&node.name);
        let _ = writeln!(w, "  {v}:");
        let _ = writeln!(w, "    name: {v}");
    }
    compose_worker::write_volumes(w, &workers);
    let _ = writeln!(w, "networks:");
    let _ = writeln!(w, "  {network}:");
    let _ = writeln!(w, "    name: {network}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        let n = ComposeNames::default();
        assert_eq!(n.container("nats-1"), "sea-nats-1");
        assert_eq!(n.container("sea-a-2"), "sea-a-2");
        assert_eq!(n.volume("nats-3"), "sea_nats_data_3");
        assert_eq!(n.volume("sea-b-1"), "sea_b_data_1");
        assert_eq!(n.volume("cell-a-2"), "sea_cell_a_data_2");
        assert_eq!(n.network(Profile::Ha), "sea-net");
        assert_eq!(n.network(Profile::Mesh), "sea-mesh-net");
    }

    #[test]
    fn routes_use_service_names_inside_the_network() {
        let files = files(
            &Topology::for_profile(Profile::Ha),
            &ComposeNames::default(),
        );
        let conf = &files
            .iter()
            .find(|f| f.path == "nats/ha/nats-1.conf")
            .unwrap()
            .contents;
        assert!(conf.contains("\"nats-route://nats-2:6222\""), "{conf}");
        assert!(conf.contains("listen: \"0.0.0.0:4222\""), "{conf}");
        assert!(conf.contains("store_dir: \"/data/nats-1\""), "{conf}");
        let compose = &files.last().unwrap().contents;
        assert!(compose.contains("\"127.0.0.1:4224:4222\""), "{compose}");
        assert!(
            compose.contains(
                "NATS_SERVERS: \"nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222\""
            ),
            "{compose}"
        );
    }

    #[test]
    fn single_has_no_compose_file() {
        assert!(files(
            &Topology::for_profile(Profile::Single),
            &ComposeNames::default()
        )
        .is_empty());
    }
}
