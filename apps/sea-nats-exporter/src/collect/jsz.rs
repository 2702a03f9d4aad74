//! `/jsz?consumers=true&config=true&raft=true`, as prometheus-nats-exporter's `jsz.go` with
//! `-jsz=all`: server, account, stream (with mirror and source lag) and consumer gauges.
//!
//! Every replica reports every asset it hosts; `is_stream_leader` / `is_consumer_leader` pick
//! one series per asset (`"true"` also when the asset is not clustered). Unlike Go, the leader
//! and description labels are reset for each stream and consumer (Go carries the previous
//! asset's over when one has no cluster info or no description).

use serde_json::Value;

use super::{epoch_secs, num, text, Options};
use crate::family::{Labels, Snapshot};

pub fn collect(out: &mut Snapshot, server_id: &str, server_name: &str, jsz: &Value, opts: Options) {
    let meta = jsz.get("meta_cluster");
    let (cluster, meta_leader, is_meta_leader) = match meta {
        Some(m) => {
            let leader = text(m, "leader");
            (text(m, "name"), leader, bool_label(leader == server_name))
        }
        None => ("", "", "true"),
    };
    let domain = jsz.get("config").map_or("", |c| text(c, "domain"));
    let server: Labels = [
        ("server_id", server_id),
        ("server_name", server_name),
        ("cluster", cluster),
        ("domain", domain),
        ("meta_leader", meta_leader),
        ("is_meta_leader", is_meta_leader),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();

    let config = jsz.get("config").unwrap_or(&Value::Null);
    let disabled = jsz
        .get("disabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let server_series = [
        (
            "jetstream_disabled",
            "JetStream disabled or not",
            f64::from(u8::from(disabled)),
        ),
        (
            "max_memory",
            "JetStream Max Memory",
            num(config, "max_memory"),
        ),
        (
            "max_storage",
            "JetStream Max Storage",
            num(config, "max_storage"),
        ),
        (
            "total_streams",
            "Total number of streams in JetStream",
            num(jsz, "streams"),
        ),
        (
            "total_consumers",
            "Total number of consumers in JetStream",
            num(jsz, "consumers"),
        ),
        (
            "total_messages",
            "Total number of stored messages in JetStream",
            num(jsz, "messages"),
        ),
        (
            "total_message_bytes",
            "Total number of bytes stored in JetStream",
            num(jsz, "bytes"),
        ),
    ];
    for (name, help, value) in server_series {
        out.gauge(
            &format!("jetstream_server_{name}"),
            help,
            server.clone(),
            value,
        );
    }

    for account in array(jsz, "account_details") {
        let account_name = text(account, "name");
        let mut acc = server.clone();
        push(&mut acc, "account", account_name);
        push(&mut acc, "account_name", account_name);
        push(&mut acc, "account_id", text(account, "id"));
        let account_series = [
            (
                "max_storage",
                "JetStream Account Max Storage in bytes",
                "reserved_storage",
            ),
            (
                "max_memory",
                "JetStream Account Max Memory in bytes",
                "reserved_memory",
            ),
            (
                "storage_used",
                "Total number of bytes used by JetStream storage",
                "storage",
            ),
            (
                "memory_used",
                "Total number of bytes used by JetStream memory",
                "memory",
            ),
        ];
        for (name, help, key) in account_series {
            out.gauge(
                &format!("jetstream_account_{name}"),
                help,
                acc.clone(),
                num(account, key),
            );
        }
        for stream in array(account, "stream_detail") {
            collect_stream(out, &acc, server_name, stream, opts);
        }
    }
}

fn collect_stream(
    out: &mut Snapshot,
    acc: &Labels,
    server_name: &str,
    stream: &Value,
    opts: Options,
) {
    let (leader, is_leader) = leadership(stream, server_name);
    let mut labels = acc.clone();
    push(&mut labels, "stream_name", text(stream, "name"));
    push(&mut labels, "stream_leader", leader);
    push(&mut labels, "is_stream_leader", is_leader);
    push(
        &mut labels,
        "stream_raft_group",
        text(stream, "stream_raft_group"),
    );

    let state = stream.get("state").unwrap_or(&Value::Null);
    let series = [
        (
            "total_messages",
            "Total number of messages from a stream",
            num(state, "messages"),
        ),
        (
            "total_bytes",
            "Total stored bytes from a stream",
            num(state, "bytes"),
        ),
        (
            "first_seq",
            "First sequence from a stream",
            num(state, "first_seq"),
        ),
        (
            "last_seq",
            "Last sequence from a stream",
            num(state, "last_seq"),
        ),
        (
            "consumer_count",
            "Total number of consumers from a stream",
            num(state, "consumer_count"),
        ),
        (
            "subject_count",
            "Total number of subjects in a stream",
            num(state, "num_subjects"),
        ),
    ];
    for (name, help, value) in series {
        out.gauge(
            &format!("jetstream_stream_{name}"),
            help,
            labels.clone(),
            value,
        );
    }
    if let Some(config) = stream.get("config") {
        out.gauge(
            "jetstream_stream_limit_bytes",
            "The maximum configured storage limit (in bytes) for a JetStream stream. A value of -1 indicates no limit.",
            labels.clone(),
            num(config, "max_bytes"),
        );
        out.gauge(
            "jetstream_stream_limit_messages",
            "The maximum number of messages allowed in a JetStream stream as per its configuration. A value of -1 indicates no limit.",
            labels.clone(),
            num(config, "max_msgs"),
        );
    }

    for source in array(stream, "sources") {
        origin(out, &labels, "source", "a stream source", source);
    }
    if let Some(mirror) = stream.get("mirror").filter(|m| m.is_object()) {
        origin(out, &labels, "mirror", "a stream mirror", mirror);
    }

    for consumer in array(stream, "consumer_detail") {
        let config = consumer.get("config");
        let durable = config.is_none_or(|c| !text(c, "durable_name").is_empty());
        if durable || opts.ephemeral_consumers {
            collect_consumer(out, &labels, server_name, consumer);
        }
    }
}

/// `jetstream_stream_{mirror,source}_{lag,active_duration_ns}` with the origin's name and, for
/// another domain or account, its API and deliver prefixes.
fn origin(out: &mut Snapshot, stream: &Labels, kind: &str, what: &str, info: &Value) {
    let external = info.get("external").unwrap_or(&Value::Null);
    let mut l = stream.clone();
    push(&mut l, &format!("{kind}_name"), text(info, "name"));
    push(&mut l, &format!("{kind}_api"), text(external, "api"));
    push(
        &mut l,
        &format!("{kind}_deliver"),
        text(external, "deliver"),
    );
    out.gauge(
        &format!("jetstream_stream_{kind}_lag"),
        &format!("Number of messages {what} is behind"),
        l.clone(),
        num(info, "lag"),
    );
    out.gauge(
        &format!("jetstream_stream_{kind}_active_duration_ns"),
        &format!("Stream {kind} active duration in nanoseconds (-1 indicates inactive)"),
        l,
        num(info, "active"),
    );
}

fn collect_consumer(out: &mut Snapshot, stream: &Labels, server_name: &str, consumer: &Value) {
    let (leader, is_leader) = leadership(consumer, server_name);
    let desc = consumer
        .get("config")
        .map_or("", |c| text(c, "description"));
    let mut l = stream.clone();
    push(&mut l, "consumer_name", text(consumer, "name"));
    push(&mut l, "consumer_leader", leader);
    push(&mut l, "is_consumer_leader", is_leader);
    push(&mut l, "consumer_desc", desc);

    let delivered = consumer.get("delivered").unwrap_or(&Value::Null);
    let ack_floor = consumer.get("ack_floor").unwrap_or(&Value::Null);
    // Seconds from the last delivery / ack to the answer's own timestamp, as in Go.
    let now = epoch_secs(text(consumer, "ts"));
    let since = |v: &Value| Some(now? - epoch_secs(v.get("last_active")?.as_str()?)?);
    if let Some(s) = since(delivered) {
        let help = "Seconds since last message delivery to consumer";
        out.gauge(
            "jetstream_consumer_last_delivery_seconds",
            help,
            l.clone(),
            s,
        );
    }
    if let Some(s) = since(ack_floor) {
        let help = "Seconds since last ack from consumer";
        out.gauge("jetstream_consumer_last_ack_seconds", help, l.clone(), s);
    }
    let series = [
        (
            "delivered_consumer_seq",
            "Latest sequence number of a stream consumer",
            num(delivered, "consumer_seq"),
        ),
        (
            "delivered_stream_seq",
            "Latest sequence number of a stream",
            num(delivered, "stream_seq"),
        ),
        (
            "num_ack_pending",
            "Number of pending acks from a consumer",
            num(consumer, "num_ack_pending"),
        ),
        (
            "num_redelivered",
            "Number of redelivered messages from a consumer",
            num(consumer, "num_redelivered"),
        ),
        (
            "num_waiting",
            "Number of inflight fetch requests from a pull consumer",
            num(consumer, "num_waiting"),
        ),
        (
            "num_pending",
            "Number of pending messages from a consumer",
            num(consumer, "num_pending"),
        ),
        (
            "ack_floor_stream_seq",
            "Number of ack floor stream seq from a consumer",
            num(ack_floor, "stream_seq"),
        ),
        (
            "ack_floor_consumer_seq",
            "Number of ack floor consumer seq from a consumer",
            num(ack_floor, "consumer_seq"),
        ),
    ];
    for (name, help, value) in series {
        out.gauge(
            &format!("jetstream_consumer_{name}"),
            help,
            l.clone(),
            value,
        );
    }
}

/// The asset's leader and whether this server is it (`"true"` when not clustered, as in Go).
fn leadership<'a>(asset: &'a Value, server_name: &str) -> (&'a str, &'static str) {
    match asset.get("cluster").filter(|c| c.is_object()) {
        Some(c) => {
            let leader = text(c, "leader");
            (leader, bool_label(leader == server_name))
        }
        None => ("", "true"),
    }
}

fn bool_label(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

fn array<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn push(labels: &mut Labels, key: &str, value: &str) {
    labels.push((key.to_owned(), value.to_owned()));
}
