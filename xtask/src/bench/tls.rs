//! `bench --secure`: what TLS and accounts cost. The same raw publish and raw consume as on the
//! plaintext cluster, on a third private cluster secured like `up --secure` (TLS on every
//! listener, accounts), the probe connecting as the ops user (the operator's tools) with the
//! deployment's CA and credentials, so the ratios secure/plain compare one client over the two
//! transports.

use sea_infra::deployment::{BackendKind, Throwaway};
use sea_infra::model::topology::Profile;
use sea_infra::model::{Role, Security};

use super::placement::Placement;
use super::{start, Bins, Measured};

/// The secured cluster's raw measurements.
pub struct TlsCost {
    pub publish: Measured,
    pub consume: Measured,
}

/// Measures raw publish and raw consume of `events` on a secured private `profile` cluster.
pub fn run(
    rt: &tokio::runtime::Runtime,
    nats_server: &std::path::Path,
    bins: &Bins,
    profile: Profile,
    events: u64,
) -> anyhow::Result<TlsCost> {
    let cluster = Throwaway::new(profile, BackendKind::Process)?.secured(Security::Accounts)?;
    let access = cluster
        .deployment
        .access()
        .expect("a secured throwaway has access");
    let bins = Bins {
        env: access.client_env(Role::Ops),
        ..bins.clone()
    };
    let place: Placement<'_> = start(rt, nats_server, &cluster)?;
    let d = &cluster.deployment;
    let count = events.to_string();
    eprintln!("  measuring raw publish over TLS ...");
    let publish = bins.raw_publish(rt, &place, d, &count)?;
    eprintln!("  measuring raw pull consume + ack over TLS ...");
    let consume = bins.raw_consume(rt, &place, d, "bench-raw-tls", &count, 1)?;
    Ok(TlsCost { publish, consume })
}
