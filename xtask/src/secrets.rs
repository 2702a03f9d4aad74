//! `cargo xtask secrets init | show`: the sops-encrypted secrets file of secure deployments.
//! `init` creates a development age key when missing and development secrets encrypted for it
//! (the plaintext goes to sops on stdin, never to disk); `show` prints the keys and recipients,
//! never a value, and whether the file decrypts with the age key.

use std::path::Path;

use anyhow::Context;
use sea_infra::deployment::files::{create_private_dir, write_atomic};
use sea_infra::deployment::secrets::{age_key_file, secrets_file, Secrets as SecretMaterial};
use sea_infra::deployment::{age, sops};
use sea_infra::model::Role;
use sea_infra::model::Security;
use sea_infra::render::k8s;
use xshell::Shell;

use crate::flags::{Secrets, SecretsInit, SecretsK8s, SecretsShow};
use crate::{project, Exit};

impl Secrets {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        match self {
            Secrets::Init(cmd) => cmd.run(sh),
            Secrets::Show(cmd) => cmd.run(sh),
            Secrets::K8s(cmd) => cmd.run(sh),
        }
    }
}

impl SecretsK8s {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        let access = project::access(false)?;
        anyhow::ensure!(
            access.security() == Security::Accounts,
            "the Kubernetes manifests use accounts with least-privilege users, and the secrets file is for token mode; point SEA_SECRETS_FILE at an accounts-mode file (`cargo xtask secrets init`)"
        );
        // The worker's own client certificate (before the servers' shared one takes over).
        let (cert, key) = access.client_cert(Role::Worker);
        let pods = k8s::topology();
        let access = access.for_pods(&self.namespace)?;
        create_private_dir(&self.out).with_context(|| format!("create {}", self.out.display()))?;
        let mut env = sea_infra::env::EnvReader::from_process();
        let spec = sea_infra::model::spec::Spec::from_env(&mut env);
        env.finish()?;
        let servers_dir = self.out.join(k8s::SECRET);
        access.materialize(&pods, &spec, &servers_dir)?;
        let worker_dir = self.out.join(k8s::WORKER_SECRET);
        create_private_dir(&worker_dir)?;
        let password = access.secrets().passwords[&Role::Worker].clone();
        for (name, contents) in [
            ("ca.pem", std::fs::read(access.ca())?),
            ("client.pem", std::fs::read(cert)?),
            ("client-key.pem", std::fs::read(key)?),
            ("password", password.expose().as_bytes().to_vec()),
        ] {
            write_atomic(&worker_dir.join(name), &contents, 0o600)?;
        }
        println!(
            "# The servers' and the worker's Secrets, from the files just written (never printed):"
        );
        for (name, dir) in [
            (k8s::SECRET, &servers_dir),
            (k8s::WORKER_SECRET, &worker_dir),
        ] {
            println!(
                "kubectl -n {ns} create secret generic {name} --from-file={dir} --dry-run=client -o yaml | kubectl -n {ns} apply -f -",
                ns = self.namespace,
                dir = dir.display()
            );
        }
        println!("# then: kubectl -n {} apply -k deploy/k8s", self.namespace);
        eprintln!(
            "{} holds private keys and passwords: remove it once the Secrets exist",
            self.out.display()
        );
        Ok(())
    }
}

/// Creates the directory of `file` (0700) when it does not exist yet.
fn private_parent(file: &Path) -> anyhow::Result<()> {
    match file.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) if !dir.exists() => create_private_dir(dir).with_context(|| {
            format!(
                "create {} (set SEA_STATE_DIR to a writable directory)",
                dir.display()
            )
        }),
        _ => Ok(()),
    }
}

impl SecretsInit {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        let (file, key) = (secrets_file(), age_key_file());
        let existed = file.exists();
        if existed && !self.force {
            return Err(Exit {
                code: 1,
                message: format!(
                    "{} exists; `cargo xtask secrets init --force` replaces it with new development secrets (the age key is kept), `sops edit {}` changes it",
                    file.display(),
                    file.display()
                ),
            }
            .into());
        }
        age::keygen()?;
        let sops = project::sops()?;
        private_parent(&key)?;
        let (recipient, key_state) = if key.exists() {
            (age::recipient(&key)?, "kept")
        } else {
            (age::generate(&key)?, "created")
        };
        println!(
            "age key {} ({key_state}), recipient {recipient}",
            key.display()
        );
        private_parent(&file)?;
        let secrets = SecretMaterial::generate(if self.token {
            Security::Token
        } else {
            Security::Accounts
        });
        sops.encrypt(&secrets.to_dotenv(), &recipient, &file)?;
        let back = sops.decrypt(&file, &key)?;
        let read = SecretMaterial::from_dotenv(&back)
            .context("the file just written does not read back")?;
        anyhow::ensure!(
            read == secrets,
            "{} does not decrypt to what was written",
            file.display()
        );
        let keys: Vec<String> = back.into_iter().map(|(k, _)| k).collect();
        println!(
            "secrets file {} ({}), encrypted for {recipient}: {}",
            file.display(),
            if existed { "replaced" } else { "created" },
            keys.join(", ")
        );
        Ok(())
    }
}

impl SecretsShow {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        let (file, key) = (secrets_file(), age_key_file());
        let meta = sops::metadata(&file)?;
        println!("file {}", file.display());
        for recipient in &meta.recipients {
            println!("recipient {recipient}");
        }
        for name in &meta.keys {
            println!("key {name}");
        }
        if !key.is_file() {
            println!(
                "not decrypted: no age key at {} (set SEA_AGE_KEY_FILE or SOPS_AGE_KEY_FILE)",
                key.display()
            );
            return Ok(());
        }
        let pairs = project::sops()?.decrypt(&file, &key)?;
        let secrets = SecretMaterial::from_dotenv(&pairs)
            .with_context(|| format!("{} decrypts, but its keys are not right", file.display()))?;
        let mode = match &secrets.token {
            Some(_) => "token mode".to_owned(),
            None => format!("accounts mode, {} passwords", secrets.passwords.len()),
        };
        println!(
            "decrypts with {}: ok ({mode}; TLS: {})",
            key.display(),
            secrets.tls
        );
        Ok(())
    }
}
