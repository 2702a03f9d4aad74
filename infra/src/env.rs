//! Env-only configuration: small pure parsers and a reader that collects every invalid variable,
//! so one run reports them all (by name, value and reason) instead of one per attempt.
//!
//! Modelled on linkerd2-proxy's env config: `ENV_*` constants next to the code that reads them,
//! parsers that are plain functions with dense unit tests.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

#[cfg(test)]
mod props;
mod redact;
pub use redact::redact_credentials;

/// Exit code for bad configuration (BSD `EX_USAGE`).
pub const EXIT_CONFIG: i32 = 64;

/// One invalid variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub var: String,
    /// The raw value, or `<redacted>` for secrets.
    pub value: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}: {}", self.var, self.value, self.reason)
    }
}

/// Every invalid variable of one run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} invalid environment variable(s):", self.0.len())?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// Reads variables from a source and remembers every failure.
pub struct EnvReader {
    vars: BTreeMap<String, String>,
    errors: Vec<ConfigError>,
}

impl EnvReader {
    /// The process environment.
    pub fn from_process() -> Self {
        EnvReader::from_pairs(std::env::vars())
    }

    /// A fixed set of variables (tests, or a parent that resolved them).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let vars = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        EnvReader {
            vars,
            errors: Vec::new(),
        }
    }

    /// The value, trimmed; empty counts as unset.
    pub fn string(&self, var: &str) -> Option<String> {
        self.vars
            .get(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// Parses a variable; on failure records the error and returns `None`.
    pub fn parse<T>(
        &mut self,
        var: &str,
        parser: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        self.parse_shown(var, parser, str::to_owned)
    }

    /// Like [`parse`](Self::parse) for values that may embed credentials (URLs, connection
    /// strings): an error shows the value, and its reason, through [`redact_credentials`].
    pub fn parse_url<T>(
        &mut self,
        var: &str,
        parser: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        self.parse_shown(var, parser, redact_credentials)
    }

    /// Parses; an error records the value and its reason as `show` gives them (a reason may
    /// quote the value, or one item of a list).
    fn parse_shown<T>(
        &mut self,
        var: &str,
        parser: impl FnOnce(&str) -> Result<T, String>,
        show: fn(&str) -> String,
    ) -> Option<T> {
        let raw = self.string(var)?;
        parser(&raw)
            .map_err(|reason| {
                let shown = show(&raw);
                let reason = show(&reason);
                self.errors.push(ConfigError {
                    var: var.to_owned(),
                    value: shown,
                    reason,
                });
            })
            .ok()
    }

    /// A secret: never echoed, not even in errors.
    pub fn secret(&self, var: &str) -> Option<Secret> {
        self.string(var).map(Secret)
    }

    /// Records a problem that involves a variable but is found later (e.g. a cross-check).
    pub fn reject(&mut self, var: &str, value: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(ConfigError {
            var: var.to_owned(),
            value: value.into(),
            reason: reason.into(),
        });
    }

    /// `Ok` when every variable read so far parsed.
    pub fn finish(self) -> Result<(), ConfigErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}

/// A secret value whose `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

// ---- parsers ---------------------------------------------------------------------------------

/// A whole number in `min..=max`.
pub fn parse_u64_in(min: u64, max: u64) -> impl Fn(&str) -> Result<u64, String> {
    move |s| {
        let n: u64 = s
            .parse()
            .map_err(|_| format!("not a whole number (expected {min} to {max})"))?;
        if n < min || n > max {
            return Err(format!("{n} is out of range (expected {min} to {max})"));
        }
        Ok(n)
    }
}

/// The longest duration NATS holds: its duration fields are signed 64-bit nanoseconds (about
/// 292 years). A longer one would wrap on the server into a value that never matches again.
pub const MAX_DURATION: Duration = Duration::from_nanos(i64::MAX as u64);

fn within_max(d: Duration) -> Result<Duration, String> {
    if d > MAX_DURATION {
        return Err(format!(
            "too long: NATS holds at most {} ({} days)",
            format_duration(Duration::from_secs(
                MAX_DURATION.as_secs() / 86_400 * 86_400
            )),
            MAX_DURATION.as_secs() / 86_400
        ));
    }
    Ok(d)
}

/// Milliseconds as a whole number, at least `min_ms`.
pub fn parse_millis(min_ms: u64) -> impl Fn(&str) -> Result<Duration, String> {
    move |s| {
        let n: u64 = s
            .parse()
            .map_err(|_| format!("not a whole number of milliseconds (at least {min_ms})"))?;
        if n < min_ms {
            return Err(format!("{n} ms is too short (at least {min_ms})"));
        }
        within_max(Duration::from_millis(n))
    }
}

/// A duration with a unit: `500ms`, `30s`, `5m`, `2h`, `7d`, at most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || {
        "not a duration: use a number and a unit (ms, s, m, h, d), e.g. `30s` or `7d`".to_owned()
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| err())?;
    let k: u64 = match unit.trim() {
        "ms" => return within_max(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(err()),
    };
    let secs = n
        .checked_mul(k)
        .ok_or_else(|| within_max(Duration::MAX).unwrap_err())?;
    within_max(Duration::from_secs(secs))
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`).
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err("use true or false".into()),
    }
}

/// A size: plain bytes or with a unit (`KB`/`MB`/`GB`/`TB` are powers of 1000, `KiB`/`MiB`/
/// `GiB`/`TiB` powers of 1024).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let err =
        || "not a size: use bytes or a number with KB, MB, GB, TB, KiB, MiB, GiB or TiB".to_owned();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| err())?;
    let k: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return Err(err()),
    };
    n.checked_mul(k).ok_or_else(|| "too large".to_owned())
}

/// A JetStream/NATS name: letters, digits, `-` and `_` (no dots, spaces or wildcards).
pub fn parse_name(s: &str) -> Result<String, String> {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(s.to_owned())
    } else {
        Err("use only letters, digits, `-` and `_`".to_owned())
    }
}

/// A comma-separated list of NATS URLs, split and trimmed (async-nats rejects the joined string).
/// A URL may not contain whitespace (percent-encode it): text around a URL could not be told
/// apart from it, and [`redact_credentials`] could not find its end.
pub fn parse_servers(s: &str) -> Result<Vec<String>, String> {
    let urls: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    if urls.is_empty() {
        return Err("no server URL in the list".to_owned());
    }
    for (i, url) in urls.iter().enumerate() {
        // Quoted only when it cannot carry credentials the redaction would miss.
        let name = if url.contains('@') || url.chars().any(char::is_whitespace) {
            format!("server {} of the list", i + 1)
        } else {
            format!("`{url}`")
        };
        if url.chars().any(char::is_whitespace) {
            return Err(format!(
                "{name} contains whitespace: percent-encode it (%20)"
            ));
        }
        let rest = ["nats://", "tls://", "ws://", "wss://"]
            .iter()
            .find_map(|scheme| url.strip_prefix(scheme));
        let Some(rest) = rest else {
            return Err(format!("{name} is not a NATS URL: write nats://host:port"));
        };
        // Credentials (`user:password@`, `token@`) are not part of the address.
        let address = rest.rsplit_once('@').map_or(rest, |(_, a)| a);
        let address = address.split('/').next().unwrap_or_default();
        let (host, port) = match address.rsplit_once(':') {
            // An IPv6 literal: `[::1]:4222`.
            Some((h, p)) if !p.contains(']') => (h, Some(p)),
            _ => (address, None),
        };
        if host.is_empty() {
            return Err(format!("{name} has no host"));
        }
        if host
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || "-._[]:".contains(c)))
        {
            return Err(format!(
                "{name} has a host that is not a name or an address"
            ));
        }
        if let Some(p) = port {
            if !p.parse::<u16>().is_ok_and(|p| p > 0) {
                return Err(format!(
                    "{name} has port `{p}`: use a number from 1 to 65535"
                ));
            }
        }
    }
    Ok(urls)
}

/// Formats a duration the way `parse_duration` reads it (largest exact unit).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    for (unit, k) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms % k == 0 {
            return format!("{}{unit}", ms / k);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in ["", "30", "s", "1.5h", "-1s", "10 parsecs"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        // Hundreds of years overflow the server's nanoseconds: refused, not wrapped.
        for too_long in ["300000d", "9999999999999999999d", "18446744073709551615ms"] {
            let err = parse_duration(too_long).unwrap_err();
            assert!(
                err.starts_with("too long: NATS holds at most"),
                "{too_long}: {err}"
            );
        }
        assert!(parse_duration("106751d").is_ok());
        assert!(parse_millis(0)("18446744073709551615").is_err());
        for d in ["7d", "2h", "90s", "250ms", "0s", "2m"] {
            assert_eq!(format_duration(parse_duration(d).unwrap()), d);
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("512MB"), Ok(512_000_000));
        assert!(parse_bytes("1GB2").is_err());
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("99999999999TiB").is_err());
    }

    #[test]
    fn ranges_and_millis() {
        let replicas = parse_u64_in(1, 5);
        assert_eq!(replicas("3"), Ok(3));
        assert_eq!(
            replicas("banana"),
            Err("not a whole number (expected 1 to 5)".into())
        );
        assert_eq!(
            replicas("7"),
            Err("7 is out of range (expected 1 to 5)".into())
        );
        assert_eq!(
            replicas("-7"),
            Err("not a whole number (expected 1 to 5)".into())
        );
        assert_eq!(parse_millis(100)("1500"), Ok(Duration::from_millis(1500)));
        assert!(parse_millis(100)("5").is_err());
    }

    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(
            redact_credentials("postgres://app:pw@db:5432/sea"),
            "postgres://app:<redacted>@db:5432/sea"
        );
        assert_eq!(
            redact_credentials("nats://tok@a:1, nats://b:2"),
            "nats://<redacted>@a:1, nats://b:2"
        );
        assert_eq!(redact_credentials("sqlite:///x.db"), "sqlite:///x.db");
        let mut env = EnvReader::from_pairs([("U", "mysql://root:hunter2@db")]);
        assert_eq!(
            env.parse_url("U", |_| Err::<(), _>("bad scheme".to_owned())),
            None
        );
        let text = env.finish().unwrap_err().to_string();
        assert!(
            text.contains("U=\"mysql://root:<redacted>@db\"") && !text.contains("hunter2"),
            "{text}"
        );
    }

    #[test]
    fn server_lists_are_split_and_trimmed() {
        assert_eq!(
            parse_servers(" nats://a:4222 , nats://b:4223,"),
            Ok(vec!["nats://a:4222".to_owned(), "nats://b:4223".to_owned()])
        );
        assert!(parse_servers("localhost:4222")
            .unwrap_err()
            .contains("not a NATS URL"));
        assert!(parse_servers(" , ").is_err());
        assert!(parse_servers("nats://:4222").is_err());
        // Malformed addresses are configuration errors, found before anything connects.
        for bad in [
            "nats://host:notaport",
            "nats://host:70000",
            "nats://host:0",
            "nats://ho st:4222",
            "nats://user:pw@:4222",
        ] {
            assert!(parse_servers(bad).is_err(), "{bad} accepted");
        }
        for good in [
            "nats://user:p%40ss@db.example:4222",
            "tls://[::1]:4222",
            "nats://token@10.0.0.1",
            "nats://nats-1.nats-headless.default.svc.cluster.local:4222",
        ] {
            assert!(parse_servers(good).is_ok(), "{good} refused");
        }
        assert!(parse_servers("nats://tok@:4222").is_err());
        assert!(parse_servers("nats://u:p w@h:1")
            .unwrap_err()
            .contains("server 1 of the list contains whitespace"));
        // An item with credentials is named by its place, not quoted.
        let err = parse_servers("nats://a:1, u:s3cret@h:2").unwrap_err();
        assert!(
            err.contains("server 2 of the list is not a NATS URL") && !err.contains("s3cret"),
            "{err}"
        );
    }

    #[test]
    fn reader_collects_every_error_and_redacts_secrets() {
        let mut env = EnvReader::from_pairs([
            ("A", "banana"),
            ("B", "-7"),
            ("TOKEN", "s3cret"),
            ("EMPTY", " "),
        ]);
        assert_eq!(env.parse("A", parse_u64_in(1, 5)), None);
        assert_eq!(env.parse("B", parse_u64_in(1, 100)), None);
        assert_eq!(env.parse("EMPTY", parse_u64_in(1, 5)), None);
        let token = env.secret("TOKEN").unwrap();
        assert_eq!(format!("{token} {token:?}"), "<redacted> <redacted>");
        env.reject("TOKEN", "<redacted>", "rejected");
        let errors = env.finish().unwrap_err();
        let text = errors.to_string();
        assert!(
            text.starts_with("3 invalid environment variable(s):"),
            "{text}"
        );
        assert!(
            text.contains("A=\"banana\": not a whole number") && text.contains("B=\"-7\""),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
    }
}
