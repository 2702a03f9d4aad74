//! Codegen check: the committed configs under `infra/nats/` are what the model renders.

#[test]
fn committed_configs_are_up_to_date() {
    let stale = sea_infra::render::stale_committed_files(&sea_infra::project_root());
    assert!(
        stale.is_empty(),
        "stale rendered files: {stale:?}; run `cargo xtask render` and commit the result"
    );
}

#[test]
fn golden_ha_node_config() {
    let files = sea_infra::render::committed_files();
    let nats_1 = files
        .iter()
        .find(|f| f.path == "infra/nats/ha/nats-1.conf")
        .expect("ha nats-1 is rendered");
    let expected = r#"# Rendered from the SEA topology model (profile ha); do not edit.
# Regenerate with `cargo xtask render`.
server_name: "nats-1"
listen: "127.0.0.1:4222"
http: "127.0.0.1:8222"
lame_duck_duration: "30s"
lame_duck_grace_period: "10s"

jetstream {
  store_dir: "data/nats-1"
  max_mem_store: 256MB
  max_file_store: 8GB
  # How often data is fsynced: `always` survives power loss, a duration trades that for speed.
  sync_interval: "2m"
}

cluster {
  name: "sea-nats"
  listen: "127.0.0.1:6222"
  routes: [
    "nats-route://127.0.0.1:6223"
    "nats-route://127.0.0.1:6224"
  ]
}
"#;
    assert_eq!(nats_1.contents, expected);
}
