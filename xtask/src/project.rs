//! What several commands share: the project root, which profile a command means, the
//! nats-server and sops binaries, the async runtime, and nested `cargo` commands (the worker's
//! build).

use std::path::PathBuf;

use anyhow::{bail, Context};
use xshell::{cmd, Shell};

use sea_infra::deployment::nats_server::{NatsServer, Resolver, Source};
use sea_infra::deployment::sops::{self, Sops};
use sea_infra::deployment::{cache_dir, secrets, Access, Deployment};
use sea_infra::model::topology::Profile;

pub fn project_root() -> PathBuf {
    sea_infra::project_root()
}

pub fn resolver(install: bool) -> Resolver {
    Resolver {
        cache_dir: cache_dir(),
        install,
    }
}

/// Resolves nats-server, installing the pinned build when missing (with a note, it takes a while).
pub fn nats_server() -> anyhow::Result<NatsServer> {
    let found = match resolver(false).resolve() {
        Ok(found) => found,
        Err(_) => {
            eprintln!(
                "nats-server not found: installing the pinned build into {} ...",
                cache_dir().display()
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

/// Resolves sops, installing the pinned build into the cache when missing (with a note).
pub fn sops() -> anyhow::Result<Sops> {
    if let Ok(found) = sops::resolve(&cache_dir(), false) {
        return Ok(found);
    }
    eprintln!(
        "sops not found: installing the pinned build into {} ...",
        cache_dir().display()
    );
    let found = sops::resolve(&cache_dir(), true)?;
    eprintln!(
        "installed sops {} at {}",
        found.version,
        found.path.display()
    );
    Ok(found)
}

/// The profile a look-only command means: the explicit one, else the only one with state.
pub fn pick_profile(explicit: Option<Profile>) -> anyhow::Result<Profile> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    match Deployment::recorded_profiles().as_slice() {
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

/// The deployment a look-only command means (`--profile`, `SEA_NATS_PROFILE`, else the one
/// with state), as it was started: its recorded topology and backend, secured when it was
/// started secured or `--secure` says so.
pub fn existing(flags: &crate::flags::Existing) -> anyhow::Result<(Profile, Deployment)> {
    let profile = pick_profile(flags.profile()?)?;
    let dep = secured(Deployment::recorded(profile, flags.backend)?, flags.secure)?;
    Ok((profile, dep))
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

/// Builds `sea-mq-worker` (debug, like the quick start, or `release`) and returns its path.
pub fn build_worker(sh: &Shell, release: bool) -> anyhow::Result<PathBuf> {
    build_binary(sh, "sea-mq-worker", release)
}

/// Builds the binary of the workspace package of the same name (debug or `release`) and returns
/// its path.
pub fn build_binary(sh: &Shell, package: &str, release: bool) -> anyhow::Result<PathBuf> {
    let flag = release.then_some("--release");
    cargo(cmd!(
        sh,
        "cargo build --quiet {flag...} -p {package} --bin {package}"
    ))
    .run()
    .with_context(|| format!("build {package}"))?;
    let profile = if release { "release" } else { "debug" };
    Ok(project_root().join("target").join(profile).join(package))
}

/// The secrets of secured deployments: `SEA_SECRETS_FILE` (default
/// `<state root>/secrets/secrets.env.sops`) decrypted with the age key, with the development
/// certificates issued where missing. With `init`, development secrets are created first when
/// there is no file yet and `SEA_SECRETS_FILE` does not name one (what `secrets init` does).
pub fn access(init: bool) -> anyhow::Result<Access> {
    let file = secrets::secrets_file();
    if !file.exists() {
        if init && !secrets_file_named() {
            eprintln!(
                "no secrets file yet: creating development secrets ({})",
                file.display()
            );
            crate::flags::SecretsInit {
                force: false,
                token: false,
            }
            .run(&Shell::new()?)?;
        } else {
            bail!(
                "no secrets file at {}: `cargo xtask secrets init` creates development secrets (or set {} to yours)",
                file.display(),
                secrets::ENV_SEA_SECRETS_FILE
            );
        }
    }
    Ok(Access::from_file(
        &sops()?,
        &file,
        &secrets::age_key_file(),
        secrets::tls_dir(),
    )?)
}

/// Whether `SEA_SECRETS_FILE` names a secrets file (else the default under the state root).
pub fn secrets_file_named() -> bool {
    std::env::var_os(secrets::ENV_SEA_SECRETS_FILE).is_some_and(|v| !v.is_empty())
}

/// `dep` secured with the secrets when `secure` asks for it or its recorded topology is secured
/// (a profile started with `--secure` stays secured for every command that looks at it).
pub fn secured(dep: Deployment, secure: bool) -> anyhow::Result<Deployment> {
    let recorded = dep.topology.settings.security;
    if !secure && !recorded.is_secure() {
        return Ok(dep);
    }
    let access = access(secure)?;
    if recorded.is_secure() && access.security() != recorded {
        bail!(
            "profile {} runs in {} mode, but the secrets file {} is for {} mode; restart it (`cargo xtask down`, then `up --secure`) or point {} at the file it was started with",
            dep.topology.profile,
            recorded.as_str(),
            secrets::secrets_file().display(),
            access.security().as_str(),
            secrets::ENV_SEA_SECRETS_FILE
        );
    }
    Ok(dep.with_access(access)?)
}
