//! The drills' own stream, `SEA_DRILLS` on `sea.drill.>`: the event streams' settings (replicas,
//! storage, duplicate window) on subjects no production consumer reads and no federation link
//! carries, so drill traffic never reaches a service's inbox, interrupted or not. A drill
//! creates it (with the same mirrors the event streams get in `mesh` and `leaf`) and removes it
//! afterwards when no other drill uses it; what an interrupted drill leaves expires within the
//! stream's max age.

use std::time::Duration;

use anyhow::Context;
use sea_infra::client::federation;
use sea_infra::deployment::Deployment;
use sea_infra::env::EnvReader;
use sea_infra::model::spec::Spec;
use sea_infra::model::Role;

/// The drill spec, with the environment's overrides (`STREAM_REPLICAS` and the like apply, so a
/// drill measures what production would do).
fn spec() -> anyhow::Result<Spec> {
    let mut env = EnvReader::from_process();
    let spec = Spec::from_env(&mut env);
    env.finish()?;
    Ok(spec.drills_only())
}

/// The drill stream (the spec's `[drill_stream]`; a test keeps them equal).
pub const STREAM: &str = "SEA_DRILLS";

/// The subject prefix of one run's events: `sea.drill.<run>`.
pub fn subject(run: &str) -> String {
    format!("sea.drill.{run}")
}

/// Creates the drill stream (and its mirrors) in every JetStream domain of `dep`, and waits
/// until every server can reach it. Drills work as the operator's own user ([`Role::Ops`]).
pub async fn ensure(dep: &Deployment) -> anyhow::Result<()> {
    ensure_with(dep, None).await
}

/// [`ensure`], with the drill stream's `max_bytes` set to `max_bytes` when given (a drill on
/// servers with little storage: a stream's `max_bytes` is reserved on every replica's server).
pub async fn ensure_with(dep: &Deployment, max_bytes: Option<i64>) -> anyhow::Result<()> {
    let mut spec = spec()?;
    if let Some(max) = max_bytes {
        for s in spec.streams.iter_mut() {
            s.max_bytes = max;
        }
        spec.drill.max_bytes = max;
    }
    federation::provision_topology(&dep.topology, &dep.nats(Role::Ops), &spec)
        .await
        .context("create the drill stream")?;
    Ok(())
}

/// Removes one drill's traffic: its groups' consumers and its events (`<subject>.>`) from the
/// stream reached through `servers`, then the stream itself where nothing else uses it.
pub async fn clean_up(dep: &Deployment, servers: &[String], groups: &[String], subject: &str) {
    if let Ok(client) = dep.nats(Role::Ops).connect(servers).await {
        let js = async_nats::jetstream::new(client);
        if let Ok(st) = js.get_stream(STREAM).await {
            for group in groups {
                let _ = st.delete_consumer(group).await;
            }
            let _ = st.purge().filter(format!("{subject}.>")).await;
        }
    }
    remove_if_unused(dep).await;
}

/// [`clean_up`] from code that cannot await (a drop after an interruption), bounded in time.
pub fn clean_up_blocking(dep: &Deployment, servers: &[String], groups: &[String], subject: &str) {
    let (dep, servers) = (dep.clone(), servers.to_vec());
    let (groups, subject) = (groups.to_vec(), subject.to_owned());
    let done = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            let work = clean_up(&dep, &servers, &groups, &subject);
            rt.block_on(async {
                let _ = tokio::time::timeout(Duration::from_secs(15), work).await;
            });
        }
    });
    let _ = done.join();
}

/// Deletes the drill stream and its mirrors where no consumer is left on them (another drill may
/// still be running on the same cluster). Best effort: it is a clean-up.
pub async fn remove_if_unused(dep: &Deployment) {
    let Ok(base) = spec() else { return };
    let topology = &dep.topology;
    let nats = dep.nats(Role::Ops);
    for domain in federation::domains(topology) {
        let spec = federation::spec_for(&base, topology, &domain);
        let Ok(client) = nats.connect(&domain.servers).await else {
            continue;
        };
        let js = async_nats::jetstream::new(client);
        // Mirrors first: they are what reads the source.
        for s in spec.streams.iter().rev() {
            let Ok(mut stream) = js.get_stream(&s.name).await else {
                continue;
            };
            let unused = stream
                .info()
                .await
                .is_ok_and(|i| i.state.consumer_count == 0);
            if unused {
                let _ = js.delete_stream(&s.name).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drill_stream_is_the_specs() {
        let drill = Spec::builtin().drill;
        assert_eq!(drill.name, STREAM);
        assert_eq!(
            drill.subjects,
            [format!("{}.>", subject("x").trim_end_matches(".x"))]
        );
    }
}
