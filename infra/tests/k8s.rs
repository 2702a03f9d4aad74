//! The Kubernetes manifests under `deploy/k8s/` pass an independent schema validation:
//! `kubernetes-validate` (PyPI, the Kubernetes OpenAPI schemas), installed here on first use,
//! in strict mode (unknown fields are errors). `rendered_files.rs` checks they are current.

use std::path::PathBuf;
use std::process::Command;

use sea_infra::deployment::cache_dir;
use sea_infra::deployment::{certs, Access};
use sea_infra::model::{Role, Security, Spec, CONTAINER_PORTS};
use sea_infra::render::k8s::{CUSTOM_RESOURCES, MANIFESTS};
use sea_infra::testing::{independent_check, require, Prerequisite};
use serde_json::json;

const VALIDATOR: &str = "kubernetes-validate==1.37.0";
/// The Kubernetes version the manifests are checked against.
const KUBERNETES: &str = "1.33.0";

/// The validator's executable in a private venv under the project cache.
fn validator() -> PathBuf {
    let venv = cache_dir().join("kubernetes-validate-1.37.0");
    let bin = venv.join("bin/kubernetes-validate");
    if bin.is_file() {
        return bin;
    }
    let run = |cmd: &mut Command| {
        let out = cmd.output().expect("run python3");
        assert!(
            out.status.success(),
            "installing {VALIDATOR} failed ({cmd:?}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv));
    run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", VALIDATOR]));
    bin
}

fn k8s_dir() -> PathBuf {
    sea_infra::project_root().join("deploy/k8s")
}

#[test]
fn every_manifest_passes_strict_schema_validation() {
    let bin = validator();
    // Prometheus Operator resources have no schema among Kubernetes' own.
    for manifest in MANIFESTS.iter().filter(|m| !CUSTOM_RESOURCES.contains(m)) {
        let out = Command::new(&bin)
            .args(["--strict", "--kubernetes-version", KUBERNETES])
            .arg(k8s_dir().join(manifest))
            .output()
            .expect("run kubernetes-validate");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{manifest}: {said}");
        assert!(said.contains(" passed for resource "), "{manifest}: {said}");
    }
}

/// A broken object must fail the same validation (so the check above can fail).
#[test]
fn the_validator_rejects_a_broken_object() {
    let dir = sea_infra::testing::scratch_dir("k8s");
    let broken = std::fs::read_to_string(k8s_dir().join("pdb.yaml"))
        .unwrap()
        .replace("minAvailable:", "minAvailabel:");
    let path = dir.path().join("pdb.yaml");
    std::fs::write(&path, broken).unwrap();
    let out = Command::new(validator())
        .args(["--strict", "--kubernetes-version", KUBERNETES])
        .arg(&path)
        .output()
        .expect("run kubernetes-validate");
    assert!(!out.status.success(), "a misspelt field passed");
}

/// `kustomization.yaml` lists every manifest, and `kubectl kustomize` builds the whole set.
#[test]
fn kustomization_ties_every_manifest_together() {
    let text = std::fs::read_to_string(k8s_dir().join("kustomization.yaml")).unwrap();
    for m in MANIFESTS {
        assert!(
            text.contains(&format!("  - {m}\n")),
            "{m} not in kustomization.yaml"
        );
    }
    if !require(
        "kustomization_ties_every_manifest_together",
        Prerequisite::Kubectl,
    ) {
        return;
    }
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(k8s_dir())
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built = String::from_utf8_lossy(&out.stdout);
    for kind in [
        "kind: ConfigMap",
        "kind: StatefulSet",
        "kind: Service",
        "kind: PodDisruptionBudget",
        "kind: Deployment",
    ] {
        assert!(built.contains(kind), "{kind} missing from the build");
    }
}

/// The Pulumi component cannot be compiled here (no npm registry): at least it must build the
/// same objects as the manifests, from the same rendered config.
#[test]
fn pulumi_component_matches_the_manifests() {
    let root = sea_infra::project_root();
    let ts = std::fs::read_to_string(root.join("deploy/pulumi/components/sea-cell.ts")).unwrap();
    let statefulset = std::fs::read_to_string(k8s_dir().join("statefulset.yaml")).unwrap();
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        let path = statefulset
            .split(&format!("{probe}:"))
            .nth(1)
            .and_then(|rest| rest.split("path: ").nth(1))
            .and_then(|rest| rest.lines().next())
            .unwrap_or_else(|| panic!("{probe} in statefulset.yaml"));
        assert!(
            ts.contains(&format!("{probe}: probe(\"{path}\"")),
            "{probe} {path}"
        );
    }
    for needle in [
        "\"k8s\", \"nats.conf\"",
        "args.replicas ?? 3",
        "podManagementPolicy: \"Parallel\"",
        "publishNotReadyAddresses: true",
        "topologyKey: \"kubernetes.io/hostname\"",
        "\"--signal\", \"ldm=1\"",
        "minAvailable: Math.floor(replicas / 2) + 1",
        "path: \"/readyz\"",
        "path: \"/healthz\"",
        &format!("HEADLESS = \"{}\"", sea_infra::render::k8s::HEADLESS),
        &format!(
            "natsImage ?? \"{}\"",
            sea_infra::render::compose_file::default_nats_image()
        ),
    ] {
        assert!(ts.contains(needle), "sea-cell.ts lacks `{needle}`");
    }
}

/// Containers named and addressed like the StatefulSet's pods (`nats-N.nats-headless`), with
/// the rendered `nats.conf` and `POD_NAME`; removed on drop.
struct Pods {
    prefix: String,
    /// The CA the pods' certificate is issued by.
    ca: PathBuf,
}

impl Drop for Pods {
    fn drop(&mut self) {
        for i in 0..sea_infra::render::k8s::REPLICAS {
            let _ = docker(&["rm", "--force", &format!("{}-{i}", self.prefix)]);
        }
        let _ = docker(&["network", "rm", &self.prefix]);
    }
}

fn docker(args: &[&str]) -> Result<String, sea_infra::deployment::docker::DockerError> {
    sea_infra::deployment::docker::docker(args)
}

/// A monitoring path of pod `i`, over HTTPS with the deployment's CA from the host (its
/// monitoring port is published on a free loopback port: `127.0.0.1` is a name the pods'
/// certificate holds).
fn monitor(pods: &Pods, i: usize, path: &str) -> String {
    let container = format!("{}-{i}", pods.prefix);
    let Ok(published) = docker(&["port", &container, "8222/tcp"]) else {
        return String::new();
    };
    let Some(addr) = published.lines().find(|l| l.starts_with("127.0.0.1:")) else {
        return String::new();
    };
    let url = format!("https://{}{path}", addr.trim());
    let http =
        sea_infra::probes::monitor::http_client(std::time::Duration::from_secs(2), Some(&pods.ca))
            .expect("a client trusting the pods' CA")
            .build()
            .expect("an HTTPS client");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(async { http.get(&url).send().await?.text().await })
        .unwrap_or_default()
}

fn meta_leader(pods: &Pods, i: usize) -> Option<String> {
    let jsz: serde_json::Value = serde_json::from_str(&monitor(pods, i, "/jsz")).ok()?;
    jsz["meta_cluster"]["leader"]
        .as_str()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let began = std::time::Instant::now();
    while !cond() {
        assert!(began.elapsed().as_secs() < 60, "{what}: not within 60 s");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// No Kubernetes cluster runs here, but the one config every pod shares can: three containers
/// reachable as `nats-N.nats-headless` form one JetStream cluster, and the `preStop` command
/// (lame duck on PID 1) hands the meta leadership over and stops the server.
#[test]
fn the_pods_shared_config_forms_a_cluster_and_lame_duck_hands_over() {
    if !require(
        "the_pods_shared_config_forms_a_cluster",
        Prerequisite::Docker,
    ) {
        return;
    }
    let server = sea_infra::testing::nats_server();
    let image =
        sea_infra::deployment::image::resolve(&server.path, &cache_dir(), &|l| eprintln!("{l}"))
            .expect("a nats-server image");
    // What the projected volume holds under /etc/nats/secrets: the Secret `cargo xtask secrets
    // k8s` writes (development CA, one certificate for every pod, the accounts).
    let scratch = sea_infra::testing::scratch_dir("k8s-secrets");
    let access = Access::generate(Security::Accounts, scratch.path().join("tls"))
        .and_then(|a| a.for_pods(certs::DEFAULT_NAMESPACE))
        .expect("development secrets for the pods");
    let secrets_dir = scratch.path().join("nats-secrets");
    access
        .materialize(
            &sea_infra::render::k8s::topology(),
            &Spec::builtin(),
            &secrets_dir,
        )
        .expect("the Secret's files");
    let secrets = format!("{}:/etc/nats/secrets:ro", secrets_dir.display());
    let pods = Pods {
        prefix: format!("seak8s{}", std::process::id()),
        ca: access.ca(),
    };
    docker(&["network", "create", &pods.prefix]).expect("network");
    let conf = format!(
        "{}:/etc/nats/nats.conf:ro",
        k8s_dir().join("nats.conf").display()
    );
    for i in 0..sea_infra::render::k8s::REPLICAS {
        let (name, alias) = (
            format!("{}-{i}", pods.prefix),
            format!("nats-{i}.nats-headless"),
        );
        let pod_name = format!("POD_NAME=nats-{i}");
        // What the StatefulSet's `$(POD_NAME)` expansion gives each pod.
        let advertise = format!(
            "CLUSTER_ADVERTISE={}",
            sea_infra::render::k8s::cluster_advertise(&format!("nats-{i}"))
        );
        docker(&[
            "run",
            "--detach",
            "--name",
            &name,
            "--network",
            &pods.prefix,
            "--network-alias",
            &alias,
            "--env",
            &pod_name,
            "--env",
            &advertise,
            "--volume",
            &conf,
            "--volume",
            &secrets,
            "--publish",
            "127.0.0.1::8222",
            &image,
            "--config",
            "/etc/nats/nats.conf",
        ])
        .expect("start a pod");
    }
    let logs = || {
        (0..sea_infra::render::k8s::REPLICAS)
            .map(|i| {
                let name = format!("{}-{i}", pods.prefix);
                let out = Command::new("docker")
                    .args(["logs", "--tail", "15", &name])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                    .unwrap_or_default();
                format!("--- {name}\n{out}")
            })
            .collect::<String>()
    };
    let began = std::time::Instant::now();
    while !(0..sea_infra::render::k8s::REPLICAS)
        .all(|i| monitor(&pods, i, "/healthz").contains("\"ok\""))
    {
        assert!(
            began.elapsed().as_secs() < 60,
            "the pods are not healthy within 60 s:\n{}",
            logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    // Each pod advertises its stable DNS name to its peers (what a route's INFO carries, after
    // the TLS handshake), never its IP, which changes on every restart.
    let (cert, key) = access.client_cert(Role::Ops);
    for i in 0..sea_infra::render::k8s::REPLICAS {
        let peer = sea_infra::render::k8s::cluster_advertise(&format!("nats-{i}"));
        let container = format!("{}-{i}", pods.prefix);
        let ip = docker(&[
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &container,
        ])
        .expect("the pod's address");
        let info = independent_check(
            "route_info",
            &json!({
                "ca": access.ca(),
                "cert": cert,
                "key": key,
                "host": ip.trim(),
                "port": CONTAINER_PORTS.route,
            }),
        );
        assert_eq!(
            info["ip"],
            format!("nats-route://{peer}/"),
            "nats-{i} does not advertise {peer}: {info}"
        );
        assert_eq!(info["tls_required"], true, "{info}");
    }
    let leader = meta_leader(&pods, 0).expect("a meta leader");
    let index: usize = leader
        .trim_start_matches("nats-")
        .parse()
        .expect("a pod name");
    let prestop = [
        "exec",
        &format!("{}-{index}", pods.prefix),
        "nats-server",
        "--signal",
        "ldm=1",
    ];
    docker(&prestop).expect("preStop command");
    let other = (index + 1) % sea_infra::render::k8s::REPLICAS;
    wait_for("a new meta leader", || {
        meta_leader(&pods, other).is_some_and(|l| l != leader)
    });
    wait_for("the lame-duck server exits", || {
        docker(&[
            "inspect",
            "--format",
            "{{.State.Running}}",
            &format!("{}-{index}", pods.prefix),
        ])
        .is_ok_and(|s| s.trim() == "false")
    });
}
