//! The test kit (feature `testing`, enabled only from `[dev-dependencies]`): real nats-server
//! deployments on free ports that panic with the cause instead of returning errors (in
//! containers, with the worker's too), the nats-server and sops binaries resolved once per test
//! process, a worker image per test, scratch directories, and the skip-or-fail rule for tools a
//! machine may lack.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use async_nats::jetstream;

use crate::client::connect::NatsConfig;
use crate::client::{crosscheck, observe};
use crate::deployment::image::worker;
use crate::deployment::nats_server::{NatsServer, Resolver};
use crate::deployment::sops::{self, Sops};
use crate::deployment::{cache_dir, BackendKind, Deployment, Throwaway, UpOptions, UpReport};
use crate::model::{Profile, Role, Security, Topology};
use crate::render::compose_worker::WorkerService;

/// The nats-server binary, resolved (and installed if needed) once per test process.
pub fn nats_server() -> &'static NatsServer {
    static BIN: OnceLock<NatsServer> = OnceLock::new();
    BIN.get_or_init(|| {
        let resolver = Resolver {
            cache_dir: cache_dir(),
            install: true,
        };
        resolver
            .resolve()
            .unwrap_or_else(|e| panic!("test harness needs nats-server: {e}"))
    })
}

/// The sops binary, resolved (and installed if needed, like nats-server) once per test process.
pub fn sops() -> &'static Sops {
    static BIN: OnceLock<Sops> = OnceLock::new();
    BIN.get_or_init(|| {
        sops::resolve(&cache_dir(), true).unwrap_or_else(|e| panic!("test harness needs sops: {e}"))
    })
}

/// Something a test needs that a machine may not have.
#[derive(Clone, Copy, Debug)]
pub enum Prerequisite {
    Docker,
    Postgres,
    Kubectl,
    Prometheus,
    /// Debian's `age` (`age-keygen`), for the secrets file's development key.
    Age,
    /// nats-py (`pip install nats-py`): the independent client secured deployments are
    /// checked with.
    NatsPy,
}

impl Prerequisite {
    /// `SEA_REQUIRE_<NAME>=1` (CI sets it where the tool is installed) turns a skip into a
    /// failure.
    pub fn env_var(self) -> &'static str {
        match self {
            Prerequisite::Docker => "SEA_REQUIRE_DOCKER",
            Prerequisite::Postgres => "SEA_REQUIRE_POSTGRES",
            Prerequisite::Kubectl => "SEA_REQUIRE_KUBECTL",
            Prerequisite::Prometheus => "SEA_REQUIRE_PROMETHEUS",
            Prerequisite::Age => "SEA_REQUIRE_AGE",
            Prerequisite::NatsPy => "SEA_REQUIRE_NATS_PY",
        }
    }

    /// Whether it is there, or why not.
    fn check(self) -> Result<(), String> {
        let tool = |name: &str, hint: &str| {
            which::which(name)
                .map(drop)
                .map_err(|_| format!("`{name}` is not installed ({hint})"))
        };
        match self {
            Prerequisite::Docker => crate::deployment::docker::engine()
                .map_err(|e| format!("no Docker engine answers ({e})")),
            Prerequisite::Postgres => {
                let found = std::fs::read_dir("/usr/lib/postgresql")
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|v| v.path().join("bin/initdb").is_file());
                found.then_some(()).ok_or_else(|| {
                    "PostgreSQL is not installed (apt-get install postgresql)".to_owned()
                })
            }
            Prerequisite::Kubectl => tool("kubectl", "apt-get install kubernetes-client"),
            Prerequisite::Prometheus => tool("promtool", "apt-get install prometheus"),
            Prerequisite::Age => tool("age-keygen", "apt-get install age"),
            Prerequisite::NatsPy => {
                let imported = std::process::Command::new("python3")
                    .args(["-c", "import nats"])
                    .output()
                    .is_ok_and(|o| o.status.success());
                imported.then_some(()).ok_or_else(|| {
                    "nats-py is not installed (python3 -m pip install nats-py)".to_owned()
                })
            }
        }
    }
}

/// Whether `test` can run: true when the prerequisite is there. Without it the test prints
/// `SKIPPED` and should return, unless `SEA_REQUIRE_<NAME>=1`, where this panics instead.
pub fn require(test: &str, what: Prerequisite) -> bool {
    match what.check() {
        Ok(()) => true,
        Err(why) => {
            let var = what.env_var();
            assert!(
                std::env::var(var).as_deref() != Ok("1"),
                "{test}: {var}=1 but {why}"
            );
            eprintln!("SKIPPED {test}: {why}; set {var}=1 to make this fail");
            false
        }
    }
}

/// A fresh, empty directory, removed with everything in it on drop.
pub fn scratch_dir(label: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("sea-test-{label}-"))
        .tempdir()
        .expect("create a scratch directory")
}

/// Every file under `dir`, recursively (what a test greps for secrets).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Runs `command` of the independent checker (`infra/tests/independent/secure_check.py`:
/// nats-py and Python's own TLS, none of this project's code) with `config` on its stdin (it may
/// hold a password, which must never be an argument); its JSON answer. Panics when it fails.
pub fn independent_check(command: &str, config: &serde_json::Value) -> serde_json::Value {
    use std::io::Write as _;
    let script = crate::project_root().join("infra/tests/independent/secure_check.py");
    let mut child = std::process::Command::new("python3")
        .arg(&script)
        .arg(command)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(config.to_string().as_bytes())
        .expect("write the checker's input");
    let out = child.wait_with_output().expect("wait for the checker");
    assert!(
        out.status.success(),
        "secure_check.py {command} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "secure_check.py {command} printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A deployment of a profile on free ports, torn down on drop; its servers also die with the
/// test process however it ends.
pub struct TestCluster {
    inner: Throwaway,
}

impl TestCluster {
    /// The profile's topology on free ports as processes, prepared but not started.
    pub fn new(profile: Profile) -> TestCluster {
        TestCluster::of(Throwaway::new(profile, BackendKind::Process))
    }

    /// A given topology (ports already chosen) as processes.
    pub fn with_topology(topology: Topology) -> TestCluster {
        TestCluster::of(Throwaway::with_topology(topology, BackendKind::Process))
    }

    /// The profile on free host ports as containers of a private compose project (its
    /// containers, network and volumes removed on drop).
    pub fn compose(profile: Profile) -> TestCluster {
        TestCluster::of(Throwaway::new(profile, BackendKind::Compose))
    }

    /// The profile on free ports as processes, secured (`Accounts` or `Token`) with fresh
    /// development secrets and certificates of its own.
    pub fn secured(profile: Profile, security: Security) -> TestCluster {
        TestCluster::of(
            Throwaway::new(profile, BackendKind::Process).and_then(|t| t.secured(security)),
        )
    }

    /// How a client of `role` connects (no auth on a plaintext cluster).
    pub fn nats(&self, role: Role) -> NatsConfig {
        self.deployment().nats(role)
    }

    /// A client of `role` connected to every server; panics when it cannot.
    pub async fn connect_as(&self, role: Role) -> async_nats::Client {
        self.nats(role)
            .connect(&self.server_urls())
            .await
            .unwrap_or_else(|e| panic!("connect as {role}: {e}"))
    }

    /// What the independent checker needs to act as `role` on this secured cluster: the CA, the
    /// role's certificate, user, password (for the checker's stdin only) and inbox prefix.
    pub fn checker_config(&self, role: Role) -> serde_json::Value {
        let access = self.deployment().access().expect("a secured cluster");
        let (cert, key) = access.client_cert(role);
        serde_json::json!({
            "ca": access.ca(),
            "cert": cert,
            "key": key,
            "user": role.as_str(),
            "password": access.secrets().passwords.get(&role).map(|p| p.expose().to_owned()),
            "token": access.secrets().token.as_ref().map(|t| t.expose().to_owned()),
            "prefix": role.inbox_prefix(),
        })
    }

    /// The serial (lowercase hex, no leading zeros) of the certificate a new connection to
    /// `server`'s client port sees, read by the independent checker.
    pub fn served_serial(&self, server: &str) -> String {
        let mut config = self.checker_config(Role::Ops);
        let (_, s) = self.topology().server(server).expect("server exists");
        config["host"] = serde_json::json!(self.topology().settings.host);
        config["port"] = serde_json::json!(s.client_port);
        let answer = independent_check("serial", &config);
        answer["serial"].as_str().expect("a serial").to_owned()
    }

    fn of(made: Result<Throwaway, crate::deployment::ThrowawayError>) -> TestCluster {
        let mut inner = made.unwrap_or_else(|e| panic!("test cluster: {e}"));
        inner.deployment = inner.deployment.clone().die_with_parent();
        TestCluster { inner }
    }

    /// Starts every server and waits for the health gate; panics with the cause otherwise.
    pub async fn start(profile: Profile) -> TestCluster {
        let cluster = TestCluster::new(profile);
        cluster.up().await;
        cluster
    }

    /// `up` with default options and no progress output; panics on failure.
    pub async fn up(&self) -> UpReport {
        self.deployment()
            .up(
                &nats_server().path,
                &UpOptions::default(),
                &|_| {},
                std::future::pending(),
            )
            .await
            .unwrap_or_else(|e| panic!("test cluster failed to come up: {e}"))
    }

    pub fn deployment(&self) -> &Deployment {
        &self.inner.deployment
    }

    /// The directory everything of this cluster lives under.
    pub fn dir(&self) -> PathBuf {
        self.inner.path().to_path_buf()
    }

    pub fn topology(&self) -> &Topology {
        &self.inner.deployment.topology
    }

    pub fn nats_servers(&self) -> String {
        self.topology().nats_servers()
    }

    /// The client URLs of every server, as a list.
    pub fn server_urls(&self) -> Vec<String> {
        let t = self.topology();
        t.servers().map(|(_, s)| t.client_url(s)).collect()
    }

    /// Client URL of one server by name.
    pub fn client_url(&self, name: &str) -> String {
        let (_, server) = self.topology().server(name).expect("server exists");
        self.topology().client_url(server)
    }

    /// SIGKILLs one server; panics when it cannot.
    pub fn kill(&self, name: &str) {
        self.deployment()
            .kill_server(name)
            .unwrap_or_else(|e| panic!("kill {name}: {e}"));
    }

    /// SIGKILLs the leader of `stream` and waits until another server leads it: the killed
    /// server and how long the election took. Panics when no new leader comes within 30 s.
    pub async fn kill_stream_leader(
        &self,
        js: &jetstream::Context,
        stream: &str,
    ) -> (String, Duration) {
        let leader = observe::stream_leader(js, stream)
            .await
            .unwrap_or_else(|| panic!("{stream} has no leader"));
        self.kill(&leader);
        let elected = observe::time_until(Duration::from_secs(30), || async {
            observe::stream_leader(js, stream)
                .await
                .is_some_and(|l| l != leader)
        })
        .await;
        let elected = elected
            .unwrap_or_else(|| panic!("no new {stream} leader within 30 s of killing {leader}"));
        (leader, elected)
    }

    /// Starts one server again (not waiting for readiness); panics when it cannot.
    pub fn start_server(&self, name: &str) {
        self.deployment()
            .start_server(&nats_server().path, name)
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
    }

    /// The worker services of a compose cluster ([`TestCluster::compose`]): each on a free
    /// host port, its database in a host directory ([`WorkerService::host_database`]).
    pub fn workers(&self) -> &[WorkerService] {
        &self.compose_project().workers
    }

    /// Starts every worker container of a compose cluster with `image`; panics when it cannot.
    pub fn start_workers(&self, image: &TestImage) {
        self.compose_project()
            .up_workers(&image.tag)
            .unwrap_or_else(|e| panic!("start the workers: {e}"));
    }

    /// `up -d` of the whole compose file with the worker profile (servers, the one-shot
    /// `sea-provision`, the workers on `image`), as an operator runs it: no health gate and no
    /// provisioning of the test's own. Panics with the provisioner's log when Compose fails.
    pub fn up_with_workers(&self, image: &TestImage) {
        let nats_image =
            crate::deployment::image::resolve(&nats_server().path, &cache_dir(), &|_| {})
                .unwrap_or_else(|e| panic!("the server image: {e}"));
        self.compose_project()
            .up_all(&nats_image, &image.tag)
            .unwrap_or_else(|e| {
                panic!(
                    "docker-compose up -d with the worker profile: {e}\nsea-provision's log:\n{}",
                    self.container_log(crate::render::compose_worker::PROVISION_SERVICE)
                )
            });
    }

    /// `up -d` of the whole compose file with the worker and `observe` profiles: the servers,
    /// `sea-provision`, the workers on `worker`, the exporter on `exporter` and Prometheus on
    /// `prometheus`. Panics with the observers' logs when Compose fails.
    pub fn up_observed(&self, worker: &TestImage, exporter: &TestImage, prometheus: &TestImage) {
        let nats = crate::deployment::image::resolve(&nats_server().path, &cache_dir(), &|_| {})
            .unwrap_or_else(|e| panic!("the server image: {e}"));
        let images = crate::deployment::ComposeImages {
            nats,
            worker: worker.tag.clone(),
            exporter: exporter.tag.clone(),
            prometheus: prometheus.tag.clone(),
        };
        self.compose_project()
            .up_observed(&images)
            .unwrap_or_else(|e| {
                panic!(
                    "docker-compose up -d with the worker and observe profiles: {e}\n{}",
                    self.observe_logs()
                )
            });
    }

    /// The exporter's and Prometheus's URLs on the host (compose profile `observe`).
    pub fn observe_urls(&self) -> (String, String) {
        self.compose_project().observe_urls()
    }

    /// The last lines the exporter and Prometheus logged.
    pub fn observe_logs(&self) -> String {
        use crate::render::compose_observe::{EXPORTER_SERVICE, PROMETHEUS_SERVICE};
        [EXPORTER_SERVICE, PROMETHEUS_SERVICE]
            .iter()
            .map(|s| format!("{s}:\n{}", self.container_log(s)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The last lines a container of this cluster logged (a server's or a worker's service).
    pub fn container_log(&self, service: &str) -> String {
        self.compose_project().log_tail(service, 40)
    }

    fn compose_project(&self) -> &crate::deployment::Compose {
        self.deployment()
            .compose()
            .expect("a compose cluster (TestCluster::compose)")
    }
}

/// Publishes `n` events with ids `prefix-i` on `subject` again and again until every one is
/// acked (the ids make the repeats no-ops); panics after 30 s.
pub async fn publish_until_acked(js: &jetstream::Context, subject: &str, prefix: &str, n: usize) {
    let acked = observe::time_until(Duration::from_secs(30), || async {
        crosscheck::publish_acked(js, subject, prefix, n)
            .await
            .is_ok()
    })
    .await;
    assert!(acked.is_some(), "{prefix}: events not acked within 30 s");
}

/// An image built for one test under a tag of its own, removed on drop.
pub struct TestImage {
    pub tag: String,
}

impl TestImage {
    /// The worker image ([`crate::deployment::image::worker`]) of the binary `bin`.
    pub fn worker(bin: &Path) -> TestImage {
        TestImage::build(&worker::WORKER, "sea-mq-worker", bin)
    }

    /// The exporter image of the binary `bin`.
    pub fn exporter(bin: &Path) -> TestImage {
        TestImage::build(&worker::EXPORTER, "sea-nats-exporter", bin)
    }

    /// The Prometheus image of the binary `bin` (Debian's `prometheus`).
    pub fn prometheus(bin: &Path) -> TestImage {
        TestImage::build(&worker::PROMETHEUS, "sea-prometheus", bin)
    }

    /// `packed` from `bin`, tagged `<name>:test-<pid>-<millis>`; panics when it fails.
    fn build(packed: &worker::Packed, name: &str, bin: &Path) -> TestImage {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let tag = format!("{name}:test-{}-{millis}", std::process::id());
        worker::build(packed, bin, &cache_dir(), &tag, &|_| {})
            .unwrap_or_else(|e| panic!("build the image {tag}: {e}"));
        TestImage { tag }
    }
}

impl Drop for TestImage {
    fn drop(&mut self) {
        if let Err(e) = crate::deployment::docker::docker(&["rmi", "--force", &self.tag]) {
            eprintln!("warning: image {} not removed: {e}", self.tag);
        }
    }
}

/// Asserts that `text` mentions every one of `needles`, listing those it misses.
pub fn assert_mentions(text: &str, needles: &[&str]) {
    let missing: Vec<&&str> = needles.iter().filter(|n| !text.contains(**n)).collect();
    assert!(missing.is_empty(), "missing {missing:?} in:\n{text}");
}

/// Every `.rs` file under `dir` (skipping `target` and hidden directories), sorted: what the
/// checks of the code's own shape read.
pub fn rust_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() && name != "target" && !name.to_string_lossy().starts_with('.') {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
