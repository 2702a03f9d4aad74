//! What a secure deployment is made of, as pure data: the roles that get a password (and, for
//! clients, a certificate), and the fixed names of the files a server's secrets directory
//! holds. The renderer writes these names into the configs; `deployment::secrets` writes the
//! files under them.

use std::fmt;
use std::str::FromStr;

/// Who connects: four client roles, the system account and the leafnode link between cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Operators and provisioning: every subject, the JetStream API.
    Admin,
    /// `sea-mq-worker`: consumes event streams, publishes the outbox and the DLQ.
    Worker,
    /// Services that only publish events.
    Publisher,
    /// Read-only monitoring (the exporter, dashboards).
    Monitor,
    /// The system account's user (`$SYS`).
    Sys,
    /// The user a cell's leafnode remote authenticates as.
    Leaf,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Admin,
        Role::Worker,
        Role::Publisher,
        Role::Monitor,
        Role::Sys,
        Role::Leaf,
    ];

    /// The roles that connect as clients and get a client certificate for mutual TLS.
    pub const CLIENTS: [Role; 4] = [Role::Admin, Role::Worker, Role::Publisher, Role::Monitor];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Worker => "worker",
            Role::Publisher => "publisher",
            Role::Monitor => "monitor",
            Role::Sys => "sys",
            Role::Leaf => "leaf",
        }
    }

    /// The key of its password in the secrets file: `NATS_PASSWORD_ADMIN`, … .
    pub fn password_key(self) -> String {
        format!("NATS_PASSWORD_{}", self.as_str().to_ascii_uppercase())
    }

    /// The file stem of its client certificate: `client-admin` (`client-admin.pem`,
    /// `client-admin-key.pem`); the certificate's DNS SAN and common name are the role's name,
    /// which `verify_and_map` matches against a user of that name.
    pub fn client_cert_name(self) -> String {
        format!("client-{}", self.as_str())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role `{s}`: use admin, worker, publisher, monitor, sys or leaf")
            })
    }
}

/// The CA bundle every server and client of a deployment trusts.
pub const CA_FILE: &str = "ca.pem";
/// The accounts and users (or the token) that servers `include`.
pub const AUTH_FILE: &str = "auth.conf";
/// The file stem of a bring-your-own certificate shared by every server.
pub const SHARED_SERVER_CERT: &str = "server";

/// A certificate and its key, by file name inside a secrets or certificates directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFiles {
    /// `<stem>.pem`
    pub cert: String,
    /// `<stem>-key.pem`
    pub key: String,
}

impl CertFiles {
    pub fn named(stem: &str) -> CertFiles {
        CertFiles {
            cert: format!("{stem}.pem"),
            key: format!("{stem}-key.pem"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_name_their_keys_and_certificates() {
        assert_eq!(Role::Admin.password_key(), "NATS_PASSWORD_ADMIN");
        assert_eq!(Role::Leaf.password_key(), "NATS_PASSWORD_LEAF");
        assert_eq!(Role::Monitor.client_cert_name(), "client-monitor");
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
        assert_eq!(
            CertFiles::named("nats-1"),
            CertFiles {
                cert: "nats-1.pem".into(),
                key: "nats-1-key.pem".into()
            }
        );
    }
}
