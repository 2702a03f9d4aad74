//! Provisioning across clusters: which servers form one JetStream domain, and what each domain
//! gets on top of the spec.
//!
//! - A supercluster (clusters joined by gateways) is one domain with one meta group: its streams
//!   are placed in the first cluster, and every other cluster holds a mirror of each event
//!   stream (reads stay local; the events survive the loss of the home cluster).
//! - A cell dialling other cells over leafnodes is its own domain: it keeps its own streams and
//!   mirrors each remote cell's event streams through that cell's API prefix, so either cell
//!   keeps working when the link is down and the mirror catches up when it heals.

use crate::client::provision::{provision_servers, Plan, ProvisionError};
use crate::model::spec::{MirrorSpec, Spec};
use crate::model::topology::{Cluster, Topology};

/// Servers that share one JetStream domain.
#[derive(Clone, Debug)]
pub struct Domain<'a> {
    /// The clusters' names joined with `+` (`sea-a+sea-b`), for messages.
    pub label: String,
    pub clusters: Vec<&'a Cluster>,
    /// Client URLs of every server of those clusters.
    pub servers: Vec<String>,
}

/// The domains of a topology in declaration order: each cluster with every cluster it reaches
/// through gateways.
pub fn domains(topology: &Topology) -> Vec<Domain<'_>> {
    let mut out: Vec<Domain<'_>> = Vec::new();
    for cluster in &topology.clusters {
        if out
            .iter()
            .any(|d| d.clusters.iter().any(|c| c.name == cluster.name))
        {
            continue;
        }
        let mut members = vec![cluster];
        let mut i = 0;
        while i < members.len() {
            for peer in members[i]
                .gateways
                .iter()
                .filter_map(|g| topology.cluster(g))
            {
                if !members.iter().any(|m| m.name == peer.name) {
                    members.push(peer);
                }
            }
            i += 1;
        }
        out.push(Domain {
            label: members
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join("+"),
            servers: members
                .iter()
                .flat_map(|c| topology.client_urls(c))
                .collect(),
            clusters: members,
        });
    }
    out
}

/// The name of the mirror of `stream` whose source lives in `source_cluster`.
pub fn mirror_name(stream: &str, source_cluster: &str) -> String {
    format!(
        "{stream}_MIRROR_{}",
        source_cluster.to_uppercase().replace('-', "_")
    )
}

/// The spec one domain gets: `base` plus placement and the mirrors described above.
pub fn spec_for(base: &Spec, topology: &Topology, domain: &Domain<'_>) -> Spec {
    let mut spec = base.clone();
    let event_streams: Vec<_> = base.event_streams().cloned().collect();
    if let [home, others @ ..] = domain.clusters.as_slice() {
        if !others.is_empty() {
            for s in &mut spec.streams {
                s.placement_cluster.get_or_insert_with(|| home.name.clone());
            }
            for other in others {
                for s in &event_streams {
                    spec.streams
                        .push(mirror_of(s, &home.name, None, Some(&other.name)));
                }
            }
        }
    }
    for cluster in &domain.clusters {
        for remote in cluster
            .leaf_remotes
            .iter()
            .filter_map(|r| topology.cluster(r))
        {
            let api = remote
                .jetstream_domain
                .as_ref()
                .map(|d| format!("$JS.{d}.API"));
            for s in &event_streams {
                spec.streams
                    .push(mirror_of(s, &remote.name, api.clone(), None));
            }
        }
    }
    spec
}

fn mirror_of(
    source: &crate::model::spec::StreamSpec,
    source_cluster: &str,
    api_prefix: Option<String>,
    placement: Option<&str>,
) -> crate::model::spec::StreamSpec {
    let mut mirror = source.clone();
    mirror.name = mirror_name(&source.name, source_cluster);
    mirror.events = false;
    mirror.subjects = Vec::new();
    // The server keeps no duplicate window on a mirror (it copies sequences, not publishes).
    mirror.duplicate_window = std::time::Duration::ZERO;
    mirror.placement_cluster = placement.map(str::to_owned);
    mirror.mirror = Some(MirrorSpec {
        stream: source.name.clone(),
        api_prefix,
    });
    mirror
}

/// What provisioning one domain takes: its label, its servers' client URLs and its spec.
#[derive(Clone, Debug)]
pub struct DomainSpec {
    pub label: String,
    pub servers: Vec<String>,
    pub spec: Spec,
}

/// Every domain of `topology` with the spec [`spec_for`] gives it from `base`: what
/// `cargo xtask provision`, the compose files' one-shot provisioner and [`provision_topology`]
/// provision.
pub fn domain_specs(topology: &Topology, base: &Spec) -> Vec<DomainSpec> {
    domains(topology)
        .iter()
        .map(|d| DomainSpec {
            label: d.label.clone(),
            servers: d.servers.clone(),
            spec: spec_for(base, topology, d),
        })
        .collect()
}

/// Provisions every domain of `topology` with its spec (tests, drills, verify): the applied
/// plan of each, labelled.
pub async fn provision_topology(
    topology: &Topology,
    nats: &crate::client::connect::NatsConfig,
    base: &Spec,
) -> Result<Vec<(String, Plan)>, ProvisionError> {
    let mut out = Vec::new();
    for mut domain in domain_specs(topology, base) {
        let plan = provision_servers(nats, &domain.servers, &mut domain.spec).await?;
        out.push((domain.label, plan));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::topology::Profile;

    fn names(spec: &Spec) -> Vec<(String, Option<String>)> {
        spec.streams
            .iter()
            .map(|s| (s.name.clone(), s.placement_cluster.clone()))
            .collect()
    }

    #[test]
    fn a_supercluster_is_one_domain_with_placement_and_mirrors() {
        let mesh = Topology::for_profile(Profile::Mesh);
        let d = domains(&mesh);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].label, "sea-a+sea-b");
        assert_eq!(d[0].servers.len(), 6);
        let spec = spec_for(&Spec::builtin(), &mesh, &d[0]);
        let all = names(&spec);
        assert!(all.contains(&("SEA_EVENTS".into(), Some("sea-a".into()))));
        assert!(all.contains(&("SEA_EVENTS_MIRROR_SEA_A".into(), Some("sea-b".into()))));
        let mirror = spec
            .streams
            .iter()
            .find(|s| s.name == "SEA_EVENTS_MIRROR_SEA_A")
            .unwrap();
        let config = mirror.config();
        assert!(config.subjects.is_empty());
        assert_eq!(config.mirror.unwrap().name, "SEA_EVENTS");
    }

    #[test]
    fn cells_are_domains_of_their_own_and_mirror_through_the_api_prefix() {
        let leaf = Topology::for_profile(Profile::Leaf);
        let d = domains(&leaf);
        let labels: Vec<&str> = d.iter().map(|d| d.label.as_str()).collect();
        assert_eq!(labels, ["cell-a", "cell-b"]);
        let a = spec_for(&Spec::builtin(), &leaf, &d[0]);
        assert_eq!(a, Spec::builtin(), "cell-a dials nobody: the plain spec");
        let b = spec_for(&Spec::builtin(), &leaf, &d[1]);
        let mirror = b
            .streams
            .iter()
            .find(|s| s.name == "SEA_EVENTS_MIRROR_CELL_A")
            .unwrap();
        let source = mirror.config().mirror.unwrap();
        assert_eq!(source.external.unwrap().api_prefix, "$JS.cell-a.API");
        assert!(b.streams.iter().all(|s| s.placement_cluster.is_none()));
    }
}
