//! `sea-mq-worker provision`: the compose files' one-shot provisioner (service `sea-provision`),
//! run from the worker image before the workers start. Env-only, like `cargo xtask provision`,
//! and over the same library: `sea_infra::client::provision` plans field by field and applies
//! only what differs, so a second run changes nothing; `sea_infra::client::federation` adds a
//! mesh's placement and mirrors and a leaf cell's mirrors.
//!
//! What it provisions: the servers of `SEA_COMPOSE_PROFILE` (`ha`, `mesh`, `leaf`) as they are
//! dialled inside the compose network (`nats://nats-1:4222`, ...), every JetStream domain with
//! its federated spec; or, without it, `NATS_SERVERS` as one domain. Connection variables
//! (auth, TLS) and the spec's `STREAM_*` / `CONSUMER_*` overrides are the shared ones.
//!
//! Right after the servers report healthy their cluster may still be electing its meta leader,
//! so failures of the JetStream API are tried again for up to [`RETRY_FOR`]; a refused change or
//! an impossible replica count fails at once.

use std::time::{Duration, Instant};

use sea_infra::client::connect::NatsConfig;
use sea_infra::client::federation::{self, DomainSpec};
use sea_infra::client::provision::{self, ProvisionError};
use sea_infra::env::{ConfigErrors, EnvReader};
use sea_infra::model::spec::{Spec, ENV_STREAM_REPLICAS};
use sea_infra::model::{Profile, Topology, ENV_COMPOSE_PROFILE};

/// How long failures of the JetStream API are tried again (an election after start-up).
pub const RETRY_FOR: Duration = Duration::from_secs(120);

/// Between two attempts.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// The provisioner's configuration, from the environment.
#[derive(Clone, Debug)]
pub struct ProvisionConfig {
    pub nats: NatsConfig,
    /// The JetStream domains to provision, in order.
    pub groups: Vec<DomainSpec>,
    /// `STREAM_REPLICAS` was set: a count larger than the cluster is an error.
    pub explicit_replicas: bool,
}

impl ProvisionConfig {
    /// Reads every variable; all problems at once. Neither `SEA_COMPOSE_PROFILE` nor
    /// `NATS_SERVERS` set is one of them.
    pub fn from_env(mut env: EnvReader) -> Result<ProvisionConfig, ConfigErrors> {
        let nats = NatsConfig::from_env(&mut env);
        let spec = Spec::from_env(&mut env);
        let explicit_replicas = env.string(ENV_STREAM_REPLICAS).is_some();
        let profile = env.parse(ENV_COMPOSE_PROFILE, |s| {
            s.parse::<Profile>().map_err(|e| e.to_string())
        });
        let groups = match (profile, &nats.servers) {
            (Some(profile), _) => {
                let topology = Topology::for_profile(profile).in_containers();
                federation::domain_specs(&topology, &spec)
            }
            (None, Some(servers)) => vec![DomainSpec {
                label: String::new(),
                servers: servers.clone(),
                spec,
            }],
            (None, None) => {
                if env.string(ENV_COMPOSE_PROFILE).is_none() {
                    env.reject(
                        ENV_COMPOSE_PROFILE,
                        "",
                        format!(
                            "nothing to provision: set {ENV_COMPOSE_PROFILE} (ha, mesh or leaf: that compose profile's servers) or NATS_SERVERS"
                        ),
                    );
                }
                Vec::new()
            }
        };
        env.finish()?;
        Ok(ProvisionConfig {
            nats,
            groups,
            explicit_replicas,
        })
    }
}

/// Provisions every group in turn, telling `progress` what it does; the first failure ends the
/// run (after [`RETRY_FOR`] when it is one worth trying again).
pub async fn run(cfg: ProvisionConfig, progress: &dyn Fn(&str)) -> Result<(), ProvisionError> {
    let several = cfg.groups.len() > 1;
    for group in cfg.groups {
        if several {
            progress(&format!("== domain {}", group.label));
        }
        let began = Instant::now();
        let mut attempt = 1;
        loop {
            let mut spec = group.spec.clone();
            match provision::provision_servers_with(
                &cfg.nats,
                &group.servers,
                &mut spec,
                cfg.explicit_replicas,
                progress,
            )
            .await
            {
                Ok(plan) => {
                    progress(&if plan.is_unchanged() {
                        "nothing to do: the live configuration matches the spec".to_owned()
                    } else {
                        format!("applied: {}", plan.summary())
                    });
                    break;
                }
                Err(e) if worth_retrying(&e) && began.elapsed() < RETRY_FOR => {
                    let e = anyhow::Error::from(e);
                    progress(&format!(
                        "attempt {attempt} failed ({e:#}); trying again (for up to {RETRY_FOR:?})"
                    ));
                    attempt += 1;
                    tokio::time::sleep(RETRY_EVERY).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Whether the cluster may still get there by itself (an election, a stream's interest still
/// spreading); a refusal or an impossible replica count will not.
fn worth_retrying(e: &ProvisionError) -> bool {
    !matches!(
        e,
        ProvisionError::Refused(_) | ProvisionError::ReplicasTooLarge { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<ProvisionConfig, ConfigErrors> {
        ProvisionConfig::from_env(EnvReader::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn a_compose_profile_is_provisioned_by_service_name_with_its_federation() {
        let ha = config(&[(ENV_COMPOSE_PROFILE, "ha")]).unwrap();
        assert_eq!(ha.groups.len(), 1);
        assert_eq!(
            ha.groups[0].servers,
            [
                "nats://nats-1:4222",
                "nats://nats-2:4222",
                "nats://nats-3:4222"
            ]
        );
        let leaf = config(&[(ENV_COMPOSE_PROFILE, "nats-leaf")]).unwrap();
        assert_eq!(leaf.groups.len(), 2, "one domain per cell");
        assert!(
            leaf.groups
                .iter()
                .any(|g| g.spec.streams.iter().any(|s| s.mirror.is_some())),
            "the dialling cell mirrors the other's events"
        );
    }

    #[test]
    fn nothing_to_provision_names_both_variables() {
        let e = config(&[]).unwrap_err().to_string();
        assert!(
            e.contains(ENV_COMPOSE_PROFILE) && e.contains("NATS_SERVERS"),
            "{e}"
        );
        let e = config(&[(ENV_COMPOSE_PROFILE, "prod")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown profile `prod`"), "{e}");
        let servers = config(&[("NATS_SERVERS", "nats://127.0.0.1:4222")]).unwrap();
        assert_eq!(servers.groups[0].servers, ["nats://127.0.0.1:4222"]);
    }
}
