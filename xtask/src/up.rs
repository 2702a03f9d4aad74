//! `cargo xtask up`: start a profile's servers and return when the health gate passes.

use std::time::Duration;

use anyhow::Context;
use sea_infra::client::connect::{
    Auth, ENV_NATS_AUTH_TOKEN, ENV_NATS_INBOX_PREFIX, ENV_NATS_PASSWORD, ENV_NATS_TLS_CA,
    ENV_NATS_TLS_CERT, ENV_NATS_TLS_KEY, ENV_NATS_USER,
};
use sea_infra::deployment::observe::ObserveOptions;
use sea_infra::deployment::{secrets, Access, BackendKind, UpOptions};
use sea_infra::env::EnvReader;
use sea_infra::model::spec::Spec;
use sea_infra::model::topology::{Profile, DEFAULT_SYNC_INTERVAL};
use sea_infra::model::Role;
use xshell::Shell;

use crate::flags::{Existing, Fresh, MeshUp, Provision, Up};

/// The variables a client of `role` needs, as shell lines: paths and names as they are, and the
/// secret as the `sops` command that prints it (never the value itself).
fn client_lines(access: &Access, role: Role) -> anyhow::Result<Vec<String>> {
    let sops = project::sops()?;
    let extract = |key: &str| {
        format!(
            "\"$(SOPS_AGE_KEY_FILE={} {} decrypt --input-type dotenv --extract '[\"{key}\"]' {})\"",
            secrets::age_key_file().display(),
            sops.path.display(),
            secrets::secrets_file().display()
        )
    };
    let nats = access.nats(role);
    let mut lines = vec![format!("{ENV_NATS_TLS_CA}={}", access.ca().display())];
    if let Some((cert, key)) = &nats.tls.client {
        lines.push(format!("{ENV_NATS_TLS_CERT}={}", cert.display()));
        lines.push(format!("{ENV_NATS_TLS_KEY}={}", key.display()));
    }
    match &nats.auth {
        Auth::Token(_) => lines.push(format!(
            "{ENV_NATS_AUTH_TOKEN}={}",
            extract(secrets::KEY_TOKEN)
        )),
        Auth::UserPassword { user, .. } => {
            lines.push(format!("{ENV_NATS_USER}={user}"));
            lines.push(format!(
                "{ENV_NATS_PASSWORD}={}",
                extract(&role.password_key())
            ));
        }
        Auth::None | Auth::CredsFile(_) => {}
    }
    if let Some(prefix) = &nats.inbox_prefix {
        lines.push(format!("{ENV_NATS_INBOX_PREFIX}={prefix}"));
    }
    Ok(lines)
}
use crate::project;

impl Up {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        // Configuration first: a bad profile is reported before anything is installed.
        let (profile, backend) = (self.deployment.profile()?, self.deployment.backend);
        let bin = project::nats_server()?;
        eprintln!(
            "using nats-server {} ({}, from {})",
            bin.version,
            bin.path.display(),
            bin.source
        );
        let observe = if self.observe {
            Some(observe_tools(sh, backend)?)
        } else {
            None
        };
        let sync = self.durability.sync_interval.as_deref();
        let secure = self.deployment.secure;
        let deployment = crate::target::fixed_deployment(profile, backend, sync, secure)?;
        if deployment.topology.settings.sync_interval != DEFAULT_SYNC_INTERVAL {
            eprintln!(
                "servers fsync with sync_interval {}",
                deployment.topology.settings.sync_interval
            );
        }
        let mut env = EnvReader::from_process();
        let spec = Spec::from_env(&mut env);
        env.finish()?;
        let opts = UpOptions {
            servers: (!self.servers.is_empty()).then_some(self.servers),
            timeout: Duration::from_secs(self.timeout),
            spec,
        };
        let progress = |line: &str| eprintln!("  {line}");
        let cancel = async {
            crate::interrupt::signalled().await;
        };
        let report = project::runtime()?
            .block_on(deployment.up(&bin.path, &opts, &progress, cancel))
            .with_context(|| format!("bring up profile {profile}"))?;

        let healthy = report.health.servers.len();
        if report.started.is_empty() {
            eprintln!(
                "profile {profile} is already up: {healthy} server(s) healthy, nothing started"
            );
        } else {
            eprintln!(
                "profile {profile} is up: {healthy} server(s) healthy in {:.1}s (started {})",
                report.elapsed.as_secs_f64(),
                report.started.join(", ")
            );
        }
        eprintln!("{}", deployment.location());
        let topology = &deployment.topology;
        if let [only] = topology.clusters.as_slice() {
            println!("NATS_SERVERS={}", topology.cluster_servers(only));
        } else {
            // One line per cluster or cell, ready for `export`: NATS_SERVERS_SEA_A=...
            for c in &topology.clusters {
                let var = c.name.to_uppercase().replace('-', "_");
                println!("NATS_SERVERS_{var}={}", topology.cluster_servers(c));
            }
        }
        if let Some(access) = deployment.access() {
            eprintln!(
                "secured ({} mode): a worker connects with the lines below; other roles replace `worker` (admin, publisher, monitor, ops)",
                access.security().as_str()
            );
            for line in client_lines(access, Role::Worker)? {
                println!("{line}");
            }
        }
        if self.provision {
            let provision = Provision {
                deployment: Existing {
                    profile_flag: Some(profile),
                    backend: Some(backend),
                    secure,
                },
                dry_run: false,
                check: false,
                json: false,
                recreate: Vec::new(),
                allow_loss: Vec::new(),
                replica_wait: self.timeout,
            };
            provision.run(sh).context("provision after bring-up")?;
        }
        if let Some(mut opts) = observe {
            opts.workers = self.scrape_workers;
            let observed = project::runtime()?
                .block_on(deployment.observe(&opts))
                .context("start the exporter and Prometheus (--observe)")?;
            eprintln!(
                "observing: sea-nats-exporter at {}/metrics (pid {}), Prometheus at {} (pid {}) with {}; files in {}",
                observed.exporter.url,
                observed.exporter.pid,
                observed.prometheus.url,
                observed.prometheus.pid,
                opts.rules.display(),
                deployment.observe_dir().display()
            );
            println!("PROMETHEUS_URL={}", observed.prometheus.url);
        }
        Ok(())
    }
}

/// What `--observe` runs, checked before any server starts: Prometheus installed, the process
/// backend, the exporter built.
fn observe_tools(sh: &Shell, backend: BackendKind) -> anyhow::Result<ObserveOptions> {
    anyhow::ensure!(
        backend == BackendKind::Process,
        "--observe runs the exporter and Prometheus as processes beside process deployments; with --backend compose use the compose files' `observe` profile (docs/observability.md)"
    );
    let prometheus = which::which("prometheus").map_err(|_| {
        anyhow::anyhow!("--observe needs `prometheus` on PATH (apt-get install prometheus)")
    })?;
    let exporter = project::build_binary(sh, "sea-nats-exporter", false)?;
    Ok(ObserveOptions::new(exporter, prometheus))
}

impl MeshUp {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let up = Up {
            deployment: Fresh {
                profile_flag: Some(Profile::Mesh),
                backend: BackendKind::Process,
                secure: self.secure,
            },
            servers: Vec::new(),
            timeout: self.timeout,
            provision: self.provision,
            durability: crate::flags::Durability {
                sync_interval: None,
            },
            observe: false,
            scrape_workers: Vec::new(),
        };
        up.run(sh)
    }
}
