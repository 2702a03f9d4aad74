//! The one place credentials are taken out of text: values of URL- and DSN-valued variables
//! (`NATS_SERVERS`, `NATS_URL`, `DATABASE_URL`) and any message that embeds them, however a
//! library formats it. Everything that prints such a value, or a line that may contain one (the
//! worker's whole log), goes through [`redact_credentials`].
//!
//! Forms handled, anywhere in the text:
//! - URL userinfo: `scheme://user:secret@host` keeps the user, `scheme://token@host` (a NATS
//!   token) loses it all; percent-encoded or not, in comma-separated lists. The userinfo ends at
//!   the URL's last `@` (a raw `@`, `/` or `?` in a password still counts as password), the URL
//!   at whitespace or at a comma directly followed by the next URL's `scheme://` (so the one
//!   password this cannot tell from a list holds a raw `,scheme://`, which RFC 3986 forbids);
//! - a `password` parameter (any key ending in `password`, any case: `sslpassword`,
//!   `NATS_PASSWORD`): PostgreSQL's `key=value` strings, unquoted (backslash escapes) or quoted
//!   (`'a \' b'`), spaces around `=`, and a URL query (`?password=...&`);
//! - the `Debug` of a parsed URL (`url::Url`, which async-nats logs for the servers it dials):
//!   `password: Some("...")`, and the token of `username: "...", password: None`; also when a
//!   JSON log escaped its quotes.
//!
//! Values that cannot be told apart from the text around them (whitespace inside a URL) are
//! refused by the parsers instead: see `parse_servers` and the worker's `parse_database_url`.

/// What replaces a secret.
const REDACTED: &str = "<redacted>";

/// `text` with every credential replaced by `<redacted>`; text without one is unchanged.
pub fn redact_credentials(text: &str) -> String {
    let mut ranges = Vec::new();
    url_userinfo(text, &mut ranges);
    password_parameters(text, &mut ranges);
    url_debug_token(text, &mut ranges);
    ranges.retain(|(start, end)| start < end && &text[*start..*end] != REDACTED);
    if ranges.is_empty() {
        return text.to_owned();
    }
    ranges.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in ranges {
        if end <= at {
            continue;
        }
        if start >= at {
            out.push_str(&text[at..start]);
            out.push_str(REDACTED);
        }
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// Characters of a URL scheme (`nats`, `postgres+x`, `wss`).
fn is_scheme_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}

/// Where the URL whose authority starts at `start` ends: at whitespace, or at a comma followed
/// by the scheme of another URL (after any quotes or brackets: a list's `Debug`).
fn url_end(text: &str, start: usize) -> usize {
    let ws = text[start..]
        .char_indices()
        .find(|(_, c)| c.is_whitespace())
        .map_or(text.len(), |(i, _)| start + i);
    let bytes = text.as_bytes();
    let mut from = start;
    while let Some(k) = text[from..ws].find("://").map(|k| from + k) {
        let mut scheme = k;
        while scheme > start && is_scheme_byte(bytes[scheme - 1]) {
            scheme -= 1;
        }
        if let Some(comma) = text[start..scheme].rfind(',').map(|c| start + c) {
            let between = &text[comma + 1..scheme];
            if between
                .chars()
                .all(|c| matches!(c, '"' | '\'' | '[' | '(' | '\\'))
            {
                return comma;
            }
        }
        from = k + 3;
    }
    ws
}

/// `scheme://user:secret@host` and `scheme://token@host`; but `postgres://user@host` names
/// only a user.
fn url_userinfo(text: &str, ranges: &mut Vec<(usize, usize)>) {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = text[from..].find("://").map(|i| from + i) {
        let start = i + 3;
        from = start;
        let end = url_end(text, start);
        let Some(at) = text[start..end].rfind('@').map(|a| start + a) else {
            continue;
        };
        let mut scheme = i;
        while scheme > 0 && is_scheme_byte(bytes[scheme - 1]) {
            scheme -= 1;
        }
        let user_only = ["postgres", "postgresql"]
            .iter()
            .any(|s| text[scheme..i].eq_ignore_ascii_case(s));
        let userinfo = &text[start..at];
        match userinfo.find(':') {
            // A user name holds no `@`: otherwise the first `@` ended a token.
            Some(colon) if !userinfo[..colon].contains('@') => ranges.push((start + colon + 1, at)),
            None if user_only => {}
            _ => ranges.push((start, at)),
        }
    }
}

/// Occurrences of `needle` in `text`, ignoring ASCII case.
fn find_ignore_case<'a>(text: &'a str, needle: &'a str) -> impl Iterator<Item = usize> + 'a {
    let (hay, n) = (text.as_bytes(), needle.len());
    (0..hay.len().saturating_sub(n - 1))
        .filter(move |&i| hay[i..i + n].eq_ignore_ascii_case(needle.as_bytes()))
}

fn skip_spaces(text: &str, mut i: usize) -> usize {
    while text
        .as_bytes()
        .get(i)
        .is_some_and(|b| *b == b' ' || *b == b'\t')
    {
        i += 1;
    }
    i
}

/// `key=value`, `key = 'quoted'`, `?key=value&`, `key: Some("...")`, `"key":"..."`, for every
/// key ending in `password`.
fn password_parameters(text: &str, ranges: &mut Vec<(usize, usize)>) {
    let bytes = text.as_bytes();
    for i in find_ignore_case(text, "password") {
        let mut key_start = i;
        while key_start > 0
            && (bytes[key_start - 1].is_ascii_alphanumeric() || bytes[key_start - 1] == b'_')
        {
            key_start -= 1;
        }
        let mut j = i + "password".len();
        // The closing quote of a JSON key (`"password":`), escaped or not.
        if text[j..].starts_with("\\\"") {
            j += 2;
        } else if text[j..].starts_with('"') {
            j += 1;
        }
        j = skip_spaces(text, j);
        match bytes.get(j) {
            Some(b'=') => {
                let v = skip_spaces(text, j + 1);
                let in_query = key_start > 0 && matches!(bytes[key_start - 1], b'?' | b'&');
                ranges.push(parameter_value(text, v, in_query));
            }
            Some(b':') => {
                let mut v = skip_spaces(text, j + 1);
                if text[v..].starts_with("Some(") {
                    v += "Some(".len();
                }
                if let Some(range) = quoted(text, v) {
                    ranges.push(range);
                }
            }
            _ => {}
        }
    }
}

/// The value of a `key=` starting at `v`: in a URL query up to `&`; in a `key=value` string
/// single-quoted, or up to whitespace, with backslash escapes either way (as libpq reads it).
fn parameter_value(text: &str, v: usize, in_query: bool) -> (usize, usize) {
    if text[v..].starts_with(REDACTED) {
        return (v, v);
    }
    let quote = !in_query && text[v..].starts_with('\'');
    let start = if quote { v + 1 } else { v };
    let mut chars = text[start..].char_indices();
    while let Some((k, c)) = chars.next() {
        let ends = if in_query {
            c == '&' || c.is_whitespace()
        } else if quote {
            c == '\''
        } else {
            c.is_whitespace()
        };
        if ends {
            return (start, start + k);
        }
        if c == '\\' && !in_query {
            chars.next();
        }
    }
    (start, text.len())
}

/// The contents of a `Debug` string literal starting at `v` (`"..."`), or of one a JSON log
/// escaped again (`\"...\"`); `None` when no string starts there.
fn quoted(text: &str, v: usize) -> Option<(usize, usize)> {
    let rest = &text[v..];
    let json = rest.starts_with("\\\"");
    if !json && !rest.starts_with('"') {
        return None;
    }
    let start = v + if json { 2 } else { 1 };
    let b = text.as_bytes();
    let mut k = start;
    while k < b.len() {
        match (json, b[k], b.get(k + 1), b.get(k + 2)) {
            // Plain: `\x` is one escaped character; `"` closes.
            (false, b'\\', Some(_), _) => k += 2,
            (false, b'"', _, _) => return Some((start, k)),
            // JSON: `\\` then `\"` or `\\` is one escaped character of the Debug text.
            (true, b'\\', Some(b'\\'), Some(b'\\')) => k += 4,
            (true, b'\\', Some(b'\\'), _) => k += 3,
            (true, b'\\', Some(b'"'), _) => return Some((start, k)),
            (true, b'\\', Some(_), _) => k += 2,
            _ => k += 1,
        }
    }
    Some((start, text.len()))
}

/// A parsed URL's token: `username: "<token>", password: None`.
fn url_debug_token(text: &str, ranges: &mut Vec<(usize, usize)>) {
    let mut from = 0;
    while let Some(i) = text[from..].find("username: ").map(|i| from + i) {
        from = i + "username: ".len();
        let Some((start, end)) = quoted(text, from) else {
            continue;
        };
        let after = &text[end..];
        let close = if after.starts_with("\\\"") { 2 } else { 1 };
        if after
            .get(close..)
            .is_some_and(|a| a.starts_with(", password: None"))
        {
            ranges.push((start, end));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        redact_credentials(s)
    }

    #[test]
    fn url_userinfo_in_every_form() {
        assert_eq!(
            r("postgres://app:pw@db:5432/sea"),
            "postgres://app:<redacted>@db:5432/sea"
        );
        assert_eq!(
            r("nats://tok@a:1, nats://b:2"),
            "nats://<redacted>@a:1, nats://b:2"
        );
        assert_eq!(
            r("nats://u:p1@a:1,nats://tok@b:2,nats://c:3"),
            "nats://u:<redacted>@a:1,nats://<redacted>@b:2,nats://c:3"
        );
        // Percent-encoded, and raw `@`, `/`, `?`, `,` in a password.
        assert_eq!(
            r("postgres://app:p%40ss%2Fw@db/sea"),
            "postgres://app:<redacted>@db/sea"
        );
        assert_eq!(
            r("postgres://app:a@b/c?d,e@db/sea"),
            "postgres://app:<redacted>@db/sea"
        );
        // Inside other text, as an error message embeds it.
        assert_eq!(
            r("cannot connect to NATS at nats://svc:s3cret@h:4222: refused"),
            "cannot connect to NATS at nats://svc:<redacted>@h:4222: refused"
        );
        assert_eq!(
            r(r#"servers=["nats://a:1","nats://t0k@b:2"]"#),
            r#"servers=["nats://a:1","nats://<redacted>@b:2"]"#
        );
        // A token followed by more text with `:` and `@` (a list item without a scheme).
        assert_eq!(r("tls://t0k@b:2,@"), "tls://<redacted>@");
        // A comma in a password, and `://` later in the text, do not end the URL early.
        assert_eq!(
            r("postgres://app:a,b@db:5432/sea://"),
            "postgres://app:<redacted>@db:5432/sea://"
        );
        assert_eq!(r("sqlite:///x.db"), "sqlite:///x.db");
        assert_eq!(r("https://example.com/a b"), "https://example.com/a b");
    }

    #[test]
    fn password_parameters_in_every_form() {
        assert_eq!(
            r("host=db user=app password=secret dbname=sea"),
            "host=db user=app password=<redacted> dbname=sea"
        );
        assert_eq!(
            r(r"host=db password = 'a b \' c' dbname=sea"),
            r"host=db password = '<redacted>' dbname=sea"
        );
        assert_eq!(
            r(r"password=a\ b dbname=sea"),
            "password=<redacted> dbname=sea"
        );
        assert_eq!(
            r("postgres://app@db/sea?sslmode=disable&password=se#cret&x=1"),
            "postgres://app@db/sea?sslmode=disable&password=<redacted>&x=1"
        );
        assert_eq!(
            r("postgres://app@db/sea?sslpassword=secret"),
            "postgres://app@db/sea?sslpassword=<redacted>"
        );
        assert_eq!(
            r("PASSWORD=x NATS_PASSWORD=y"),
            "PASSWORD=<redacted> NATS_PASSWORD=<redacted>"
        );
        assert_eq!(
            r(r#"{"password":"se\"cret"}"#),
            r#"{"password":"<redacted>"}"#
        );
        assert_eq!(r("no password here"), "no password here");
    }

    #[test]
    fn the_debug_of_a_parsed_url() {
        let addr: async_nats::ServerAddr = "nats://svc:s3cret@h:4222".parse().unwrap();
        let shown = r(&format!("server={addr:?}"));
        assert!(
            !shown.contains("s3cret") && shown.contains("username: \"svc\""),
            "{shown}"
        );
        let addr: async_nats::ServerAddr = "nats://t0ken@h:4222".parse().unwrap();
        let debug = format!("{addr:?}");
        assert!(!r(&debug).contains("t0ken"), "{}", r(&debug));
        // A JSON log escapes the quotes once more.
        let json = serde_json::to_string(&debug).unwrap();
        assert!(!r(&json).contains("t0ken"), "{}", r(&json));
        let addr: async_nats::ServerAddr = r#"nats://u:a"b\c@h:1"#.parse().unwrap();
        let json = serde_json::to_string(&format!("{addr:?}")).unwrap();
        assert!(
            r(&json).contains(r#"password: Some(\"<redacted>\")"#),
            "{}",
            r(&json)
        );
    }

    #[test]
    fn redacting_twice_changes_nothing_more() {
        for s in [
            "postgres://app:pw@db/sea",
            "host=db password='x y' dbname=sea",
            "password=x\" other",
            "nats://t@h:1",
        ] {
            assert_eq!(r(&r(s)), r(s), "{s}");
        }
    }
}
