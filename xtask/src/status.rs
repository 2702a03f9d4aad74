//! `cargo xtask status`: a table (or JSON) of every server of a profile.

use sea_infra::probes::health::{self, ServerHealth};
use serde::Serialize;
use xshell::Shell;

use crate::flags::Status;
use crate::project;

#[derive(Serialize)]
struct StatusJson<'a> {
    profile: &'a str,
    clusters: Vec<ClusterJson<'a>>,
    nats_servers: String,
    /// The exporter and Prometheus of `up --observe`, while they run.
    observe: Option<ObserveJson>,
}

#[derive(Serialize)]
struct ObserveJson {
    exporter_url: String,
    prometheus_url: String,
}

#[derive(Serialize)]
struct ClusterJson<'a> {
    name: &'a str,
    servers: Vec<ServerJson<'a>>,
}

#[derive(Serialize)]
struct ServerJson<'a> {
    name: &'a str,
    client_url: &'a str,
    monitor_url: &'a str,
    healthy: bool,
    is_meta_leader: bool,
    routes: &'a [String],
    pid: Option<i32>,
    problem: Option<String>,
}

impl Status {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        let (profile, deployment) = project::existing(&self.deployment)?;
        let topology = &deployment.topology;
        let report =
            project::runtime()?.block_on(health::check(&deployment.monitor(), topology, None));
        let problem = |n: &ServerHealth| {
            n.first_failure()
                .map(|c| format!("{}: {}", c.name.as_str(), c.detail))
        };

        let observe = deployment.observed().map(|o| ObserveJson {
            exporter_url: o.exporter.url,
            prometheus_url: o.prometheus.url,
        });
        if self.json {
            let clusters = topology
                .clusters
                .iter()
                .map(|c| ClusterJson {
                    name: &c.name,
                    servers: report
                        .servers
                        .iter()
                        .filter(|n| n.cluster == c.name)
                        .map(|n| ServerJson {
                            name: &n.name,
                            client_url: &n.client_url,
                            monitor_url: &n.monitor_url,
                            healthy: n.healthy,
                            is_meta_leader: n.is_meta_leader,
                            routes: &n.routes,
                            pid: deployment.pid(&n.name),
                            problem: problem(n),
                        })
                        .collect(),
                })
                .collect();
            let out = StatusJson {
                profile: profile.as_str(),
                clusters,
                nats_servers: topology.nats_servers(),
                observe,
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
            return Ok(());
        }

        println!(
            "{:<10} {:<8} {:<24} {:<24} {:<8} {:<7} {:<7} routes / problem",
            "cluster", "server", "client", "monitor", "pid", "healthy", "leader"
        );
        for n in &report.servers {
            let pid = deployment
                .pid(&n.name)
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into());
            let detail = problem(n).unwrap_or_else(|| n.routes.join(", "));
            println!(
                "{:<10} {:<8} {:<24} {:<24} {:<8} {:<7} {:<7} {}",
                n.cluster,
                n.name,
                n.client_url,
                n.monitor_url,
                pid,
                if n.healthy { "yes" } else { "NO" },
                if n.is_meta_leader { "*" } else { "" },
                detail
            );
        }
        println!("NATS_SERVERS={}", topology.nats_servers());
        if let Some(o) = observe {
            println!("EXPORTER_URL={}/metrics", o.exporter_url);
            println!("PROMETHEUS_URL={}", o.prometheus_url);
        }
        Ok(())
    }
}
