//! Who may do what on a secured deployment: the security mode of a topology, the users (roles)
//! of the application account and exactly what each may publish and subscribe, and the fixed
//! names of the files a server's secrets directory holds. Pure data: the renderer turns it into
//! the servers' `accounts {}` block and writes the file names into the configs,
//! `deployment::secrets` writes the files under them, tests check it against a live server.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::spec::Spec;
use super::topology::FEDERATED_SUBJECTS;

/// How a deployment's listeners are protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plaintext, no authentication: the local development profiles.
    #[default]
    Plain,
    /// TLS on every listener (clients present a certificate of the deployment's CA too) and
    /// config-file accounts with least-privilege users.
    Accounts,
    /// TLS on every listener and one shared token for clients: the seeds' simple setup. The
    /// server refuses a token together with users, so it is a mode of its own.
    Token,
}

impl Security {
    pub fn is_secure(self) -> bool {
        self != Security::Plain
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Security::Plain => "plain",
            Security::Accounts => "accounts",
            Security::Token => "token",
        }
    }
}

/// The application account every service user belongs to (JetStream enabled).
pub const APP_ACCOUNT: &str = "APP";
/// The system account (no JetStream: the server refuses it there).
pub const SYS_ACCOUNT: &str = "SYS";

/// A user of a secured deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Provisions streams and consumers: the JetStream API, nothing else.
    Admin,
    /// `sea-mq-worker`: its group's pull consumer, acks, the DLQ and the outbox subjects.
    Worker,
    /// A service publishing events: `*.event.>` and the acks of its publishes.
    Publisher,
    /// Read-only server monitoring through the system account.
    Monitor,
    /// The operator's tooling (`cargo xtask` drills, verify, bench): everything in the
    /// application account, never given to a service.
    Ops,
    /// The system account's own user.
    Sys,
    /// The leafnode link of a cell dialling another (the federated subjects and mirrors).
    Leaf,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Admin,
        Role::Worker,
        Role::Publisher,
        Role::Monitor,
        Role::Ops,
        Role::Sys,
        Role::Leaf,
    ];

    /// The roles that connect as clients and get a client certificate for mutual TLS.
    pub const CLIENTS: [Role; 5] = [
        Role::Admin,
        Role::Worker,
        Role::Publisher,
        Role::Monitor,
        Role::Ops,
    ];

    /// The user name (leafnode users are named per dialling cell: [`leaf_user`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Worker => "worker",
            Role::Publisher => "publisher",
            Role::Monitor => "monitor",
            Role::Ops => "ops",
            Role::Sys => "sys",
            Role::Leaf => "leaf",
        }
    }

    pub fn account(self) -> &'static str {
        match self {
            Role::Monitor | Role::Sys => SYS_ACCOUNT,
            _ => APP_ACCOUNT,
        }
    }

    /// The user's own reply-subject prefix (`NATS_INBOX_PREFIX`): it may subscribe there and
    /// nowhere else a request's reply could be read by another user.
    pub fn inbox_prefix(self) -> String {
        format!("_INBOX_{}", self.as_str())
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
                format!(
                    "unknown role `{s}`: use admin, worker, publisher, monitor, ops, sys or leaf"
                )
            })
    }
}

/// The CA bundle every server and client of a deployment trusts.
pub const CA_FILE: &str = "ca.pem";
/// The accounts and users (or the token) that servers `include`.
pub const AUTH_FILE: &str = "auth.conf";
/// The file a dialling cell's servers include inside their leafnode remote to `remote`: its
/// URLs, which carry the link's password.
pub fn leaf_urls_file(remote: &str) -> String {
    format!("leaf-{remote}.conf")
}

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

/// The user a cell's leafnode connections log in as on the cell they dial.
pub fn leaf_user(cell: &str) -> String {
    format!("leaf-{cell}")
}

/// What one user may publish and subscribe; anything not allowed is denied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

/// Every subject the given role may use, derived from the spec: the worker's group and event
/// streams, the streams provisioning reaches, the federated subjects.
pub fn permissions(role: Role, spec: &Spec) -> Permissions {
    let inbox = vec![format!("{}.>", role.inbox_prefix())];
    match role {
        Role::Admin => Permissions {
            // The API, and the reachability probes provisioning sends on every stream's
            // subjects (refused by the stream, never stored).
            publish: std::iter::once("$JS.API.>".to_owned())
                .chain(
                    spec.streams
                        .iter()
                        .flat_map(|s| s.subjects.iter())
                        .map(|s| probe(s)),
                )
                .collect(),
            subscribe: inbox,
        },
        Role::Worker => {
            let durable = spec.consumer.durable_name();
            let mut publish = vec!["$JS.API.INFO".to_owned()];
            for s in spec.event_streams() {
                let n = &s.name;
                publish.extend([
                    format!("$JS.API.STREAM.INFO.{n}"),
                    format!("$JS.API.CONSUMER.INFO.{n}.{durable}"),
                    format!("$JS.API.CONSUMER.CREATE.{n}.{durable}"),
                    format!("$JS.API.CONSUMER.CREATE.{n}.{durable}.>"),
                    format!("$JS.API.CONSUMER.DURABLE.CREATE.{n}.{durable}"),
                    format!("$JS.API.CONSUMER.MSG.NEXT.{n}.{durable}"),
                    // Acks, in both formats: `$JS.ACK.<stream>.<durable>...` and the one with
                    // domain and account hash in front.
                    format!("$JS.ACK.{n}.{durable}.>"),
                    format!("$JS.ACK.*.*.{n}.{durable}.>"),
                ]);
            }
            // Dead letters, and the outbox rows it relays.
            publish.extend(["*.dlq.>", "*.event.>"].map(str::to_owned));
            Permissions {
                publish,
                subscribe: inbox,
            }
        }
        Role::Publisher => Permissions {
            publish: vec!["*.event.>".to_owned()],
            subscribe: inbox,
        },
        Role::Monitor => Permissions {
            publish: [
                "$SYS.REQ.SERVER.PING",
                "$SYS.REQ.SERVER.PING.>",
                "$SYS.REQ.SERVER.*.VARZ",
                "$SYS.REQ.SERVER.*.JSZ",
                "$SYS.REQ.SERVER.*.CONNZ",
                "$SYS.REQ.SERVER.*.ROUTEZ",
                "$SYS.REQ.SERVER.*.GATEWAYZ",
                "$SYS.REQ.SERVER.*.LEAFZ",
                "$SYS.REQ.SERVER.*.HEALTHZ",
                "$SYS.REQ.SERVER.*.STATSZ",
            ]
            .map(str::to_owned)
            .to_vec(),
            subscribe: inbox,
        },
        Role::Ops | Role::Sys => Permissions {
            publish: vec![">".to_owned()],
            subscribe: vec![">".to_owned()],
        },
        Role::Leaf => leaf_permissions(None),
    }
}

/// A dialling cell's leafnode user on the cell it dials: only the federated subjects, plus what
/// a cross-domain mirror of this cell's streams needs (this domain's consumer-create API, flow
/// control, the API replies and the mirrored messages). Measured on nats-server 2.15.1:
/// `publish` is what the dialling cell may send here, `subscribe` what it may receive.
pub fn leaf_permissions(domain: Option<&str>) -> Permissions {
    let federated: Vec<String> = FEDERATED_SUBJECTS.iter().map(|s| (*s).to_owned()).collect();
    let mut publish = federated.clone();
    if let Some(domain) = domain {
        publish.push(format!("$JS.{domain}.API.CONSUMER.CREATE.>"));
    }
    publish.push("$JS.FC.>".to_owned());
    let mut subscribe = federated;
    subscribe.extend(["$JSC.R.>", "$JS.M.>"].map(str::to_owned));
    Permissions { publish, subscribe }
}

/// A subject inside `filter`: each wildcard replaced by a token no publisher uses (what
/// provisioning's reachability probe publishes on).
pub fn probe(filter: &str) -> String {
    filter
        .split('.')
        .map(|t| if t == "*" || t == ">" { "sea-probe" } else { t })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::subjects_overlap;

    fn allows(list: &[String], subject: &str) -> bool {
        list.iter()
            .any(|p| subjects_overlap(p, subject) && covers(p, subject))
    }

    /// Whether pattern `p` matches every subject `s` matches (here: concrete subjects).
    fn covers(p: &str, s: &str) -> bool {
        let (p, s): (Vec<&str>, Vec<&str>) = (p.split('.').collect(), s.split('.').collect());
        for (i, t) in p.iter().enumerate() {
            match (*t, s.get(i)) {
                (">", Some(_)) => return true,
                ("*", Some(_)) => {}
                (a, Some(b)) if a == *b => {}
                _ => return false,
            }
        }
        p.len() == s.len()
    }

    #[test]
    fn the_worker_may_run_its_loop_and_nothing_else() {
        let p = permissions(Role::Worker, &Spec::builtin());
        for ok in [
            "$JS.API.CONSUMER.MSG.NEXT.SEA_EVENTS.sea-mq-worker",
            "$JS.ACK.SEA_EVENTS.sea-mq-worker.1.2.3.4.5",
            "$JS.ACK.hub.ACCHASH.SEA_EVENTS.sea-mq-worker.1.2.3.4.5.6",
            "sea.dlq.orders.created",
            "sea.event.orders.created",
        ] {
            assert!(allows(&p.publish, ok), "{ok} denied");
        }
        for denied in [
            "$JS.API.STREAM.DELETE.SEA_EVENTS",
            "$JS.API.STREAM.PURGE.SEA_EVENTS",
            "$JS.API.CONSUMER.MSG.NEXT.SEA_EVENTS.audit",
            "$JS.API.CONSUMER.DELETE.SEA_EVENTS.sea-mq-worker",
            "private.thing",
        ] {
            assert!(!allows(&p.publish, denied), "{denied} allowed");
        }
        assert_eq!(p.subscribe, ["_INBOX_worker.>"]);
    }

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

    #[test]
    fn probes_publish_inside_the_stream_subjects() {
        assert_eq!(probe("sea.event.>"), "sea.event.sea-probe");
        assert_eq!(probe("*.dlq.>"), "sea-probe.dlq.sea-probe");
        assert_eq!(probe("a.b"), "a.b");
    }

    #[test]
    fn the_admin_provisions_and_the_publisher_only_publishes_events() {
        let spec = Spec::builtin();
        let admin = permissions(Role::Admin, &spec);
        assert!(allows(&admin.publish, "$JS.API.STREAM.CREATE.SEA_EVENTS"));
        assert!(allows(&admin.publish, "sea.event.sea-probe"));
        assert!(!allows(&admin.publish, "sea.event.orders.created"));
        let publisher = permissions(Role::Publisher, &spec);
        assert!(allows(&publisher.publish, "vibespro.event.x"));
        assert!(!allows(&publisher.publish, "$JS.API.STREAM.CREATE.X"));
        assert!(!allows(&publisher.publish, "sea.dlq.x"));
    }
}
