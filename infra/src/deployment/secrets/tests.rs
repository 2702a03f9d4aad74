//! Unit tests of the secrets: reading the decrypted pairs (every refusal at once, no value
//! shown), development secrets, the token refusal, and the private directory servers read.

use super::*;
use crate::deployment::files::mode_of;
use crate::deployment::sops::parse_dotenv;

fn pairs(text: &str) -> Vec<(String, Secret)> {
    parse_dotenv(text).unwrap()
}

fn passwords_text() -> String {
    Role::ALL
        .iter()
        .enumerate()
        .map(|(i, r)| format!("{}=password-of-role-{i}\n", r.password_key()))
        .collect()
}

#[test]
fn accounts_mode_reads_every_password_and_the_tls_paths() {
    let text = format!(
        "{}NATS_TLS_CA=/etc/sea/ca.pem\nNATS_TLS_CERT=/etc/sea/s.pem\nNATS_TLS_KEY=/etc/sea/s-key.pem\n",
        passwords_text()
    );
    let secrets = Secrets::from_dotenv(&pairs(&text)).unwrap();
    assert_eq!(secrets.passwords.len(), Role::ALL.len());
    assert_eq!(secrets.passwords[&Role::Sys].expose(), "password-of-role-5");
    assert_eq!(
        secrets.tls.ca.as_deref(),
        Some(Path::new("/etc/sea/ca.pem"))
    );
    assert_eq!(
        secrets.tls.server,
        Some(CertPair {
            cert: "/etc/sea/s.pem".into(),
            key: "/etc/sea/s-key.pem".into()
        })
    );
    assert!(secrets.token.is_none());
    assert!(!format!("{secrets:?}").contains("password-of-role"));
    // The dotenv text reads back to the same secrets.
    let again = Secrets::from_dotenv(&pairs(secrets.to_dotenv().expose())).unwrap();
    assert_eq!(again, secrets);
}

#[test]
fn every_problem_is_reported_at_once_by_name_without_values() {
    let text = "NATS_PASSWORD_ADMIN=shrtpw1\nNATS_PASSWORD_WORKER=has a space in it\n\
                NATS_PASSWORD_PUBLISHER=qu0te\"d-secret-value\nNATS_PASWORD_MONITOR=typo-secret-value\n\
                NATS_TLS_CERT=relative/cert.pem\n";
    let err = Secrets::from_dotenv(&pairs(text)).unwrap_err();
    let shown = err.to_string();
    let vars: Vec<&str> = err.0.iter().map(|e| e.var.as_str()).collect();
    for var in [
        "NATS_PASSWORD_ADMIN",
        "NATS_PASSWORD_WORKER",
        "NATS_PASSWORD_PUBLISHER",
        "NATS_PASWORD_MONITOR",
        "NATS_TLS_CERT",
        "NATS_TLS_KEY",
        "NATS_PASSWORD_MONITOR",
        "NATS_PASSWORD_SYS",
        "NATS_PASSWORD_LEAF",
    ] {
        assert!(vars.contains(&var), "{var} not reported: {shown}");
    }
    for value in [
        "shrtpw1",
        "has a space",
        "qu0te",
        "typo-secret",
        "relative/cert",
    ] {
        assert!(!shown.contains(value), "value {value} shown: {shown}");
    }
    assert!(shown.contains("too short: at least 12"), "{shown}");
    assert!(shown.contains("not a key of the secrets file"), "{shown}");
    assert!(shown.contains("not an absolute path"), "{shown}");
}

#[test]
fn a_token_beside_passwords_is_refused_naming_the_fix() {
    let text = format!("NATS_AUTH_TOKEN=a-long-enough-token\n{}", passwords_text());
    let err = Secrets::from_dotenv(&pairs(&text)).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("Can not have a token and a users array")
            && shown.contains("remove NATS_AUTH_TOKEN")
            && !shown.contains("a-long-enough-token"),
        "{shown}"
    );
    // Token mode alone is fine, and needs no password.
    let token_only = Secrets::from_dotenv(&pairs("NATS_AUTH_TOKEN=a-long-enough-token\n")).unwrap();
    assert!(token_only.passwords.is_empty());
    token_only.token_with_accounts().unwrap();
    // Built in code, the same refusal.
    let mut both = Secrets::generate_dev();
    both.token = Some(Secret::new("a-long-enough-token"));
    let refusal = both.token_with_accounts().unwrap_err().to_string();
    assert!(
        refusal.contains("NATS_PASSWORD_ADMIN") && refusal.contains("token mode"),
        "{refusal}"
    );
}

#[test]
fn development_secrets_are_random_url_safe_and_complete() {
    let a = Secrets::generate_dev();
    let b = Secrets::generate_dev();
    assert_eq!(a.passwords.len(), Role::ALL.len());
    for (role, password) in &a.passwords {
        let p = password.expose();
        assert_eq!(p.len(), GENERATED_LEN, "{role}");
        assert!(p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(p, b.passwords[role].expose(), "{role}: not random");
    }
    assert!(a.token.is_none());
    assert_eq!(
        Secrets::from_dotenv(&pairs(a.to_dotenv().expose())).unwrap(),
        a
    );
}

#[test]
fn the_secrets_directory_is_private_and_holds_only_what_servers_read() {
    let scratch = tempfile::tempdir().unwrap();
    let dev = scratch.path().join("tls");
    std::fs::create_dir_all(&dev).unwrap();
    for name in [
        "ca.pem",
        "nats-1.pem",
        "nats-1-key.pem",
        "nats-2.pem",
        "nats-2-key.pem",
    ] {
        std::fs::write(dev.join(name), format!("contents of {name}")).unwrap();
    }
    let dir = scratch.path().join("ha/secrets");
    let servers = ["nats-1".to_owned(), "nats-2".to_owned()];
    let inputs = DirInputs {
        dev_tls_dir: &dev,
        servers: &servers,
        auth_conf: "authorization { }\n",
        extra: &[],
    };
    let secrets = Secrets::generate_dev();
    let written = write_dir(&dir, &secrets, &inputs).unwrap();
    assert_eq!(
        written,
        [
            "ca.pem",
            "nats-1.pem",
            "nats-1-key.pem",
            "nats-2.pem",
            "nats-2-key.pem",
            "auth.conf"
        ]
    );
    assert_eq!(mode_of(&dir).unwrap(), 0o700);
    let check_files = |expected: &[&str]| {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                assert_eq!(mode_of(&e.path()).unwrap(), 0o600, "{:?}", e.file_name());
                e.file_name().into_string().unwrap()
            })
            .collect();
        names.sort();
        assert_eq!(names, expected);
    };
    check_files(&[
        "auth.conf",
        "ca.pem",
        "nats-1-key.pem",
        "nats-1.pem",
        "nats-2-key.pem",
        "nats-2.pem",
    ]);
    assert_eq!(
        std::fs::read_to_string(dir.join("nats-2-key.pem")).unwrap(),
        "contents of nats-2-key.pem"
    );
    // Switching to one certificate for every server removes the per-server files.
    let own = scratch.path().join("own");
    std::fs::create_dir_all(&own).unwrap();
    std::fs::write(own.join("c.pem"), "own cert").unwrap();
    std::fs::write(own.join("k.pem"), "own key").unwrap();
    let mut byo = secrets.clone();
    byo.tls.server = Some(CertPair {
        cert: own.join("c.pem"),
        key: own.join("k.pem"),
    });
    write_dir(&dir, &byo, &inputs).unwrap();
    check_files(&["auth.conf", "ca.pem", "server-key.pem", "server.pem"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("server-key.pem")).unwrap(),
        "own key"
    );
    // A missing source names the file and the fix.
    byo.tls.ca = Some(own.join("missing-ca.pem"));
    let err = write_dir(&dir, &byo, &inputs).unwrap_err().to_string();
    assert!(
        err.contains("missing-ca.pem") && err.contains("NATS_TLS_CA"),
        "{err}"
    );
}
