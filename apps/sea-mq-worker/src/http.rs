//! `/healthz` (alive, and not halted), `/readyz` (not halted, NATS connected, consumer bound,
//! database reachable, its writes not failing) and `/metrics` (Prometheus text, or OpenMetrics when
//! asked for) on one port.
//!
//! A halted worker (its database file deleted or replaced) fails `/healthz` too: only a restart
//! brings it back, and a liveness probe is what restarts it.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sea_infra::service::http::{reply, TEXT};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::run::Worker;

/// Serves until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    worker: Arc<Worker>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let worker = worker.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, worker.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    worker: Arc<Worker>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let text = TEXT;
    Ok(match req.uri().path() {
        "/healthz" => match worker.health.halted() {
            None => reply(StatusCode::OK, text, "ok\n".into()),
            Some(reason) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                text,
                format!("unhealthy: {reason}\n"),
            ),
        },
        "/readyz" => {
            let problems = readiness_problems(&worker).await;
            if problems.is_empty() {
                reply(StatusCode::OK, text, "ready\n".into())
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    text,
                    format!("not ready: {}\n", problems.join("; ")),
                )
            }
        }
        "/metrics" => {
            let accept = req.headers().get(hyper::header::ACCEPT);
            let (content_type, body) = worker.metrics.render(accept.and_then(|a| a.to_str().ok()));
            reply(StatusCode::OK, content_type, body)
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            text,
            "not found: try /healthz, /readyz or /metrics\n".into(),
        ),
    })
}

/// Everything that keeps the worker from doing its job right now.
async fn readiness_problems(worker: &Worker) -> Vec<String> {
    // The ping also notices a replaced SQLite file while nothing is being written.
    let pinged = tokio::time::timeout(Duration::from_secs(1), worker.store.ping()).await;
    if let Ok(Err(e)) = &pinged {
        if e.is_replaced() {
            worker.health.halt(&e.to_string());
        }
    }
    let mut problems = worker.health.problems();
    if worker.client.connection_state() != async_nats::connection::State::Connected {
        problems.push("NATS not connected".to_owned());
    }
    if !worker.consumer_bound.load(Ordering::Relaxed) {
        problems.push("consumer not bound".to_owned());
    }
    match pinged {
        Ok(Ok(())) => {}
        // Already among the problems, as the halt.
        Ok(Err(e)) if e.is_replaced() => {}
        Ok(Err(e)) => problems.push(e.to_string()),
        Err(_) => problems.push("database did not answer within 1s".to_owned()),
    }
    problems
}
