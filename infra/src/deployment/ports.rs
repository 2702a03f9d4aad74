//! Port checks: is a port free, who holds it, and free ports for tests.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::sync::Mutex;

/// True when `host:port` can be bound right now.
pub fn is_free(host: &str, port: u16) -> bool {
    TcpListener::bind((host, port)).is_ok()
}

/// The process listening on a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub pid: i32,
    /// Its command name (`comm`).
    pub name: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (pid {})", self.name, self.pid)
    }
}

/// The process listening on a TCP port, when Linux's `/proc` tells. Best effort: `None` when
/// unknown or not permitted.
pub fn holder(port: u16) -> Option<Holder> {
    let inodes: BTreeSet<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|table| listening_inodes(&table, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    for process in super::procfs::processes() {
        let Ok(fds) = std::fs::read_dir(process.file("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            let inode = target
                .strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'));
            if inode.is_some_and(|i| inodes.contains(i)) {
                let comm = std::fs::read_to_string(process.file("comm")).unwrap_or_default();
                return Some(Holder {
                    pid: process.pid,
                    name: comm.trim().to_owned(),
                });
            }
        }
    }
    None
}

/// Socket inodes of LISTEN entries (state `0A`) on `port` in a `/proc/net/tcp` table.
fn listening_inodes(table: &str, port: u16) -> Vec<String> {
    let hex_port = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (cols.get(1)?, cols.get(3)?, cols.get(9)?);
            (local.ends_with(&hex_port) && *state == "0A").then(|| inode.to_string())
        })
        .collect()
}

/// Ports handed out in this process, so parallel tests never get the same one twice.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A free loopback port for tests, from 20000-31999: below Linux's ephemeral range, so outgoing
/// connections never take it, and far from the fixed ports of the contract.
pub fn free_port() -> u16 {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let seed = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    for i in 0..12_000u64 {
        let port = 20_000 + ((seed.wrapping_add(i * 7919)) % 12_000) as u16;
        if !handed_out.contains(&port) && is_free("127.0.0.1", port) {
            handed_out.insert(port);
            return port;
        }
    }
    panic!("no free port in 20000-31999");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_listening_inode_for_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:107E 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1\n   1: 0100007F:107E 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 999 1\n";
        assert_eq!(listening_inodes(table, 4222), ["12345"]);
        assert!(listening_inodes(table, 4223).is_empty());
    }

    #[test]
    fn names_the_holder_of_a_bound_port() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(!is_free("127.0.0.1", port));
        let who = holder(port).expect("this process holds the port");
        assert_eq!(who.pid, std::process::id() as i32, "{who}");
    }

    #[test]
    fn free_ports_are_distinct() {
        let ports: BTreeSet<u16> = (0..50).map(|_| free_port()).collect();
        assert_eq!(ports.len(), 50);
    }
}
