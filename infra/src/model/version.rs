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
