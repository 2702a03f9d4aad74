//! `bench --against REV`: the worker built from another git revision, measured side by side
//! with this tree's build in the same run, on the same cluster: the A/B of a change to the
//! worker, where separate runs differ by more than most changes move.
//!
//! REV's tree is exported with `git archive` into `target/bench-against/src` (no worktree to
//! clean up if the command is interrupted) and built into `target/bench-against/target`: seeded
//! from this tree's release build the first time, kept for the next run, so builds are
//! incremental. Each build is measured twice, in the order A B B A, so a drift of the machine
//! over the run weighs on both alike.

use std::path::PathBuf;

use anyhow::Context;
use xshell::{cmd, Shell};

/// The other revision's worker, built.
pub struct Baseline {
    /// What the operator asked for (a commit, branch or tag).
    pub rev: String,
    /// The commit it resolved to.
    pub commit: String,
    pub worker: PathBuf,
}

/// Resolves `rev` to a commit: called before anything is built, so a typo fails at once.
pub fn resolve(sh: &Shell, rev: &str) -> anyhow::Result<String> {
    let spec = format!("{rev}^{{commit}}");
    cmd!(sh, "git rev-parse --verify --quiet {spec}")
        .quiet()
        .read()
        .ok()
        .filter(|c| !c.is_empty())
        .with_context(|| {
            format!("--against {rev}: no such commit here (give a commit, branch or tag that `git rev-parse` knows)")
        })
}

/// Exports the tree of `commit` (what `rev` resolved to) and builds its `sea-mq-worker`
/// (release).
pub fn build(sh: &Shell, rev: &str, commit: String) -> anyhow::Result<Baseline> {
    let short = &commit[..commit.len().min(10)];
    let root = crate::project::project_root().join("target/bench-against");
    let (src, tar) = (root.join("src"), root.join("src.tar"));
    if src.exists() {
        std::fs::remove_dir_all(&src).with_context(|| format!("remove {}", src.display()))?;
    }
    std::fs::create_dir_all(&src).with_context(|| format!("create {}", src.display()))?;
    cmd!(sh, "git archive --format=tar -o {tar} {commit}")
        .quiet()
        .run()
        .with_context(|| format!("export {rev} ({short})"))?;
    cmd!(sh, "tar -xf {tar} -C {src}").quiet().run()?;
    std::fs::remove_file(&tar).ok();
    let (manifest, target) = (src.join("Cargo.toml"), root.join("target"));
    if !target.exists() {
        // Seeded with this tree's release build: the dependencies compiled there are reused,
        // so only the workspace's own crates are built for REV.
        let release = crate::project::project_root().join("target/release");
        std::fs::create_dir_all(&target)?;
        cmd!(sh, "cp -a {release} {target}").quiet().run()?;
    }
    eprintln!("building sea-mq-worker (release) at {rev} ({short}) ...");
    crate::project::cargo(cmd!(
        sh,
        "cargo build --quiet --release -p sea-mq-worker --bin sea-mq-worker --manifest-path {manifest} --target-dir {target}"
    ))
    .run()
    .with_context(|| format!("build sea-mq-worker at {rev} ({short})"))?;
    // A copy named for its commit: the next export replaces the tree, not this binary.
    let worker = root.join(format!("sea-mq-worker-{short}"));
    std::fs::copy(target.join("release/sea-mq-worker"), &worker)
        .with_context(|| format!("copy the worker built at {short}"))?;
    Ok(Baseline {
        rev: rev.to_owned(),
        commit,
        worker,
    })
}
