//! nats-server releases: the one the model is rendered for, and how versions compare.

use std::fmt;

/// The release every profile runs: installed into the cache when nothing else is found, and
/// the tag of the compose and Kubernetes images.
pub const PINNED_VERSION: Version = Version(2, 15, 1);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl Version {
    /// Parses `nats-server --version` output such as `nats-server: v2.15.1`.
    pub fn parse_version_output(text: &str) -> Option<Version> {
        let v = text.trim().rsplit(' ').next()?.trim_start_matches('v');
        let mut parts = v.split(['.', '-']).map(|p| p.parse::<u32>());
        Some(Version(
            parts.next()?.ok()?,
            parts.next()?.ok()?,
            parts.next()?.ok()?,
        ))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a nats-server version: write MAJOR.MINOR.PATCH, e.g. 2.14.6")]
pub struct BadVersion(pub String);

impl std::str::FromStr for Version {
    type Err = BadVersion;

    /// `2.14.6` (or `v2.14.6`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadVersion(s.to_owned());
        let parts: Vec<&str> = s.trim().trim_start_matches('v').split('.').collect();
        let [a, b, c] = parts.as_slice() else {
            return Err(bad());
        };
        let n = |p: &str| p.parse::<u32>().map_err(|_| bad());
        Ok(Version(n(a)?, n(b)?, n(c)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_from_flags() {
        assert_eq!("2.14.6".parse(), Ok(Version(2, 14, 6)));
        assert_eq!("v2.15.1".parse(), Ok(Version(2, 15, 1)));
        for bad in ["2.14", "2.14.x", "", "2.14.6.1"] {
            assert!(bad.parse::<Version>().is_err(), "{bad}");
        }
    }
}
