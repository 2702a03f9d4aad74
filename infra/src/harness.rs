//! Test harness: real nats-server processes on free ports in a private directory, SIGKILLed and
//! removed on drop (also when the test panics). Used by this crate's tests and by later crates'.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use crate::nats_server::{NatsServer, Resolver};
use crate::process::{state_root, Deployment, UpOptions};
use crate::topology::{Profile, Topology};

/// The nats-server binary, resolved (and installed if needed) once per test process.
pub fn nats_server() -> &'static NatsServer {
    static BIN: OnceLock<NatsServer> = OnceLock::new();
    BIN.get_or_init(|| {
        let resolver = Resolver {
            cache_dir: state_root().join("cache"),
            install: true,
        };
        resolver
            .resolve()
            .unwrap_or_else(|e| panic!("test harness needs nats-server: {e}"))
    })
}

/// Set to `1` (CI does when `docker info` works) to make Docker tests fail rather than skip
/// when no engine answers.
pub const ENV_REQUIRE_DOCKER: &str = "SEA_REQUIRE_DOCKER";

/// Whether a Docker engine answers. Without one a Docker test prints SKIPPED and returns,
/// unless `SEA_REQUIRE_DOCKER=1`, where it fails.
pub fn docker_or_skip(test: &str) -> bool {
    match crate::docker::engine() {
        Ok(()) => true,
        Err(e) => {
            assert!(
                std::env::var(ENV_REQUIRE_DOCKER).as_deref() != Ok("1"),
                "{ENV_REQUIRE_DOCKER}=1 but no Docker engine answers: {e}"
            );
            eprintln!("SKIPPED {test}: no Docker engine ({e}); set {ENV_REQUIRE_DOCKER}=1 to make this fail");
            false
        }
    }
}

/// Set to `1` (CI does, after installing Debian's `prometheus`) to make the tests that need
/// `promtool` fail rather than skip when it is missing.
pub const ENV_REQUIRE_PROMETHEUS: &str = "SEA_REQUIRE_PROMETHEUS";

/// `promtool` on `PATH`. Without it a test prints SKIPPED and returns `None`, unless
/// `SEA_REQUIRE_PROMETHEUS=1`, where it fails.
pub fn promtool_or_skip(test: &str) -> Option<PathBuf> {
    match which::which("promtool") {
        Ok(path) => Some(path),
        Err(e) => {
            assert!(
                std::env::var(ENV_REQUIRE_PROMETHEUS).as_deref() != Ok("1"),
                "{ENV_REQUIRE_PROMETHEUS}=1 but promtool is not on PATH ({e}): apt-get install prometheus"
            );
            eprintln!("SKIPPED {test}: no promtool on PATH (Debian: apt-get install prometheus); set {ENV_REQUIRE_PROMETHEUS}=1 to make this fail");
            None
        }
    }
}

/// A fresh, empty directory under the system temp dir, unique to this process and call, and
/// removed (with everything in it) on drop.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn scratch_dir(label: &str) -> ScratchDir {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("sea-test-{label}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    ScratchDir(dir)
}

/// A deployment of `profile` on free ports that is torn down on drop.
pub struct TestCluster {
    pub deployment: Deployment,
    // Dropped after `Drop::drop` killed the servers.
    _dir: ScratchDir,
}

impl TestCluster {
    /// The profile's topology on free ports, prepared but not started.
    pub fn new(profile: Profile) -> TestCluster {
        let topology = Topology::for_profile(profile).remap_ports(crate::ports::free_port);
        TestCluster::with_topology(profile, topology, nats_server().path.clone())
    }

    /// A given topology (ports already chosen) run by the given binary.
    pub fn with_topology(profile: Profile, topology: Topology, bin: PathBuf) -> TestCluster {
        let dir = scratch_dir(profile.as_str());
        let mut deployment = Deployment::new(topology, dir.path().to_path_buf(), bin);
        deployment.die_with_parent = true;
        TestCluster {
            deployment,
            _dir: dir,
        }
    }

    /// The profile on free host ports run as containers: see [`TestCluster::into_compose`].
    pub fn compose(profile: Profile) -> Result<TestCluster, crate::compose::ComposeError> {
        TestCluster::new(profile).into_compose()
    }

    /// The same cluster run as containers: a private rendering of its compose file, with
    /// container, network and volume names of its own (removed on drop).
    pub fn into_compose(mut self) -> Result<TestCluster, crate::compose::ComposeError> {
        // Unique per process and cluster (the scratch directory's name ends in a counter), and
        // per run: pids repeat across fresh CI machines sharing a daemon.
        let n = self._dir.path().display().to_string();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() % 1_000_000);
        let prefix = format!(
            "seatest{}x{}t{now}",
            std::process::id(),
            n.rsplit('-').next().unwrap_or("0")
        );
        let dir = self._dir.path().join("compose");
        let compose = crate::compose::Compose::private(&self.deployment.topology, &dir, &prefix)?;
        self.deployment.compose = Some(compose);
        Ok(self)
    }

    /// Starts every node and waits for the health gate; panics with the cause otherwise.
    pub async fn start(profile: Profile) -> TestCluster {
        let cluster = TestCluster::new(profile);
        cluster.up().await;
        cluster
    }

    /// `up` with default options and no progress output; panics on failure.
    pub async fn up(&self) -> crate::process::UpReport {
        self.deployment
            .up(&UpOptions::default(), &|_| {}, std::future::pending())
            .await
            .unwrap_or_else(|e| panic!("test cluster failed to come up: {e}"))
    }

    pub fn topology(&self) -> &Topology {
        &self.deployment.topology
    }

    pub fn nats_servers(&self) -> String {
        self.deployment.topology.nats_servers()
    }

    /// Client URL of one node by name.
    pub fn client_url(&self, name: &str) -> String {
        let (_, node) = self.topology().node(name).expect("node exists");
        self.topology().client_url(node)
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for (_, node) in self.deployment.topology.nodes() {
            self.deployment.kill_node(&node.name);
        }
        if let Some(c) = &self.deployment.compose {
            if let Err(e) = c.down(true, std::time::Duration::from_secs(5)) {
                eprintln!("warning: compose project {} not removed: {e}", c.project);
            }
        }
    }
}
