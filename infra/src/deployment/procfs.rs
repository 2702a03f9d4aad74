//! The processes of this machine as Linux's `/proc` lists them: how servers are found by what
//! they run (their command line), and who holds a port.

use std::path::PathBuf;

/// One process under `/proc`.
pub struct Proc {
    pub pid: i32,
    dir: PathBuf,
}

impl Proc {
    /// Its arguments (empty when unreadable, or for a zombie).
    pub fn args(&self) -> Vec<Vec<u8>> {
        let cmdline = std::fs::read(self.dir.join("cmdline")).unwrap_or_default();
        cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    }

    /// A file of its `/proc` directory (`environ`, `comm`, `fd`, …).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Whether it exists and has not exited (a zombie has exited).
    pub fn is_alive(&self) -> bool {
        is_alive(self.pid)
    }
}

/// Every process this user may look at.
pub fn processes() -> impl Iterator<Item = Proc> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
            Some(Proc {
                pid,
                dir: entry.path(),
            })
        })
}

/// Whether `pid` exists and has not exited (a zombie has exited).
pub fn is_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the parenthesised command name, which may itself contain spaces.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        !matches!(state, Some("Z" | "X") | None)
    })
}
