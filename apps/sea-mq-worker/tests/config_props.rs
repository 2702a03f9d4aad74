//! Property tests of the worker's configuration: any `DATABASE_URL` is parsed without a panic,
//! and a generated password in any accepted form never shows, neither in the error that refuses
//! the value nor in the `Debug` of the accepted one.

use proptest::prelude::*;
use sea_infra::env::EnvReader;
use sea_mq_worker::config::{parse_database_url, WorkerConfig};

/// A password nothing else in the text can contain by chance.
fn secret(chars: &'static str) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("{chars}{{10,24}}"))
        .unwrap()
        .prop_map(|s| format!("Z9{s}"))
}

/// What the worker would print of `DATABASE_URL=value`: its errors, or the accepted value.
fn printed(value: &str) -> String {
    match WorkerConfig::from_env(EnvReader::from_pairs([("DATABASE_URL", value)])) {
        Ok(cfg) => format!("{:?}", cfg.database),
        Err(errors) => errors.to_string(),
    }
}

proptest! {
    #[test]
    fn any_database_url_parses_without_panic(s in any::<String>()) {
        let _ = parse_database_url(&s);
        let _ = printed(&s);
    }

    #[test]
    fn a_database_password_never_shows(
        url_password in secret("([A-Za-z0-9._~!$&'()*+,;=:/?#-]|%[0-9A-F]{2})"),
        query_password in secret("[!-%'-~]"),
        quoted in secret("[ -~]"),
        tail in "[a-z =&?'@:/]{0,12}",
    ) {
        let quoted_escaped = quoted.replace('\\', "\\\\").replace('\'', "\\'");
        for value in [
            format!("postgres://app:{url_password}@db:5432/sea{tail}"),
            format!("postgresql://app@db/sea?password={query_password}{tail}"),
            format!("postgres://app@db/sea?sslpassword={query_password}"),
            format!("host=db password={query_password} user=app{tail}"),
            format!("host=db password = '{quoted_escaped}' dbname=sea{tail}"),
            format!("sqlite-ish://app:{url_password}@db"),
        ] {
            let out = printed(&value);
            for s in [&url_password, &query_password, &quoted, &quoted_escaped] {
                prop_assert!(!out.contains(s.as_str()), "{s:?} shown:\n in: {value}\nout: {out}");
            }
        }
    }
}
