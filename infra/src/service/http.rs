//! What the services' small HTTP endpoints (`/healthz`, `/readyz`, `/metrics`) share.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

/// Plain text, for probes and people.
pub const TEXT: &str = "text/plain; charset=utf-8";

/// A complete response.
pub fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}
