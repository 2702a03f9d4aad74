//! Nothing the worker prints carries a credential: NATS server URLs with `user:password@` or a
//! token, and a `DATABASE_URL` with a password in each form PostgreSQL accepts, at
//! `LOG_LEVEL=debug`, in text and JSON logs, while it works and when it cannot start.

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::time::Duration;

use common::*;
use sea_infra::model::topology::Profile;

/// Fails naming the secret and showing the log when any of `secrets` is in it.
fn assert_no_secret(what: &str, log: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!log.contains(secret), "{what}: {secret:?} printed:\n{log}");
    }
    assert!(!log.is_empty(), "{what}: no log at all");
}

#[tokio::test]
async fn credentials_in_nats_server_urls_are_never_logged() {
    let env = Env::start(Profile::Single).await;
    let url = env.cluster.server_urls()[0].clone();
    let host = url.strip_prefix("nats://").unwrap();
    // A server that is not there: the client's connection attempts to it are logged too.
    let absent = format!("127.0.0.1:{}", sea_infra::deployment::ports::free_port());
    // The test servers have no auth: they accept any credentials.
    let forms = [
        (
            "user:password",
            "svc:n4ts-pw-s3cret",
            "n4ts-pw-s3cret",
            "text",
        ),
        ("token", "n4ts-t0ken-s3cret", "n4ts-t0ken-s3cret", "text"),
        (
            "token, json logs",
            "n4ts-t0ken-s3cret",
            "n4ts-t0ken-s3cret",
            "json",
        ),
    ];
    for (i, (form, userinfo, secret, format)) in forms.into_iter().enumerate() {
        let servers = format!("nats://{userinfo}@{host},nats://{userinfo}@{absent}");
        let group = format!("g{i}");
        let mut worker = env.worker(
            &group,
            &[
                ("NATS_SERVERS", servers.as_str()),
                ("LOG_LEVEL", "debug"),
                ("LOG_FORMAT", format),
            ],
        );
        worker.ready().await;
        let prefix = format!("s{i}");
        publish_events(&env.js, &prefix, 0..5).await;
        wait_until(Duration::from_secs(30), "events in the inbox", || async {
            env.inbox_counts(&group).await.0 >= 5
        })
        .await;
        worker.terminate(Duration::from_secs(15));
        assert_no_secret(form, &worker.log_text(), &[secret]);
    }
}

/// `DATABASE_URL`s carrying `secret`, in every form: (form, value, what must not appear).
fn database_urls(port: u16) -> Vec<(&'static str, String, Vec<&'static str>)> {
    let at = format!("127.0.0.1:{port}");
    vec![
        (
            "URL user:password",
            format!("postgres://postgres:pg-url-s3cret@{at}/sea"),
            vec!["pg-url-s3cret"],
        ),
        (
            "URL percent-encoded password",
            format!("postgresql://postgres:pg%2Fenc%40s3cret@{at}/sea"),
            vec!["pg%2Fenc%40s3cret", "pg/enc@s3cret"],
        ),
        (
            "URL query password",
            format!("postgres://postgres@{at}/sea?application_name=w&password=pg-query-s3cret"),
            vec!["pg-query-s3cret"],
        ),
        (
            "URL query sslpassword",
            format!("postgres://postgres@{at}/sea?sslpassword=pg-ssl-s3cret"),
            vec!["pg-ssl-s3cret"],
        ),
        (
            "key=value",
            format!("host=127.0.0.1 port={port} user=postgres dbname=sea password=pg-kv-s3cret"),
            vec!["pg-kv-s3cret"],
        ),
        (
            "key=value, quoted",
            format!(
                r"host=127.0.0.1 port={port} user=postgres password = 'pg kv \'quoted\' s3cret' dbname=sea"
            ),
            vec!["pg kv", "quoted", "s3cret"],
        ),
    ]
}

/// A worker with `database`, at debug level; its log once it is ready (and then stopped) or
/// has exited by itself.
async fn run_worker(env: &Env, group: &str, database: &str) -> (Option<i32>, String) {
    let mut worker = env.worker(group, &[("DATABASE_URL", database), ("LOG_LEVEL", "debug")]);
    let exited = match worker.0.wait_ready(Duration::from_secs(30)).await {
        Ok(()) => {
            publish_events(&env.js, group, 0..3).await;
            worker.terminate(Duration::from_secs(15)).code()
        }
        Err(_) => worker.wait_exit(Duration::from_secs(15)).code(),
    };
    (exited, worker.log_text())
}

#[tokio::test]
async fn database_passwords_are_never_logged_when_the_database_is_unreachable() {
    let env = Env::start(Profile::Single).await;
    let port = sea_infra::deployment::ports::free_port();
    for (i, (form, url, secrets)) in database_urls(port).into_iter().enumerate() {
        let (code, log) = run_worker(&env, &format!("u{i}"), &url).await;
        assert!(
            matches!(code, Some(1 | 64)),
            "{form}: the worker must not start: {code:?}\n{log}"
        );
        assert_no_secret(form, &log, &secrets);
    }
}

#[tokio::test]
async fn database_passwords_are_never_logged_while_the_worker_runs() {
    let Some(pg) =
        pg::PgServer::start("database_passwords_are_never_logged_while_the_worker_runs").await
    else {
        return;
    };
    let env = Env::start(Profile::Single).await;
    for (i, (form, url, secrets)) in database_urls(pg.port()).into_iter().enumerate() {
        let (code, log) = run_worker(&env, &format!("r{i}"), &url).await;
        if form.contains("sslpassword") {
            // Refused at start (no client keys: the worker has no client certificates for
            // PostgreSQL), without the value.
            assert_eq!(code, Some(64), "{form}:\n{log}");
        } else {
            assert_eq!(code, Some(0), "{form}: runs and stops cleanly:\n{log}");
        }
        assert_no_secret(form, &log, &secrets);
    }
}
