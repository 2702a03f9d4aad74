//! The deployment a drill or `verify` runs on: the profile's own on its fixed ports (started if
//! it is not running, and stopped again afterwards), or with `--private` a throw-away one on
//! free ports (what the test suite uses, next to a developer's running cluster).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use sea_infra::client::federation;
use sea_infra::client::provision::Plan;
use sea_infra::deployment::{ports, BackendKind, Deployment, Throwaway, UpOptions};
use sea_infra::env::EnvReader;
use sea_infra::model::spec::Spec;
use sea_infra::model::topology::{Profile, Topology, DEFAULT_SYNC_INTERVAL};
use sea_infra::model::{Role, Security};
use xshell::Shell;

use crate::project;

enum Held {
    Fixed(Deployment),
    Private(Throwaway),
}

pub struct Target {
    held: Held,
    /// The nats-server binary servers are (re)started with.
    pub bin: PathBuf,
    /// Servers this run started, stopped again on drop (unless kept).
    pub started: Vec<String>,
    pub keep: bool,
}

impl Target {
    /// The profile's deployment run by `bin` on `backend`, its servers fsyncing every
    /// `sync_interval` (`None`: what it runs with, else the server's default), secured when
    /// `secure` asks (a private one with fresh secrets of its own, the profile's own with the
    /// secrets file) or when the profile runs secured already.
    pub fn new(
        profile: Profile,
        private: bool,
        bin: PathBuf,
        backend: BackendKind,
        sync_interval: Option<&str>,
        secure: bool,
    ) -> anyhow::Result<Target> {
        let held = if private {
            let mut topology = Topology::for_profile(profile).remap_ports(ports::free_port);
            if let Some(v) = sync_interval {
                topology.settings.sync_interval = v.to_owned();
            }
            let throwaway = Throwaway::with_topology(topology, backend)?;
            Held::Private(match (secure, project::secrets_file_named()) {
                (false, _) => throwaway,
                // The operator's secrets when SEA_SECRETS_FILE names them, else fresh ones.
                (true, true) => throwaway.with_access(project::access(false)?)?,
                (true, false) => throwaway.secured(Security::Accounts)?,
            })
        } else {
            Held::Fixed(fixed_deployment(profile, backend, sync_interval, secure)?)
        };
        Ok(Target {
            held,
            bin,
            started: Vec::new(),
            keep: false,
        })
    }

    /// A throw-away deployment of `topology` (ports already free), whatever runs here: for a
    /// drill that needs servers configured its own way.
    pub fn own(topology: Topology, bin: PathBuf, backend: BackendKind) -> anyhow::Result<Target> {
        Ok(Target {
            held: Held::Private(Throwaway::with_topology(topology, backend)?),
            bin,
            started: Vec::new(),
            keep: false,
        })
    }

    pub fn dep(&self) -> &Deployment {
        match &self.held {
            Held::Fixed(d) => d,
            Held::Private(t) => &t.deployment,
        }
    }

    /// Starts what is not running and waits for the health gate; the time it took.
    pub async fn up(&mut self, progress: &dyn Fn(&str)) -> anyhow::Result<Duration> {
        let began = Instant::now();
        let report = self
            .dep()
            .up(
                &self.bin,
                &UpOptions::default(),
                progress,
                std::future::pending(),
            )
            .await
            .context("bring-up")?;
        self.started = report.started;
        Ok(began.elapsed())
    }

    /// Client URLs of the first JetStream domain (all servers but in `leaf`, where it is the
    /// first cell): where a worker of this profile connects.
    pub fn servers(&self) -> Vec<String> {
        federation::domains(&self.dep().topology)
            .into_iter()
            .next()
            .map(|d| d.servers)
            .unwrap_or_default()
    }

    /// Applies the spec (env overrides included) to every JetStream domain of the profile; the
    /// plans that were applied.
    pub async fn provision(&self) -> anyhow::Result<Vec<Plan>> {
        let mut env = EnvReader::from_process();
        let spec = Spec::from_env(&mut env);
        env.finish()?;
        let dep = self.dep();
        let plans =
            federation::provision_topology(&dep.topology, &dep.nats(Role::Admin), &spec).await?;
        Ok(plans.into_iter().map(|(_, plan)| plan).collect())
    }

    /// Stops the servers this run started; returns those of the profile still running.
    pub fn stop(&mut self) -> Vec<String> {
        let started = std::mem::take(&mut self.started);
        let dep = self.dep();
        if !started.is_empty() {
            // Containers this run created are removed with their network (volumes stay).
            let all = started.len() == dep.server_names().len();
            let only = (dep.kind() == BackendKind::Process || !all).then_some(&started);
            let _ = dep.down(only.map(Vec::as_slice), false, Duration::from_secs(10));
        }
        dep.running_servers().into_iter().collect()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if !self.keep {
            self.stop();
        }
    }
}

/// The profile on its fixed ports, its servers fsyncing every `sync_interval`: the running
/// cluster's setting when it runs (a different one is refused: it needs a restart), else the
/// server's default. The committed compose files mount configs rendered with the default, so
/// another value needs `--private` or the process backend.
pub fn fixed_deployment(
    profile: Profile,
    backend: BackendKind,
    sync_interval: Option<&str>,
    secure: bool,
) -> anyhow::Result<Deployment> {
    let mut dep = Deployment::for_profile(profile, backend)?;
    let recorded = Deployment::recorded(profile, Some(backend))?;
    let running = !recorded.running_servers().is_empty();
    let runs_secured = running && recorded.topology.settings.security.is_secure();
    if running && secure && !runs_secured {
        anyhow::bail!(
            "profile {profile} runs without TLS and authentication: stop it first (`cargo xtask down --profile {profile}`) to run it secured, or use --private"
        );
    }
    let current = recorded.topology.settings.sync_interval.clone();
    let wanted = match (sync_interval, running) {
        (Some(v), _) => v.to_owned(),
        (None, true) => current.clone(),
        (None, false) => DEFAULT_SYNC_INTERVAL.to_owned(),
    };
    if running && wanted != current {
        anyhow::bail!(
            "profile {profile} runs with sync_interval {current}: stop it first (`cargo xtask down --profile {profile}`) to run it with {wanted}, or use --private"
        );
    }
    if backend == BackendKind::Compose && wanted != DEFAULT_SYNC_INTERVAL {
        anyhow::bail!(
            "the committed compose files mount configs with the server's default sync_interval ({DEFAULT_SYNC_INTERVAL}); for {wanted} use --private (its compose files are rendered with it) or the process backend"
        );
    }
    dep.topology.settings.sync_interval = wanted;
    if runs_secured {
        dep.topology.settings.security = recorded.topology.settings.security;
    }
    project::secured(dep, secure)
}

/// A prebuilt worker to use instead of building one (the test suite passes the one it built).
pub const ENV_SEA_MQ_WORKER_BIN: &str = "SEA_MQ_WORKER_BIN";

/// Builds the worker (debug, like the quick start) and returns its path.
pub fn worker_bin(sh: &Shell) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(ENV_SEA_MQ_WORKER_BIN).map(PathBuf::from) {
        anyhow::ensure!(
            path.is_file(),
            "{ENV_SEA_MQ_WORKER_BIN}={} is not a file: unset it to build the worker",
            path.display()
        );
        return Ok(path);
    }
    project::build_worker(sh, false)
}
