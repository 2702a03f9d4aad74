//! `cargo xtask health`: exit 0 only when every server passes the health gate.

use anyhow::bail;
use sea_infra::probes::health;
use xshell::Shell;

use crate::flags::Health;
use crate::project;

impl Health {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        let (profile, deployment) = project::existing(&self.deployment)?;
        let report = project::runtime()?.block_on(health::check(
            &deployment.monitor(),
            &deployment.topology,
            None,
        ));
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            for server in &report.servers {
                for check in &server.checks {
                    let mark = if check.ok { "ok  " } else { "FAIL" };
                    println!(
                        "{mark} {:<8} {:<13} {}",
                        server.name,
                        check.name.as_str(),
                        check.detail
                    );
                }
            }
        }
        if !report.is_healthy() {
            bail!(
                "health gate failed for profile {profile}: {}",
                report.failures().join("; ")
            );
        }
        eprintln!(
            "profile {profile}: all {} server(s) healthy",
            report.servers.len()
        );
        Ok(())
    }
}
