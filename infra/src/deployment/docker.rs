//! Running the `docker` CLI and the Compose tool, bounded in time, with errors that quote what
//! Docker said.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
#[error("`{command}` failed: {reason}")]
pub struct DockerError {
    pub command: String,
    pub reason: String,
}

/// How long one Docker command may take before it is killed (a build or pull is given more).
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `program args…` (in `dir` when given), returning its stdout, or an error with its
/// stderr when it fails or outlives `timeout`.
pub(crate) fn run(
    program: &[String],
    args: &[&str],
    dir: Option<&Path>,
    envs: &[(String, String)],
    timeout: Duration,
) -> Result<String, DockerError> {
    run_output(program, args, dir, envs, timeout).map(|(stdout, _)| stdout)
}

/// [`run`], returning stdout and stderr.
pub(crate) fn run_output(
    program: &[String],
    args: &[&str],
    dir: Option<&Path>,
    envs: &[(String, String)],
    timeout: Duration,
) -> Result<(String, String), DockerError> {
    let command = program
        .iter()
        .map(String::as_str)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let fail = |reason: String| DockerError {
        command: command.clone(),
        reason,
    };
    let mut cmd = Command::new(&program[0]);
    cmd.args(&program[1..])
        .args(args)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
    // Read both pipes on threads so a chatty command cannot block on a full pipe.
    let mut out_pipe = child.stdout.take().expect("stdout is piped");
    let mut err_pipe = child.stderr.take().expect("stderr is piped");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let began = Instant::now();
    let status = loop {
        match child.try_wait().map_err(|e| fail(e.to_string()))? {
            Some(status) => break status,
            None if began.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!("no answer after {timeout:?}")));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if status.success() {
        Ok((stdout, stderr))
    } else {
        let said = stderr.trim();
        let said = if said.is_empty() { stdout.trim() } else { said };
        Err(fail(format!("{status}: {said}")))
    }
}

/// `docker args…`, bounded by [`COMMAND_TIMEOUT`].
pub fn docker(args: &[&str]) -> Result<String, DockerError> {
    docker_within(args, COMMAND_TIMEOUT)
}

/// `docker args…`, bounded by `timeout` (builds and pulls take longer, probes less).
pub(crate) fn docker_within(args: &[&str], timeout: Duration) -> Result<String, DockerError> {
    run(&["docker".to_owned()], args, None, &[], timeout)
}

/// Whether a Docker engine answers (`docker info`), or why not.
pub fn engine() -> Result<(), DockerError> {
    docker_within(
        &["info", "--format", "{{.ServerVersion}}"],
        Duration::from_secs(20),
    )
    .map(drop)
}

/// The Compose tool: `docker compose` (v2) when the plugin is there, else `docker-compose`
/// (v1, what these machines have).
pub(crate) fn compose_tool() -> Result<Vec<String>, DockerError> {
    let v2 = ["docker".to_owned(), "compose".to_owned()];
    if run(&v2, &["version"], None, &[], Duration::from_secs(20)).is_ok() {
        return Ok(v2.to_vec());
    }
    let v1 = ["docker-compose".to_owned()];
    run(&v1, &["version"], None, &[], Duration::from_secs(20))
        .map(|_| v1.to_vec())
        .map_err(|e| DockerError {
            command: "docker compose version / docker-compose version".to_owned(),
            reason: format!(
                "neither Compose v2 nor v1 works ({}); install the Compose plugin or `docker-compose`",
                e.reason
            ),
        })
}

/// Whether `image` is present locally.
pub(crate) fn image_exists(image: &str) -> bool {
    docker(&["image", "inspect", "--format", "{{.Id}}", image]).is_ok()
}
