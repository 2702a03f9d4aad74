//! Property tests of the environment parsers and of the redaction: arbitrary input never makes
//! them panic, and a generated secret written in any accepted form, inside arbitrary text,
//! never survives [`redact_credentials`] nor an `EnvReader` error.

use proptest::prelude::*;

use super::*;

/// A token: what a URL's userinfo may hold as it is (RFC 3986: unreserved and sub-delims), plus
/// percent-encoded bytes.
const TOKEN: &str = "([A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-F]{2})";
/// A password: the same and `:`.
const PASSWORD: &str = "([A-Za-z0-9._~!$&'()*+,;=:-]|%[0-9A-F]{2})";
/// A PostgreSQL URL's password: its parser also takes `/`, `?` and `#` raw.
const PG_PASSWORD: &str = "([A-Za-z0-9._~!$&'()*+,;=:/?#-]|%[0-9A-F]{2})";

/// A secret nothing else in a test's text can contain by chance.
fn secret(chars: &'static str) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("{chars}{{10,24}}"))
        .unwrap()
        .prop_map(|s| format!("Z9{s}"))
}

/// Arbitrary text around the form (before it, after a space; after it, directly), biased
/// towards the characters the redaction looks at.
fn noise() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z:/@?&=,'\" \\\\%#()_A-Z]{0,40}",
        Just(String::new()),
    ]
}

/// `secret` must be gone from `out`, which came from `input`.
fn assert_gone(out: &str, input: &str, secrets: &[&str]) -> Result<(), TestCaseError> {
    for s in secrets {
        prop_assert!(
            !out.contains(s),
            "{s:?} survived:\n in: {input}\nout: {out}"
        );
    }
    Ok(())
}

/// libpq's escaping inside a quoted `key='value'`.
fn quote_escaped(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

/// libpq's escaping of an unquoted value: backslash before backslashes and a leading quote.
fn unquoted_escaped(s: &str) -> String {
    let escaped = s.replace('\\', "\\\\");
    match escaped.strip_prefix('\'') {
        Some(rest) => format!("\\'{rest}"),
        None => escaped,
    }
}

proptest! {
    #[test]
    fn parsers_never_panic(s in noise()) {
        let _ = parse_u64_in(1, 100)(&s);
        let _ = parse_millis(10)(&s);
        let _ = parse_duration(&s);
        let _ = parse_bytes(&s);
        let _ = parse_name(&s);
        let _ = parse_bool(&s);
        let _ = parse_servers(&s);
        let _ = redact_credentials(&s);
    }

    #[test]
    fn text_without_credentials_is_unchanged(
        s in noise().prop_map(|s| s.replace('@', "").replace("username: ", "")),
    ) {
        prop_assume!(!s.to_ascii_lowercase().contains("password"));
        prop_assert_eq!(redact_credentials(&s), s);
    }

    #[test]
    fn nats_url_credentials_never_survive(
        user in "[a-z]{1,8}",
        password in secret(PASSWORD),
        token in secret(TOKEN),
        before in noise(),
        after in noise(),
    ) {
        let value = format!("nats://a:1,nats://{user}:{password}@h:4222, tls://{token}@b:2");
        let text = format!("{before} {value}{after}");
        let out = redact_credentials(&text);
        assert_gone(&out, &text, &[&password, &token])?;
        // As an invalid NATS_SERVERS value is shown (value and reason).
        let mut env = EnvReader::from_pairs([("NATS_SERVERS", format!("{value},{after}"))]);
        env.parse_url("NATS_SERVERS", parse_servers);
        if let Err(errors) = env.finish() {
            assert_gone(&errors.to_string(), &value, &[&password, &token])?;
        }
    }

    #[test]
    fn postgres_url_credentials_never_survive(
        password in secret(PG_PASSWORD),
        query_password in secret("[!-%'-~]"),
        before in noise(),
        after in noise(),
    ) {
        for value in [
            format!("postgres://app:{password}@db:5432/sea"),
            format!("postgresql://app@db/sea?sslmode=disable&password={query_password}&x=1"),
            format!("postgres://app@db/sea?sslpassword={query_password}"),
        ] {
            let text = format!("{before} {value}{after}");
            assert_gone(&redact_credentials(&text), &text, &[&password, &query_password])?;
        }
    }

    #[test]
    fn key_value_passwords_never_survive(
        plain in secret("[!-~]"),
        quoted in secret("[ -~]"),
        spaces in " {0,2}",
        before in noise(),
        after in noise(),
    ) {
        let (plain_escaped, quoted_escaped) = (unquoted_escaped(&plain), quote_escaped(&quoted));
        for value in [
            format!("host=db user=app password{spaces}={spaces}{plain_escaped} dbname=sea"),
            format!("host=db sslpassword='{quoted_escaped}' user=app"),
            format!("password{spaces}={spaces}'{quoted_escaped}'"),
        ] {
            let text = format!("{before} {value}{after}");
            let out = redact_credentials(&text);
            assert_gone(&out, &text, &[&plain, &plain_escaped, &quoted, &quoted_escaped])?;
        }
    }

    #[test]
    fn a_parsed_urls_debug_never_shows_its_credentials(
        password in secret(PASSWORD),
        token in secret(TOKEN),
    ) {
        for (url, secret) in [
            (format!("nats://svc:{password}@h:4222"), &password),
            (format!("nats://{token}@h:4222"), &token),
        ] {
            let addr: async_nats::ServerAddr = url.parse().unwrap();
            let debug = format!("server={addr:?} error=refused");
            // The URL parser may have percent-encoded some of it: compare what it shows.
            let shown = addr.password().or(addr.username()).unwrap_or_default().to_owned();
            let json = serde_json::to_string(&debug).unwrap();
            for text in [&debug, &json] {
                let out = redact_credentials(text);
                assert_gone(&out, text, &[secret, &shown])?;
            }
        }
    }
}
