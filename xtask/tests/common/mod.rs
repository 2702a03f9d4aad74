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
    // Removed after the run, with anything the command left in it (none when the caller owns it).
    _state: Option<tempfile::TempDir>,
}

impl Run {
    /// stdout parsed as JSON (`null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or(Value::Null)
    }
}

const PASSED_THROUGH: [&str; 8] = [
    "PATH",
    "HOME",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "CARGO_TARGET_DIR",
    "TMPDIR",
    "DOCKER_HOST",
];

/// A clean environment for `xtask`: only what finds tools, a private state directory, the
/// worker the suite built.
fn command(state: &std::path::Path, args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args).env_clear();
    for var in PASSED_THROUGH {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    cmd.env("SEA_STATE_DIR", state);
    // The private state directory has no cache: point at the binary this test process resolved.
    cmd.env("NATS_SERVER_BIN", &sea_infra::testing::nats_server().path);
    if let Some(bin) = built_worker() {
        cmd.env("SEA_MQ_WORKER_BIN", bin);
    }
    cmd.envs(vars.iter().copied());
    cmd
}

/// `xtask ARGS` with `vars` on top of a clean environment and a private state directory.
pub fn xtask(args: &[&str], vars: &[(&str, &str)]) -> Run {
    xtask_in(sea_infra::testing::scratch_dir("xtask-state"), args, vars)
}

/// [`xtask`] with a given state directory (removed after the run).
pub fn xtask_in(state: tempfile::TempDir, args: &[&str], vars: &[(&str, &str)]) -> Run {
    let mut run = xtask_at(state.path(), args, vars);
    run._state = Some(state);
    run
}

/// [`xtask`] with a state directory the caller keeps (several runs on one state).
pub fn xtask_at(state: &std::path::Path, args: &[&str], vars: &[(&str, &str)]) -> Run {
    let out = command(state, args, vars).output().expect("run xtask");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    Run {
        code: out.status.code(),
        stdout,
        all,
        _state: None,
    }
}

/// The worker `cargo test --workspace` just built, so the drills do not rebuild it with other
/// features; without it (`cargo test -p xtask`) the command builds it itself.
fn built_worker() -> Option<PathBuf> {
    let path = sea_infra::project_root().join("target/debug/sea-mq-worker");
    path.exists().then_some(path)
}

/// A running `xtask` whose stderr is read line by line, to act at a given moment of its run.
pub struct Running {
    pub child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every stderr line read so far.
    pub seen: Vec<String>,
    _state: tempfile::TempDir,
}

/// Starts `xtask ARGS` with `vars` (as [`xtask`]), stdout piped.
pub fn spawn(args: &[&str], vars: &[(&str, &str)]) -> Running {
    let state = sea_infra::testing::scratch_dir("xtask-state");
    let mut child = command(state.path(), args, vars)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start xtask");
    let stderr = child.stderr.take().expect("piped");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Running {
        child,
        lines,
        seen: Vec::new(),
        _state: state,
    }
}

impl Running {
    /// Reads stderr until a line contains `needle`; panics with what it saw after `within`.
    pub fn wait_for(&mut self, needle: &str, within: std::time::Duration) {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    self.seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!(
                    "no line with `{needle}` within {within:?}:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Sends `signal` and waits (bounded) for the exit: its code and stdout.
    pub fn signal_and_wait(
        &mut self,
        signal: nix::sys::signal::Signal,
        within: std::time::Duration,
    ) -> (Option<i32>, String) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal xtask");
        let deadline = std::time::Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "xtask did not exit within {within:?} of {signal}:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        while let Ok(line) = self
            .lines
            .recv_timeout(std::time::Duration::from_millis(200))
        {
            self.seen.push(line);
        }
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            use std::io::Read;
            let _ = out.read_to_string(&mut stdout);
        }
        (status.code(), stdout)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Live processes whose command line or environment mentions `path` (what a run left behind).
pub fn processes_mentioning(path: &std::path::Path) -> Vec<String> {
    let needle = path.as_os_str().as_encoded_bytes();
    let mentions = |file: std::path::PathBuf| {
        std::fs::read(file).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
    };
    sea_infra::deployment::procfs::processes()
        .filter(|p| p.pid != std::process::id() as i32 && p.is_alive())
        .filter(|p| mentions(p.file("cmdline")) || mentions(p.file("environ")))
        .map(|p| {
            let args: Vec<String> = p
                .args()
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            format!("{}: {}", p.pid, args.join(" "))
        })
        .collect()
}
