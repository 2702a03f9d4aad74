//! Secured deployments for real: TLS on every listener, accounts with least-privilege users (or
//! a token), checked against live nats-server processes. What the listeners refuse is judged by
//! an independent client (nats-py and Python's own TLS, `tests/independent/secure_check.py`);
//! bad certificates are refused before any server starts, and a reload never trades a working
//! certificate for a broken one.

use std::path::Path;
use std::time::Duration;

use async_nats::jetstream;
use nix::sys::signal::Signal;
use sea_infra::client::{crosscheck, federation};
use sea_infra::deployment::certs::{self, Usage};
use sea_infra::model::topology::PortRole;
use sea_infra::model::{Profile, Role, Security, Spec};
use sea_infra::testing::{
    files_under, independent_check, nats_server, require, scratch_dir, Prerequisite, TestCluster,
};
use serde_json::{json, Value};

/// Client certificates of a CA that is not the deployment's (another development CA).
fn foreign_client_cert(dir: &Path) -> (String, String) {
    let clients: Vec<_> = certs::requests(certs::DEFAULT_NAMESPACE)
        .into_iter()
        .filter(|r| r.usage == Usage::Client)
        .collect();
    certs::ensure(dir, &clients, false).expect("issue a foreign CA's certificates");
    let path = |name: &str| dir.join(name).display().to_string();
    (path("client-ops.pem"), path("client-ops-key.pem"))
}

/// The checker's configuration for `role`, with a foreign CA's certificate to try as well.
fn checker_config(cluster: &TestCluster, role: Role, foreign: &Path) -> Value {
    let mut config = cluster.checker_config(role);
    let (other_cert, other_key) = foreign_client_cert(foreign);
    config["other_cert"] = json!(other_cert);
    config["other_key"] = json!(other_key);
    config
}

/// Every listener of `server` except monitoring (checked over HTTP separately).
fn listeners(cluster: &TestCluster, server: &str) -> Vec<Value> {
    let host = &cluster.topology().settings.host;
    cluster
        .topology()
        .ports()
        .into_iter()
        .filter(|u| u.server == server && u.role != PortRole::Monitor)
        .map(|u| json!({ "name": u.to_string(), "kind": u.role.to_string(), "host": host, "port": u.port }))
        .collect()
}

/// Checks the checker's verdict on every listener it was given.
fn assert_refusals(answer: &Value, expected_kinds: &[&str]) {
    let map = answer.as_object().expect("one entry per listener");
    let kinds: Vec<&str> = map.values().filter_map(|v| v["kind"].as_str()).collect();
    for kind in expected_kinds {
        assert!(kinds.contains(kind), "no {kind} listener checked: {answer}");
    }
    for (name, v) in map {
        // Client and leafnode listeners announce TLS in their INFO; route and gateway
        // listeners send nothing until the peer's TLS handshake (measured on 2.15.1).
        if v["plaintext"]["info"] == true {
            assert_eq!(v["plaintext"]["tls_required"], true, "{name}: {v}");
        } else {
            assert!(
                v["kind"] == "route" || v["kind"] == "gateway",
                "{name}: {v}"
            );
        }
        assert_eq!(v["plaintext"]["refused"], true, "{name}: {v}");
        assert_eq!(v["foreign_cert"]["refused"], true, "{name}: {v}");
        if v["kind"] == "client" {
            let wrong = v["wrong_password"].as_str().unwrap_or_default();
            assert!(wrong.contains("Authorization Violation"), "{name}: {wrong}");
            assert_eq!(v["right_password"], true, "{name}: {v}");
        }
    }
}

/// Plain HTTP to the monitoring port gets no monitoring data (it speaks HTTPS only).
async fn assert_monitor_is_https_only(cluster: &TestCluster, server: &str) {
    let t = cluster.topology();
    let (_, s) = t.server(server).unwrap();
    let plain = format!("http://{}:{}/varz", t.settings.host, s.monitor_port);
    let answer = reqwest::get(&plain).await;
    if let Ok(r) = answer {
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        assert!(
            !body.contains("server_id"),
            "{plain} answered {status}: {body}"
        );
    }
    let https = cluster.deployment().monitor();
    https
        .healthz(&t.monitor_url(s))
        .await
        .expect("HTTPS with the deployment's CA works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secured_mesh_refuses_plaintext_foreign_certificates_and_wrong_passwords_on_every_listener(
) {
    let test = "a_secured_mesh_refuses_plaintext_foreign_certificates_and_wrong_passwords_on_every_listener";
    if !require(test, Prerequisite::NatsPy) {
        return;
    }
    let mesh = TestCluster::secured(Profile::Mesh, Security::Accounts);
    mesh.up().await;
    for url in mesh.server_urls() {
        assert!(url.starts_with("tls://"), "{url}");
    }
    // Federation works secured: provisioning as the admin, the checks as the operator.
    federation::provision_topology(mesh.topology(), &mesh.nats(Role::Admin), &Spec::builtin())
        .await
        .expect("provision as admin");
    let t = mesh.topology();
    let urls = |c: &str| t.client_urls(t.cluster(c).unwrap());
    let report = crosscheck::mesh_checks(&mesh.nats(Role::Ops), &urls("sea-a"), &urls("sea-b"))
        .await
        .expect("gateways carry messages and the mirror catches up over TLS");
    assert_eq!(report.events, 20);

    let foreign = scratch_dir("foreign-ca");
    let mut config = checker_config(&mesh, Role::Ops, foreign.path());
    config["listeners"] = json!(listeners(&mesh, "sea-a-1"));
    let answer = independent_check("listeners", &config);
    assert_refusals(&answer, &["client", "route", "gateway"]);
    assert_monitor_is_https_only(&mesh, "sea-a-1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secured_cells_federate_over_tls_and_the_leafnode_listener_refuses_strangers() {
    let test = "secured_cells_federate_over_tls_and_the_leafnode_listener_refuses_strangers";
    if !require(test, Prerequisite::NatsPy) {
        return;
    }
    let leaf = TestCluster::secured(Profile::Leaf, Security::Accounts);
    leaf.up().await;
    federation::provision_topology(leaf.topology(), &leaf.nats(Role::Admin), &Spec::builtin())
        .await
        .expect("provision both cells as admin");
    let t = leaf.topology();
    let urls = |c: &str| t.client_urls(t.cluster(c).unwrap());
    let report = crosscheck::leaf_checks(
        &leaf.nats(Role::Ops),
        &urls("cell-a"),
        &urls("cell-b"),
        "cell-a",
    )
    .await
    .expect("the federated subjects cross, the others stay, the mirror catches up");
    assert_eq!(report.crossed.len(), 3);

    let foreign = scratch_dir("foreign-ca");
    let mut config = checker_config(&leaf, Role::Ops, foreign.path());
    config["listeners"] = json!(listeners(&leaf, "cell-a-1"));
    let answer = independent_check("listeners", &config);
    assert_refusals(&answer, &["client", "route", "leafnode"]);
}

/// `0a1b...` as the checker prints it: lowercase hex without leading zeros.
fn normalized(serial: &str) -> String {
    serial
        .to_ascii_lowercase()
        .trim_start_matches('0')
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_takes_new_certificates_and_never_a_broken_one() {
    let test = "a_reload_takes_new_certificates_and_never_a_broken_one";
    if !require(test, Prerequisite::NatsPy) {
        return;
    }
    let cluster = TestCluster::secured(Profile::Ha, Security::Accounts);
    cluster.up().await;
    let dep = cluster.deployment();
    let access = dep.access().unwrap();
    let spec = Spec::builtin();
    let before = cluster.served_serial("nats-1");

    // A broken source certificate: refused before anything is written or signalled.
    let source = access.tls_dir().join("nats-1.pem");
    let good = std::fs::read(&source).unwrap();
    std::fs::write(&source, b"-----BEGIN CERTIFICATE-----\nnot a certificate\n").unwrap();
    let err = dep
        .reload(&spec)
        .expect_err("a broken certificate is refused");
    let text = format!("{err:#}");
    assert!(text.contains("nats-1"), "{text}");
    assert_eq!(cluster.served_serial("nats-1"), before);
    std::fs::write(&source, good).unwrap();

    // A broken file where the server reads it: nats-server refuses the reload and keeps
    // serving the old certificate.
    let served = dep.secrets_dir().join("nats-1.pem");
    let good = std::fs::read(&served).unwrap();
    std::fs::write(&served, b"garbage").unwrap();
    assert!(dep.signal_server("nats-1", Signal::SIGHUP).unwrap());
    let refused = sea_infra::client::observe::time_until(Duration::from_secs(10), || async {
        dep.log_tail("nats-1", 50).contains("Failed to reload")
    })
    .await;
    assert!(refused.is_some(), "{}", dep.log_tail("nats-1", 20));
    assert_eq!(cluster.served_serial("nats-1"), before);
    let client = dep
        .nats(Role::Ops)
        .connect(&[cluster.client_url("nats-1")])
        .await
        .expect("new connections still work on the old certificate");
    drop(client);
    std::fs::write(&served, good).unwrap();

    // A rotation: new certificates under the same CA, reloaded; new handshakes see them.
    let all = certs::requests(certs::DEFAULT_NAMESPACE);
    let issued = certs::ensure(access.tls_dir(), &all, true).expect("rotate");
    let new = issued
        .iter()
        .find(|c| c.name == "nats-1")
        .expect("nats-1 was reissued");
    assert_ne!(normalized(&new.serial), normalized(&before));
    let reloaded = dep.reload(&spec).expect("reload");
    assert_eq!(reloaded.len(), 3, "{reloaded:?}");
    let seen = sea_infra::client::observe::time_until(Duration::from_secs(10), || async {
        normalized(&cluster.served_serial("nats-1")) == normalized(&new.serial)
    })
    .await;
    assert!(
        seen.is_some(),
        "nats-1 still serves {before} after the reload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificates_are_refused_before_any_server_starts() {
    let bin = &nats_server().path;
    let up = |cluster: &TestCluster| {
        let dep = cluster.deployment().clone();
        let bin = bin.clone();
        async move {
            dep.up(&bin, &Default::default(), &|_| {}, std::future::pending())
                .await
        }
    };
    // A missing server certificate.
    let cluster = TestCluster::secured(Profile::Ha, Security::Accounts);
    let tls = cluster
        .deployment()
        .access()
        .unwrap()
        .tls_dir()
        .to_path_buf();
    std::fs::remove_file(tls.join("nats-2.pem")).unwrap();
    let err = up(&cluster).await.expect_err("refused");
    let text = format!("{err:#}");
    assert!(
        text.contains("nats-2.pem") && text.contains("cargo xtask certs"),
        "{text}"
    );
    assert!(cluster.deployment().running_servers().is_empty());
    assert!(!cluster.deployment().state.has_record(), "nothing recorded");

    // A certificate of another CA.
    let cluster = TestCluster::secured(Profile::Ha, Security::Accounts);
    let tls = cluster
        .deployment()
        .access()
        .unwrap()
        .tls_dir()
        .to_path_buf();
    let other = scratch_dir("other-ca");
    certs::ensure(
        other.path(),
        &certs::requests(certs::DEFAULT_NAMESPACE),
        false,
    )
    .unwrap();
    for f in ["nats-3.pem", "nats-3-key.pem"] {
        std::fs::copy(other.path().join(f), tls.join(f)).unwrap();
    }
    let err = up(&cluster).await.expect_err("refused");
    let text = format!("{err:#}");
    assert!(text.contains("nats-3") && text.contains("CA"), "{text}");
    assert!(cluster.deployment().running_servers().is_empty());

    // A token cannot carry the leaf profile's link users.
    let cluster = TestCluster::secured(Profile::Leaf, Security::Token);
    let err = up(&cluster).await.expect_err("refused");
    assert!(format!("{err:#}").contains("token mode"), "{err:#}");
    assert!(cluster.deployment().running_servers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_mode_admits_the_token_and_nothing_else() {
    let cluster = TestCluster::secured(Profile::Single, Security::Token);
    cluster.up().await;
    let js = jetstream::new(cluster.connect_as(Role::Ops).await);
    js.query_account().await.expect("the token opens JetStream");
    let mut wrong = cluster.nats(Role::Ops);
    wrong.auth = sea_infra::client::Auth::Token(sea_infra::env::Secret::new(
        "not-the-token-0123456789".to_owned(),
    ));
    let err = wrong
        .connect(&cluster.server_urls())
        .await
        .expect_err("a wrong token is refused");
    assert!(err.to_string().contains("authorization"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_in_any_file_log_or_report_of_a_secured_deployment() {
    let cluster = TestCluster::secured(Profile::Ha, Security::Accounts);
    let report = cluster.up().await;
    let dep = cluster.deployment();
    federation::provision_topology(&dep.topology, &dep.nats(Role::Admin), &Spec::builtin())
        .await
        .unwrap();
    // Some traffic and a failed login, so the logs have something to say.
    let js = jetstream::new(cluster.connect_as(Role::Ops).await);
    js.publish("sea.event.secret.check", "{}".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let mut wrong = cluster.nats(Role::Worker);
    if let sea_infra::client::Auth::UserPassword { password, .. } = &mut wrong.auth {
        *password = sea_infra::env::Secret::new(format!("{}x", password.expose()));
    }
    assert!(wrong.connect(&cluster.server_urls()).await.is_err());

    let access = dep.access().unwrap();
    let secrets: Vec<String> = access
        .secrets()
        .passwords
        .values()
        .map(|p| p.expose().to_owned())
        .collect();
    let mut texts = vec![
        ("the up report".to_owned(), format!("{report:?}")),
        ("the deployment".to_owned(), format!("{dep:?}")),
        (
            "the worker's env".to_owned(),
            format!("{:?}", access.client_env(Role::Worker)),
        ),
    ];
    for entry in files_under(&cluster.dir()) {
        let text = String::from_utf8_lossy(&std::fs::read(&entry).unwrap_or_default()).into_owned();
        texts.push((entry.display().to_string(), text));
    }
    assert!(
        texts.len() > 10,
        "{:?}",
        texts.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    for (what, text) in &texts {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "a password is in {what}");
        }
    }
}
