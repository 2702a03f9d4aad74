//! Checks of the code's shape that a reviewer would otherwise have to remember: `sea-infra`'s
//! layers only use the layers below them, and every source file says what it is for.

use std::path::Path;

use sea_infra::testing::rust_files;

/// `sea-infra`'s layers, lowest first, each with the layers it may use.
const LAYERS: [(&str, &[&str]); 7] = [
    ("env", &[]),
    ("service", &["env"]),
    ("model", &["env"]),
    ("render", &["env", "model"]),
    ("probes", &["env", "model"]),
    ("client", &["env", "model"]),
    (
        "deployment",
        &["env", "model", "render", "probes", "client"],
    ),
];

/// The layer a file of `infra/src` belongs to (`env.rs` is a layer of one file).
fn layer_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    Some(first.trim_end_matches(".rs").to_owned())
}

#[test]
fn each_layer_uses_only_the_layers_below_it() {
    let src = sea_infra::project_root().join("infra/src");
    let mut wrong = Vec::new();
    for file in rust_files(&src) {
        let Some(layer) = layer_of(&src, &file) else {
            continue;
        };
        let Some((_, allowed)) = LAYERS.iter().find(|(l, _)| *l == layer) else {
            continue; // lib.rs and the test kit, which sits on top of everything
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for (other, _) in LAYERS.iter().filter(|(l, _)| *l != layer) {
            let uses = text.contains(&format!("crate::{other}::"))
                || text.contains(&format!("crate::{other};"))
                || text.contains(&format!("crate::{other}}}"));
            if uses && !allowed.contains(other) {
                wrong.push(format!("{} ({layer}) uses {other}", file.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "layering broken (see docs/architecture.md, Invariants): {wrong:#?}"
    );
}

#[test]
fn every_source_file_starts_with_a_module_doc() {
    let root = sea_infra::project_root();
    let missing: Vec<String> = ["infra", "xtask", "apps"]
        .iter()
        .flat_map(|d| rust_files(&root.join(d)))
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` module doc saying what they are for: {missing:#?}"
    );
}
