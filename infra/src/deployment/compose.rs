//! The compose backend: the topology run as containers from the compose files in
//! `infra/docker/` (or a throw-away rendering of them). Everything that talks to the servers
//! (health gate, provisioning, drills) is the same as for processes, since compose publishes
//! the topology's own ports on the host. Nothing here knows about processes.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::time::Instant;

use nix::sys::signal::Signal;

use super::docker::{self, DockerError};
use super::ports;
use crate::model::{Profile, Topology};
use crate::render::compose_file::{self, ComposeNames, ENV_NATS_IMAGE, ENV_NATS_SECRETS_DIR};
use crate::render::compose_observe::{
    self, ObserveHosting, ENV_EXPORTER_IMAGE, ENV_PROMETHEUS_IMAGE, OBSERVE_PROFILE,
};
use crate::render::compose_worker::{
    self, WorkerHosting, WorkerService, ENV_WORKER_IMAGE, WORKER_PROFILE,
};

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error(
        "profile `{0}` has no compose file: use --profile ha, mesh or leaf with --backend compose"
    )]
    NoComposeFile(Profile),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("no Docker engine answers ({0}); start it, or use the process backend (the default)")]
    NoEngine(String),
    #[error("write {}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The images of every service of a compose file.
#[derive(Clone, Debug)]
pub struct ComposeImages {
    pub nats: String,
    pub worker: String,
    pub exporter: String,
    pub prometheus: String,
}

/// One compose project: a compose file, the profile that selects its servers, and the names
/// its containers get.
#[derive(Clone, Debug)]
pub struct Compose {
    /// Directory of the compose file (its relative mounts resolve from here).
    pub dir: PathBuf,
    pub file: String,
    pub project: String,
    pub profile: String,
    pub names: ComposeNames,
    /// The project's network (what a partition disconnects a container from).
    pub network: String,
    /// The worker services (compose profile `worker`), one per cluster.
    pub workers: Vec<WorkerService>,
    /// The topology's profile (`ha`, ...), which fixes the committed observe ports.
    topology_profile: Profile,
    /// The secrets directory a secure compose file mounts (`SEA_NATS_SECRETS_DIR`).
    secrets_dir: Option<PathBuf>,
    tool: Vec<String>,
}

impl Compose {
    /// The committed compose file of `profile` (its secure variant with `secure`) in
    /// `infra/docker/`, project `sea-<profile>` (or the project its containers already belong
    /// to, when someone started them by hand).
    pub fn committed(profile: Profile, secure: bool) -> Result<Compose, ComposeError> {
        let file =
            compose_file::file_name(profile, secure).ok_or(ComposeError::NoComposeFile(profile))?;
        let names = ComposeNames::default();
        let mut first = Topology::for_profile(profile);
        if secure {
            first = first.secured(crate::model::Security::Accounts);
        }
        let mut compose = Compose::new(
            crate::project_root().join(compose_file::COMPOSE_DIR),
            file,
            format!("sea-{profile}"),
            &first,
            names,
        )?;
        if let Some((_, server)) = first.servers().next() {
            if let Some(project) = compose.label(&server.name, "com.docker.compose.project") {
                compose.project = project;
            }
        }
        Ok(compose)
    }

    /// A throw-away rendering of `topology` into `dir`, every name starting with `prefix`. Its
    /// workers publish HTTP on free host ports and keep their databases in `dir/worker/<cluster>`,
    /// run as that directory's owner, so the caller reads and writes them on the host.
    pub(crate) fn private(
        topology: &Topology,
        dir: &Path,
        prefix: &str,
    ) -> Result<Compose, ComposeError> {
        let profile = topology.profile;
        let secure = topology.settings.security.is_secure();
        let file =
            compose_file::file_name(profile, secure).ok_or(ComposeError::NoComposeFile(profile))?;
        let names = ComposeNames {
            prefix: prefix.to_owned(),
            throwaway: true,
            workers: workers_on_host(topology, &dir.join("worker"))?,
            observe: ObserveHosting::OnHost {
                exporter_port: ports::free_port(),
                prometheus_port: ports::free_port(),
                rules: crate::project_root().join(compose_observe::RULES),
            },
        };
        for f in compose_file::files(topology, &names) {
            let path = dir.join(&f.path);
            let write = || -> std::io::Result<()> {
                std::fs::create_dir_all(path.parent().unwrap_or(dir))?;
                std::fs::write(&path, &f.contents)
            };
            write().map_err(|source| ComposeError::Write {
                path: path.clone(),
                source,
            })?;
        }
        Compose::new(dir.to_path_buf(), file, prefix.to_owned(), topology, names)
    }

    fn new(
        dir: PathBuf,
        file: &str,
        project: String,
        topology: &Topology,
        names: ComposeNames,
    ) -> Result<Compose, ComposeError> {
        docker::engine().map_err(|e| ComposeError::NoEngine(e.reason))?;
        Ok(Compose {
            dir,
            file: file.to_owned(),
            project,
            profile: compose_file::compose_profile(topology.profile),
            topology_profile: topology.profile,
            network: names.network(topology.profile),
            workers: if topology.settings.security.is_secure() {
                Vec::new()
            } else {
                compose_worker::services(topology, &names)
            },
            names,
            secrets_dir: None,
            tool: docker::compose_tool()?,
        })
    }

    /// Mounts `dir` as the secrets directory (what a secure compose file needs even to be
    /// stopped: its mount names the variable).
    pub fn with_secrets_dir(mut self, dir: PathBuf) -> Compose {
        self.secrets_dir = Some(dir);
        self
    }

    /// The same project from its secure compose file (`topology` is secured), mounting
    /// `secrets_dir`; a throw-away rendering is rendered again.
    pub(crate) fn secured(
        &self,
        topology: &Topology,
        secrets_dir: PathBuf,
    ) -> Result<Compose, ComposeError> {
        let compose = if self.names.throwaway {
            Compose::private(topology, &self.dir, &self.project)?
        } else {
            let mut c = Compose::committed(topology.profile, true)?;
            c.project = self.project.clone();
            c
        };
        Ok(compose.with_secrets_dir(secrets_dir))
    }

    pub fn file_path(&self) -> PathBuf {
        self.dir.join(&self.file)
    }

    pub fn container(&self, node: &str) -> String {
        self.names.container(node)
    }

    /// `<tool> -p <project> -f <file> --profile <profile> --profile worker --profile observe
    /// args…`, run in the file's directory with `envs` added. Every profile, so that every service
    /// of the file is in scope (`config` checks the workers, `down` removes them) whatever the
    /// Compose version.
    fn compose(&self, args: &[&str], envs: &[(&str, &str)]) -> Result<String, DockerError> {
        self.compose_with(&[WORKER_PROFILE, OBSERVE_PROFILE], args, envs)
    }

    /// `compose` with the servers' profile and `extra` profiles only.
    fn compose_with(
        &self,
        extra: &[&str],
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Result<String, DockerError> {
        let mut all = vec![
            "-p",
            &self.project,
            "-f",
            &self.file,
            "--profile",
            &self.profile,
        ];
        for profile in extra {
            all.extend(["--profile", profile]);
        }
        all.extend_from_slice(args);
        let mut envs: Vec<(String, String)> = envs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        if let Some(dir) = &self.secrets_dir {
            envs.push((ENV_NATS_SECRETS_DIR.to_owned(), dir.display().to_string()));
        }
        docker::run(
            &self.tool,
            &all,
            Some(&self.dir),
            &envs,
            Duration::from_secs(300),
        )
    }

    /// `config --quiet`: the file parses and validates with this Compose tool.
    pub fn validate(&self) -> Result<(), DockerError> {
        self.compose(&["config", "--quiet"], &[]).map(drop)
    }

    /// Creates and starts the servers of `nodes` with `image`.
    pub(crate) fn up(&self, servers: &[String], image: &str) -> Result<(), DockerError> {
        let mut args = vec!["up", "--detach"];
        args.extend(servers.iter().map(String::as_str));
        self.compose(&args, &[(ENV_NATS_IMAGE, image)]).map(drop)
    }

    /// Creates and starts every worker with `image` (which must be present: nothing is built or
    /// pulled), leaving the servers as they are.
    pub fn up_workers(&self, image: &str) -> Result<(), DockerError> {
        let mut args = vec!["up", "--detach", "--no-deps", "--no-build"];
        args.extend(self.workers.iter().map(|w| w.service.as_str()));
        self.compose(&args, &[(ENV_WORKER_IMAGE, image)]).map(drop)
    }

    /// Every service of the file, as an operator's `--profile nats-<p> --profile worker up -d`
    /// starts them: the servers with `nats_image`, then the one-shot provisioner and the workers
    /// with `worker_image` (both must be present: nothing is built or pulled). Compose returns
    /// once the provisioner exited 0 and the workers were started.
    pub fn up_all(&self, nats_image: &str, worker_image: &str) -> Result<(), DockerError> {
        let envs = [
            (ENV_NATS_IMAGE, nats_image),
            (ENV_WORKER_IMAGE, worker_image),
        ];
        self.compose_with(&[WORKER_PROFILE], &["up", "--detach", "--no-build"], &envs)
            .map(drop)
    }

    /// As [`Compose::up_all`], with the `observe` profile too: the exporter and Prometheus on
    /// `images.exporter` and `images.prometheus` (present: nothing is built or pulled).
    pub fn up_observed(&self, images: &ComposeImages) -> Result<(), DockerError> {
        let envs = [
            (ENV_NATS_IMAGE, images.nats.as_str()),
            (ENV_WORKER_IMAGE, images.worker.as_str()),
            (ENV_EXPORTER_IMAGE, images.exporter.as_str()),
            (ENV_PROMETHEUS_IMAGE, images.prometheus.as_str()),
        ];
        self.compose(&["up", "--detach", "--no-build"], &envs)
            .map(drop)
    }

    /// `http://127.0.0.1:<port>` of the exporter and of Prometheus (compose profile `observe`).
    pub fn observe_urls(&self) -> (String, String) {
        let (exporter, prometheus) =
            compose_observe::host_ports(self.topology_profile, &self.names);
        (
            format!("http://127.0.0.1:{exporter}"),
            format!("http://127.0.0.1:{prometheus}"),
        )
    }

    /// Re-creates one server's container with `image` (its volume stays): an upgrade.
    pub(crate) fn recreate(&self, server: &str, image: &str) -> Result<(), DockerError> {
        let args = ["up", "--detach", "--no-deps", "--force-recreate", server];
        self.compose(&args, &[(ENV_NATS_IMAGE, image)]).map(drop)
    }

    /// Removes the project's containers (SIGTERM, SIGKILL after `grace`) and network, and its
    /// volumes when `purge`.
    pub fn down(&self, purge: bool, grace: Duration) -> Result<(), DockerError> {
        let secs = grace.as_secs().to_string();
        let mut args = vec!["down", "--timeout", &secs];
        if purge {
            args.push("--volumes");
        }
        self.compose(&args, &[]).map(drop)
    }

    fn label(&self, node: &str, label: &str) -> Option<String> {
        let format = format!("{{{{index .Config.Labels \"{label}\"}}}}");
        docker::docker(&["inspect", "--format", &format, &self.container(node)])
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    }

    /// The host pid of the node's server while its container runs.
    pub(crate) fn running_pid(&self, node: &str) -> Option<i32> {
        let out = docker::docker(&[
            "inspect",
            "--format",
            "{{.State.Running}} {{.State.Pid}}",
            &self.container(node),
        ])
        .ok()?;
        match out.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["true", pid] => pid.parse().ok().filter(|p| *p > 0),
            _ => None,
        }
    }

    /// Whether the container is up or about to be again (running, restarting, paused): what a
    /// stop must take down. A restarting container has no pid, so this is not `running_pid`.
    pub(crate) fn is_up(&self, node: &str) -> bool {
        docker::docker(&[
            "inspect",
            "--format",
            "{{.State.Status}}",
            &self.container(node),
        ])
        .is_ok_and(|s| matches!(s.trim(), "running" | "restarting" | "paused"))
    }

    /// Starts the node's existing container again.
    pub(crate) fn start(&self, node: &str) -> Result<(), DockerError> {
        docker::docker(&["start", &self.container(node)]).map(drop)
    }

    /// `docker kill --signal`: a crash (KILL), lame duck (USR2) or reload (HUP).
    pub(crate) fn signal(&self, node: &str, signal: &str) -> Result<(), DockerError> {
        docker::docker(&["kill", "--signal", signal, &self.container(node)]).map(drop)
    }

    /// Stops the server with `signal` (SIGTERM: `docker stop`, which SIGKILLs after `grace`),
    /// and waits until the container is down. False when it was not up.
    pub(crate) fn stop_server(&self, node: &str, signal: Signal, grace: Duration) -> bool {
        if !self.is_up(node) {
            return false;
        }
        let _ = match signal {
            Signal::SIGTERM => self.stop(node, grace),
            other => self.signal(node, other.as_str()),
        };
        let deadline = Instant::now() + grace.max(Duration::from_secs(10));
        while self.is_up(node) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        // A restart-looping container ignores signals; `docker stop` ends it for good.
        if self.is_up(node) {
            let _ = self.stop(node, Duration::ZERO);
        }
        !self.is_up(node)
    }

    /// `docker stop`: SIGTERM, then SIGKILL after `grace`.
    pub(crate) fn stop(&self, node: &str, grace: Duration) -> Result<(), DockerError> {
        let secs = grace.as_secs().to_string();
        docker::docker(&["stop", "--time", &secs, &self.container(node)]).map(drop)
    }

    /// A partition: the container leaves the compose network, so peers and host clients lose
    /// it while it keeps running.
    pub(crate) fn partition(&self, node: &str) -> Result<(), DockerError> {
        let net = &self.network;
        docker::docker(&["network", "disconnect", net, &self.container(node)]).map(drop)
    }

    /// Heals a partition: the container joins again under its service name (the alias its
    /// peers' routes dial).
    pub(crate) fn heal(&self, node: &str) -> Result<(), DockerError> {
        let net = &self.network;
        docker::docker(&[
            "network",
            "connect",
            "--alias",
            node,
            net,
            &self.container(node),
        ])
        .map(drop)
    }

    /// `docker pause`: the container's processes are frozen (cgroup freezer).
    pub(crate) fn pause(&self, node: &str) -> Result<(), DockerError> {
        docker::docker(&["pause", &self.container(node)]).map(drop)
    }

    /// `docker unpause`, when it is paused.
    pub(crate) fn resume(&self, node: &str) -> Result<(), DockerError> {
        let paused = docker::docker(&[
            "inspect",
            "--format",
            "{{.State.Paused}}",
            &self.container(node),
        ])
        .is_ok_and(|s| s.trim() == "true");
        if !paused {
            return Ok(());
        }
        docker::docker(&["unpause", &self.container(node)]).map(drop)
    }

    /// The last `lines` lines the server logged.
    pub(crate) fn log_tail(&self, node: &str, lines: usize) -> String {
        let n = lines.to_string();
        docker::run_output(
            &["docker".to_owned()],
            &["logs", "--tail", &n, &self.container(node)],
            None,
            &[],
            docker::COMMAND_TIMEOUT,
        )
        // nats-server logs to stderr.
        .map(|(out, err)| format!("{out}{err}").trim_end().to_owned())
        .unwrap_or_else(|e| e.to_string())
    }
}

/// The private rendering's workers: a free host port and a data directory under `data_dir` for
/// each cluster, run as the owner of `data_dir` (who created it: this process).
fn workers_on_host(topology: &Topology, data_dir: &Path) -> Result<WorkerHosting, ComposeError> {
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ComposeError::Write { path, source }
    };
    for cluster in &topology.clusters {
        let dir = data_dir.join(&cluster.name);
        std::fs::create_dir_all(&dir).map_err(write_err(&dir))?;
    }
    let owner = std::fs::metadata(data_dir).map_err(write_err(data_dir))?;
    Ok(WorkerHosting::OnHost {
        http_ports: topology
            .clusters
            .iter()
            .map(|_| ports::free_port())
            .collect(),
        data_dir: data_dir.to_path_buf(),
        user: format!("{}:{}", owner.uid(), owner.gid()),
    })
}
