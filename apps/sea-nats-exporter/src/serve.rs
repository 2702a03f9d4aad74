//! `/metrics` (a fresh scrape per request, Prometheus text 0.0.4 as prometheus-nats-exporter
//! serves it) and `/healthz` (the exporter itself is alive) on one port, until shutdown.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
use sea_infra::service::http::{reply, TEXT};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::scrape::Scraper;

/// How long in-flight requests may finish after shutdown was asked for.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves until `shutdown` turns true, then lets in-flight requests finish (bounded).
pub async fn serve(
    listener: TcpListener,
    scraper: Arc<Scraper>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let Ok((stream, _)) = accepted else { continue };
        let scraper = scraper.clone();
        conns.spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, scraper.clone()));
            // One request per connection: a scrape every 15 s gains nothing from keep-alive, and an
            // idle kept-alive connection would hold shutdown for the whole drain time.
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await;
}

async fn handle(
    req: Request<Incoming>,
    scraper: Arc<Scraper>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let text = TEXT;
    Ok(match req.uri().path() {
        "/metrics" => reply(
            StatusCode::OK,
            CONTENT_TYPE,
            scraper.scrape().await.encode_text(),
        ),
        "/healthz" => reply(StatusCode::OK, text, "ok\n".into()),
        _ => reply(
            StatusCode::NOT_FOUND,
            text,
            "not found: try /metrics or /healthz\n".into(),
        ),
    })
}
