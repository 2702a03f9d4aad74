//! Renders the Kubernetes deployment of one SEA cell (`deploy/k8s/`) from the `ha` topology:
//! a StatefulSet of nats-servers sharing one config, its Services and disruption budget, and
//! the worker. The Pulumi component (`deploy/pulumi/components/sea-cell.ts`) reads the same
//! rendered `nats.conf`.
//!
//! Secure by default: TLS on every listener, HTTPS monitoring (the probes too), accounts with
//! least-privilege users. The secret material is never rendered: the pods mount the Secret
//! [`SECRET`] (`ca.pem`, `server.pem`, `server-key.pem`, `auth.conf`) beside the config in one
//! projected volume, as a whole directory (no `subPath`, so updates arrive), and a reloader
//! sidecar signals the server when the mounted files change.

use std::fmt::Write as _;

use super::compose_file::default_nats_image;
use super::compose_worker::{CONTAINER_HTTP_PORT, DEFAULT_WORKER_IMAGE};
use crate::model::{Profile, Topology, CONTAINER_PORTS};
use crate::render::{self, RenderedFile};

/// Name of the StatefulSet; its pods are `nats-0`, `nats-1`, … .
pub const STATEFULSET: &str = "nats";
/// The headless Service that gives each pod a stable DNS name for routes.
pub const HEADLESS: &str = "nats-headless";
pub const CONFIGMAP: &str = "nats-config";
/// The Secret the servers' TLS files and accounts come from (`cargo xtask secrets k8s`).
pub const SECRET: &str = "nats-secrets";
/// The Secret the worker connects with: the CA, its client certificate and its password.
pub const WORKER_SECRET: &str = "sea-mq-worker-nats";
/// The files of [`SECRET`], as the config names them under `/etc/nats/secrets/`.
pub const SECRET_FILES: [&str; 4] = ["ca.pem", "server.pem", "server-key.pem", "auth.conf"];
/// The files of [`WORKER_SECRET`], mounted at [`WORKER_SECRET_DIR`].
pub const WORKER_SECRET_FILES: [&str; 4] = ["ca.pem", "client.pem", "client-key.pem", "password"];
pub const WORKER_SECRET_DIR: &str = "/etc/sea/nats";
/// How often the reloader compares the mounted files (kubelet refreshes a Secret within about a
/// minute of a change).
const RELOAD_CHECK_SECS: u32 = 10;
pub const WORKER: &str = "sea-mq-worker";
const WORKER_PORT: u16 = CONTAINER_HTTP_PORT;
/// Servers in the cell: a three-member Raft group survives the loss of one.
pub const REPLICAS: usize = 3;

/// The topology the pods run: the `ha` cluster with pods as servers, routes through the headless
/// Service, and `server_name` from the pod's name.
pub fn topology() -> Topology {
    let mut t = Topology::for_profile(Profile::Ha).in_containers();
    let names: Vec<String> = (0..REPLICAS)
        .map(|i| format!("{STATEFULSET}-{i}"))
        .collect();
    let cluster = &mut t.clusters[0];
    cluster.servers.truncate(1);
    let template = cluster.servers[0].clone();
    cluster.servers = names
        .iter()
        .map(|name| {
            let mut n = template.clone();
            n.name = name.clone();
            // One config for every pod: each routes to all (itself included, which is harmless).
            n.routes = names.clone();
            n
        })
        .collect();
    t.settings.peer_host = Some(format!("{{server}}.{HEADLESS}"));
    t.settings.server_name_env = Some("POD_NAME".to_owned());
    t.settings.store_root = "/data/jetstream".to_owned();
    t.secured(crate::model::Security::Accounts)
}

/// The address a pod advertises to its peers: `<pod>.nats-headless:6222`.
pub fn cluster_advertise(pod: &str) -> String {
    format!("{pod}.{HEADLESS}:{}", CONTAINER_PORTS.route)
}

/// The one config every pod mounts.
pub fn nats_conf() -> String {
    let t = topology();
    let (cluster, node) = t.servers().next().expect("the cell has servers");
    render::nats_conf::server_config(&t, cluster, node)
}

/// Every file under `deploy/k8s/`, relative to the workspace root.
pub fn committed_files() -> Vec<RenderedFile> {
    let t = topology();
    let files = [
        ("nats.conf", nats_conf()),
        ("configmap.yaml", configmap()),
        ("statefulset.yaml", statefulset(&t)),
        ("service.yaml", service()),
        ("service-headless.yaml", headless_service()),
        ("pdb.yaml", pdb()),
        ("worker-deployment.yaml", worker(&t)),
        ("podmonitor.yaml", pod_monitors()),
        ("prometheus-rule.yaml", prometheus_rule()),
        ("kustomization.yaml", kustomization()),
    ];
    files
        .into_iter()
        .map(|(name, contents)| RenderedFile {
            path: format!("deploy/k8s/{name}"),
            contents,
        })
        .collect()
}

/// The manifests `kustomization.yaml` lists (every object file).
pub const MANIFESTS: [&str; 8] = [
    "configmap.yaml",
    "statefulset.yaml",
    "service.yaml",
    "service-headless.yaml",
    "pdb.yaml",
    "worker-deployment.yaml",
    "podmonitor.yaml",
    "prometheus-rule.yaml",
];

/// The manifests of Prometheus Operator resources (`monitoring.coreos.com/v1`): Kubernetes'
/// own schemas do not cover them.
pub const CUSTOM_RESOURCES: [&str; 2] = ["podmonitor.yaml", "prometheus-rule.yaml"];

/// The exporter sidecar's port (named `metrics`).
pub const EXPORTER_PORT: u16 = 7777;
/// The alert rules, rendered into the `PrometheusRule`.
const ALERTS: &str = include_str!("../../prometheus/alerts.yml");

fn header() -> String {
    "# Rendered from the SEA topology model; do not edit. Regenerate with `cargo xtask render`.\n"
        .to_owned()
}

fn labels(w: &mut String, indent: &str, component: &str) {
    // `app` too: the seeds' runbook selects pods with `-l app=nats`.
    let _ = writeln!(w, "{indent}app: {component}");
    let _ = writeln!(w, "{indent}app.kubernetes.io/name: {component}");
    let _ = writeln!(w, "{indent}app.kubernetes.io/part-of: sea-cell");
}

fn configmap() -> String {
    let mut w = header();
    let _ = writeln!(w, "apiVersion: v1");
    let _ = writeln!(w, "kind: ConfigMap");
    let _ = writeln!(w, "metadata:");
    let _ = writeln!(w, "  name: {CONFIGMAP}");
    let _ = writeln!(w, "  labels:");
    labels(&mut w, "    ", STATEFULSET);
    let _ = writeln!(w, "data:");
    let _ = writeln!(w, "  nats.conf: |");
    for line in nats_conf().lines() {
        if line.is_empty() {
            let _ = writeln!(w);
        } else {
            let _ = writeln!(w, "    {line}");
        }
    }
    w
}

fn http_probe(w: &mut String, kind: &str, path: &str, timing: [u32; 3]) {
    let [initial, period, failures] = timing;
    let _ = writeln!(w, "          {kind}:");
    let _ = writeln!(w, "            httpGet:");
    let _ = writeln!(w, "              path: {path}");
    let _ = writeln!(w, "              port: monitor");
    // The kubelet does not verify the certificate; nats-server asks none of it.
    let _ = writeln!(w, "              scheme: HTTPS");
    let _ = writeln!(w, "            initialDelaySeconds: {initial}");
    let _ = writeln!(w, "            periodSeconds: {period}");
    let _ = writeln!(w, "            timeoutSeconds: 5");
    let _ = writeln!(w, "            failureThreshold: {failures}");
}

fn statefulset(t: &Topology) -> String {
    let lame_duck = t.settings.lame_duck_secs();
    let mut w = header();
    let _ = writeln!(w, "apiVersion: apps/v1");
    let _ = writeln!(w, "kind: StatefulSet");
    let _ = writeln!(w, "metadata:");
    let _ = writeln!(w, "  name: {STATEFULSET}");
    let _ = writeln!(w, "  labels:");
    labels(&mut w, "    ", STATEFULSET);
    let _ = writeln!(w, "spec:");
    let _ = writeln!(w, "  replicas: {REPLICAS}");
    let _ = writeln!(w, "  serviceName: {HEADLESS}");
    let _ = writeln!(
        w,
        "  # Every pod must be up for the cluster to form: start them together."
    );
    let _ = writeln!(w, "  podManagementPolicy: Parallel");
    let _ = writeln!(w, "  selector:");
    let _ = writeln!(w, "    matchLabels:");
    let _ = writeln!(w, "      app.kubernetes.io/name: {STATEFULSET}");
    let _ = writeln!(w, "  template:");
    let _ = writeln!(w, "    metadata:");
    let _ = writeln!(w, "      labels:");
    labels(&mut w, "        ", STATEFULSET);
    let _ = writeln!(w, "    spec:");
    let _ = writeln!(
        w,
        "      # The reloader sidecar signals the server's process (config reload on SIGHUP)."
    );
    let _ = writeln!(w, "      shareProcessNamespace: true");
    let _ = writeln!(
        w,
        "      # Lame duck ({}) plus time to flush and exit.",
        t.settings.lame_duck_duration
    );
    let _ = writeln!(w, "      terminationGracePeriodSeconds: {}", lame_duck + 30);
    let _ = writeln!(w, "      affinity:");
    let _ = writeln!(w, "        podAntiAffinity:");
    let _ = writeln!(
        w,
        "          # Two replicas on one node would let one node failure take quorum."
    );
    let _ = writeln!(
        w,
        "          requiredDuringSchedulingIgnoredDuringExecution:"
    );
    let _ = writeln!(w, "            - topologyKey: kubernetes.io/hostname");
    let _ = writeln!(w, "              labelSelector:");
    let _ = writeln!(w, "                matchLabels:");
    let _ = writeln!(w, "                  app.kubernetes.io/name: {STATEFULSET}");
    let _ = writeln!(w, "      containers:");
    let _ = writeln!(w, "        - name: nats");
    let _ = writeln!(w, "          image: {}", default_nats_image());
    let _ = writeln!(w, "          args: [\"--config\", \"/etc/nats/nats.conf\"]");
    let _ = writeln!(w, "          env:");
    let _ = writeln!(w, "            - name: POD_NAME");
    let _ = writeln!(w, "              valueFrom:");
    let _ = writeln!(w, "                fieldRef:");
    let _ = writeln!(w, "                  fieldPath: metadata.name");
    // Peers dial the pod by its stable DNS name, never its IP (new on every restart).
    let _ = writeln!(
        w,
        "            - name: {}",
        render::nats_conf::CLUSTER_ADVERTISE_ENV
    );
    let _ = writeln!(
        w,
        "              value: \"{}\"",
        cluster_advertise("$(POD_NAME)")
    );
    let _ = writeln!(w, "          ports:");
    for (name, port) in [
        ("client", CONTAINER_PORTS.client),
        ("cluster", CONTAINER_PORTS.route),
        ("monitor", CONTAINER_PORTS.monitor),
    ] {
        let _ = writeln!(w, "            - name: {name}");
        let _ = writeln!(w, "              containerPort: {port}");
    }
    let _ = writeln!(w, "          # The probes of the official NATS Helm chart.");
    http_probe(
        &mut w,
        "startupProbe",
        "/healthz?js-enabled-only=true",
        [10, 10, 90],
    );
    http_probe(
        &mut w,
        "readinessProbe",
        "/healthz?js-server-only=true",
        [10, 10, 3],
    );
    http_probe(
        &mut w,
        "livenessProbe",
        "/healthz?js-enabled-only=true",
        [10, 30, 3],
    );
    let _ = writeln!(w, "          lifecycle:");
    let _ = writeln!(w, "            preStop:");
    let _ = writeln!(w, "              exec:");
    let _ = writeln!(
        w,
        "                # Lame duck: hand Raft leadership off, then exit (nats-server is PID 1)."
    );
    let _ = writeln!(
        w,
        "                command: [\"nats-server\", \"--signal\", \"ldm=1\"]"
    );
    let _ = writeln!(w, "          resources:");
    let _ = writeln!(w, "            requests:");
    let _ = writeln!(w, "              cpu: 250m");
    let _ = writeln!(w, "              memory: 512Mi");
    let _ = writeln!(w, "          volumeMounts:");
    let _ = writeln!(w, "            - name: config");
    let _ = writeln!(w, "              mountPath: /etc/nats");
    let _ = writeln!(w, "              readOnly: true");
    let _ = writeln!(w, "            - name: data");
    let _ = writeln!(w, "              mountPath: /data");
    reloader(&mut w);
    exporter(&mut w);
    let _ = writeln!(w, "      volumes:");
    let _ = writeln!(
        w,
        "        # nats.conf beside secrets/: its `include ./secrets/auth.conf` resolves there."
    );
    let _ = writeln!(w, "        - name: config");
    let _ = writeln!(w, "          projected:");
    let _ = writeln!(w, "            sources:");
    let _ = writeln!(w, "              - configMap:");
    let _ = writeln!(w, "                  name: {CONFIGMAP}");
    let _ = writeln!(w, "              - secret:");
    let _ = writeln!(w, "                  name: {SECRET}");
    let _ = writeln!(w, "                  items:");
    for file in SECRET_FILES {
        let _ = writeln!(w, "                    - key: {file}");
        let _ = writeln!(w, "                      path: secrets/{file}");
    }
    let _ = writeln!(w, "  volumeClaimTemplates:");
    let _ = writeln!(w, "    - metadata:");
    let _ = writeln!(w, "        name: data");
    let _ = writeln!(w, "      spec:");
    let _ = writeln!(w, "        accessModes: [\"ReadWriteOnce\"]");
    let _ = writeln!(w, "        resources:");
    let _ = writeln!(w, "          requests:");
    let _ = writeln!(w, "            storage: 10Gi");
    w
}

/// A sidecar that reloads the server (`nats-server --signal reload`, which finds the server in
/// the shared process namespace) when a mounted file changes: kubelet swaps a changed Secret
/// or ConfigMap in atomically, so one checksum of the directory tells. Runs the server's own
/// image (its busybox shell), so nothing else is pulled.
fn reloader(w: &mut String) {
    let _ = writeln!(w, "        - name: reloader");
    let _ = writeln!(w, "          image: {}", default_nats_image());
    let _ = writeln!(w, "          command:");
    let _ = writeln!(w, "            - /bin/sh");
    let _ = writeln!(w, "            - -c");
    let _ = writeln!(w, "            - |");
    let _ = writeln!(
        w,
        "              sum() {{ cat /etc/nats/nats.conf /etc/nats/secrets/* | md5sum; }}"
    );
    let _ = writeln!(w, "              last=$(sum)");
    let _ = writeln!(w, "              while sleep {RELOAD_CHECK_SECS}; do");
    let _ = writeln!(w, "                now=$(sum)");
    let _ = writeln!(w, "                if [ \"$now\" != \"$last\" ]; then");
    let _ = writeln!(
        w,
        "                  nats-server --signal reload && echo \"reloaded: mounted files changed\""
    );
    let _ = writeln!(w, "                  last=$now");
    let _ = writeln!(w, "                fi");
    let _ = writeln!(w, "              done");
    let _ = writeln!(w, "          resources:");
    let _ = writeln!(w, "            requests:");
    let _ = writeln!(w, "              cpu: 5m");
    let _ = writeln!(w, "              memory: 8Mi");
    let _ = writeln!(w, "          volumeMounts:");
    let _ = writeln!(w, "            - name: config");
    let _ = writeln!(w, "              mountPath: /etc/nats");
    let _ = writeln!(w, "              readOnly: true");
}

fn service_head(w: &mut String, name: &str) {
    let _ = writeln!(w, "apiVersion: v1");
    let _ = writeln!(w, "kind: Service");
    let _ = writeln!(w, "metadata:");
    let _ = writeln!(w, "  name: {name}");
    let _ = writeln!(w, "  labels:");
    labels(w, "    ", STATEFULSET);
    let _ = writeln!(w, "spec:");
    let _ = writeln!(w, "  selector:");
    let _ = writeln!(w, "    app.kubernetes.io/name: {STATEFULSET}");
}

fn service_port(w: &mut String, name: &str, port: u16) {
    let _ = writeln!(w, "    - name: {name}");
    let _ = writeln!(w, "      port: {port}");
    let _ = writeln!(w, "      targetPort: {name}");
}

fn service() -> String {
    let mut w = header();
    service_head(&mut w, STATEFULSET);
    let _ = writeln!(w, "  ports:");
    service_port(&mut w, "client", CONTAINER_PORTS.client);
    service_port(&mut w, "monitor", CONTAINER_PORTS.monitor);
    w
}

fn headless_service() -> String {
    let mut w = header();
    service_head(&mut w, HEADLESS);
    let _ = writeln!(w, "  clusterIP: None");
    let _ = writeln!(
        w,
        "  # Routes must resolve before a pod is ready, or the cluster never forms."
    );
    let _ = writeln!(w, "  publishNotReadyAddresses: true");
    let _ = writeln!(w, "  ports:");
    service_port(&mut w, "cluster", CONTAINER_PORTS.route);
    w
}

fn pdb() -> String {
    let mut w = header();
    let _ = writeln!(w, "apiVersion: policy/v1");
    let _ = writeln!(w, "kind: PodDisruptionBudget");
    let _ = writeln!(w, "metadata:");
    let _ = writeln!(w, "  name: {STATEFULSET}");
    let _ = writeln!(w, "  labels:");
    labels(&mut w, "    ", STATEFULSET);
    let _ = writeln!(w, "spec:");
    let _ = writeln!(
        w,
        "  # A drain may take one server at a time: two keep Raft quorum."
    );
    let _ = writeln!(w, "  minAvailable: {}", REPLICAS / 2 + 1);
    let _ = writeln!(w, "  selector:");
    let _ = writeln!(w, "    matchLabels:");
    let _ = writeln!(w, "      app.kubernetes.io/name: {STATEFULSET}");
    w
}

fn worker(t: &Topology) -> String {
    let servers = t.cluster_servers(&t.clusters[0]);
    let mut w = header();
    let _ = writeln!(w, "apiVersion: apps/v1");
    let _ = writeln!(w, "kind: Deployment");
    let _ = writeln!(w, "metadata:");
    let _ = writeln!(w, "  name: {WORKER}");
    let _ = writeln!(w, "  labels:");
    labels(&mut w, "    ", WORKER);
    let _ = writeln!(w, "spec:");
    let _ = writeln!(w, "  replicas: 2");
    let _ = writeln!(w, "  selector:");
    let _ = writeln!(w, "    matchLabels:");
    let _ = writeln!(w, "      app.kubernetes.io/name: {WORKER}");
    let _ = writeln!(w, "  template:");
    let _ = writeln!(w, "    metadata:");
    let _ = writeln!(w, "      labels:");
    labels(&mut w, "        ", WORKER);
    let _ = writeln!(w, "    spec:");
    let _ = writeln!(w, "      terminationGracePeriodSeconds: 40");
    let _ = writeln!(w, "      containers:");
    let _ = writeln!(w, "        - name: worker");
    let _ = writeln!(w, "          image: {DEFAULT_WORKER_IMAGE}");
    let _ = writeln!(w, "          env:");
    let _ = writeln!(w, "            - name: NATS_SERVERS");
    let _ = writeln!(w, "              value: \"{servers}\"");
    let role = crate::model::Role::Worker;
    for (var, value) in [
        ("NATS_TLS_CA", format!("{WORKER_SECRET_DIR}/ca.pem")),
        ("NATS_TLS_CERT", format!("{WORKER_SECRET_DIR}/client.pem")),
        (
            "NATS_TLS_KEY",
            format!("{WORKER_SECRET_DIR}/client-key.pem"),
        ),
        ("NATS_USER", role.as_str().to_owned()),
        ("NATS_INBOX_PREFIX", role.inbox_prefix()),
    ] {
        let _ = writeln!(w, "            - name: {var}");
        let _ = writeln!(w, "              value: \"{value}\"");
    }
    let _ = writeln!(w, "            - name: NATS_PASSWORD");
    let _ = writeln!(w, "              valueFrom:");
    let _ = writeln!(w, "                secretKeyRef:");
    let _ = writeln!(w, "                  name: {WORKER_SECRET}");
    let _ = writeln!(w, "                  key: password");
    let _ = writeln!(w, "            - name: HTTP_ADDR");
    let _ = writeln!(w, "              value: \"0.0.0.0:{WORKER_PORT}\"");
    let _ = writeln!(w, "            - name: CONSUMER_GROUP");
    let _ = writeln!(w, "              value: \"{WORKER}\"");
    let _ = writeln!(
        w,
        "            # Replicas share one database (PostgreSQL): create the secret first,"
    );
    let _ = writeln!(w, "            # see deploy/README.md.");
    let _ = writeln!(w, "            - name: DATABASE_URL");
    let _ = writeln!(w, "              valueFrom:");
    let _ = writeln!(w, "                secretKeyRef:");
    let _ = writeln!(w, "                  name: {WORKER}-db");
    let _ = writeln!(w, "                  key: DATABASE_URL");
    let _ = writeln!(w, "          ports:");
    let _ = writeln!(w, "            - name: http");
    let _ = writeln!(w, "              containerPort: {WORKER_PORT}");
    let _ = writeln!(w, "          readinessProbe:");
    let _ = writeln!(w, "            httpGet:");
    let _ = writeln!(w, "              path: /readyz");
    let _ = writeln!(w, "              port: http");
    let _ = writeln!(w, "            periodSeconds: 5");
    let _ = writeln!(w, "          livenessProbe:");
    let _ = writeln!(w, "            httpGet:");
    let _ = writeln!(w, "              path: /healthz");
    let _ = writeln!(w, "              port: http");
    let _ = writeln!(w, "            periodSeconds: 10");
    let _ = writeln!(w, "            failureThreshold: 3");
    let _ = writeln!(w, "          resources:");
    let _ = writeln!(w, "            requests:");
    let _ = writeln!(w, "              cpu: 100m");
    let _ = writeln!(w, "              memory: 64Mi");
    let _ = writeln!(w, "          volumeMounts:");
    let _ = writeln!(w, "            - name: nats-client");
    let _ = writeln!(w, "              mountPath: {WORKER_SECRET_DIR}");
    let _ = writeln!(w, "              readOnly: true");
    let _ = writeln!(w, "      volumes:");
    let _ = writeln!(w, "        - name: nats-client");
    let _ = writeln!(w, "          secret:");
    let _ = writeln!(w, "            secretName: {WORKER_SECRET}");
    let _ = writeln!(w, "            defaultMode: 0400");
    w
}

/// The `sea-nats-exporter` sidecar: this pod's server over HTTPS on localhost (the server
/// certificate names `localhost`), trusting the CA of the `nats-secrets` Secret it reads from
/// the same projected volume as the server. Image: `cargo xtask image --exporter`.
fn exporter(w: &mut String) {
    let _ = writeln!(w, "        - name: exporter");
    let _ = writeln!(
        w,
        "          image: {}",
        crate::render::compose_observe::DEFAULT_EXPORTER_IMAGE
    );
    let _ = writeln!(w, "          env:");
    for (name, value) in [
        (
            "NATS_MONITOR_URLS",
            format!("https://localhost:{}", CONTAINER_PORTS.monitor),
        ),
        (
            "NATS_MONITOR_CA_FILE",
            "/etc/nats/secrets/ca.pem".to_owned(),
        ),
        ("EXPORTER_ADDR", format!("0.0.0.0:{EXPORTER_PORT}")),
    ] {
        let _ = writeln!(w, "            - name: {name}");
        let _ = writeln!(w, "              value: \"{value}\"");
    }
    let _ = writeln!(w, "          ports:");
    let _ = writeln!(w, "            - name: metrics");
    let _ = writeln!(w, "              containerPort: {EXPORTER_PORT}");
    let _ = writeln!(w, "          readinessProbe:");
    let _ = writeln!(w, "            httpGet:");
    let _ = writeln!(w, "              path: /healthz");
    let _ = writeln!(w, "              port: metrics");
    let _ = writeln!(w, "          resources:");
    let _ = writeln!(w, "            requests:");
    let _ = writeln!(w, "              cpu: 20m");
    let _ = writeln!(w, "              memory: 32Mi");
    let _ = writeln!(w, "          volumeMounts:");
    let _ = writeln!(w, "            - name: config");
    let _ = writeln!(w, "              mountPath: /etc/nats");
    let _ = writeln!(w, "              readOnly: true");
}

/// Prometheus Operator `PodMonitor`s for the exporter sidecars and the workers, with the job
/// names the alert rules use (`up{job=...}`).
fn pod_monitors() -> String {
    let mut w = header();
    let monitors = [
        (
            STATEFULSET,
            crate::render::prometheus::EXPORTER_JOB,
            "metrics",
        ),
        (WORKER, crate::render::prometheus::WORKER_JOB, "http"),
    ];
    for (i, (app, job, port)) in monitors.into_iter().enumerate() {
        if i > 0 {
            let _ = writeln!(w, "---");
        }
        let _ = writeln!(w, "apiVersion: monitoring.coreos.com/v1");
        let _ = writeln!(w, "kind: PodMonitor");
        let _ = writeln!(w, "metadata:");
        let _ = writeln!(w, "  name: {job}");
        let _ = writeln!(w, "  labels:");
        labels(&mut w, "    ", app);
        let _ = writeln!(w, "spec:");
        let _ = writeln!(w, "  selector:");
        let _ = writeln!(w, "    matchLabels:");
        let _ = writeln!(w, "      app.kubernetes.io/name: {app}");
        let _ = writeln!(w, "  podMetricsEndpoints:");
        let _ = writeln!(w, "    - port: {port}");
        let _ = writeln!(w, "      path: /metrics");
        let _ = writeln!(w, "      interval: 15s");
        let _ = writeln!(w, "      relabelings:");
        let _ = writeln!(
            w,
            "        # The rules' job name (the operator's default is <namespace>/<name>)."
        );
        let _ = writeln!(w, "        - targetLabel: job");
        let _ = writeln!(w, "          replacement: {job}");
    }
    w
}

/// A Prometheus Operator `PrometheusRule` holding `infra/prometheus/alerts.yml`'s groups as
/// they are.
fn prometheus_rule() -> String {
    let mut w = header();
    let _ = writeln!(w, "# The groups of infra/prometheus/alerts.yml, unchanged.");
    let _ = writeln!(w, "apiVersion: monitoring.coreos.com/v1");
    let _ = writeln!(w, "kind: PrometheusRule");
    let _ = writeln!(w, "metadata:");
    let _ = writeln!(w, "  name: sea-alerts");
    let _ = writeln!(w, "  labels:");
    labels(&mut w, "    ", STATEFULSET);
    let _ = writeln!(w, "spec:");
    for line in ALERTS.lines().skip_while(|l| !l.starts_with("groups:")) {
        if line.is_empty() {
            let _ = writeln!(w);
        } else {
            let _ = writeln!(w, "  {line}");
        }
    }
    w
}

fn kustomization() -> String {
    let mut w = header();
    let _ = writeln!(w, "apiVersion: kustomize.config.k8s.io/v1beta1");
    let _ = writeln!(w, "kind: Kustomization");
    let _ = writeln!(w, "resources:");
    for m in MANIFESTS {
        let _ = writeln!(w, "  - {m}");
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_route_through_the_headless_service_and_name_themselves() {
        let conf = nats_conf();
        for i in 0..REPLICAS {
            assert!(
                conf.contains(&format!("\"nats-route://nats-{i}.nats-headless:6222\"")),
                "{conf}"
            );
        }
        assert!(conf.contains("server_name: $POD_NAME"), "{conf}");
        assert!(conf.contains("advertise: $CLUSTER_ADVERTISE"), "{conf}");
        assert!(conf.contains("no_advertise: true"), "{conf}");
        assert!(conf.contains("store_dir: \"/data/jetstream\""), "{conf}");
        assert!(conf.contains("listen: \"0.0.0.0:4222\""), "{conf}");
    }

    #[test]
    fn the_prometheus_rule_holds_the_alert_rules_unchanged() {
        let rule = prometheus_rule();
        let body: Vec<&str> = rule.lines().skip_while(|l| *l != "spec:").skip(1).collect();
        let alerts: Vec<&str> = ALERTS
            .lines()
            .skip_while(|l| !l.starts_with("groups:"))
            .collect();
        assert_eq!(body.len(), alerts.len());
        for (b, a) in body.iter().zip(&alerts) {
            assert!(
                a.is_empty() && b.is_empty() || *b == format!("  {a}"),
                "{b:?} / {a:?}"
            );
        }
        assert!(alerts.iter().filter(|l| l.contains("- alert: ")).count() >= 30);
    }

    #[test]
    fn the_exporter_sidecar_reads_its_own_server_over_https_with_the_secrets_ca() {
        let sts = statefulset(&topology());
        for needle in [
            "- name: exporter",
            "value: \"https://localhost:8222\"",
            "value: \"/etc/nats/secrets/ca.pem\"",
            "containerPort: 7777",
        ] {
            assert!(sts.contains(needle), "{needle} missing:\n{sts}");
        }
        let monitors = pod_monitors();
        assert!(
            monitors.contains("replacement: sea-nats-exporter"),
            "{monitors}"
        );
        assert!(
            monitors.contains("replacement: sea-mq-worker"),
            "{monitors}"
        );
    }
}
