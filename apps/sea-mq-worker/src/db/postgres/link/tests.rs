//! Unit tests of the link's parsing: where `sslmode` and `sslrootcert` are found in both forms of
//! a connection string, libpq's modes, the environment's defaults, and every refusal.

use super::*;

/// A directory with a development CA (`ca.pem`) from the project's certificate code.
fn ca_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    sea_infra::deployment::certs::ensure(dir.path(), &[], false).unwrap();
    dir
}

fn split(s: &str) -> Split {
    split_tls_params(s).unwrap()
}

#[test]
fn tls_parameters_leave_a_url_and_the_rest_stays_as_written() {
    assert_eq!(
        split("postgres://app:pw@db:5432/sea?sslmode=verify-full&application_name=w&sslrootcert=%2Fetc%2Fca.pem"),
        Split {
            rest: "postgres://app:pw@db:5432/sea?application_name=w".into(),
            sslmode: Some("verify-full".into()),
            sslrootcert: Some("/etc/ca.pem".into()),
        }
    );
    assert_eq!(
        split("postgresql://db/sea?sslmode=require").rest,
        "postgresql://db/sea"
    );
    // The query starts after the userinfo, which may hold a `?` (tokio-postgres reads it so).
    let s = split("postgres://app:p?sslmode=x@db/sea?sslmode=disable");
    assert_eq!(s.rest, "postgres://app:p?sslmode=x@db/sea");
    assert_eq!(s.sslmode.as_deref(), Some("disable"));
    // Percent-encoded keys count; the last one wins; no query at all.
    assert_eq!(
        split("postgres://db/sea?ssl%6Dode=allow&sslmode=prefer")
            .sslmode
            .as_deref(),
        Some("prefer")
    );
    assert_eq!(
        split("postgres://app:pw@db/sea"),
        Split {
            rest: "postgres://app:pw@db/sea".into(),
            sslmode: None,
            sslrootcert: None
        }
    );
    // Not parameters: left for tokio-postgres to refuse.
    assert_eq!(
        split("postgres://db/sea?oops").rest,
        "postgres://db/sea?oops"
    );
}

#[test]
fn tls_parameters_leave_a_key_value_string_tokenized_as_libpq_does() {
    let s = split(
        r"host=db sslmode = 'verify-ca' password='a sslmode=disable \' b' sslrootcert=/ca\ dir/ca.pem dbname=sea",
    );
    assert_eq!(s.sslmode.as_deref(), Some("verify-ca"));
    assert_eq!(s.sslrootcert.as_deref(), Some("/ca dir/ca.pem"));
    assert_eq!(
        s.rest,
        r"host=db  password='a sslmode=disable \' b'  dbname=sea"
    );
    let config: tokio_postgres::Config = s.rest.parse().unwrap();
    assert_eq!(config.get_password(), Some(&b"a sslmode=disable ' b"[..]));
    assert_eq!(config.get_dbname(), Some("sea"));
    assert!(split_tls_params("host=db sslrootcert='/x").is_err());
    assert!(split_tls_params("host=db sslmode=").is_err());
    // Another key's broken value is left for tokio-postgres.
    assert_eq!(split("host=db password='x").rest, "host=db password='x");
}

#[test]
fn sslmodes_are_libpqs_six_and_nothing_else() {
    for (name, mode) in MODES {
        assert_eq!(SslMode::parse(name), Ok(mode));
        assert_eq!(mode.as_str(), name);
    }
    for bad in ["VERIFY-FULL", "verify_full", "on", "", "true"] {
        let err = SslMode::parse(bad).unwrap_err();
        assert!(err.contains("verify-full") && !err.contains(&format!("`{bad}`")));
    }
}

fn parse(s: &str, env: &PgEnv) -> Result<PgLink, LinkError> {
    PgLink::parse(s, env)
}

#[test]
fn the_string_wins_over_the_environment_and_prefer_is_the_default() {
    let dir = ca_dir();
    let ca = dir.path().join("ca.pem").display().to_string();
    let none = PgEnv::default();
    let link = parse("postgres://app:pw@db/sea", &none).unwrap();
    assert_eq!(
        (link.mode, link.mode_given_by, link.ca),
        (SslMode::Prefer, None, None)
    );

    let env = PgEnv {
        sslmode: Some("verify-full".into()),
        sslrootcert: Some(ca.clone()),
    };
    let link = parse("host=db user=app", &env).unwrap();
    assert_eq!(link.mode, SslMode::VerifyFull);
    assert_eq!(link.mode_given_by, Some("PGSSLMODE"));
    let given = link.ca.as_ref().unwrap();
    assert_eq!((given.given_by, given.certs.len()), ("PGSSLROOTCERT", 1));

    let link = parse(
        &format!("postgres://db/sea?sslmode=require&sslrootcert={ca}"),
        &PgEnv {
            sslmode: Some("nonsense".into()),
            sslrootcert: Some("/nowhere".into()),
        },
    )
    .unwrap();
    assert_eq!(link.mode, SslMode::Require);
    assert_eq!(link.ca.unwrap().given_by, CA_IN_URL);
    assert_eq!(
        link.config.get_ssl_mode(),
        tokio_postgres::config::SslMode::Prefer
    );
}

#[test]
fn bad_tls_settings_are_refused_naming_the_variable_and_the_fix_never_a_credential() {
    let dir = ca_dir();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "just text\n").unwrap();
    let key_only = dir.path().join("ca-key.pem");
    let none = PgEnv::default();
    let url = |q: &str| format!("postgres://app:pg-s3cret@db/sea?password=pg-s3cret&{q}");
    let cases: Vec<(String, PgEnv, &str, &[&str])> = vec![
        (
            url("sslmode=verify-fulll"),
            none.clone(),
            "DATABASE_URL",
            &["sslmode", "verify-full"],
        ),
        (
            url("sslmode=verify-full"),
            none.clone(),
            "DATABASE_URL",
            &["sslrootcert=", "PGSSLROOTCERT", "sslmode=require"],
        ),
        (
            "host=db password=pg-s3cret".into(),
            PgEnv {
                sslmode: Some("verify-ca".into()),
                sslrootcert: None,
            },
            "PGSSLMODE",
            &["none is given", "PGSSLROOTCERT"],
        ),
        (
            "host=db password=pg-s3cret".into(),
            PgEnv {
                sslmode: Some("strict".into()),
                sslrootcert: None,
            },
            "PGSSLMODE",
            &["verify-ca"],
        ),
        (
            url("sslrootcert=/no/such/ca.pem"),
            none.clone(),
            "DATABASE_URL",
            &["cannot read /no/such/ca.pem", "PEM file of the CA"],
        ),
        (
            url(&format!("sslrootcert={}", garbage.display())),
            none.clone(),
            "DATABASE_URL",
            &["cannot serve as a CA"],
        ),
        (
            url(&format!("sslrootcert={}", empty.display())),
            none.clone(),
            "DATABASE_URL",
            &["holds no certificate"],
        ),
        (
            url(&format!("sslrootcert={}", key_only.display())),
            none.clone(),
            "DATABASE_URL",
            &["holds no certificate"],
        ),
        (
            url("sslrootcert=system"),
            none.clone(),
            "DATABASE_URL",
            &["not supported", "ca-certificates.crt"],
        ),
        (
            "host=db password=pg-s3cret".into(),
            PgEnv {
                sslmode: None,
                sslrootcert: Some(dir.path().display().to_string()),
            },
            "PGSSLROOTCERT",
            &["cannot read"],
        ),
    ];
    for (conninfo, env, var, mentions) in cases {
        let err = parse(&conninfo, &env).unwrap_err();
        assert_eq!(err.var, var, "{conninfo}: {err:?}");
        for m in mentions {
            assert!(
                err.reason.contains(m),
                "{conninfo}: {m:?} not in {}",
                err.reason
            );
        }
        assert!(!err.reason.contains("pg-s3cret"), "{}", err.reason);
    }
}

#[test]
fn unix_sockets_only_ignore_sslmode() {
    let none = PgEnv::default();
    assert!(
        parse("host=/run/postgresql dbname=sea sslmode=require", &none)
            .unwrap()
            .only_unix_sockets()
    );
    assert!(!parse("host=/run/postgresql,db dbname=sea", &none)
        .unwrap()
        .only_unix_sockets());
    assert!(!parse("postgres://db/sea", &none)
        .unwrap()
        .only_unix_sockets());
}

proptest::proptest! {
    /// Whatever a password holds (quotes, backslashes, `sslmode=...` text), the TLS parameters
    /// around it are found and it reaches tokio-postgres unchanged, in both forms.
    #[test]
    fn tls_parameters_are_found_around_any_password(
        password in "[ -~]{1,24}",
        mode in proptest::sample::select(MODES.iter().map(|(n, _)| *n).filter(|n| !n.starts_with("verify")).collect::<Vec<_>>()),
    ) {
        let quoted = password.replace('\\', "\\\\").replace('\'', "\\'");
        let encoded = percent_encoding::utf8_percent_encode(&password, percent_encoding::NON_ALPHANUMERIC).to_string();
        for conninfo in [
            format!("host=db password='{quoted}' sslmode={mode} dbname=sea"),
            format!("sslmode = '{mode}' password='{quoted}'  host=db"),
            format!("postgres://app:{encoded}@db/sea?sslmode={mode}&application_name=w"),
            format!("postgres://app@db/sea?password={encoded}&sslmode={mode}"),
        ] {
            let link = parse(&conninfo, &PgEnv::default()).unwrap();
            proptest::prop_assert_eq!(link.mode.as_str(), mode);
            proptest::prop_assert_eq!(link.config.get_password(), Some(password.as_bytes()));
        }
    }
}
