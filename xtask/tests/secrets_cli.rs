//! `cargo xtask certs` and `cargo xtask secrets` as an operator runs them: what they print,
//! what they refuse, and that no secret value ever appears in their output or on disk outside
//! the encrypted file.

mod common;

use std::path::Path;

use common::{xtask_at, Run};
use sea_infra::deployment::age;
use sea_infra::model::Role;
use sea_infra::testing::{self, assert_mentions, files_under, require, Prerequisite};

#[test]
fn certs_issues_once_then_keeps_and_rotates_under_the_same_ca() {
    let state = testing::scratch_dir("certs-cli");
    let run = |args: &[&str]| xtask_at(state.path(), args, &[]);
    let first = run(&["certs"]);
    assert_eq!(first.code, Some(0), "{}", first.all);
    let lines: Vec<&str> = first.stdout.lines().collect();
    // The CA, 16 server names (15 of the profiles, nats-0 of the pods), 5 client roles.
    assert_eq!(lines.len(), 1 + 16 + 5, "{}", first.stdout);
    assert!(
        lines.iter().all(|l| l.ends_with("  issued")),
        "{}",
        first.stdout
    );
    assert!(lines[0].starts_with("ca ") && first.all.contains("namespace default"));
    let again = run(&["certs"]);
    assert!(
        again.stdout.lines().all(|l| l.ends_with("  kept")),
        "{}",
        again.all
    );
    let rotated = run(&["certs", "--rotate", "--json"]);
    assert_eq!(rotated.code, Some(0), "{}", rotated.all);
    let json = rotated.json();
    let certs = json["certificates"].as_array().expect("a JSON list");
    assert_eq!(certs.len(), lines.len());
    assert_eq!(certs[0]["name"], "ca");
    assert_eq!(certs[0]["issued_now"], false, "the CA was replaced");
    assert!(certs[1..].iter().all(|c| c["issued_now"] == true));
    let serial_before = lines[1].split_whitespace().nth(2).unwrap();
    assert_eq!(certs[1]["name"], "nats-1");
    assert_ne!(certs[1]["serial"], serial_before);
    let tls = state.path().join("secrets/tls");
    assert!(tls.join("cell-b-3.pem").is_file() && tls.join("client-worker-key.pem").is_file());
    let bad = run(&["certs", "--namespace", "Not_A_Namespace"]);
    assert_eq!(bad.code, Some(2), "{}", bad.all);
    assert!(
        bad.all.contains("is not a Kubernetes namespace"),
        "{}",
        bad.all
    );
}

/// Every value of the secrets file, decrypted with the real tools.
fn values(file: &Path, key: &Path) -> Vec<String> {
    testing::sops()
        .decrypt(file, key)
        .unwrap()
        .into_iter()
        .map(|(_, v)| v.expose().to_owned())
        .collect()
}

#[test]
fn secrets_commands_never_show_a_value() {
    if !require("secrets_commands_never_show_a_value", Prerequisite::Age) {
        return;
    }
    let state = testing::scratch_dir("secrets-cli");
    let sops_bin = testing::sops().path.display().to_string();
    let file = state.path().join("secrets/secrets.env.sops");
    let key = state.path().join("secrets/age.key");
    let mut outputs: Vec<Run> = Vec::new();
    let mut run = |args: &[&str], extra: &[(&str, &str)]| {
        let mut vars = vec![("SOPS_BIN", sops_bin.as_str())];
        vars.extend_from_slice(extra);
        let out = xtask_at(state.path(), args, &vars);
        let (code, all) = (out.code, out.all.clone());
        outputs.push(out);
        (code, all)
    };

    let (code, init) = run(&["secrets", "init"], &[]);
    assert_eq!(code, Some(0), "{init}");
    assert_mentions(
        &init,
        &[
            "(created), recipient age1",
            "NATS_PASSWORD_ADMIN",
            "NATS_PASSWORD_LEAF",
        ],
    );
    let recipient = age::recipient(&key).unwrap();
    let mut secret_values = values(&file, &key);
    assert_eq!(secret_values.len(), Role::ALL.len());

    let (code, again) = run(&["secrets", "init"], &[]);
    assert_eq!(code, Some(1), "{again}");
    assert_mentions(&again, &["secrets.env.sops exists", "--force"]);

    let (code, show) = run(&["secrets", "show"], &[]);
    assert_eq!(code, Some(0), "{show}");
    assert_mentions(
        &show,
        &[
            &format!("recipient {recipient}"),
            "key NATS_PASSWORD_WORKER",
            "decrypts with",
            "ok (accounts mode, 7 passwords; TLS: development CA, per-server certificates)",
        ],
    );

    let (code, forced) = run(&["secrets", "init", "--force"], &[]);
    assert_eq!(code, Some(0), "{forced}");
    assert_mentions(&forced, &["(kept)", "(replaced)"]);
    assert_eq!(age::recipient(&key).unwrap(), recipient, "the key changed");
    let new_values = values(&file, &key);
    assert!(
        new_values.iter().all(|v| !secret_values.contains(v)),
        "not regenerated"
    );
    secret_values.extend(new_values);

    // The wrong key, through sops's own variable.
    let other = state.path().join("other.key");
    age::generate(&other).unwrap();
    let other_path = other.display().to_string();
    let (code, wrong) = run(&["secrets", "show"], &[("SOPS_AGE_KEY_FILE", &other_path)]);
    assert_eq!(code, Some(1), "{wrong}");
    assert_mentions(
        &wrong,
        &[
            "cannot be decrypted with the age key",
            "other.key",
            &recipient,
        ],
    );

    // A value changed outside sops.
    let text = std::fs::read_to_string(&file).unwrap();
    let at = text
        .find("NATS_PASSWORD_ADMIN=ENC[AES256_GCM,data:")
        .unwrap()
        + 40;
    let flipped = if text.as_bytes()[at] == b'A' {
        "B"
    } else {
        "A"
    };
    std::fs::write(
        &file,
        format!("{}{flipped}{}", &text[..at], &text[at + 1..]),
    )
    .unwrap();
    let (code, tampered) = run(&["secrets", "show"], &[]);
    assert_eq!(code, Some(1), "{tampered}");
    assert_mentions(
        &tampered,
        &["fails sops's integrity check", "secrets.env.sops"],
    );

    for out in &outputs {
        for value in &secret_values {
            assert!(
                !out.all.contains(value.as_str()),
                "a secret value was printed:\n{}",
                out.all
            );
        }
    }
    // No plaintext left on disk: only the encrypted file and the keys are there.
    for path in files_under(state.path()) {
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for value in &secret_values {
            assert!(
                !text.contains(value.as_str()),
                "{} holds a secret value",
                path.display()
            );
        }
    }
}

/// `verify --secure` on a private cluster secured with the operator's secrets file: every step
/// passes (bring-up, gate over HTTPS, provisioning as admin, the worker round trip and the
/// drills over TLS), and no secret value reaches its output, `--json` or report; nor does
/// `reload` (the profile is not running: refused) or `secrets k8s` print one.
#[test]
fn a_secured_verify_passes_and_shows_no_secret() {
    if !require(
        "a_secured_verify_passes_and_shows_no_secret",
        Prerequisite::Age,
    ) {
        return;
    }
    let state = testing::scratch_dir("secure-verify");
    let sops_bin = testing::sops().path.display().to_string();
    let file = state.path().join("secrets/secrets.env.sops");
    let key = state.path().join("secrets/age.key");
    let file_var = file.display().to_string();
    let vars = [
        ("SOPS_BIN", sops_bin.as_str()),
        ("SEA_SECRETS_FILE", file_var.as_str()),
    ];
    let init = xtask_at(state.path(), &["secrets", "init"], &vars);
    assert_eq!(init.code, Some(0), "{}", init.all);
    let secret_values = values(&file, &key);

    let verify = xtask_at(
        state.path(),
        &["verify", "--secure", "--private", "--json"],
        &vars,
    );
    assert_eq!(verify.code, Some(0), "{}", verify.all);
    let report = verify.json();
    let steps = report["steps"].as_array().expect("steps");
    assert!(
        steps.iter().all(|s| s["status"] == "PASS"),
        "{}",
        verify.all
    );
    assert!(steps.len() >= 9, "{}", verify.all);
    let markdown = std::fs::read_to_string(report["report"].as_str().unwrap()).unwrap();

    let reload = xtask_at(state.path(), &["reload", "--profile", "ha"], &vars);
    assert_eq!(reload.code, Some(1), "{}", reload.all);
    assert_mentions(&reload.all, &["runs without TLS", "up --secure"]);
    let out = state.path().join("k8s-secrets");
    let out_arg = out.display().to_string();
    let k8s = xtask_at(state.path(), &["secrets", "k8s", "--out", &out_arg], &vars);
    assert_eq!(k8s.code, Some(0), "{}", k8s.all);
    assert_mentions(
        &k8s.all,
        &["create secret generic nats-secrets", "sea-mq-worker-nats"],
    );
    assert!(out.join("nats-secrets/server.pem").is_file());

    for (what, text) in [
        ("verify's output", &verify.all),
        ("verify's report", &markdown),
        ("reload's output", &reload.all),
        ("secrets k8s's output", &k8s.all),
    ] {
        for value in &secret_values {
            assert!(
                !text.contains(value.as_str()),
                "a secret value is in {what}"
            );
        }
    }
}
