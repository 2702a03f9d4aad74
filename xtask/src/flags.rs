//! Every command-line flag of `cargo xtask`, in one place.

use clap::{Args, Parser, Subcommand};
use sea_infra::topology::Profile;

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
    /// Stop the servers this project started.
    Down(Down),
    /// One line per server: URLs, health, meta leader, routes.
    Status(Status),
    /// Exit 0 only when every server passes the health gate.
    Health(Health),
    /// Rewrite the committed rendered configs (infra/nats/) from the topology model.
    Render(Render),
    /// The whole check: nats-server, fmt, clippy and the test suite.
    Test(Test),
}

/// `--profile`, parsed into a [`Profile`] with the list of valid names on error.
fn parse_profile(s: &str) -> Result<Profile, String> {
    s.parse()
        .map_err(|e: sea_infra::topology::UnknownProfile| e.to_string())
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
    /// Topology to start.
    #[arg(long, default_value = "ha", value_parser = parse_profile)]
    pub profile: Profile,
    /// Start only this server (repeatable); the others are left as they are.
    #[arg(long = "node", value_name = "NAME")]
    pub nodes: Vec<String>,
    /// Seconds to wait for the health gate before failing.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct Down {
    /// Profile to stop; default: every profile with recorded state.
    #[arg(long, value_parser = parse_profile)]
    pub profile: Option<Profile>,
    /// Stop only this server (repeatable).
    #[arg(long = "node", value_name = "NAME")]
    pub nodes: Vec<String>,
    /// Also delete data, logs and rendered configs.
    #[arg(long)]
    pub purge: bool,
    /// Seconds a server gets to exit after SIGTERM before SIGKILL.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub grace: u64,
}

#[derive(Debug, Args)]
pub struct Status {
    /// Profile to show; default: the one with recorded state.
    #[arg(long, value_parser = parse_profile)]
    pub profile: Option<Profile>,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Health {
    /// Profile to check; default: the one with recorded state.
    #[arg(long, value_parser = parse_profile)]
    pub profile: Option<Profile>,
    /// Print every check as JSON.
    #[arg(long)]
    pub json: bool,
}

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
