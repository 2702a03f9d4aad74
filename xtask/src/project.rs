//! What several commands share: where the project and its state live, which profile a command
//! means, and the nats-server binary.

use std::path::PathBuf;

use anyhow::{bail, Context};

use crate::flags::Backend;
use sea_infra::compose::Compose;
use sea_infra::nats_server::{NatsServer, Resolver, Source};
use sea_infra::process::{state_root, Deployment};
use sea_infra::topology::{Profile, Topology};

pub fn project_root() -> PathBuf {
    sea_infra::workspace_root()
}

pub fn resolver(install: bool) -> Resolver {
    Resolver {
        cache_dir: state_root().join("cache"),
        install,
    }
}

/// Resolves nats-server, installing the pinned build when missing (with a note, it takes a while).
pub fn nats_server() -> anyhow::Result<NatsServer> {
    let probe = resolver(false).resolve();
    let found = match probe {
        Ok(found) => found,
        Err(_) => {
            eprintln!(
                "nats-server not found: installing the pinned build into {} ...",
                state_root().join("cache").display()
            );
            resolver(true).resolve()?
        }
    };
    if found.source == Source::Installed {
        eprintln!(
            "installed nats-server {} at {}",
            found.version,
            found.path.display()
        );
    }
    Ok(found)
}

/// The directory of one profile's state.
pub fn profile_dir(profile: Profile) -> PathBuf {
    state_root().join(profile.as_str())
}

/// A deployment of the profile's current model (what `up` starts), run by `backend`.
pub fn fresh_deployment(
    profile: Profile,
    nats_server: PathBuf,
    backend: Backend,
) -> anyhow::Result<Deployment> {
    let deployment = Deployment::new(
        Topology::for_profile(profile),
        profile_dir(profile),
        nats_server,
    );
    with_backend(deployment, backend)
}

fn with_backend(deployment: Deployment, backend: Backend) -> anyhow::Result<Deployment> {
    Ok(match backend {
        Backend::Process => deployment,
        Backend::Compose => {
            let compose = Compose::committed(deployment.topology.profile)?;
            deployment.with_compose(compose)
        }
    })
}

/// The deployment as last started (its recorded topology and backend, unless `backend` says
/// otherwise), else the profile's model. Used by commands that only look or stop, so they never
/// need the binary.
pub fn recorded_deployment(
    profile: Profile,
    backend: Option<Backend>,
) -> anyhow::Result<Deployment> {
    let dir = profile_dir(profile);
    let topology =
        Deployment::recorded_topology(&dir).unwrap_or_else(|| Topology::for_profile(profile));
    let backend = backend.unwrap_or(if Deployment::recorded_compose(&dir) {
        Backend::Compose
    } else {
        Backend::Process
    });
    with_backend(Deployment::new(topology, dir, PathBuf::new()), backend)
}

/// Profiles that have recorded state in the state directory.
pub fn recorded_profiles() -> Vec<Profile> {
    Profile::ALL
        .into_iter()
        .filter(|p| Deployment::recorded_topology(&profile_dir(*p)).is_some())
        .collect()
}

/// The profile a look-only command means: the explicit one, else the only one with state.
pub fn pick_profile(explicit: Option<Profile>) -> anyhow::Result<Profile> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    match recorded_profiles().as_slice() {
        [] => bail!(
            "no profile has been started here; run `cargo xtask up --profile ha` or pass --profile"
        ),
        [one] => Ok(*one),
        many => {
            let names: Vec<&str> = many.iter().map(|p| p.as_str()).collect();
            bail!(
                "several profiles have state ({}); pass --profile",
                names.join(", ")
            )
        }
    }
}

/// A runtime for the async parts (HTTP polling, NATS clients).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")
}

/// A `cargo` command without the variables `cargo run` set for xtask itself (`CARGO_PKG_NAME`,
/// `CARGO_MANIFEST_DIR`, ...): build scripts such as ring's watch them, and inheriting xtask's
/// values would rebuild those crates on every nested build.
pub fn cargo<'a>(cmd: xshell::Cmd<'a>) -> xshell::Cmd<'a> {
    let inherited = [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
    ];
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| inherited.iter().any(|p| k.starts_with(p)) || k == "CARGO_PRIMARY_PACKAGE")
        .fold(cmd, |cmd, k| cmd.env_remove(k))
}
