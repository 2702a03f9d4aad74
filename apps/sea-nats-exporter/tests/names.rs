//! The exporter's collection on recorded nats-server 2.15.1 answers (`tests/fixtures/`, see
//! `common/fixtures.rs` for re-recording): names, types and labels against `names.toml`, and the
//! behaviours that differ from prometheus-nats-exporter on purpose. No server needed.

mod common;

use common::{fixtures, names};
use sea_infra::testing::{require, Prerequisite};
use sea_nats_exporter::collect::{self, Options};
use sea_nats_exporter::family::Snapshot;
use sea_nats_exporter::fetch::{Answers, Endpoint};
use serde_json::json;

const PROFILES: [&str; 3] = ["ha", "mesh", "leaf"];

fn collect_all(servers: &[(String, Answers)], opts: Options) -> Snapshot {
    let mut out = Snapshot::default();
    for (_, answers) in servers {
        out.merge(collect::server(answers, None, opts).0);
    }
    out
}

fn all_options() -> Options {
    Options {
        ephemeral_consumers: true,
    }
}

/// Label values of `label` over every sample of `name` that has all of `want`.
fn values(s: &Snapshot, name: &str, label: &str, want: &[(&str, &str)]) -> Vec<String> {
    let Some(f) = s.families.get(name) else {
        return Vec::new();
    };
    let mut out: Vec<String> = f
        .samples
        .iter()
        .filter(|(l, _)| {
            want.iter()
                .all(|(k, w)| l.iter().any(|(lk, lv)| lk == k && lv == w))
        })
        .filter_map(|(l, _)| l.iter().find(|(k, _)| k == label).map(|(_, v)| v.clone()))
        .collect();
    out.sort();
    out
}

#[test]
fn the_table_names_its_source() {
    let t = names::table();
    assert_eq!(t.source.version, "v0.20.1");
    assert_eq!(t.source.commit.len(), 40);
    assert!(t.source.files.iter().any(|f| f == "collector/jsz.go"));
    let mut seen = std::collections::BTreeSet::new();
    for e in &t.metric {
        assert!(seen.insert(&e.name), "{} twice in names.toml", e.name);
        assert!(
            ["gauge", "counter", "untyped"].contains(&e.kind.as_str()),
            "{}",
            e.name
        );
        assert!(
            e.labels.iter().any(|l| l == "server_id"),
            "{}: no server_id",
            e.name
        );
    }
}

#[test]
fn every_recorded_answer_matches_the_table() {
    let table = names::table();
    for profile in PROFILES {
        let servers = fixtures::load(profile);
        assert!(servers.len() >= 3, "{profile}: fixtures missing");
        let snapshot = collect_all(&servers, all_options());
        let problems = names::problems(&table, &snapshot, &servers);
        assert!(problems.is_empty(), "{profile}:\n{}", problems.join("\n"));
    }
}

#[test]
fn the_text_output_declares_the_tables_types() {
    let table = names::table();
    let text = collect_all(&fixtures::load("mesh"), all_options()).encode_text();
    let mut typed = 0;
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (name, kind) = line.split_once(' ').unwrap();
        if let Some(e) = table.metric.iter().find(|e| e.name == name) {
            assert_eq!(kind, e.exported_type(), "{name}");
            typed += 1;
        } else {
            assert!(
                name.starts_with("nats_exporter_"),
                "{name} not in the table"
            );
        }
    }
    assert!(typed > 100, "only {typed} families");
    assert!(
        text.contains("gnatsd_varz_routes{server_id=\"sea-a-1\"} 8\n"),
        "{text}"
    );
}

#[test]
fn server_id_is_the_server_name_and_jsz_says_who_leads() {
    let s = collect_all(&fixtures::load("ha"), all_options());
    assert_eq!(
        values(&s, "gnatsd_varz_connections", "server_id", &[]),
        ["nats-1", "nats-2", "nats-3"]
    );
    // Every replica reports the stream; exactly one series is the leader's.
    let stream = [("stream_name", "SEA_EVENTS")];
    assert_eq!(
        values(&s, "jetstream_stream_last_seq", "server_id", &stream).len(),
        3
    );
    let lead = [("stream_name", "SEA_EVENTS"), ("is_stream_leader", "true")];
    assert_eq!(
        values(&s, "jetstream_stream_last_seq", "server_id", &lead).len(),
        1
    );
    let consumer = [
        ("consumer_name", "sea-mq-worker"),
        ("stream_name", "SEA_EVENTS"),
        ("is_consumer_leader", "true"),
    ];
    let leader = values(&s, "jetstream_consumer_num_pending", "server_id", &consumer);
    assert_eq!(leader.len(), 1);
    // Three fetched, two acked (tests/common/deploy.rs): the leader knows.
    let on_leader = [
        ("server_id", leader[0].as_str()),
        ("consumer_name", "sea-mq-worker"),
        ("stream_name", "SEA_EVENTS"),
    ];
    assert_eq!(
        s.value("jetstream_consumer_ack_floor_stream_seq", &on_leader),
        Some(2.0)
    );
    assert_eq!(
        s.value("jetstream_consumer_num_ack_pending", &on_leader),
        Some(1.0)
    );
    assert_eq!(
        s.value("jetstream_consumer_num_pending", &on_leader),
        Some(2.0)
    );
    assert!(s
        .value("jetstream_consumer_last_ack_seconds", &on_leader)
        .is_some_and(|v| v >= 0.0));
    // One meta leader, seen by all.
    assert_eq!(
        values(
            &s,
            "jetstream_server_total_streams",
            "server_id",
            &[("is_meta_leader", "true")]
        )
        .len(),
        1
    );
    assert_eq!(
        values(&s, "jetstream_server_total_streams", "meta_leader", &[])
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        1
    );
}

#[test]
fn ephemeral_consumers_are_left_out_unless_asked_for() {
    let servers = fixtures::load("ha");
    let durable_only = collect_all(&servers, Options::default());
    let everything = collect_all(&servers, all_options());
    let names = |s: &Snapshot| {
        let mut v = values(s, "jetstream_consumer_num_pending", "consumer_name", &[]);
        v.dedup();
        v
    };
    assert_eq!(names(&durable_only), ["sea-mq-worker"]);
    assert_eq!(names(&everything).len(), 2, "{:?}", names(&everything));
}

#[test]
fn mirrors_report_lag_and_activity_on_the_leader_across_domains() {
    let s = collect_all(&fixtures::load("leaf"), all_options());
    let lead = [("is_stream_leader", "true"), ("mirror_name", "SEA_EVENTS")];
    assert_eq!(
        values(&s, "jetstream_stream_mirror_lag", "mirror_api", &lead),
        ["$JS.cell-a.API"]
    );
    assert_eq!(
        values(&s, "jetstream_stream_mirror_lag", "domain", &lead),
        ["cell-b"]
    );
    let active = s
        .value("jetstream_stream_mirror_active_duration_ns", &lead)
        .unwrap();
    assert!(active >= 0.0, "{active}");
}

#[test]
fn configured_and_connected_links_come_from_the_servers_themselves() {
    let leaf = collect_all(&fixtures::load("leaf"), all_options());
    for b in ["cell-b-1", "cell-b-2", "cell-b-3"] {
        let id = [("server_id", b)];
        assert_eq!(
            leaf.value("nats_exporter_leafnode_remotes_configured", &id),
            Some(1.0),
            "{b}"
        );
        assert_eq!(
            leaf.value("nats_exporter_leafnode_remotes_connected", &id),
            Some(1.0),
            "{b}"
        );
    }
    // The accepting cell dials nothing; its servers may hold no leafnode at all, legitimately.
    let a1 = [("server_id", "cell-a-1")];
    assert_eq!(
        leaf.value("nats_exporter_leafnode_remotes_configured", &a1),
        Some(0.0)
    );
    let mesh = collect_all(&fixtures::load("mesh"), all_options());
    for id in ["sea-a-1", "sea-b-3"] {
        let id = [("server_id", id)];
        assert_eq!(
            mesh.value("nats_exporter_gateway_remotes_configured", &id),
            Some(1.0)
        );
        assert_eq!(
            values(
                &mesh,
                "gnatsd_gatewayz_outbound_gateway_configured",
                "server_id",
                &id
            )
            .len(),
            1
        );
    }
    // Route pooling: 2 peers x (pool of 3 + the pinned system account route) = 8 routes.
    let ha = collect_all(&fixtures::load("ha"), all_options());
    let n1 = [("server_id", "nats-1")];
    assert_eq!(ha.value("gnatsd_varz_routes", &n1), Some(8.0));
    assert_eq!(ha.value("gnatsd_varz_remotes", &n1), Some(2.0));
    assert_eq!(
        ha.value("gnatsd_varz_jetstream_meta_cluster_size", &n1),
        Some(3.0)
    );
}

#[test]
fn a_server_that_does_not_answer_exports_only_that_it_is_down() {
    let (name, mut answers) = fixtures::load("ha").remove(0);
    answers.answers = Endpoint::ALL
        .into_iter()
        .map(|e| (e, Err("connection refused".to_owned())))
        .collect();
    let (s, now) = collect::server(&answers, Some(&name), all_options());
    assert_eq!(now, None);
    let families: Vec<&str> = s.families.keys().map(String::as_str).collect();
    assert_eq!(
        families,
        [
            "nats_exporter_endpoint_up",
            "nats_exporter_scrape_duration_seconds",
            "nats_exporter_up"
        ]
    );
    assert_eq!(
        s.value("nats_exporter_up", &[("server_id", &name)]),
        Some(0.0)
    );
    assert_eq!(
        s.value("nats_exporter_endpoint_up", &[("endpoint", "jsz")]),
        Some(0.0)
    );
    // Never seen before: the URL stands in for the name.
    let (s, _) = collect::server(&answers, None, all_options());
    assert_eq!(
        s.value("nats_exporter_up", &[("server_id", answers.url.as_str())]),
        Some(0.0)
    );
}

#[test]
fn healthz_follows_the_go_exporter() {
    let (_, answers) = fixtures::load("ha").remove(0);
    let with_health = |h: Result<serde_json::Value, String>| {
        let mut a = answers.clone();
        a.answers.retain(|(e, _)| *e != Endpoint::Healthz);
        a.answers.push((Endpoint::Healthz, h));
        collect::server(&a, None, all_options()).0
    };
    let ok = with_health(Ok(json!({"status": "ok"})));
    assert_eq!(ok.value("gnatsd_healthz_status", &[]), Some(0.0));
    assert_eq!(
        ok.value("gnatsd_healthz_status_value", &[("value", "ok")]),
        Some(1.0)
    );
    let bad = with_health(Ok(
        json!({"status": "unavailable", "error": "JetStream has not established contact with a meta leader"}),
    ));
    assert_eq!(bad.value("gnatsd_healthz_status", &[]), Some(1.0));
    assert_eq!(
        bad.value("gnatsd_healthz_status_value", &[("value", "unavailable")]),
        Some(0.0)
    );
    let gone = with_health(Err("timed out".into()));
    assert_eq!(gone.value("gnatsd_healthz_status", &[]), None);
    assert_eq!(
        gone.value("gnatsd_healthz_status_value", &[("value", "unreachable")]),
        Some(0.0)
    );
    assert_eq!(
        gone.value("nats_exporter_endpoint_up", &[("endpoint", "healthz")]),
        Some(0.0)
    );
}

#[test]
fn label_gauges_of_every_server_survive_one_scrape() {
    // The Go exporter resets a `{value}` gauge per server polled: only one server's survives.
    let s = collect_all(&fixtures::load("ha"), all_options());
    assert_eq!(
        values(&s, "gnatsd_varz_version", "value", &[]),
        ["2.15.1", "2.15.1", "2.15.1"]
    );
}

/// Prometheus' own parser reads the whole exposition. Its linter only objects to names the Go
/// exporter chose (`*_count` gauges, `*_total` gauges, `_ns`), which are kept on purpose.
#[test]
fn promtool_parses_the_exposition() {
    if !require("promtool_parses_the_exposition", Prerequisite::Prometheus) {
        return;
    }
    let mut said = String::new();
    // One exposition per profile: each is a whole scrape (families appear once).
    for profile in PROFILES {
        let text = collect_all(&fixtures::load(profile), all_options()).encode_text();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        let out = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(file.path()).unwrap())
            .output()
            .unwrap();
        said.push_str(&String::from_utf8_lossy(&out.stdout));
        said.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    let table = names::table();
    for line in said.lines() {
        let name = line.split(' ').next().unwrap_or("");
        assert!(
            table.metric.iter().any(|e| e.name == name),
            "promtool: {line} (a parse error, or a lint about a name that is not the Go exporter's)"
        );
    }
}
