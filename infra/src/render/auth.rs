//! The file a secured server includes (`secrets/auth.conf`): its accounts and users with bcrypt
//! hashes of their passwords (or the token's hash), and the leafnode URLs with the link's
//! credentials. Rendered from the decrypted secrets into the secrets directory when a secured
//! deployment starts; never committed, never printed.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::nats_conf::{leaf_urls, quoted};
use crate::env::Secret;
use crate::model::security::{
    leaf_permissions, leaf_urls_file, leaf_user, permissions, Role, APP_ACCOUNT, SYS_ACCOUNT,
};
use crate::model::{Security, Spec, Topology};

/// bcrypt cost of the stored hashes: every new connection pays one verification, so the
/// server's default (11) costs a loaded 2-core machine noticeably on reconnect storms.
const BCRYPT_COST: u32 = 10;

/// What the include needs from the secrets.
pub struct Credentials<'a> {
    pub passwords: &'a BTreeMap<Role, Secret>,
    pub token: Option<&'a Secret>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the secrets have no password for the {0} user ({1}); add it to the secrets file")]
    MissingPassword(&'static str, &'static str),
    #[error("token mode needs NATS_AUTH_TOKEN in the secrets file")]
    MissingToken,
    #[error(
        "token mode has one shared secret and no permissions, so it cannot carry the `leaf` profile's link users: use the accounts mode (`--secure`)"
    )]
    TokenWithLeafnodes,
    #[error("hash a password with bcrypt")]
    Hash(#[source] bcrypt::BcryptError),
}

fn hash(secret: &Secret) -> Result<String, AuthError> {
    bcrypt::hash_with_result(secret.expose(), BCRYPT_COST)
        .map(|h| h.format_for_version(bcrypt::Version::TwoA))
        .map_err(AuthError::Hash)
}

/// `%XX` for every byte of a URL's userinfo that is not unreserved.
fn userinfo(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The include of every server of `topology` (as the servers see it: container names in
/// containers).
pub fn auth_conf(
    topology: &Topology,
    spec: &Spec,
    creds: &Credentials<'_>,
) -> Result<String, AuthError> {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "# Generated from the deployment's secrets when it starts: never commit it."
    );
    let leaf_links = topology.clusters.iter().any(|c| !c.leaf_remotes.is_empty());
    match topology.settings.security {
        Security::Plain => {}
        Security::Token => {
            if leaf_links {
                return Err(AuthError::TokenWithLeafnodes);
            }
            let token = creds.token.ok_or(AuthError::MissingToken)?;
            let _ = writeln!(w, "authorization {{");
            let _ = writeln!(w, "  token: \"{}\"", hash(token)?);
            let _ = writeln!(w, "}}");
        }
        Security::Accounts => {
            let password = |role: Role| {
                creds
                    .passwords
                    .get(&role)
                    .ok_or(AuthError::MissingPassword(role.as_str(), role.account()))
            };
            let user = |w: &mut String,
                        role: Role,
                        name: &str,
                        perms: Option<&crate::model::Permissions>|
             -> Result<(), AuthError> {
                let _ = write!(
                    w,
                    "      {{ user: \"{name}\", password: \"{}\"",
                    hash(password(role)?)?
                );
                if let Some(p) = perms {
                    let _ = write!(
                        w,
                        ", permissions: {{ publish: {{ allow: [{}] }}, subscribe: {{ allow: [{}] }} }}",
                        quoted(&p.publish),
                        quoted(&p.subscribe)
                    );
                }
                let _ = writeln!(w, " }}");
                Ok(())
            };
            let _ = writeln!(w, "accounts {{");
            let _ = writeln!(w, "  {SYS_ACCOUNT}: {{");
            let _ = writeln!(w, "    users: [");
            user(w, Role::Sys, Role::Sys.as_str(), None)?;
            let monitor = permissions(Role::Monitor, spec);
            user(w, Role::Monitor, Role::Monitor.as_str(), Some(&monitor))?;
            let _ = writeln!(w, "    ]");
            let _ = writeln!(w, "  }}");
            let _ = writeln!(w, "  {APP_ACCOUNT}: {{");
            let _ = writeln!(w, "    jetstream: enabled");
            let _ = writeln!(w, "    users: [");
            for role in [Role::Admin, Role::Worker, Role::Publisher] {
                user(w, role, role.as_str(), Some(&permissions(role, spec)))?;
            }
            user(w, Role::Ops, Role::Ops.as_str(), None)?;
            // Each cell dialling another logs in there as its own leafnode user.
            for dialer in topology
                .clusters
                .iter()
                .filter(|c| !c.leaf_remotes.is_empty())
            {
                for remote in dialer
                    .leaf_remotes
                    .iter()
                    .filter_map(|r| topology.cluster(r))
                {
                    let perms = leaf_permissions(remote.jetstream_domain.as_deref());
                    user(w, Role::Leaf, &leaf_user(&dialer.name), Some(&perms))?;
                }
            }
            let _ = writeln!(w, "    ]");
            let _ = writeln!(w, "  }}");
            let _ = writeln!(w, "}}");
            let _ = writeln!(w, "system_account: \"{SYS_ACCOUNT}\"");
        }
    }
    Ok(out)
}

/// The files the dialling cells' leafnode remotes include (`leaf-<remote>.conf`): the remote's
/// URLs with the link's user and password. None on a plaintext or token deployment.
pub fn leaf_url_files(
    topology: &Topology,
    creds: &Credentials<'_>,
) -> Result<Vec<(String, String)>, AuthError> {
    if topology.settings.security != Security::Accounts {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for dialer in topology
        .clusters
        .iter()
        .filter(|c| !c.leaf_remotes.is_empty())
    {
        let password = creds
            .passwords
            .get(&Role::Leaf)
            .ok_or(AuthError::MissingPassword(
                Role::Leaf.as_str(),
                Role::Leaf.account(),
            ))?;
        let secret = userinfo(password.expose());
        for remote in dialer
            .leaf_remotes
            .iter()
            .filter_map(|r| topology.cluster(r))
        {
            let urls = leaf_urls(topology, dialer, remote, &secret);
            out.push((
                leaf_urls_file(&remote.name),
                format!(
                    "# Generated from the deployment's secrets when it starts: never commit it.\nurls: [{}]\n",
                    quoted(&urls)
                ),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Profile;

    fn passwords() -> BTreeMap<Role, Secret> {
        Role::ALL
            .into_iter()
            .map(|r| (r, Secret::new(format!("pw-{}-s3cret:@/", r.as_str()))))
            .collect()
    }

    #[test]
    fn accounts_hold_every_user_as_a_hash_and_no_password() {
        let t = Topology::for_profile(Profile::Leaf).secured(Security::Accounts);
        let pw = passwords();
        let text = auth_conf(
            &t,
            &Spec::builtin(),
            &Credentials {
                passwords: &pw,
                token: None,
            },
        )
        .unwrap();
        for needle in [
            "system_account: \"SYS\"",
            "user: \"worker\", password: \"$2a$10$",
            "user: \"leaf-cell-b\"",
            "$JS.cell-a.API.CONSUMER.CREATE.>",
            "jetstream: enabled",
        ] {
            assert!(text.contains(needle), "{needle} missing:\n{text}");
        }
        assert!(!text.contains("pw-"), "a password in clear:\n{text}");
        // The leafnode link's own password, URL-encoded, only in the URLs the dialler includes.
        let creds = Credentials {
            passwords: &pw,
            token: None,
        };
        let files = leaf_url_files(&t, &creds).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].0, "leaf-cell-a.conf");
        assert!(
            files[0]
                .1
                .contains("urls: [\"tls://leaf-cell-b:pw-leaf-s3cret%3A%40%2F@127.0.0.1:7622\""),
            "{:?}",
            files[0]
        );
    }

    #[test]
    fn token_mode_stores_a_hash_and_refuses_leafnodes() {
        let t = Topology::for_profile(Profile::Ha).secured(Security::Token);
        let token = Secret::new("tok-s3cret");
        let pw = BTreeMap::new();
        let text = auth_conf(
            &t,
            &Spec::builtin(),
            &Credentials {
                passwords: &pw,
                token: Some(&token),
            },
        )
        .unwrap();
        assert!(
            text.contains("token: \"$2a$10$") && !text.contains("tok-s3cret"),
            "{text}"
        );
        assert!(
            !text.contains("accounts"),
            "a token cannot live with users: {text}"
        );
        let leaf = Topology::for_profile(Profile::Leaf).secured(Security::Token);
        let err = auth_conf(
            &leaf,
            &Spec::builtin(),
            &Credentials {
                passwords: &pw,
                token: Some(&token),
            },
        );
        assert!(matches!(err, Err(AuthError::TokenWithLeafnodes)));
    }

    #[test]
    fn a_missing_password_names_the_user() {
        let t = Topology::for_profile(Profile::Ha).secured(Security::Accounts);
        let mut pw = passwords();
        pw.remove(&Role::Worker);
        let err = auth_conf(
            &t,
            &Spec::builtin(),
            &Credentials {
                passwords: &pw,
                token: None,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no password for the worker user"), "{err}");
    }
}
