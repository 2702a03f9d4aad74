//! Where the benchmark's clients connect. A client connected to the server that leads its pull
//! consumer costs the servers far less per message than one connected elsewhere (measured here:
//! raw consume at 70-72k/s against 42-46k/s, the same client and consumer), and async-nats
//! picks a random server from its list. Left to chance, a ratio of two measurements compared a
//! lucky placement with an unlucky one. So every client of one measurement connects to the same
//! server, one that leads neither the stream nor the consumer: the usual case for workers spread
//! over a cluster, and the dearer one.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use async_nats::jetstream::{self, consumer};
use sea_infra::client::connect::NatsConfig;
use sea_infra::model::spec::Spec;
use sea_infra::model::topology::Topology;

/// The stream the benchmark publishes to and consumes from.
pub const STREAM: &str = "SEA_EVENTS";

pub struct Placement<'a> {
    topology: &'a Topology,
    js: jetstream::Context,
}

impl<'a> Placement<'a> {
    /// Connects to every server of `topology` as `nats` says (TLS and credentials when secured).
    pub async fn connect(
        topology: &'a Topology,
        nats: &NatsConfig,
    ) -> anyhow::Result<Placement<'a>> {
        let servers: Vec<String> = topology
            .servers()
            .map(|(_, s)| topology.client_url(s))
            .collect();
        let client = nats
            .connect(&servers)
            .await
            .context("connect to the benchmark's cluster")?;
        Ok(Placement {
            topology,
            js: nats.jetstream(client),
        })
    }

    /// The client URL for publishing to the stream: a server that does not lead it.
    pub async fn publisher(&self) -> anyhow::Result<String> {
        let stream = self.stream_leader().await?;
        self.elsewhere(&[stream])
    }

    /// Creates the durable `name` on the stream with the spec's consumer settings (what a worker
    /// group binds), and returns the client URL its clients are to use.
    pub async fn durable(&self, name: &str) -> anyhow::Result<String> {
        self.durable_with(name, None).await
    }

    /// [`durable`](Self::durable) with `max_ack_pending` instead of the spec's, when given.
    pub async fn durable_with(
        &self,
        name: &str,
        max_ack_pending: Option<i64>,
    ) -> anyhow::Result<String> {
        let mut spec = Spec::builtin().consumer;
        spec.group = name.to_owned();
        if let Some(n) = max_ack_pending {
            spec.max_ack_pending = n;
        }
        spec.durable = None;
        spec.filter_subject = None;
        let mut consumer: consumer::PullConsumer = self
            .js
            .get_stream(STREAM)
            .await?
            .create_consumer(spec.config())
            .await
            .with_context(|| format!("create consumer {STREAM}/{name}"))?;
        let began = Instant::now();
        let leader = loop {
            let info = consumer.info().await?;
            if let Some(leader) = info.cluster.as_ref().and_then(|c| c.leader.clone()) {
                break leader;
            }
            if began.elapsed() > Duration::from_secs(10) {
                bail!("consumer {STREAM}/{name} has no leader after 10 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let stream = self.stream_leader().await?;
        self.elsewhere(&[stream, leader])
    }

    /// Deletes a durable once measured: consumers left on the stream would cost the servers
    /// work on every later publish, and the relay is compared with a publish measured without.
    pub async fn remove(&self, name: &str) -> anyhow::Result<()> {
        self.js
            .get_stream(STREAM)
            .await?
            .delete_consumer(name)
            .await
            .with_context(|| format!("delete consumer {STREAM}/{name}"))?;
        Ok(())
    }

    async fn stream_leader(&self) -> anyhow::Result<String> {
        let began = Instant::now();
        loop {
            let info = self.js.get_stream(STREAM).await?.info().await?.clone();
            if let Some(leader) = info.cluster.and_then(|c| c.leader) {
                return Ok(leader);
            }
            if began.elapsed() > Duration::from_secs(10) {
                bail!("stream {STREAM} has no leader after 10 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The first server, in the stream leader's cluster, that is none of `leaders`; the first
    /// server when there is no other (the `single` profile, where one server leads everything).
    fn elsewhere(&self, leaders: &[String]) -> anyhow::Result<String> {
        let topology = self.topology;
        for leader in leaders {
            if topology.server(leader).is_none() {
                bail!("leader {leader} is not a server of this cluster: cannot place the clients");
            }
        }
        let home = topology.server(&leaders[0]).map(|(c, _)| c.name.clone());
        let pick = topology
            .servers()
            .filter(|(c, _)| home.as_ref().is_none_or(|h| *h == c.name))
            .map(|(_, n)| n.name.clone())
            .find(|n| !leaders.contains(n))
            .or_else(|| topology.servers().next().map(|(_, n)| n.name.clone()))
            .expect("a cluster has a server");
        let (_, server) = topology.server(&pick).expect("picked from the topology");
        Ok(topology.client_url(server))
    }
}
