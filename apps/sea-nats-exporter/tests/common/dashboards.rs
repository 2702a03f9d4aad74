//! The Grafana dashboards' queries (`infra/grafana/*.json`): checked statically by
//! `tests/queries.rs`, run against a live Prometheus by `tests/alerts.rs`.

use std::path::PathBuf;

use serde_json::Value;

/// Every `expr` of a dashboard, with its panel's title.
fn dashboard_exprs(v: &Value, title: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            let title = map.get("title").and_then(Value::as_str).unwrap_or(title);
            if let Some(Value::String(expr)) = map.get("expr") {
                out.push((title.to_owned(), expr.clone()));
            }
            for child in map.values() {
                dashboard_exprs(child, title, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| dashboard_exprs(i, title, out)),
        _ => {}
    }
}

pub fn dashboards() -> Vec<(String, Vec<(String, String)>)> {
    let dir = sea_infra::project_root().join("infra/grafana");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "dashboards missing in {}", dir.display());
    files
        .into_iter()
        .map(|path| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let mut exprs = Vec::new();
            dashboard_exprs(&v, "", &mut exprs);
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(!exprs.is_empty(), "{name}: no queries");
            (name, exprs)
        })
        .collect()
}
