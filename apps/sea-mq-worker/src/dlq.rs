//! Dead-letter queue: an event that can never succeed is published to `<prefix>.dlq.<rest>` with
//! headers saying where it came from and why, and only then terminated.
//!
//! Dead-lettering never depends on the payload fitting a second time: the provenance headers
//! make the DLQ copy larger than the event, so an event close to the size limit (the server's
//! `max_payload`, the DLQ stream's `max_message_size`) is dead-lettered as a reference instead:
//! no body, its size, and a header saying why; the body stays in the source stream at the
//! sequence the headers name.

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::{self, Context, ErrorCode};
use async_nats::HeaderMap;
use bytes::Bytes;
use sea_infra::model::spec::Spec;

pub const HEADER_ORIGINAL_SUBJECT: &str = "Sea-Dlq-Original-Subject";
pub const HEADER_STREAM: &str = "Sea-Dlq-Stream";
pub const HEADER_STREAM_SEQUENCE: &str = "Sea-Dlq-Stream-Sequence";
pub const HEADER_DELIVERY_COUNT: &str = "Sea-Dlq-Delivery-Count";
pub const HEADER_ERROR: &str = "Sea-Dlq-Error";
pub const HEADER_CONSUMER: &str = "Sea-Dlq-Consumer";
/// The event's payload size in bytes (whether or not the body is included).
pub const HEADER_PAYLOAD_SIZE: &str = "Sea-Dlq-Payload-Size";
/// Present only on a reference: why the body was left out and where to fetch it.
pub const HEADER_BODY_OMITTED: &str = "Sea-Dlq-Body-Omitted";

/// `sea.event.order.created` -> `sea.dlq.order.created`; a subject outside `<prefix>.event.>`
/// goes under `sea.dlq.` whole.
pub fn dlq_subject(subject: &str) -> String {
    match subject.split_once('.') {
        Some((prefix, rest)) => match rest.strip_prefix("event.") {
            Some(tail) => format!("{prefix}.dlq.{tail}"),
            None => format!("sea.dlq.{subject}"),
        },
        None => format!("sea.dlq.{subject}"),
    }
}

/// Header values cannot carry line breaks.
fn header_value(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(512)
        .collect()
}

/// Whether `subject` matches a stream subject `pattern` (`*` one token, a final `>` the rest).
fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut subject = subject.split('.');
    for token in pattern.split('.') {
        match (token, subject.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (t, Some(s)) if t == s => {}
            _ => return false,
        }
    }
    subject.next().is_none()
}

/// The largest message (headers plus payload) the DLQ can take on `subject`: the server's
/// `max_payload`, and the `max_message_size` of the spec's stream for that subject when set.
pub fn size_limit(max_payload: usize, spec: &Spec, subject: &str) -> usize {
    let stream_max = spec
        .streams
        .iter()
        .find(|s| s.subjects.iter().any(|p| subject_matches(p, subject)))
        .and_then(|s| usize::try_from(s.max_message_size).ok())
        .filter(|n| *n > 0);
    stream_max.map_or(max_payload, |n| n.min(max_payload))
}

/// Bytes a header block takes on the wire (`NATS/1.0\r\n`, `Name: value\r\n` each, `\r\n`):
/// the server counts them against the same limits as the payload.
fn headers_wire_len(headers: &HeaderMap) -> usize {
    let mut len = "NATS/1.0\r\n\r\n".len();
    for (name, values) in headers.iter() {
        for v in values {
            len += AsRef::<str>::as_ref(name).len() + ": ".len() + v.as_str().len() + "\r\n".len();
        }
    }
    len
}

/// How an event was dead-lettered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moved {
    /// Payload and headers.
    Whole,
    /// Headers only: the body is too large to carry alongside them.
    Reference,
}

/// Publishes the message to its DLQ subject and waits for the stream's ack: whole when it fits
/// `limit` (see [`size_limit`]) with its headers, else as a reference; a whole copy the server
/// still refuses as too large is sent as a reference too. The entry is de-duplicated by stream
/// and sequence, so a retried move stores it once.
pub async fn publish(
    js: &Context,
    msg: &jetstream::Message,
    error: &str,
    limit: usize,
) -> Result<Moved, async_nats::Error> {
    let info = msg.info()?;
    let mut headers = HeaderMap::new();
    headers.insert(
        HEADER_ORIGINAL_SUBJECT,
        header_value(msg.subject.as_str()).as_str(),
    );
    headers.insert(HEADER_STREAM, info.stream);
    headers.insert(HEADER_CONSUMER, info.consumer);
    headers.insert(
        HEADER_STREAM_SEQUENCE,
        info.stream_sequence.to_string().as_str(),
    );
    headers.insert(HEADER_DELIVERY_COUNT, info.delivered.to_string().as_str());
    headers.insert(HEADER_ERROR, header_value(error).as_str());
    headers.insert(HEADER_PAYLOAD_SIZE, msg.payload.len().to_string().as_str());
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        format!("dlq:{}:{}", info.stream, info.stream_sequence).as_str(),
    );
    let subject = dlq_subject(msg.subject.as_str());
    let whole = headers_wire_len(&headers) + msg.payload.len();
    if whole <= limit {
        match send(js, &subject, headers.clone(), msg.payload.clone()).await {
            Ok(()) => return Ok(Moved::Whole),
            // Our idea of the limit was off (e.g. the stream was changed by hand): the
            // reference still gets the event dead-lettered.
            Err(e) if too_large(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    headers.insert(
        HEADER_BODY_OMITTED,
        format!(
            "payload of {} bytes plus these headers exceeds the {limit}-byte limit of the server or the DLQ stream; fetch it from stream {} at sequence {}",
            msg.payload.len(),
            info.stream,
            info.stream_sequence
        )
        .as_str(),
    );
    send(js, &subject, headers, Bytes::new()).await?;
    Ok(Moved::Reference)
}

async fn send(
    js: &Context,
    subject: &str,
    headers: HeaderMap,
    payload: Bytes,
) -> Result<(), PublishError> {
    js.publish_with_headers(subject.to_owned(), headers, payload)
        .await?
        .await?;
    Ok(())
}

/// The client's own size check, or the stream's "message size exceeds maximum allowed".
fn too_large(e: &PublishError) -> bool {
    e.kind() == PublishErrorKind::MaxPayloadExceeded
        || std::error::Error::source(e)
            .and_then(|s| s.downcast_ref::<jetstream::Error>())
            .is_some_and(|s| s.error_code() == ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dlq_subjects() {
        assert_eq!(
            dlq_subject("sea.event.order.created"),
            "sea.dlq.order.created"
        );
        assert_eq!(dlq_subject("vibespro.event.x"), "vibespro.dlq.x");
        assert_eq!(dlq_subject("other.thing"), "sea.dlq.other.thing");
        assert_eq!(dlq_subject("bare"), "sea.dlq.bare");
    }

    #[test]
    fn header_values_lose_line_breaks() {
        assert_eq!(header_value("bad\r\nthing"), "bad  thing");
    }

    #[test]
    fn subjects_match_stream_patterns() {
        assert!(subject_matches("sea.dlq.>", "sea.dlq.order.created"));
        assert!(!subject_matches("sea.dlq.>", "sea.dlq"));
        assert!(subject_matches("sea.*.x", "sea.dlq.x"));
        assert!(!subject_matches("sea.*.x", "sea.dlq.x.y"));
        assert!(!subject_matches("vibespro.dlq.>", "sea.dlq.a"));
    }

    #[test]
    fn the_limit_is_the_smaller_of_max_payload_and_the_dlq_streams_size() {
        let mut spec = Spec::builtin();
        assert_eq!(size_limit(1 << 20, &spec, "sea.dlq.a"), 1 << 20);
        assert_eq!(size_limit(4 << 20, &spec, "sea.dlq.a"), 1 << 20);
        for s in &mut spec.streams {
            s.max_message_size = 1000;
        }
        assert_eq!(size_limit(1 << 20, &spec, "vibespro.dlq.a"), 1000);
        // -1 means unlimited: only max_payload counts.
        for s in &mut spec.streams {
            s.max_message_size = -1;
        }
        assert_eq!(size_limit(1 << 20, &spec, "sea.dlq.a"), 1 << 20);
    }

    #[test]
    fn header_sizes_are_counted_as_on_the_wire() {
        let mut h = HeaderMap::new();
        h.insert("Key", "value");
        // "NATS/1.0\r\n" + "Key: value\r\n" + "\r\n"
        assert_eq!(headers_wire_len(&h), 10 + 12 + 2);
    }
}
