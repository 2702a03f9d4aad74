//! Every command-line flag of `cargo xtask`, in one place.

use clap::{Args, Parser, Subcommand};
use sea_infra::deployment::BackendKind;
use sea_infra::model::topology::Profile;

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    about = "Bring-up, health gates and checks of SEA messaging",
    version
)]
pub struct Xtask {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what this machine has: nats-server, Docker, Compose, free fixed ports.
    Doctor(Doctor),
    /// Start a profile's servers and wait for the health gate.
    Up(Up),
    /// `up --profile mesh`: two gateway-joined clusters, sea-a and sea-b.
    MeshUp(MeshUp),
    /// Stop the servers this project started.
    Down(Down),
    /// One line per server: URLs, health, meta leader, routes.
    Status(Status),
    /// Exit 0 only when every server passes the health gate.
    Health(Health),
    /// Create or update the spec's streams and consumers (env-only configuration).
    Provision(Provision),
    /// Measure raw JetStream rates and the worker's, side by side on one private cluster.
    Bench(Bench),
    /// Inject one fault under load and judge the outcome: figures and PASS/FAIL per criterion.
    Drill(Drill),
    /// A seeded, time-bounded random schedule of faults under load, audited per fault and at the end.
    Chaos(Chaos),
    /// The whole verification sequence, from prerequisites to teardown, PASS/FAIL per step.
    Verify(Verify),
    /// Rewrite the committed rendered files (configs, compose files, Kubernetes manifests).
    Render(Render),
    /// Build the local nats-server image (and with --worker, --exporter, --prometheus those
    /// images) FROM scratch, for machines without a registry.
    Image(Image),
    /// Ensure the development TLS certificates: a CA, one per server name, one per client role.
    Certs(Certs),
    /// The encrypted secrets file: create development secrets, or show what it holds.
    #[command(subcommand)]
    Secrets(Secrets),
    /// Rewrite a secured profile's secrets directory (after `certs --rotate`) and reload every
    /// running server; open connections stay.
    Reload(Reload),
    /// The whole check: nats-server, fmt, clippy and the test suite.
    Test(Test),
}

/// `--profile`, parsed into a [`Profile`] with the list of valid names on error.
fn parse_profile(s: &str) -> Result<Profile, String> {
    s.parse()
        .map_err(|e: sea_infra::model::topology::UnknownProfile| e.to_string())
}

/// `--backend`, parsed into a [`BackendKind`] with the valid names on error.
fn parse_backend(s: &str) -> Result<BackendKind, String> {
    s.parse()
        .map_err(|e: sea_infra::deployment::UnknownBackend| e.to_string())
}

/// `--sync-interval`, parsed into the value rendered into every server's config.
fn parse_sync_interval(s: &str) -> Result<String, String> {
    sea_infra::model::topology::parse_sync_interval(s)
}

/// `--duration`: `10m`, `90s`.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    sea_infra::env::parse_duration(s)
}

/// `--from` and `--to`: a nats-server release.
fn parse_version(s: &str) -> Result<sea_infra::model::Version, String> {
    s.parse()
        .map_err(|e: sea_infra::model::version::BadVersion| e.to_string())
}

/// How often the servers a command starts fsync.
#[derive(Debug, Args)]
pub struct Durability {
    /// JetStream `sync_interval` of the servers this command starts: `default` (the server's own,
    /// 2m), `always` (fsync before every acknowledgement: the durable variant) or a duration.
    /// Default: what the running cluster was started with, else the server's own.
    #[arg(long, value_name = "default|always|DURATION", value_parser = parse_sync_interval)]
    pub sync_interval: Option<String>,
}

/// The default profile of every command that takes `--profile` (the flag wins): `ha`, or the
/// compose profile's name `nats-ha`.
pub const ENV_SEA_NATS_PROFILE: &str = "SEA_NATS_PROFILE";

/// `SEA_NATS_PROFILE`, when set; a value that is not a profile is a configuration error (64).
fn env_profile() -> Result<Option<Profile>, sea_infra::env::ConfigErrors> {
    let mut env = sea_infra::env::EnvReader::from_process();
    let profile = env.parse(ENV_SEA_NATS_PROFILE, parse_profile);
    env.finish().map(|()| profile)
}

/// The deployment a command that looks at or stops servers means: by default the profile with
/// recorded state, run by the backend it was started with.
#[derive(Debug, Args)]
pub struct Existing {
    /// process or compose; default: the backend the profile was started with.
    #[arg(long, value_parser = parse_backend)]
    pub backend: Option<BackendKind>,
    /// Profile; default: `SEA_NATS_PROFILE`, else the one with recorded state.
    #[arg(long = "profile", value_parser = parse_profile)]
    pub profile_flag: Option<Profile>,
    /// Reach it secured (TLS with the deployment's CA, the secrets file's credentials); a
    /// profile started with `--secure` is reached so without it. Starts a secured one when the
    /// command starts servers.
    #[arg(long)]
    pub secure: bool,
}

impl Existing {
    /// `--profile`, else `SEA_NATS_PROFILE`; `None` leaves the choice to the command.
    pub fn profile(&self) -> Result<Option<Profile>, sea_infra::env::ConfigErrors> {
        match self.profile_flag {
            Some(p) => Ok(Some(p)),
            None => env_profile(),
        }
    }
}

/// The deployment a command starts (when it is not running yet).
#[derive(Debug, Args)]
pub struct Fresh {
    /// What runs the servers: process (default) or compose (containers from infra/docker/).
    #[arg(long, value_parser = parse_backend, default_value = "process")]
    pub backend: BackendKind,
    /// Topology to start; default: `SEA_NATS_PROFILE`, else ha.
    #[arg(long = "profile", value_parser = parse_profile)]
    pub profile_flag: Option<Profile>,
    /// Secured: TLS on every listener and HTTPS monitoring, accounts with least-privilege users
    /// (or the token) from the secrets file; development secrets and certificates are created
    /// when there are none yet.
    #[arg(long)]
    pub secure: bool,
}

impl Fresh {
    /// `--profile`, else `SEA_NATS_PROFILE`, else `ha`.
    pub fn profile(&self) -> Result<Profile, sea_infra::env::ConfigErrors> {
        self.profile_flag.map_or_else(env_profile_or_ha, Ok)
    }
}

/// `SEA_NATS_PROFILE`, else `ha`.
pub fn env_profile_or_ha() -> Result<Profile, sea_infra::env::ConfigErrors> {
    Ok(env_profile()?.unwrap_or(Profile::Ha))
}

#[derive(Debug, Args)]
pub struct Doctor {
    /// Install what is missing (the pinned nats-server into the project cache).
    #[arg(long)]
    pub install: bool,
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Up {
    #[command(flatten)]
    pub deployment: Fresh,
    /// Start only this server (repeatable); the others are left as they are.
    #[arg(long = "server", value_name = "NAME")]
    pub servers: Vec<String>,
    /// Seconds to wait for the health gate before failing.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
    /// Provision streams and consumers once the gate passes.
    #[arg(long)]
    pub provision: bool,
    #[command(flatten)]
    pub durability: Durability,
    /// Also start sea-nats-exporter and a Prometheus (Debian's `prometheus`) with the alert
    /// rules beside the profile (process backend); `down` stops them.
    #[arg(long)]
    pub observe: bool,
    /// A worker's metrics address (`host:port`) for that Prometheus to scrape (repeatable).
    #[arg(long = "scrape-worker", value_name = "HOST:PORT", requires = "observe")]
    pub scrape_workers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct MeshUp {
    /// Seconds to wait for the health gate before failing.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
    /// Provision streams (SEA_EVENTS in sea-a, its mirror in sea-b) once the gate passes.
    #[arg(long)]
    pub provision: bool,
    /// Secured, as `up --secure`.
    #[arg(long)]
    pub secure: bool,
}

#[derive(Debug, Args)]
pub struct Down {
    // Default: every profile with recorded state.
    #[command(flatten)]
    pub deployment: Existing,
    /// Stop only this server (repeatable).
    #[arg(long = "server", value_name = "NAME")]
    pub servers: Vec<String>,
    /// Also delete data, logs and rendered configs.
    #[arg(long)]
    pub purge: bool,
    /// Seconds a server gets to exit after SIGTERM before SIGKILL.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub grace: u64,
}

#[derive(Debug, Args)]
pub struct Status {
    #[command(flatten)]
    pub deployment: Existing,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Health {
    #[command(flatten)]
    pub deployment: Existing,
    /// Print every check as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Provision {
    // The profile whose servers to use when NATS_SERVERS and NATS_URL are unset.
    #[command(flatten)]
    pub deployment: Existing,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Change nothing; exit 2 when the live configuration drifted from the spec.
    #[arg(long)]
    pub check: bool,
    /// Print the plan (and what was applied) as JSON.
    #[arg(long)]
    pub json: bool,
    /// Allow deleting and recreating this stream or consumer (`STREAM/DURABLE`) for a change the
    /// server cannot apply in place. Its messages are lost. Repeatable.
    #[arg(long, value_name = "NAME")]
    pub recreate: Vec<String>,
    /// Allow an update of this stream that discards stored messages (a smaller max_bytes or
    /// max_age) or stops storing some of its subjects; the plan says how much. Repeatable.
    #[arg(long, value_name = "STREAM")]
    pub allow_loss: Vec<String>,
    /// Seconds to wait for replicas to become current after a change.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub replica_wait: u64,
}

#[derive(Debug, Args)]
pub struct Bench {
    /// Topology of the private cluster the benchmark starts on free ports; default:
    /// `SEA_NATS_PROFILE`, else ha.
    #[arg(long = "profile", value_parser = parse_profile)]
    pub profile_flag: Option<Profile>,
    /// Events per measurement (long enough that start-up effects fade: runs of 20,000 moved
    /// the ratios by +-0.3).
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
    /// The database of the worker measurements (inbox with 1, 2, 4 workers; the outbox relay):
    /// sqlite (a file per measurement), postgres (a private PostgreSQL server started for the
    /// run, with fsync on; inbox with 1 and 4 workers), or both, side by side in one run.
    #[arg(long, value_enum, default_value_t = crate::bench::BenchDatabase::Sqlite)]
    pub database: crate::bench::BenchDatabase,
    /// Also measure the worker's knobs, each against the default's measurement of the same run
    /// (SQLite): WORKER_BATCH_SIZE 32 and 512, WORKER_SQLITE_SYNCHRONOUS=NORMAL (inbox and
    /// relay), max_ack_pending 4096 (4 workers).
    #[arg(long)]
    pub knobs: bool,
    /// Also measure the TLS cost: the same raw publish and consume on a secured cluster (TLS,
    /// accounts), side by side with plaintext.
    #[arg(long)]
    pub secure: bool,
    /// Also measure the worker built at another git revision (a commit, branch or tag) side by
    /// side with this tree's build, on the same cluster: the 1-worker inbox and the relay on the
    /// first database of --database, each build twice (A B B A). REV's build stays in
    /// target/bench-against.
    #[arg(long, value_name = "REV")]
    pub against: Option<String>,
    #[command(flatten)]
    pub exporter: BenchExporter,
}

/// `bench --exporter`: the exporter's cost per scrape instead of the message rates.
#[derive(Debug, Args)]
pub struct BenchExporter {
    /// Measure sea-nats-exporter instead: scrape duration, CPU per scrape and memory on a
    /// private 3-server cluster holding --streams streams and their consumers.
    #[arg(long = "exporter")]
    pub enabled: bool,
    /// `--exporter`: streams to create.
    #[arg(long, default_value_t = 300)]
    pub streams: usize,
    /// `--exporter`: durable consumers per stream.
    #[arg(long, default_value_t = 3)]
    pub consumers_per_stream: usize,
    /// `--exporter`: replicas of each stream (and its consumers).
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
    /// `--exporter`: scrapes measured (after one warm-up scrape).
    #[arg(long, default_value_t = 30)]
    pub scrapes: usize,
    /// Set from `--json`.
    #[arg(skip)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Drill {
    /// Which fault to inject.
    #[arg(value_enum)]
    pub name: crate::drill::DrillName,
    // Default: the running profile the drill can use (and its backend), else the drill's own
    // profile, started for the drill and stopped again afterwards.
    #[command(flatten)]
    pub deployment: Existing,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
    /// Use a throw-away cluster on free ports instead of the profile's own.
    #[arg(long)]
    pub private: bool,
    #[command(flatten)]
    pub durability: Durability,
    /// `upgrade`: the release the cluster runs before (a pinned one, 2.10.25 through 2.15.1).
    #[arg(long, value_name = "VERSION", value_parser = parse_version)]
    pub from: Option<sea_infra::model::Version>,
    /// `upgrade`: the release every server runs after.
    #[arg(long, value_name = "VERSION", value_parser = parse_version)]
    pub to: Option<sea_infra::model::Version>,
}

#[derive(Debug, Args)]
pub struct Chaos {
    /// How long faults are injected (`10m`, `90s`); the final audit comes after.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub duration: std::time::Duration,
    /// Seed of the schedule: the same seed gives the same schedule. Default: a fresh one, printed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// The fault kinds to draw from, comma-separated; default: every kind.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "KIND,...")]
    pub faults: Vec<crate::chaos::schedule::FaultKind>,
    /// The most faults in place at once: 2 lets the schedule combine a server fault with a
    /// worker or relay fault, 1 never.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub max_at_once: u8,
    // Default: the running `ha` (with its backend), else `ha` on processes, started and stopped.
    #[command(flatten)]
    pub deployment: Existing,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Use a throw-away cluster on free ports instead of the profile's own.
    #[arg(long)]
    pub private: bool,
    #[command(flatten)]
    pub durability: Durability,
}

#[derive(Debug, Args)]
pub struct Verify {
    #[command(flatten)]
    pub deployment: Fresh,
    /// Leave the cluster running at the end instead of tearing it down.
    #[arg(long)]
    pub keep: bool,
    /// Print the steps and their figures as JSON.
    #[arg(long)]
    pub json: bool,
    /// Use a throw-away cluster on free ports instead of the profile's own.
    #[arg(long)]
    pub private: bool,
    #[command(flatten)]
    pub durability: Durability,
}

#[derive(Debug, Args)]
pub struct Image {
    /// Also build the worker image `sea-mq-worker:dev` FROM scratch from a release build of
    /// sea-mq-worker: what the compose files' `worker` profile runs.
    #[arg(long)]
    pub worker: bool,
    /// Also build the exporter image `sea-nats-exporter:dev` FROM scratch from a release build
    /// of sea-nats-exporter: the Kubernetes manifests' sidecar and the compose files' `observe`
    /// profile.
    #[arg(long)]
    pub exporter: bool,
    /// Also build the Prometheus image `sea-prometheus:dev` FROM scratch from the `prometheus`
    /// on PATH (Debian's package): what the compose files' `observe` profile runs.
    #[arg(long)]
    pub prometheus: bool,
}

#[derive(Debug, Args)]
pub struct Certs {
    /// Reissue every server and client certificate (new keys and serials, same CA).
    #[arg(long)]
    pub rotate: bool,
    /// Print the certificates as JSON.
    #[arg(long)]
    pub json: bool,
    /// Kubernetes namespace the pods' and Service's DNS names are qualified with.
    #[arg(long, value_name = "NS", default_value = sea_infra::deployment::certs::DEFAULT_NAMESPACE, value_parser = sea_infra::deployment::certs::parse_namespace)]
    pub namespace: String,
}

#[derive(Debug, Subcommand)]
pub enum Secrets {
    /// Create a development age key (when missing) and development secrets encrypted for it.
    Init(SecretsInit),
    /// Print the keys (never the values) and recipients of the secrets file, and whether it
    /// decrypts.
    Show(SecretsShow),
    /// Write the two Kubernetes Secrets' files (the servers' and the worker's) into a private
    /// directory, and print the `kubectl` commands that create them; never a value.
    K8s(SecretsK8s),
}

#[derive(Debug, Args)]
pub struct Reload {
    // Default: the profile with recorded state.
    #[command(flatten)]
    pub deployment: Existing,
}

#[derive(Debug, Args)]
pub struct SecretsK8s {
    /// Directory to write `nats-secrets/` and `sea-mq-worker-nats/` into (created 0700).
    #[arg(long, value_name = "DIR")]
    pub out: std::path::PathBuf,
    /// The namespace the cell runs in: the server certificate holds its Service names there.
    #[arg(long, default_value = sea_infra::deployment::certs::DEFAULT_NAMESPACE, value_parser = sea_infra::deployment::certs::parse_namespace)]
    pub namespace: String,
}

#[derive(Debug, Args)]
pub struct SecretsInit {
    /// Replace an existing secrets file with new development secrets (the age key is kept).
    #[arg(long)]
    pub force: bool,
    /// Token mode: one shared NATS_AUTH_TOKEN instead of a password per role (no permissions;
    /// not for the `leaf` profile).
    #[arg(long)]
    pub token: bool,
}

#[derive(Debug, Args)]
pub struct SecretsShow {}

#[derive(Debug, Args)]
pub struct Render {
    /// Only check that the committed files are up to date (exit 1 if stale).
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct Test {
    /// Arguments passed to `cargo test` after `--` (e.g. a test name filter).
    #[arg(last = true)]
    pub cargo_test_args: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn unknown_profile_lists_the_valid_ones() {
        let err = Xtask::try_parse_from(["cargo xtask", "up", "--profile", "triple"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown profile `triple`: use one of single, ha, mesh, leaf"),
            "{err}"
        );
    }

    #[test]
    fn docs_list_every_env_var_and_flag() {
        let root = sea_infra::project_root();
        let docs = std::fs::read_to_string(root.join("docs/configuration.md")).unwrap();
        let mut missing = Vec::new();
        for var in env_vars_in_code(&root) {
            if !docs.contains(&format!("| `{var}` |")) {
                missing.push(var);
            }
        }
        for sub in Xtask::command().get_subcommands() {
            let section = format!("### `cargo xtask {}`", sub.get_name());
            let Some(start) = docs.find(&section) else {
                missing.push(section);
                continue;
            };
            let body = &docs[start + section.len()..];
            let body = &body[..body.find("\n### ").unwrap_or(body.len())];
            // A command with subcommands (`secrets init`) documents their flags in its section.
            let args = sub
                .get_arguments()
                .chain(sub.get_subcommands().flat_map(|s| s.get_arguments()));
            for arg in args.filter_map(|a| a.get_long()) {
                if !body.contains(&format!("`--{arg}")) {
                    missing.push(format!("{section} --{arg}"));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "docs/configuration.md does not document: {missing:?}"
        );
    }

    /// Names of every `pub const ENV_*` string in the workspace's Rust sources.
    fn env_vars_in_code(root: &std::path::Path) -> Vec<String> {
        let mut out = Vec::new();
        for path in sea_infra::testing::rust_files(root) {
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text
                .lines()
                .filter(|l| l.contains("const ENV_") && l.contains(": &str = \""))
            {
                out.extend(line.split('"').nth(1).map(str::to_owned));
            }
        }
        out.sort();
        out.dedup();
        assert!(
            !out.is_empty(),
            "found no ENV_ constants: is the scan broken?"
        );
        out
    }
}
