//! `cargo xtask test`: what CI runs. Ensures nats-server, then fmt, clippy and the whole suite.

use anyhow::Context;
use xshell::{cmd, Shell};

use crate::flags::Test;
use crate::project;

impl Test {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let bin = project::nats_server()?;
        eprintln!(
            "tests use nats-server {} at {}",
            bin.version,
            bin.path.display()
        );
        // Every test process resolves the same binary without probing again.
        let _bin = sh.push_env(
            sea_infra::deployment::nats_server::ENV_NATS_SERVER_BIN,
            &bin.path,
        );

        crate::project::cargo(cmd!(sh, "cargo fmt --all -- --check"))
            .run()
            .context("formatting differs: run `cargo fmt --all`")?;
        crate::project::cargo(cmd!(
            sh,
            "cargo clippy --workspace --all-targets -- -D warnings"
        ))
        .run()
        .context("clippy found problems")?;
        let args = &self.cargo_test_args;
        crate::project::cargo(cmd!(sh, "cargo test --workspace -- {args...}"))
            .run()
            .context("the test suite failed")?;
        Ok(())
    }
}
