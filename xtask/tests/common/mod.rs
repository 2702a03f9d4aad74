//! Running the real `xtask` binary the way an operator does, with a clean environment: only
//! what finds tools (PATH, HOME, the Rust toolchain, the resolved nats-server, Docker) is
//! passed through, so no stray product variable on the developer's machine changes a test,
//! and the state directory is a private one unless the test gives its own.

#![allow(dead_code)] // each test binary uses a different part

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// What a run printed and how it ended.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    /// stdout then stderr, for assertion messages.
    pub all: String,
    // Removed after the run, with anything the command left in it.
    _state: tempfile::TempDir,
}

impl Run {
    /// stdout parsed as JSON (`null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or(Value::Null)
    }
}

const PASSED_THROUGH: [&str; 9] = [
    "PATH",
    "HOME",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "CARGO_TARGET_DIR",
    "TMPDIR",
    "DOCKER_HOST",
    "NATS_SERVER_BIN",
];

/// `xtask ARGS` with `vars` on top of a clean environment.
pub fn xtask(args: &[&str], vars: &[(&str, &str)]) -> Run {
    let state = sea_infra::testing::scratch_dir("xtask-state");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args).env_clear();
    for var in PASSED_THROUGH {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    cmd.env("SEA_STATE_DIR", state.path());
    if let Some(bin) = built_worker() {
        cmd.env("SEA_MQ_WORKER_BIN", bin);
    }
    cmd.envs(vars.iter().copied());
    let out = cmd.output().expect("run xtask");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    Run {
        code: out.status.code(),
        stdout,
        all,
        _state: state,
    }
}

/// The worker `cargo test --workspace` just built, so the drills do not rebuild it with other
/// features; without it (`cargo test -p xtask`) the command builds it itself.
fn built_worker() -> Option<PathBuf> {
    let path = sea_infra::project_root().join("target/debug/sea-mq-worker");
    path.exists().then_some(path)
}
