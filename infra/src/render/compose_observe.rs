//! The observing services of the (plain) compose files, compose profile `observe`: one
//! `sea-nats-exporter` watching every server of the file by service name, and a Prometheus
//! (`sea-prometheus`) scraping it and the worker services with the alert rules loaded. Its
//! configuration is rendered by [`super::prometheus::prometheus_config`], the renderer
//! `up --observe` uses, with the targets as the compose network names them; the committed copy
//! is `infra/docker/prometheus/<profile>.yml`.
//!
//! Both images are built without a registry: `cargo xtask image --exporter` and `--prometheus`
//! (Debian's `prometheus` binary with its `ldd` libraries, FROM scratch).
//!
//! Host ports of the committed files: the exporter on 7777 and Prometheus on 9090 for `ha`,
//! shifted by 200 per profile as the servers' ports are (`mesh` 7977 and 9290, `leaf` 8177 and
//! 9490), clear of every other port of the contract; a private rendering
//! ([`ObserveHosting::OnHost`]) publishes them on the ports it is given.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::compose_file::ComposeNames;
use super::compose_worker::{WorkerService, CONTAINER_HTTP_PORT};
use super::prometheus::{self, DEFAULT_EXPORTER_PORT, DEFAULT_PROMETHEUS_PORT};
use crate::model::{Profile, Topology};
use crate::render::RenderedFile;

/// The compose profile of the exporter and Prometheus.
pub const OBSERVE_PROFILE: &str = "observe";

pub const EXPORTER_SERVICE: &str = "sea-nats-exporter";
pub const PROMETHEUS_SERVICE: &str = "sea-prometheus";

/// The variables that override the two images in the compose files.
pub const ENV_EXPORTER_IMAGE: &str = "SEA_EXPORTER_IMAGE";
pub const ENV_PROMETHEUS_IMAGE: &str = "SEA_PROMETHEUS_IMAGE";

/// The exporter image's default name (`cargo xtask image --exporter` builds it; the Kubernetes
/// sidecar runs it too).
pub const DEFAULT_EXPORTER_IMAGE: &str = "sea-nats-exporter:dev";

/// The Prometheus image's default name (`cargo xtask image --prometheus` builds it).
pub const DEFAULT_PROMETHEUS_IMAGE: &str = "sea-prometheus:dev";

/// The ports both listen on inside their containers.
pub const CONTAINER_EXPORTER_PORT: u16 = DEFAULT_EXPORTER_PORT;
pub const CONTAINER_PROMETHEUS_PORT: u16 = DEFAULT_PROMETHEUS_PORT;

/// The committed rule file, relative to the project root.
pub const RULES: &str = "infra/prometheus/alerts.yml";

/// Where Prometheus reads its configuration and rules inside its container.
const CONFIG_IN_CONTAINER: &str = "/etc/prometheus/prometheus.yml";
const RULES_IN_CONTAINER: &str = "/etc/prometheus/alerts.yml";

/// Where a rendering publishes the exporter and Prometheus on the host.
#[derive(Clone, Debug, Default)]
pub enum ObserveHosting {
    /// The committed files: the fixed ports of [`committed_ports`], the rules mounted from
    /// `infra/prometheus/alerts.yml` relative to the compose file.
    #[default]
    Committed,
    /// A private rendering: the given host ports, the rules mounted from an absolute path.
    OnHost {
        exporter_port: u16,
        prometheus_port: u16,
        rules: PathBuf,
    },
}

/// The host ports of the exporter and Prometheus in the committed file of `profile`.
pub fn committed_ports(profile: Profile) -> (u16, u16) {
    let shift = match profile {
        Profile::Single | Profile::Ha => 0,
        Profile::Mesh => 200,
        Profile::Leaf => 400,
    };
    (
        DEFAULT_EXPORTER_PORT + shift,
        DEFAULT_PROMETHEUS_PORT + shift,
    )
}

/// The exporter's and Prometheus's host ports in this rendering.
pub fn host_ports(profile: Profile, names: &ComposeNames) -> (u16, u16) {
    match &names.observe {
        ObserveHosting::Committed => committed_ports(profile),
        ObserveHosting::OnHost {
            exporter_port,
            prometheus_port,
            ..
        } => (*exporter_port, *prometheus_port),
    }
}

/// The rendered Prometheus configuration's path, relative to the compose file.
fn config_path(profile: Profile) -> String {
    format!("prometheus/{profile}.yml")
}

/// The Prometheus configuration of a compose file: the exporter and every worker service by
/// service name, the rules where the service mounts them.
pub(crate) fn prometheus_file(profile: Profile, workers: &[WorkerService]) -> RenderedFile {
    let exporter = format!("{EXPORTER_SERVICE}:{CONTAINER_EXPORTER_PORT}");
    let workers: Vec<String> = workers
        .iter()
        .map(|w| format!("{}:{CONTAINER_HTTP_PORT}", w.service))
        .collect();
    RenderedFile {
        path: config_path(profile),
        contents: prometheus::prometheus_config(
            &exporter,
            &workers,
            std::path::Path::new(RULES_IN_CONTAINER),
            prometheus::DEFAULT_INTERVAL,
        ),
    }
}

/// The exporter's and Prometheus's entries under `services:`. `inner` is the container view of
/// the topology (the servers' monitoring URLs inside the network).
pub(crate) fn write_services(
    w: &mut String,
    host: &Topology,
    inner: &Topology,
    names: &ComposeNames,
    restart: &str,
) {
    let network = names.network(host.profile);
    let (exporter_port, prometheus_port) = host_ports(host.profile, names);
    let rules = match &names.observe {
        ObserveHosting::Committed => format!("../../{RULES}"),
        ObserveHosting::OnHost { rules, .. } => rules.display().to_string(),
    };
    let urls: Vec<String> = inner.servers().map(|(_, s)| inner.monitor_url(s)).collect();
    let services = [
        Observer {
            service: EXPORTER_SERVICE,
            built_by: "--exporter` builds this image FROM scratch (nothing pulled).",
            image: (ENV_EXPORTER_IMAGE, DEFAULT_EXPORTER_IMAGE),
            settings: vec![
                "    environment:".to_owned(),
                format!("      NATS_MONITOR_URLS: \"{}\"", urls.join(",")),
                format!("      EXPORTER_ADDR: \"0.0.0.0:{CONTAINER_EXPORTER_PORT}\""),
            ],
            ports: (exporter_port, CONTAINER_EXPORTER_PORT),
            volumes: Vec::new(),
            ready: "/healthz",
        },
        Observer {
            service: PROMETHEUS_SERVICE,
            built_by: "--prometheus` builds this image FROM scratch from Debian's prometheus.",
            image: (ENV_PROMETHEUS_IMAGE, DEFAULT_PROMETHEUS_IMAGE),
            settings: vec![
                "    command:".to_owned(),
                format!("      - \"--config.file={CONFIG_IN_CONTAINER}\""),
                "      - \"--storage.tsdb.path=/prometheus\"".to_owned(),
                format!("      - \"--web.listen-address=0.0.0.0:{CONTAINER_PROMETHEUS_PORT}\""),
            ],
            ports: (prometheus_port, CONTAINER_PROMETHEUS_PORT),
            volumes: vec![
                format!("./{}:{CONFIG_IN_CONTAINER}:ro", config_path(host.profile)),
                format!("{rules}:{RULES_IN_CONTAINER}:ro"),
            ],
            ready: "/-/ready",
        },
    ];
    for o in services {
        let (env, default) = o.image;
        let (outside, inside) = o.ports;
        let _ = writeln!(w, "  {}:", o.service);
        let _ = writeln!(w, "    # `cargo xtask image {}", o.built_by);
        let _ = writeln!(w, "    image: ${{{env}:-{default}}}");
        let _ = writeln!(w, "    container_name: {}", names.container(o.service));
        let _ = writeln!(w, "    profiles: [\"{OBSERVE_PROFILE}\"]");
        for line in &o.settings {
            let _ = writeln!(w, "{line}");
        }
        let _ = writeln!(w, "    ports:");
        let _ = writeln!(w, "      - \"127.0.0.1:{outside}:{inside}\"");
        if !o.volumes.is_empty() {
            let _ = writeln!(w, "    volumes:");
            for v in &o.volumes {
                let _ = writeln!(w, "      - \"{v}\"");
            }
        }
        let _ = writeln!(w, "    networks: [\"{network}\"]");
        let _ = writeln!(w, "    healthcheck:");
        let _ = writeln!(
            w,
            "      test: [\"CMD\", \"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:{inside}{}\"]",
            o.ready
        );
        let _ = writeln!(w, "      interval: 10s");
        let _ = writeln!(w, "    restart: {restart}");
    }
}

/// One observing service as the compose file has it.
struct Observer {
    service: &'static str,
    /// What follows `cargo xtask image ` in the comment on its image.
    built_by: &'static str,
    /// The variable naming its image, and the default.
    image: (&'static str, &'static str),
    /// Its `environment:` or `command:` block.
    settings: Vec<String>,
    /// Host and container port.
    ports: (u16, u16),
    volumes: Vec<String>,
    /// The path its health check reads.
    ready: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::compose_worker;

    #[test]
    fn committed_ports_clear_every_server_port() {
        for profile in [Profile::Ha, Profile::Mesh, Profile::Leaf] {
            let (e, p) = committed_ports(profile);
            for other in Profile::ALL {
                let used: Vec<u16> = Topology::for_profile(other)
                    .ports()
                    .iter()
                    .map(|u| u.port)
                    .collect();
                assert!(
                    !used.contains(&e) && !used.contains(&p),
                    "{profile}: {e} {p}"
                );
            }
        }
        assert_eq!(committed_ports(Profile::Ha), (7777, 9090));
        assert_eq!(committed_ports(Profile::Leaf), (8177, 9490));
    }

    #[test]
    fn prometheus_scrapes_the_services_by_name_with_the_rules_jobs() {
        let host = Topology::for_profile(Profile::Mesh);
        let workers = compose_worker::services(&host, &ComposeNames::default());
        let text = prometheus_file(Profile::Mesh, &workers).contents;
        for line in [
            "job_name: sea-nats-exporter",
            "targets: [\"sea-nats-exporter:7777\"]",
            "job_name: sea-mq-worker",
            "targets: [\"sea-mq-worker-sea-a:8080\", \"sea-mq-worker-sea-b:8080\"]",
            "- \"/etc/prometheus/alerts.yml\"",
        ] {
            assert!(text.contains(line), "{line} missing in:\n{text}");
        }
        let mut yaml = String::new();
        write_services(
            &mut yaml,
            &host,
            &host.in_containers(),
            &ComposeNames::default(),
            "unless-stopped",
        );
        for line in [
            "NATS_MONITOR_URLS: \"http://sea-a-1:8222,http://sea-a-2:8222,http://sea-a-3:8222,http://sea-b-1:8222,http://sea-b-2:8222,http://sea-b-3:8222\"",
            "\"127.0.0.1:7977:7777\"",
            "\"127.0.0.1:9290:9090\"",
            "\"./prometheus/mesh.yml:/etc/prometheus/prometheus.yml:ro\"",
            "\"../../infra/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro\"",
            "image: ${SEA_PROMETHEUS_IMAGE:-sea-prometheus:dev}",
            "image: ${SEA_EXPORTER_IMAGE:-sea-nats-exporter:dev}",
        ] {
            assert!(yaml.contains(line), "{line} missing in:\n{yaml}");
        }
    }
}
