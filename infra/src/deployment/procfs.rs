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

/// CPU time `pid` has used so far, user plus system, in seconds: `/proc/<pid>/stat`'s `utime`
/// and `stime` (all its threads; children not included). `None` once it is gone or unreadable.
/// Resolution: one clock tick, 10 ms (Linux's `USER_HZ` is 100 on every architecture it runs
/// this project on).
pub fn cpu_seconds(pid: i32) -> Option<f64> {
    const USER_HZ: f64 = 100.0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: state (3) ... utime (14), stime (15).
    let mut rest = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let utime: u64 = rest.next()?.parse().ok()?;
    let stime: u64 = rest.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_busy_process_accrues_cpu_and_a_missing_one_has_none() {
        let me = std::process::id() as i32;
        let before = super::cpu_seconds(me).expect("our own stat");
        // Spin until the kernel has counted a tick more (bounded, so a broken reader fails).
        let began = std::time::Instant::now();
        let mut x = 0u64;
        while super::cpu_seconds(me).expect("our own stat") <= before {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            assert!(began.elapsed().as_secs() < 60, "no CPU time counted");
        }
        assert_eq!(super::cpu_seconds(i32::MAX), None);
    }
}
