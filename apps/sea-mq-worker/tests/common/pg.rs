//! A private PostgreSQL server for a test ([`sea_mq_worker::pg_server`], with `fsync = off`):
//! stopped and removed on drop, also when the test panics. [`PgServer::start_tls`] starts one
//! that accepts only TLS over TCP, with a certificate from a development CA of its own.
//!
//! Without PostgreSQL binaries the tests are skipped (and say so), unless
//! `SEA_REQUIRE_POSTGRES=1`, where they fail (`sea_infra::testing::require`).

#![allow(dead_code)] // each test binary that includes this file uses a different part

use std::time::Duration;

use sea_infra::testing::{require, Prerequisite};
use sea_mq_worker::config::parse_database_url;
use sea_mq_worker::db::Store;
use sea_mq_worker::pg_server::PgOptions;
#[allow(unused_imports)] // not every test binary checks for it
pub use sea_mq_worker::pg_server::PASSWORD;

pub struct PgServer(sea_mq_worker::pg_server::PgServer);

impl std::ops::Deref for PgServer {
    type Target = sea_mq_worker::pg_server::PgServer;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl PgServer {
    /// Starts a server with database `sea`; `None` (after saying why) when `test` must skip.
    pub async fn start(test: &str) -> Option<PgServer> {
        PgServer::start_with(test, false).await
    }

    /// Like [`start`](Self::start), TLS only over TCP, with the password (SCRAM).
    pub async fn start_tls(test: &str) -> Option<PgServer> {
        PgServer::start_with(test, true).await
    }

    async fn start_with(test: &str, tls: bool) -> Option<PgServer> {
        if !require(test, Prerequisite::Postgres) {
            return None;
        }
        let options = PgOptions { tls, fsync: false };
        match sea_mq_worker::pg_server::PgServer::start(options).await {
            Ok(server) => Some(PgServer(server)),
            Err(e) => panic!("start PostgreSQL: {e:#}"),
        }
    }

    /// A direct client, for what only the server can tell (its sessions).
    pub async fn client(&self) -> tokio_postgres::Client {
        self.0.client().await.unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// The worker's tables, as an auditor reads them.
    pub async fn store(&self) -> Store {
        let db = parse_database_url(&self.url()).expect("the test's DATABASE_URL");
        Store::open(&db, Duration::ZERO)
            .await
            .expect("open the worker's tables")
    }

    /// `sslmode` and SSL version of every session of `application_name`, as the server sees
    /// them (`pg_stat_ssl`).
    pub async fn sessions_tls(&self, application_name: &str) -> Vec<(bool, Option<String>)> {
        self.client()
            .await
            .query(
                "SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
                 WHERE a.application_name = $1",
                &[&application_name],
            )
            .await
            .expect("read pg_stat_ssl")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }
}
