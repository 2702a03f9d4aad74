//! `cargo xtask certs`: the development CA and certificates under
//! `<state root>/secrets/tls/`, kept when still good, (re)issued otherwise, one line each.

use anyhow::Context;
use sea_infra::deployment::certs::{self, CertStatus};
use sea_infra::deployment::files::create_private_dir;
use sea_infra::deployment::secrets::{secrets_root, tls_dir};
use serde::Serialize;
use xshell::Shell;

use crate::flags::Certs;

#[derive(Serialize)]
struct Json<'a> {
    dir: String,
    namespace: &'a str,
    certificates: Vec<JsonCert>,
}

#[derive(Serialize)]
struct JsonCert {
    name: String,
    path: String,
    serial: String,
    not_after: String,
    issued_now: bool,
}

impl From<&CertStatus> for JsonCert {
    fn from(s: &CertStatus) -> Self {
        JsonCert {
            name: s.name.clone(),
            path: s.path.display().to_string(),
            serial: s.serial.clone(),
            not_after: s.expires(),
            issued_now: s.issued_now,
        }
    }
}

impl Certs {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        let root = secrets_root();
        create_private_dir(&root).with_context(|| {
            format!(
                "create {} (set SEA_STATE_DIR to a writable directory)",
                root.display()
            )
        })?;
        let dir = tls_dir();
        let requests = certs::requests(&self.namespace);
        let statuses = certs::ensure(&dir, &requests, self.rotate)?;
        // What was just written must pass what servers will be checked with.
        certs::check(&dir, &requests)?;
        if self.json {
            let json = Json {
                dir: dir.display().to_string(),
                namespace: &self.namespace,
                certificates: statuses.iter().map(JsonCert::from).collect(),
            };
            println!("{}", serde_json::to_string_pretty(&json)?);
            return Ok(());
        }
        eprintln!(
            "development certificates in {} (namespace {})",
            dir.display(),
            self.namespace
        );
        let width = statuses.iter().map(|s| s.name.len()).max().unwrap_or(0);
        for s in &statuses {
            println!(
                "{:width$}  serial {}  expires {}  {}",
                s.name,
                s.serial,
                s.expires(),
                if s.issued_now { "issued" } else { "kept" },
            );
        }
        Ok(())
    }
}
