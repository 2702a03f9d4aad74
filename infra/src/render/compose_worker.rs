//! The worker's services in the compose files: one `sea-mq-worker` per cluster (compose profile
//! `worker`), dialling its cluster's servers by service name inside the compose network.
//!
//! Its image is `${SEA_WORKER_IMAGE:-sea-mq-worker:dev}`: when present (`cargo xtask image
//! --worker` builds it `FROM scratch`, nothing pulled) Compose runs it as it is; when missing,
//! Compose builds it from the multi-stage `apps/sea-mq-worker/Dockerfile`, which needs a
//! registry for its base images.
//!
//! Before them runs `sea-provision`, a one-shot service of the same image
//! (`sea-mq-worker provision`, compose profiles `worker` and `provision`): once every server is
//! healthy it makes the streams and consumers match the spec, as `cargo xtask provision` does
//! (the same library, idempotent), and the workers start only after it exited 0
//! (`service_completed_successfully`, Compose 1.29 and later).
//!
//! The committed files publish the workers' HTTP ports on 8080, 8081, ... and keep each database
//! in a named volume; a private rendering ([`WorkerHosting::OnHost`]) publishes them on the ports
//! it is given and bind-mounts a host directory as `/data`, so a test reads the inbox and writes
//! the outbox with `Store::open` on the host.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::compose_file::ComposeNames;
use crate::model::Topology;

/// The variable that overrides the worker image in the compose files.
pub const ENV_WORKER_IMAGE: &str = "SEA_WORKER_IMAGE";

/// The image every worker runs unless `SEA_WORKER_IMAGE` says otherwise.
pub const DEFAULT_WORKER_IMAGE: &str = "sea-mq-worker:dev";

/// The compose profile of the workers (not started with the servers by default).
pub(crate) const WORKER_PROFILE: &str = "worker";

/// The one-shot provisioner's service, and its own compose profile (it is in `worker` too).
pub const PROVISION_SERVICE: &str = "sea-provision";
const PROVISION_PROFILE: &str = "provision";

/// The worker's HTTP port inside its container (`HTTP_ADDR` of the images).
pub const CONTAINER_HTTP_PORT: u16 = 8080;

/// Host port of the first worker's HTTP endpoint in the committed files.
const HTTP_BASE: u16 = 8080;

/// The worker's SQLite database, in its `/data`.
const DB_FILE: &str = "sea.db";

/// Where a rendering puts what the host sees of its workers.
#[derive(Clone, Debug, Default)]
pub enum WorkerHosting {
    /// The committed files: host ports 8080, 8081, ... and a named volume per worker.
    #[default]
    Committed,
    /// A private rendering: the worker of the `i`-th cluster on host port `http_ports[i]`, its
    /// `/data` the host directory `<data_dir>/<cluster>`, run as `user` (`uid:gid`) so that the
    /// host user owns its database.
    OnHost {
        http_ports: Vec<u16>,
        data_dir: PathBuf,
        user: String,
    },
}

/// What a worker's `/data` is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkerData {
    Volume(String),
    HostDir(PathBuf),
}

/// One worker service as rendered, and how the host reaches it.
#[derive(Clone, Debug)]
pub struct WorkerService {
    pub service: String,
    pub container: String,
    /// Its `CONSUMER_GROUP`: the cluster's name.
    pub group: String,
    /// Host port of `/healthz`, `/readyz` and `/metrics`.
    pub http_port: u16,
    pub data: WorkerData,
    /// Index of its cluster in the topology.
    cluster: usize,
    user: Option<String>,
}

impl WorkerService {
    /// `http://127.0.0.1:<port>`, its HTTP endpoint from the host.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Its SQLite database on the host, when `/data` is a host directory.
    pub fn host_database(&self) -> Option<PathBuf> {
        match &self.data {
            WorkerData::HostDir(dir) => Some(dir.join(DB_FILE)),
            WorkerData::Volume(_) => None,
        }
    }
}

/// `sea-mq-worker` for a one-cluster profile, `sea-mq-worker-<cluster>` otherwise.
fn service_name(topology: &Topology, cluster: &str) -> String {
    if topology.clusters.len() == 1 {
        "sea-mq-worker".to_owned()
    } else {
        format!("sea-mq-worker-{cluster}")
    }
}

/// The worker services of `host` (one per cluster, in cluster order) as `names` renders them.
pub fn services(host: &Topology, names: &ComposeNames) -> Vec<WorkerService> {
    host.clusters
        .iter()
        .enumerate()
        .map(|(i, cluster)| {
            let service = service_name(host, &cluster.name);
            let (http_port, data, user) = match &names.workers {
                WorkerHosting::Committed => (
                    HTTP_BASE + i as u16,
                    WorkerData::Volume(names.worker_volume(&cluster.name)),
                    None,
                ),
                WorkerHosting::OnHost {
                    http_ports,
                    data_dir,
                    user,
                } => (
                    http_ports[i],
                    WorkerData::HostDir(data_dir.join(&cluster.name)),
                    Some(user.clone()),
                ),
            };
            WorkerService {
                container: names.container(&service),
                service,
                group: cluster.name.clone(),
                http_port,
                data,
                cluster: i,
                user,
            }
        })
        .collect()
}

/// The services' entries under `services:`. `inner` is the container view of the topology
/// (the servers' client URLs inside the network).
pub(crate) fn write_services(
    w: &mut String,
    workers: &[WorkerService],
    inner: &Topology,
    names: &ComposeNames,
    restart: &str,
) {
    if workers.is_empty() {
        return;
    }
    let network = names.network(inner.profile);
    write_provisioner(w, inner, names, &network);
    for worker in workers {
        let cluster = &inner.clusters[worker.cluster];
        let _ = writeln!(w, "  {}:", worker.service);
        write_image(w);
        let _ = writeln!(w, "    container_name: {}", worker.container);
        if let Some(user) = &worker.user {
            let _ = writeln!(w, "    user: \"{user}\"");
        }
        let _ = writeln!(w, "    profiles: [\"{WORKER_PROFILE}\"]");
        let _ = writeln!(w, "    environment:");
        let _ = writeln!(
            w,
            "      NATS_SERVERS: \"{}\"",
            inner.cluster_servers(cluster)
        );
        let _ = writeln!(w, "      DATABASE_URL: \"sqlite:///data/{DB_FILE}\"");
        let _ = writeln!(w, "      HTTP_ADDR: \"0.0.0.0:{CONTAINER_HTTP_PORT}\"");
        let _ = writeln!(w, "      CONSUMER_GROUP: \"{}\"", worker.group);
        let _ = writeln!(w, "    ports:");
        let _ = writeln!(
            w,
            "      - \"127.0.0.1:{}:{CONTAINER_HTTP_PORT}\"",
            worker.http_port
        );
        let _ = writeln!(w, "    volumes:");
        match &worker.data {
            WorkerData::Volume(v) => {
                let _ = writeln!(w, "      - \"{v}:/data\"");
            }
            WorkerData::HostDir(dir) => {
                let _ = writeln!(w, "      - \"{}:/data\"", dir.display());
            }
        }
        let _ = writeln!(w, "    networks: [\"{network}\"]");
        let _ = writeln!(w, "    depends_on:");
        write_condition(w, PROVISION_SERVICE, "service_completed_successfully");
        for server in &cluster.servers {
            write_condition(w, &server.name, "service_started");
        }
        let _ = writeln!(w, "    healthcheck:");
        let _ = writeln!(
            w,
            "      test: [\"CMD\", \"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:{CONTAINER_HTTP_PORT}/healthz\"]"
        );
        let _ = writeln!(w, "      interval: 10s");
        let _ = writeln!(w, "    restart: {restart}");
    }
}

/// The image of the workers and of the provisioner, and how Compose gets it when missing.
fn write_image(w: &mut String) {
    let _ = writeln!(
        w,
        "    # `cargo xtask image --worker` builds this image FROM scratch (nothing pulled); when it"
    );
    let _ = writeln!(
        w,
        "    # is missing, Compose builds the multi-stage Dockerfile, which needs a registry."
    );
    let _ = writeln!(w, "    build:");
    let _ = writeln!(w, "      context: ../..");
    let _ = writeln!(w, "      dockerfile: apps/sea-mq-worker/Dockerfile");
    let _ = writeln!(
        w,
        "    image: ${{{ENV_WORKER_IMAGE}:-{DEFAULT_WORKER_IMAGE}}}"
    );
}

/// One entry of a long-form `depends_on:`.
fn write_condition(w: &mut String, service: &str, condition: &str) {
    let _ = writeln!(w, "      {service}:");
    let _ = writeln!(w, "        condition: {condition}");
}

/// `sea-provision`: `sea-mq-worker provision` on every server of the profile once all are
/// healthy, run to completion (never restarted); the workers wait for its exit 0.
fn write_provisioner(w: &mut String, inner: &Topology, names: &ComposeNames, network: &str) {
    let _ = writeln!(w, "  {PROVISION_SERVICE}:");
    let _ = writeln!(
        w,
        "    # One-shot: makes the streams and consumers match the spec (`cargo xtask provision`'s"
    );
    let _ = writeln!(
        w,
        "    # library; a second run changes nothing), then exits; the workers start after its exit 0."
    );
    let _ = writeln!(
        w,
        "    # Run it again: `docker-compose -f <this file> --profile {} --profile {WORKER_PROFILE} up {PROVISION_SERVICE}`.",
        super::compose_file::compose_profile(inner.profile)
    );
    write_image(w);
    let _ = writeln!(
        w,
        "    container_name: {}",
        names.container(PROVISION_SERVICE)
    );
    let _ = writeln!(
        w,
        "    profiles: [\"{WORKER_PROFILE}\", \"{PROVISION_PROFILE}\"]"
    );
    let _ = writeln!(w, "    command: [\"provision\"]");
    let _ = writeln!(w, "    environment:");
    let _ = writeln!(
        w,
        "      {}: \"{}\"",
        crate::model::ENV_COMPOSE_PROFILE,
        inner.profile
    );
    let _ = writeln!(w, "    networks: [\"{network}\"]");
    let _ = writeln!(w, "    depends_on:");
    for (_, server) in inner.servers() {
        write_condition(w, &server.name, "service_healthy");
    }
    let _ = writeln!(w, "    restart: \"no\"");
}

/// The workers' named volumes, under `volumes:`.
pub(crate) fn write_volumes(w: &mut String, workers: &[WorkerService]) {
    for worker in workers {
        if let WorkerData::Volume(v) = &worker.data {
            let _ = writeln!(w, "  {v}:");
            let _ = writeln!(w, "    name: {v}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Profile;

    #[test]
    fn committed_workers_use_fixed_ports_and_volumes() {
        let workers = services(
            &Topology::for_profile(Profile::Mesh),
            &ComposeNames::default(),
        );
        let seen: Vec<_> = workers
            .iter()
            .map(|w| (w.service.as_str(), w.http_port, w.data.clone()))
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "sea-mq-worker-sea-a",
                    8080,
                    WorkerData::Volume("sea_worker_sea_a".into())
                ),
                (
                    "sea-mq-worker-sea-b",
                    8081,
                    WorkerData::Volume("sea_worker_sea_b".into())
                ),
            ]
        );
        assert_eq!(workers[0].host_database(), None);
    }

    #[test]
    fn a_private_rendering_puts_the_database_and_port_on_the_host() {
        let names = ComposeNames {
            prefix: "t1".into(),
            throwaway: true,
            workers: WorkerHosting::OnHost {
                http_ports: vec![41234],
                data_dir: PathBuf::from("/tmp/x/worker"),
                user: "1000:1000".into(),
            },
            observe: Default::default(),
        };
        let host = Topology::for_profile(Profile::Ha);
        let workers = services(&host, &names);
        assert_eq!(workers[0].container, "t1-mq-worker");
        assert_eq!(workers[0].http_url(), "http://127.0.0.1:41234");
        assert_eq!(
            workers[0].host_database(),
            Some(PathBuf::from("/tmp/x/worker/sea-nats/sea.db"))
        );
        let mut yaml = String::new();
        write_services(&mut yaml, &workers, &host.in_containers(), &names, "\"no\"");
        write_volumes(&mut yaml, &workers);
        for line in [
            "    user: \"1000:1000\"",
            "      - \"127.0.0.1:41234:8080\"",
            "      - \"/tmp/x/worker/sea-nats:/data\"",
            "      NATS_SERVERS: \"nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222\"",
            "    image: ${SEA_WORKER_IMAGE:-sea-mq-worker:dev}",
            "    networks: [\"t1-net\"]",
            "  sea-provision:\n",
            "    container_name: t1-provision\n",
            "    command: [\"provision\"]\n",
            "      SEA_COMPOSE_PROFILE: \"ha\"\n",
            "      nats-3:\n        condition: service_healthy\n",
            "      sea-provision:\n        condition: service_completed_successfully\n",
            "      nats-1:\n        condition: service_started\n",
        ] {
            assert!(yaml.contains(line), "{line} missing in:\n{yaml}");
        }
        assert!(!yaml.contains("    name: "), "no named volume:\n{yaml}");
    }
}
