//! `cargo xtask doctor`: what this machine has, and what the project would need to install.

use std::collections::BTreeMap;

use anyhow::bail;
use sea_infra::deployment::ports;
use sea_infra::model::topology::{PortUse, Profile, Topology};
use serde::Serialize;
use xshell::{cmd, Shell};

use crate::flags::Doctor;
use crate::project;

#[derive(Serialize)]
struct Finding {
    check: String,
    /// `ok`, `warn` (optional or informational) or `missing` (required).
    status: &'static str,
    detail: String,
}

impl Doctor {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let mut findings = Vec::new();
        let mut required_missing = false;

        match project::resolver(self.install).resolve() {
            Ok(bin) => {
                let mut detail = format!(
                    "{} at {} (from {})",
                    bin.version,
                    bin.path.display(),
                    bin.source
                );
                for skipped in &bin.skipped {
                    detail.push_str(&format!("; passed over {skipped}"));
                }
                findings.push(Finding {
                    check: "nats-server".into(),
                    status: "ok",
                    detail,
                });
            }
            Err(e) => {
                required_missing = true;
                findings.push(Finding {
                    check: "nats-server".into(),
                    status: "missing",
                    detail: e.to_string(),
                });
            }
        }
        findings.push(probe(
            "python3",
            cmd!(sh, "python3 --version"),
            "needed only to install nats-server",
        ));
        findings.push(probe(
            "docker engine",
            {
                let format = "{{.ServerVersion}}";
                cmd!(sh, "docker info --format {format}")
            },
            "needed only by the compose backend",
        ));
        let v2 = cmd!(sh, "docker compose version --short")
            .quiet()
            .ignore_stderr()
            .read();
        findings.push(match v2 {
            Ok(v) => Finding {
                check: "compose".into(),
                status: "ok",
                detail: format!("docker compose (v2) {}", v.trim()),
            },
            Err(_) => probe(
                "compose",
                cmd!(sh, "docker-compose version --short"),
                "needed only by the compose backend",
            ),
        });
        for (port, users) in fixed_ports() {
            let (status, detail) = if ports::is_free("127.0.0.1", port) {
                ("ok", "free".to_owned())
            } else {
                let who = ports::holder(port)
                    .map_or_else(|| "an unknown process".into(), |h| h.to_string());
                ("warn", format!("in use by {who}"))
            };
            findings.push(Finding {
                check: format!("port {port}"),
                status,
                detail: format!("{detail} ({users})"),
            });
        }

        if self.json {
            println!("{}", serde_json::to_string_pretty(&findings)?);
        } else {
            for f in &findings {
                println!("{:<14} {:<8} {}", f.check, f.status, f.detail);
            }
        }
        if required_missing {
            bail!("a required tool is missing; `cargo xtask doctor --install` installs it");
        }
        Ok(())
    }
}

/// Runs a version command; a failure is a warning, since only optional tools are probed here.
fn probe(name: &str, cmd: xshell::Cmd<'_>, why: &str) -> Finding {
    match cmd.quiet().ignore_stderr().read() {
        Ok(v) => Finding {
            check: name.into(),
            status: "ok",
            detail: v.trim().to_owned(),
        },
        Err(_) => Finding {
            check: name.into(),
            status: "warn",
            detail: format!("not available ({why})"),
        },
    }
}

/// Every fixed port of every profile, with the servers that use it.
fn fixed_ports() -> BTreeMap<u16, String> {
    let mut out: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for profile in Profile::ALL {
        for PortUse { port, server, role } in Topology::for_profile(profile).ports() {
            let label = format!("{profile} {server} {role}");
            out.entry(port).or_default().push(label);
        }
    }
    out.into_iter()
        .map(|(port, users)| (port, users.join(", ")))
        .collect()
}
