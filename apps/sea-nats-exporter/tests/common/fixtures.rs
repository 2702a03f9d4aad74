//! Recorded answers of real servers: `tests/fixtures/<profile>/<server>.json`, one object per
//! server mapping each endpoint's name to its JSON answer.
//!
//! Re-record (after a nats-server upgrade) with
//! `SEA_RECORD_FIXTURES=1 cargo test -p sea-nats-exporter --test live`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sea_nats_exporter::fetch::{Answers, Endpoint};
use serde_json::Value;

pub const ENV_RECORD: &str = "SEA_RECORD_FIXTURES";

pub fn dir(profile: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(profile)
}

pub fn recording() -> bool {
    std::env::var(ENV_RECORD).as_deref() == Ok("1")
}

/// Writes one file per server (only the endpoints that answered).
pub fn record(profile: &str, servers: &[(String, Answers)]) {
    let dir = dir(profile);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, answers) in servers {
        let map: BTreeMap<&str, &Value> = Endpoint::ALL
            .into_iter()
            .filter_map(|e| Some((e.name(), answers.get(e)?)))
            .collect();
        let text = serde_json::to_string_pretty(&map).unwrap() + "\n";
        std::fs::write(dir.join(format!("{name}.json")), text).unwrap();
    }
    eprintln!("recorded {} servers into {}", servers.len(), dir.display());
}

/// Every recorded server of a profile, by name.
pub fn load(profile: &str) -> Vec<(String, Answers)> {
    let dir = dir(profile);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let map: BTreeMap<String, Value> =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let values = map
                .into_iter()
                .map(|(e, v)| (Endpoint::from_name(&e).expect("known endpoint"), v));
            let url = format!("http://{name}.fixture:8222");
            (name, Answers::from_values(&url, values))
        })
        .collect()
}
