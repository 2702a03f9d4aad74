//! Unit tests of the certificates: the names requested, issuing, keeping, rotating, and every
//! refusal of `check`, on real certificates in scratch directories.

use super::*;
use crate::deployment::files::mode_of;

fn by_name<'a>(requests: &'a [CertRequest], name: &str) -> &'a CertRequest {
    requests
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no request {name}"))
}

/// Two servers and a client: enough for every case, quick to issue.
fn few() -> Vec<CertRequest> {
    let all = requests(DEFAULT_NAMESPACE);
    ["nats-1", "nats-2", "client-admin"]
        .iter()
        .map(|n| by_name(&all, n).clone())
        .collect()
}

fn assert_mentions(text: &str, needles: &[&str]) {
    let missing: Vec<_> = needles.iter().filter(|n| !text.contains(**n)).collect();
    assert!(missing.is_empty(), "missing {missing:?} in:\n{text}");
}

fn parsed(path: &Path) -> Vec<u8> {
    read_pem_certs(path).unwrap().remove(0)
}

#[test]
fn requests_hold_every_name_a_peer_or_client_dials() {
    let all = requests("prod");
    let nats_1 = by_name(&all, "nats-1");
    assert_eq!(nats_1.usage, Usage::Server);
    for san in [
        "localhost",
        "127.0.0.1",
        "nats-1",
        "nats-1.nats-headless",
        "nats-1.nats-headless.prod.svc.cluster.local",
        "nats",
        "nats.prod.svc",
        "nats.prod.svc.cluster.local",
    ] {
        assert!(
            nats_1.sans.contains(&san.to_owned()),
            "nats-1 lacks {san}: {:?}",
            nats_1.sans
        );
    }
    // The pod that only Kubernetes has, and every server of every profile.
    assert!(by_name(&all, "nats-0")
        .sans
        .contains(&"nats-0.nats-headless".to_owned()));
    for profile in Profile::ALL {
        for (_, server) in Topology::for_profile(profile).servers() {
            let r = by_name(&all, &server.name);
            for san in ["localhost", "127.0.0.1", server.name.as_str()] {
                assert!(
                    r.sans.contains(&san.to_owned()),
                    "{} lacks {san}",
                    server.name
                );
            }
        }
    }
    assert_eq!(
        by_name(&all, "sea-a-1").sans,
        ["localhost", "127.0.0.1", "sea-a-1"]
    );
    assert!(!by_name(&all, "cell-b-3")
        .sans
        .iter()
        .any(|s| s.contains("svc")));
    let clients: Vec<_> = all.iter().filter(|r| r.usage == Usage::Client).collect();
    assert_eq!(
        clients.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        [
            "client-admin",
            "client-worker",
            "client-publisher",
            "client-monitor",
            "client-ops"
        ]
    );
    assert_eq!(by_name(&all, "client-worker").sans, ["worker"]);
    let names: BTreeSet<_> = all.iter().map(|r| &r.name).collect();
    assert_eq!(names.len(), all.len(), "a name requested twice");
    assert_eq!(requests("prod"), all, "not deterministic");
    assert!(parse_namespace("Prod").is_err() && parse_namespace("-x").is_err());
    assert_eq!(parse_namespace("sea-prod"), Ok("sea-prod".to_owned()));
}

#[test]
fn the_development_certificates_cover_what_every_deployment_checks() {
    let dev = requests(DEFAULT_NAMESPACE);
    for profile in Profile::ALL {
        let host = Topology::for_profile(profile);
        for view in [host.clone(), host.in_containers(), k8s::topology()] {
            for needed in requests_for(&view, false) {
                let have = by_name(&dev, &needed.name);
                for san in &needed.sans {
                    assert!(have.sans.contains(san), "{} lacks {san}", needed.name);
                }
            }
        }
    }
    let shared = requests_for(&Topology::for_profile(Profile::Mesh).in_containers(), true);
    assert_eq!(shared.len(), 1);
    assert_eq!(shared[0].name, "server");
    assert_eq!(shared[0].sans.len(), 2 + 6, "{:?}", shared[0].sans);
    assert_eq!(
        requests_for(&Topology::for_profile(Profile::Ha), false)[2].sans,
        ["localhost", "127.0.0.1"]
    );
}

#[test]
fn issued_certificates_have_the_names_usages_and_modes_they_need() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    let all = requests(DEFAULT_NAMESPACE);
    let statuses = ensure(&tls, &all, false).unwrap();
    assert_eq!(statuses.len(), all.len() + 1);
    assert!(statuses.iter().all(|s| s.issued_now));
    assert_eq!(statuses[0].name, CA_NAME);
    check(&tls, &all).unwrap();
    assert_eq!(mode_of(&tls).unwrap(), 0o700);
    for entry in std::fs::read_dir(&tls).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode_of(&path).unwrap(), 0o600, "{}", path.display());
    }
    let der = parsed(&tls.join("nats-1.pem"));
    let cert = parse(&der);
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    let names = &cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names;
    assert!(
        names.contains(&GeneralName::IPAddress(&[127, 0, 0, 1])),
        "{names:?}"
    );
    assert!(names.contains(&GeneralName::DNSName(
        "nats-1.nats-headless.default.svc.cluster.local"
    )));
    let der = parsed(&tls.join("client-monitor.pem"));
    let client = parse(&der);
    let eku = client.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    let ca_der = parsed(&tls.join(CA_FILE));
    assert!(parse(&ca_der).is_ca());
}

#[test]
fn ensure_keeps_good_certificates_and_rotate_replaces_them_under_the_same_ca() {
    let dir = tempfile::tempdir().unwrap();
    let reqs = few();
    let first = ensure(dir.path(), &reqs, false).unwrap();
    let again = ensure(dir.path(), &reqs, false).unwrap();
    assert!(again.iter().all(|s| !s.issued_now), "{again:?}");
    assert_eq!(
        first.iter().map(|s| &s.serial).collect::<Vec<_>>(),
        again.iter().map(|s| &s.serial).collect::<Vec<_>>()
    );
    let rotated = ensure(dir.path(), &reqs, true).unwrap();
    assert_eq!(rotated[0].serial, first[0].serial, "the CA changed");
    assert!(!rotated[0].issued_now);
    for (old, new) in first.iter().zip(&rotated).skip(1) {
        assert!(
            new.issued_now && new.serial != old.serial,
            "{} kept its serial",
            new.name
        );
    }
    check(dir.path(), &reqs).unwrap();
    // No temporary file is left behind.
    let stray: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn ensure_reissues_expiring_and_renamed_certificates_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut reqs = few();
    let first = ensure(dir.path(), &reqs, false).unwrap();
    // 340 days on, 25 are left: inside the renewal window (the CA has years).
    let later = OffsetDateTime::now_utc() + Duration::days(340);
    let renewed = ensure_at(dir.path(), &reqs, false, later).unwrap();
    assert!(!renewed[0].issued_now);
    assert!(renewed[1..].iter().all(|s| s.issued_now));
    // A name added to one request: only that certificate is reissued.
    reqs[1].sans.push("nats-2.example.internal".to_owned());
    let before = ensure(dir.path(), &few(), false).unwrap();
    let after = ensure(dir.path(), &reqs, false).unwrap();
    let issued: Vec<_> = after
        .iter()
        .filter(|s| s.issued_now)
        .map(|s| &s.name)
        .collect();
    assert_eq!(issued, ["nats-2"]);
    assert_eq!(before[1].serial, after[1].serial);
    assert_ne!(first[2].serial, after[2].serial);
    check(dir.path(), &reqs).unwrap();
}

#[test]
fn a_half_present_ca_is_refused_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    ensure(dir.path(), &few(), false).unwrap();
    std::fs::remove_file(dir.path().join(CA_KEY_FILE)).unwrap();
    let err = ensure(dir.path(), &few(), false).unwrap_err().to_string();
    assert!(
        err.contains("ca-key.pem is missing") && err.contains("cargo xtask certs"),
        "{err}"
    );
}

/// `check`'s error for a directory, as text, with the problems it found.
fn refusal(dir: &Path, reqs: &[CertRequest]) -> (String, Vec<CertProblem>) {
    match check(dir, reqs) {
        Err(CertError::Invalid(problems)) => {
            (CertError::Invalid(problems.clone()).to_string(), problems)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A fresh directory of good certificates for [`few`].
fn good_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ensure(dir.path(), &few(), false).unwrap();
    dir
}

#[test]
fn check_refuses_missing_and_unreadable_files() {
    let dir = good_dir();
    std::fs::remove_file(dir.path().join("nats-1.pem")).unwrap();
    std::fs::write(dir.path().join("nats-2-key.pem"), "not a key").unwrap();
    let (text, problems) = refusal(dir.path(), &few());
    assert_eq!(problems.len(), 2, "{text}");
    assert_eq!(problems[0].kind, ProblemKind::Missing);
    assert_eq!(problems[0].file, dir.path().join("nats-1.pem"));
    assert!(matches!(problems[1].kind, ProblemKind::Unreadable(_)));
    assert_eq!(problems[1].name, "nats-2");
    assert_mentions(
        &text,
        &[
            "nats-1.pem (nats-1) is missing",
            "run `cargo xtask certs`",
            "nats-2-key.pem (nats-2) cannot be read",
            "PKCS#8",
        ],
    );
    std::fs::remove_file(dir.path().join(CA_FILE)).unwrap();
    let (text, problems) = refusal(dir.path(), &few());
    assert_eq!(problems[0].kind, ProblemKind::Missing);
    assert!(
        text.contains("ca.pem (ca) is missing") && text.contains("NATS_TLS_CA"),
        "{text}"
    );
}

#[test]
fn check_refuses_an_expired_certificate() {
    let dir = good_dir();
    let ca = std::fs::read_to_string(dir.path().join(CA_FILE)).unwrap();
    let key = read_key(&dir.path().join(CA_KEY_FILE)).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca, &key).unwrap();
    let long_ago = OffsetDateTime::now_utc() - Duration::days(400);
    let (cert, key) = issue(&few()[0], &issuer, long_ago, CERT_VALIDITY).unwrap();
    std::fs::write(dir.path().join("nats-1.pem"), cert).unwrap();
    std::fs::write(dir.path().join("nats-1-key.pem"), key).unwrap();
    let (text, problems) = refusal(dir.path(), &few());
    assert!(
        matches!(
            problems[..],
            [CertProblem {
                kind: ProblemKind::Expired { .. },
                ..
            }]
        ),
        "{text}"
    );
    assert!(
        text.contains("nats-1.pem (nats-1) expired at") && text.contains("reissue it"),
        "{text}"
    );
    // ensure replaces it.
    let statuses = ensure(dir.path(), &few(), false).unwrap();
    assert!(statuses[1].issued_now && !statuses[2].issued_now);
    check(dir.path(), &few()).unwrap();
}

#[test]
fn check_refuses_a_certificate_without_a_name_peers_dial() {
    let dir = good_dir();
    let mut reqs = few();
    reqs[0].sans.push("nats-1.sea.example".to_owned());
    let (text, problems) = refusal(dir.path(), &reqs);
    assert_eq!(
        problems[0].kind,
        ProblemKind::MissingSan("nats-1.sea.example".into())
    );
    assert!(
        text.contains("has no subject alternative name `nats-1.sea.example`"),
        "{text}"
    );
}

#[test]
fn check_refuses_a_certificate_of_another_ca_and_a_ca_that_is_none() {
    let dir = good_dir();
    let other = good_dir();
    for file in ["nats-1.pem", "nats-1-key.pem"] {
        std::fs::copy(other.path().join(file), dir.path().join(file)).unwrap();
    }
    let (text, problems) = refusal(dir.path(), &few());
    assert_eq!(problems.len(), 1, "{text}");
    assert_eq!(problems[0].kind, ProblemKind::WrongCa);
    assert!(
        text.contains("is not signed by the CA in ca.pem") && text.contains("NATS_TLS_CA"),
        "{text}"
    );
    std::fs::copy(dir.path().join("nats-2.pem"), dir.path().join(CA_FILE)).unwrap();
    let (text, problems) = refusal(dir.path(), &few());
    assert_eq!(problems[0].kind, ProblemKind::NotACa, "{text}");
}

#[test]
fn check_refuses_a_key_that_is_not_the_certificates() {
    let dir = good_dir();
    std::fs::copy(
        dir.path().join("nats-2-key.pem"),
        dir.path().join("nats-1-key.pem"),
    )
    .unwrap();
    let (text, problems) = refusal(dir.path(), &few());
    assert_eq!(problems.len(), 1, "{text}");
    assert_eq!(problems[0].kind, ProblemKind::KeyMismatch);
    assert_eq!(problems[0].file, dir.path().join("nats-1-key.pem"));
    assert!(
        text.contains("is not the key of nats-1's certificate"),
        "{text}"
    );
}

#[test]
fn check_refuses_a_client_certificate_where_a_server_one_is_needed() {
    let dir = good_dir();
    let mut reqs = few();
    reqs[2].usage = Usage::Server;
    let (text, problems) = refusal(dir.path(), &reqs);
    assert_eq!(
        problems[0].kind,
        ProblemKind::MissingUsage("serverAuth"),
        "{text}"
    );
}
