//! `bench --secure`: what TLS and accounts cost. The same raw publish and raw consume as on the
//! plaintext cluster, on a third private cluster secured like `up --secure` (TLS on every
//! listener, accounts), the probe connecting as the ops user (the operator's tools) with the
//! deployment's CA and credentials, so the ratios secure/plain compare one client over the two
//! transports.

use sea_infra::deployment::{BackendKind, Throwaway};
use sea_infra::model::topology::Profile;
use sea_infra::model::{Role, Security};

use super::placement::{self, Placement};
use super::{start, Bins, Span, PAYLOAD_BYTES, PUBLISH_WINDOW, PULL_BATCH};

/// The secured cluster's raw rates.
pub struct TlsCost {
    pub publish: Span,
    pub consume: Span,
}

/// Measures raw publish and raw consume of `events` on a secured private `profile` cluster.
pub fn measure(
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
    let count = events.to_string();
    eprintln!("  measuring raw publish over TLS ...");
    let publish = bins.probe(&[
        "publish",
        &rt.block_on(place.publisher())?,
        "tls",
        &count,
        &PAYLOAD_BYTES.to_string(),
        &PUBLISH_WINDOW.to_string(),
    ])?;
    eprintln!("  measuring raw pull consume + ack over TLS ...");
    let server = rt.block_on(place.durable("bench-raw-tls"))?;
    let consume = bins.probe(&[
        "consume",
        &server,
        placement::STREAM,
        "bench-raw-tls",
        &count,
        &PULL_BATCH.to_string(),
        "1",
    ])?;
    rt.block_on(place.remove("bench-raw-tls"))?;
    Ok(TlsCost { publish, consume })
}
