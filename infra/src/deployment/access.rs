//! How a secured deployment is reached and what its servers read: the decrypted secrets with the
//! certificates they name ([`Access`]). It gives this project's own clients their role's
//! connection ([`Access::nats`], [`Access::client_env`]) and the monitoring client that trusts
//! the deployment's CA ([`Access::monitor`]), and writes the private directory the servers
//! include ([`Access::materialize`]) only after every file in it passed [`certs::check`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::certs::{self, CertError, CertRequest, Usage};
use super::secrets::{self, DirInputs, Secrets, SecretsError};
use super::sops::{Sops, SopsError};
use crate::client::connect::{self, Auth, NatsConfig, Tls};
use crate::env::{ConfigErrors, Secret};
use crate::model::security::{CertFiles, CA_FILE};
use crate::model::{Role, Security, Spec, Topology};
use crate::probes::monitor::{CaError, Monitor};
use crate::render::auth::{self, AuthError, Credentials};

/// The secrets of a secured deployment and where its certificates are.
#[derive(Clone, Debug)]
pub struct Access {
    secrets: Secrets,
    /// The development certificates (`cargo xtask certs`): the CA and the client certificates,
    /// and each server's unless the secrets name one certificate for all.
    tls_dir: PathBuf,
    monitor: Monitor,
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(transparent)]
    Sops(#[from] SopsError),
    #[error("{} decrypts, but its keys are not right: {errors}", .file.display())]
    Keys { errors: ConfigErrors, file: PathBuf },
    #[error(transparent)]
    Certs(#[from] CertError),
    #[error(transparent)]
    Dir(#[from] SecretsError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Ca(#[from] CaError),
}

impl Access {
    /// The secrets as given, the certificates in `tls_dir`. The CA must be readable: every
    /// client built from here trusts it.
    pub fn new(secrets: Secrets, tls_dir: PathBuf) -> Result<Access, AccessError> {
        let ca = ca_path(&secrets, &tls_dir);
        let monitor = Monitor::trusting(Duration::from_secs(2), Some(&ca))?;
        Ok(Access {
            secrets,
            tls_dir,
            monitor,
        })
    }

    /// Decrypts the secrets `file` with `age_key`; development certificates in `tls_dir` (issued
    /// there when the secrets name no certificate of the operator's and some are missing).
    pub fn from_file(
        sops: &Sops,
        file: &Path,
        age_key: &Path,
        tls_dir: PathBuf,
    ) -> Result<Access, AccessError> {
        let pairs = sops.decrypt(file, age_key)?;
        let secrets = Secrets::from_dotenv(&pairs).map_err(|errors| AccessError::Keys {
            errors,
            file: file.to_path_buf(),
        })?;
        ensure_dev_certs(&secrets, &tls_dir)?;
        Access::new(secrets, tls_dir)
    }

    /// Fresh development secrets held in memory (a password per role, or a token) and the
    /// development certificates issued into `tls_dir`: what a test's private deployment uses.
    pub fn generate(security: Security, tls_dir: PathBuf) -> Result<Access, AccessError> {
        let secrets = Secrets::generate(security);
        ensure_dev_certs(&secrets, &tls_dir)?;
        Access::new(secrets, tls_dir)
    }

    /// For the StatefulSet's pods, which share one config and so one certificate: the
    /// operator's when the secrets name one, else the development CA's certificate holding every
    /// pod's names in `namespace` ([`certs::pods_request`]), issued into the certificates
    /// directory when missing.
    pub fn for_pods(mut self, namespace: &str) -> Result<Access, AccessError> {
        if self.secrets.tls.server.is_none() {
            let request = certs::pods_request(namespace);
            certs::ensure(&self.tls_dir, std::slice::from_ref(&request), false)?;
            let files = CertFiles::named(&request.name);
            self.secrets.tls.server = Some(super::secrets::CertPair {
                cert: self.tls_dir.join(files.cert),
                key: self.tls_dir.join(files.key),
            });
        }
        Ok(self)
    }

    /// The mode the secrets make: a token alone is token mode, passwords are accounts.
    pub fn security(&self) -> Security {
        if self.secrets.token.is_some() {
            Security::Token
        } else {
            Security::Accounts
        }
    }

    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// Where the development certificates are (`cargo xtask certs` writes them there).
    pub fn tls_dir(&self) -> &Path {
        &self.tls_dir
    }

    /// The CA every server's certificate is issued by.
    pub fn ca(&self) -> PathBuf {
        ca_path(&self.secrets, &self.tls_dir)
    }

    /// The certificate and key a client of `role` presents: its own development client
    /// certificate, or with the operator's single server certificate that one (it carries
    /// clientAuth, as the routes need it anyway).
    pub fn client_cert(&self, role: Role) -> (PathBuf, PathBuf) {
        match &self.secrets.tls.server {
            Some(pair) => (pair.cert.clone(), pair.key.clone()),
            None => {
                let files = CertFiles::named(&role.client_cert_name());
                (self.tls_dir.join(files.cert), self.tls_dir.join(files.key))
            }
        }
    }

    /// How a client of `role` connects: the CA, its certificate, its user and password (or the
    /// token), and the inbox prefix its permissions allow.
    pub fn nats(&self, role: Role) -> NatsConfig {
        let tls = Tls {
            ca: Some(self.ca()),
            client: Some(self.client_cert(role)),
        };
        let (auth, inbox_prefix) = match &self.secrets.token {
            Some(token) => (Auth::Token(token.clone()), None),
            None => (
                Auth::UserPassword {
                    user: role.as_str().to_owned(),
                    password: self.password(role),
                },
                Some(role.inbox_prefix()),
            ),
        };
        NatsConfig {
            auth,
            tls,
            inbox_prefix,
            ..NatsConfig::default()
        }
    }

    fn password(&self, role: Role) -> Secret {
        self.secrets
            .passwords
            .get(&role)
            .cloned()
            .expect("Secrets::from_dotenv and generate give every role a password")
    }

    /// The variables a child process of `role` (a worker) connects with. They carry the
    /// password or token: for a child's environment only, never to print.
    pub fn client_env(&self, role: Role) -> Vec<(String, Secret)> {
        let nats = self.nats(role);
        let path = |p: &Path| Secret::new(p.display().to_string());
        let mut env = vec![(connect::ENV_NATS_TLS_CA.to_owned(), path(&self.ca()))];
        if let Some((cert, key)) = &nats.tls.client {
            env.push((connect::ENV_NATS_TLS_CERT.to_owned(), path(cert)));
            env.push((connect::ENV_NATS_TLS_KEY.to_owned(), path(key)));
        }
        match nats.auth {
            Auth::Token(t) => env.push((connect::ENV_NATS_AUTH_TOKEN.to_owned(), t)),
            Auth::UserPassword { user, password } => {
                env.push((connect::ENV_NATS_USER.to_owned(), Secret::new(user)));
                env.push((connect::ENV_NATS_PASSWORD.to_owned(), password));
            }
            Auth::None | Auth::CredsFile(_) => {}
        }
        if let Some(prefix) = nats.inbox_prefix {
            env.push((
                connect::ENV_NATS_INBOX_PREFIX.to_owned(),
                Secret::new(prefix),
            ));
        }
        env
    }

    /// The monitoring client: `https://` verified against the deployment's CA.
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// Writes `dir`, the secrets directory the servers of `served` (the topology as the servers
    /// see it: service names in containers) include: the rendered accounts (or token), the CA
    /// and the server certificates. Every certificate is checked first (missing, expired, a
    /// name a peer dials absent, another CA, a key that does not match): nothing is written
    /// when one fails, so a running server's files stay as they were.
    pub fn materialize(
        &self,
        served: &Topology,
        spec: &Spec,
        dir: &Path,
    ) -> Result<(), AccessError> {
        let shared = self.secrets.tls.server.is_some();
        let servers: Vec<String> = served.servers().map(|(_, s)| s.name.clone()).collect();
        // The sources, checked where they are: the files a server will read, and the
        // certificates this project's clients present.
        let dir_error = |source| SecretsError::Dir {
            dir: dir.to_path_buf(),
            source,
        };
        let parent = dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(dir_error)?;
        let staged = tempfile::Builder::new()
            .prefix(".staged-secrets-")
            .tempdir_in(parent)
            .map_err(dir_error)?;
        let creds = Credentials {
            passwords: &self.secrets.passwords,
            token: self.secrets.token.as_ref(),
        };
        let auth_conf = auth::auth_conf(served, spec, &creds)?;
        let extra = auth::leaf_url_files(served, &creds)?;
        let inputs = DirInputs {
            dev_tls_dir: &self.tls_dir,
            servers: &servers,
            auth_conf: &auth_conf,
            extra: &extra,
        };
        secrets::write_dir(staged.path(), &self.secrets, &inputs)?;
        certs::check(staged.path(), &certs::requests_for(served, shared))?;
        if !shared {
            certs::check(&self.tls_dir, &client_requests())?;
        }
        secrets::write_dir(dir, &self.secrets, &inputs)?;
        Ok(())
    }
}

fn ca_path(secrets: &Secrets, tls_dir: &Path) -> PathBuf {
    secrets
        .tls
        .ca
        .clone()
        .unwrap_or_else(|| tls_dir.join(CA_FILE))
}

/// The client certificates of the development CA.
fn client_requests() -> Vec<CertRequest> {
    certs::requests(certs::DEFAULT_NAMESPACE)
        .into_iter()
        .filter(|r| r.usage == Usage::Client)
        .collect()
}

/// With the development CA (the secrets name no CA or certificate of the operator's), issues
/// what `tls_dir` lacks, as `cargo xtask certs` would; good certificates are kept.
fn ensure_dev_certs(secrets: &Secrets, tls_dir: &Path) -> Result<(), CertError> {
    if secrets.tls.ca.is_some() || secrets.tls.server.is_some() {
        return Ok(());
    }
    let all = certs::requests(certs::DEFAULT_NAMESPACE);
    if certs::check(tls_dir, &all).is_err() {
        certs::ensure(tls_dir, &all, false)?;
    }
    Ok(())
}
