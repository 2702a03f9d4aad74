//! Provisioning against real clusters on free ports: create, idempotence, drift, live replica
//! changes, refusal of changes the server cannot apply in place.

use std::time::Duration;

use async_nats::jetstream::{self, stream::StorageType};
use sea_infra::client::connect::NatsConfig;
use sea_infra::client::provision::{
    self, Action, Allowed, ConnectedCluster, Field, Plan, ProvisionError,
};
use sea_infra::model::spec::Spec;
use sea_infra::model::topology::Profile;
use sea_infra::testing::TestCluster;

struct Conn {
    js: jetstream::Context,
    target: ConnectedCluster,
}

async fn connect(cluster: &TestCluster) -> Conn {
    let servers: Vec<String> = cluster
        .nats_servers()
        .split(',')
        .map(str::to_owned)
        .collect();
    let client = NatsConfig::default()
        .connect(&servers)
        .await
        .expect("connect");
    let target = ConnectedCluster::from_client(&client, &servers);
    Conn {
        js: jetstream::new(client),
        target,
    }
}

async fn plan(conn: &Conn, spec: &Spec, recreate: &[&str]) -> Plan {
    let allowed = Allowed {
        recreate: recreate.iter().map(|s| s.to_string()).collect(),
        ..Allowed::default()
    };
    provision::plan(&conn.js, spec, conn.target.clone(), Vec::new(), &allowed)
        .await
        .expect("plan")
}

/// Plans and applies; returns the plan that was applied.
async fn provision(conn: &Conn, spec: &Spec, recreate: &[&str]) -> Result<Plan, ProvisionError> {
    let plan = plan(conn, spec, recreate).await;
    provision::apply(&conn.js, spec, &plan, Duration::from_secs(30), &|_| {}).await?;
    Ok(plan)
}

/// A single server with the builtin spec (1 replica) provisioned.
async fn provisioned_single() -> (TestCluster, Conn, Spec) {
    let cluster = TestCluster::start(Profile::Single).await;
    let conn = connect(&cluster).await;
    let mut spec = Spec::builtin();
    provision::fit_replicas(&mut spec, &conn.target, false).unwrap();
    provision(&conn, &spec, &[]).await.unwrap();
    (cluster, conn, spec)
}

fn actions(plan: &Plan) -> Vec<(String, Action)> {
    plan.items
        .iter()
        .map(|i| (i.name.clone(), i.action))
        .collect()
}

async fn created_times(conn: &Conn, spec: &Spec) -> Vec<String> {
    let mut out = Vec::new();
    for s in &spec.streams {
        let mut st = conn.js.get_stream(&s.name).await.unwrap();
        out.push(format!("{}", st.info().await.unwrap().created));
    }
    out
}

#[tokio::test]
async fn single_gets_one_replica_and_a_second_run_changes_nothing() {
    let cluster = TestCluster::start(Profile::Single).await;
    let conn = connect(&cluster).await;
    assert_eq!(
        (conn.target.cluster.as_deref(), conn.target.cluster_size),
        (None, 1)
    );

    let mut spec = Spec::builtin();
    let notes = provision::fit_replicas(&mut spec, &conn.target, false).unwrap();
    assert!(
        notes[0]
            .starts_with("JetStream is not clustered (one server): using 1 replica instead of 3"),
        "{notes:?}"
    );
    let first = provision(&conn, &spec, &[]).await.unwrap();
    assert!(
        first.items.iter().all(|i| i.action == Action::Create),
        "{:?}",
        actions(&first)
    );
    let created = created_times(&conn, &spec).await;

    let second = provision(&conn, &spec, &[]).await.unwrap();
    assert!(second.is_unchanged(), "{:?}", actions(&second));
    assert_eq!(
        created_times(&conn, &spec).await,
        created,
        "no stream was recreated"
    );

    // An explicit replica count larger than the cluster is an error with the fix.
    let mut spec = Spec::builtin();
    let err = provision::fit_replicas(&mut spec, &conn.target, true)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "STREAM_REPLICAS=3 but the JetStream cluster has 1 server(s); set it to 1 or less, or unset it");
}

#[tokio::test]
async fn ha_streams_get_three_current_replicas_and_the_documented_consumer() {
    let cluster = TestCluster::start(Profile::Ha).await;
    let conn = connect(&cluster).await;
    assert_eq!(
        (conn.target.cluster.as_deref(), conn.target.cluster_size),
        (Some("sea-nats"), 3)
    );
    let spec = Spec::builtin();

    // A dry run (plan only) changes nothing.
    let dry = plan(&conn, &spec, &[]).await;
    assert!(dry.items.iter().all(|i| i.action == Action::Create));
    assert!(
        conn.js.get_stream("SEA_EVENTS").await.is_err(),
        "planning created nothing"
    );

    provision(&conn, &spec, &[]).await.unwrap();
    for name in ["SEA_EVENTS", "VIBESPRO_EVENTS"] {
        let mut st = conn.js.get_stream(name).await.unwrap();
        let info = st.info().await.unwrap();
        assert_eq!(
            (info.config.num_replicas, info.config.storage),
            (3, StorageType::File)
        );
        let peers = &info.cluster.as_ref().unwrap().replicas;
        assert_eq!(peers.len(), 2, "two followers");
        assert!(peers.iter().all(|p| p.current), "{peers:?}");
        let consumer = st.consumer_info("sea-mq-worker").await.unwrap().config;
        assert_eq!(consumer.ack_wait, Duration::from_secs(30));
        assert_eq!((consumer.max_deliver, consumer.max_ack_pending), (5, 1024));
    }
    let created = created_times(&conn, &spec).await;
    let again = provision(&conn, &spec, &[]).await.unwrap();
    assert!(again.is_unchanged(), "{:?}", actions(&again));
    assert_eq!(created_times(&conn, &spec).await, created);
}

#[tokio::test]
async fn out_of_band_change_is_drift_until_reprovisioned() {
    let (_cluster, conn, spec) = provisioned_single().await;

    // Someone edits the stream by hand.
    let mut config = spec.stream("SEA_EVENTS").unwrap().config();
    config.max_age = Duration::from_secs(3 * 86_400);
    conn.js.update_stream(config).await.unwrap();

    let drift = plan(&conn, &spec, &[]).await;
    assert!(!drift.is_unchanged());
    let item = drift.items.iter().find(|i| i.name == "SEA_EVENTS").unwrap();
    assert_eq!(item.action, Action::Update);
    assert_eq!(
        (
            item.changes[0].field,
            item.changes[0].live.as_str(),
            item.changes[0].desired.as_str()
        ),
        (Field::MaxAge, "3d", "7d")
    );

    provision(&conn, &spec, &[]).await.unwrap();
    assert!(plan(&conn, &spec, &[]).await.is_unchanged());
}

#[tokio::test]
async fn replicas_grow_from_one_to_three_live_and_keep_the_data() {
    let cluster = TestCluster::start(Profile::Ha).await;
    let conn = connect(&cluster).await;
    let mut spec = Spec::builtin();
    spec.streams.iter_mut().for_each(|s| s.replicas = 1);
    provision(&conn, &spec, &[]).await.unwrap();
    for i in 0..100 {
        conn.js
            .publish(format!("sea.event.test.{i}"), "x".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    let spec = Spec::builtin();
    let grown = provision(&conn, &spec, &[]).await.unwrap();
    let item = grown.items.iter().find(|i| i.name == "SEA_EVENTS").unwrap();
    assert_eq!(item.action, Action::Update);
    assert!(item
        .changes
        .iter()
        .any(|c| c.field == Field::Replicas && c.live == "1" && c.desired == "3"));

    let mut st = conn.js.get_stream("SEA_EVENTS").await.unwrap();
    let info = st.info().await.unwrap();
    assert_eq!(info.state.messages, 100, "data kept");
    let peers = &info.cluster.as_ref().unwrap().replicas;
    assert!(
        peers.len() == 2 && peers.iter().all(|p| p.current),
        "apply waited for current replicas: {peers:?}"
    );
}

#[tokio::test]
async fn storage_change_is_refused_naming_the_field_unless_recreate_is_given() {
    let (_cluster, conn, mut spec) = provisioned_single().await;
    conn.js
        .publish("sea.event.a", "x".into())
        .await
        .unwrap()
        .await
        .unwrap();

    spec.streams[0].storage = StorageType::Memory;
    spec.streams[0].max_bytes = 64 << 20; // within the servers' max_mem_store
    let err = provision(&conn, &spec, &[]).await.unwrap_err().to_string();
    assert!(
        err.starts_with("refusing to change anything: stream SEA_EVENTS (storage file -> memory) cannot change in place"),
        "{err}"
    );
    assert!(err.contains("--recreate SEA_EVENTS"), "{err}");
    let mut st = conn.js.get_stream("SEA_EVENTS").await.unwrap();
    assert_eq!(
        st.info().await.unwrap().config.storage,
        StorageType::File,
        "nothing changed"
    );

    let recreated = provision(&conn, &spec, &["SEA_EVENTS"]).await.unwrap();
    let kinds: Vec<_> = recreated
        .items
        .iter()
        .filter(|i| i.name.starts_with("SEA_EVENTS"))
        .map(|i| i.action)
        .collect();
    assert_eq!(
        kinds,
        [Action::Recreate, Action::Create],
        "the consumer is recreated with its stream"
    );
    let mut st = conn.js.get_stream("SEA_EVENTS").await.unwrap();
    let info = st.info().await.unwrap();
    assert_eq!(
        (info.config.storage, info.state.messages),
        (StorageType::Memory, 0)
    );
    assert!(plan(&conn, &spec, &[]).await.is_unchanged());
}

#[tokio::test]
async fn consumer_policy_change_is_refused() {
    let (_cluster, conn, spec) = provisioned_single().await;

    // Replace the durable with a push consumer of the same name.
    let st = conn.js.get_stream("SEA_EVENTS").await.unwrap();
    st.delete_consumer("sea-mq-worker").await.unwrap();
    st.create_consumer(jetstream::consumer::push::Config {
        durable_name: Some("sea-mq-worker".into()),
        deliver_subject: "elsewhere".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let p = plan(&conn, &spec, &[]).await;
    let item = p
        .items
        .iter()
        .find(|i| i.name == "SEA_EVENTS/sea-mq-worker")
        .unwrap();
    assert_eq!(item.action, Action::Refused);
    assert!(item
        .changes
        .iter()
        .any(|c| c.field == Field::ConsumerType && c.live == "push" && !c.in_place));
}

async fn publish_n(conn: &Conn, subject: &str, n: usize) {
    for i in 0..n {
        let payload = format!("{{\"id\":\"e{i}\",\"pad\":\"{}\"}}", "x".repeat(100));
        conn.js
            .publish(subject.to_owned(), payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

async fn stored(conn: &Conn, stream: &str) -> u64 {
    let mut st = conn.js.get_stream(stream).await.unwrap();
    st.info().await.unwrap().state.messages
}

/// A change that would discard stored messages says how many and is refused, as a whole, until
/// the operator allows it; then it is applied.
#[tokio::test]
async fn an_update_that_discards_messages_is_refused_until_allowed() {
    let (_cluster, conn, mut spec) = provisioned_single().await;
    publish_n(&conn, "sea.event.loss", 200).await;
    spec.streams[0].max_bytes = 1000;
    spec.streams[2].max_age = Duration::from_secs(86_400); // an innocent change alongside
    let p = plan(&conn, &spec, &[]).await;
    let item = &p.items[0];
    assert_eq!(
        (item.name.as_str(), item.action),
        ("SEA_EVENTS", Action::Refused)
    );
    let why = item.refusals.join("; ");
    assert!(
        why.contains("would discard about")
            && why.contains("of 200 stored messages")
            && why.contains("--allow-loss SEA_EVENTS"),
        "{why}"
    );
    let err = provision::apply(&conn.js, &spec, &p, Duration::from_secs(30), &|_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("refusing to change anything: stream SEA_EVENTS would discard"),
        "{err}"
    );
    assert_eq!(stored(&conn, "SEA_EVENTS").await, 200, "nothing discarded");
    let mut dlq = conn.js.get_stream("SEA_DLQ").await.unwrap();
    assert_eq!(
        dlq.info().await.unwrap().config.max_age,
        Duration::from_secs(30 * 86_400),
        "nothing else applied either"
    );

    let allowed = Allowed {
        loss: ["SEA_EVENTS".to_owned()].into(),
        ..Allowed::default()
    };
    let p = provision::plan(&conn.js, &spec, conn.target.clone(), Vec::new(), &allowed)
        .await
        .unwrap();
    assert_eq!(p.items[0].action, Action::Update);
    assert!(!p.items[0].losses.is_empty());
    provision::apply(&conn.js, &spec, &p, Duration::from_secs(30), &|_| {})
        .await
        .unwrap();
    assert!(
        stored(&conn, "SEA_EVENTS").await < 200,
        "the allowed loss happened"
    );
}

/// A narrower subject set keeps what is stored but refuses new publishes there: a loss too.
#[tokio::test]
async fn a_narrower_subject_set_is_a_loss_and_says_what_is_stored_there() {
    let (_cluster, conn, mut spec) = provisioned_single().await;
    publish_n(&conn, "sea.event.orders.created", 5).await;
    publish_n(&conn, "sea.event.users.created", 3).await;
    spec.streams[0].subjects = vec!["sea.event.orders.>".into()];
    let p = plan(&conn, &spec, &[]).await;
    let why = p.items[0].refusals.join("; ");
    assert!(
        why.contains("would stop storing events on sea.event.>")
            && why.contains("their 8 stored messages stay"),
        "{why}"
    );
}

/// A stream that is not in the spec but captures the same subjects: the plan is refused naming
/// it before anything is created (the server would refuse the create half-way through).
#[tokio::test]
async fn subjects_taken_by_another_stream_refuse_the_plan_naming_it() {
    let cluster = TestCluster::start(Profile::Single).await;
    let conn = connect(&cluster).await;
    conn.js
        .create_stream(jetstream::stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["sea.event.orders.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let mut spec = Spec::builtin();
    provision::fit_replicas(&mut spec, &conn.target, false).unwrap();
    let err = provision(&conn, &spec, &[]).await.unwrap_err().to_string();
    assert!(
        err.contains("stream SEA_EVENTS its subjects sea.event.> overlap those of stream ORDERS (sea.event.orders.>)")
            && err.contains("change or delete ORDERS first"),
        "{err}"
    );
    let names: Vec<String> = {
        use futures::TryStreamExt;
        conn.js.stream_names().try_collect().await.unwrap()
    };
    assert_eq!(names, ["ORDERS"], "nothing was created");
}

/// A group whose filter matches one event stream gets its durable there only.
#[tokio::test]
async fn a_filtered_group_gets_its_durable_only_where_the_filter_can_match() {
    let cluster = TestCluster::start(Profile::Single).await;
    let conn = connect(&cluster).await;
    let mut spec = Spec::builtin();
    provision::fit_replicas(&mut spec, &conn.target, false).unwrap();
    spec.consumer.group = "orders".into();
    spec.consumer.filter_subject = Some("sea.event.orders.>".into());
    let p = provision(&conn, &spec, &[]).await.unwrap();
    let consumers: Vec<&str> = p
        .items
        .iter()
        .filter(|i| i.kind == provision::Kind::Consumer)
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(
        consumers,
        ["SEA_EVENTS/orders"],
        "never VIBESPRO_EVENTS/orders"
    );
}
