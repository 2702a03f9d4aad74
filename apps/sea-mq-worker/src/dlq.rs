//! Dead-letter queue: an event that can never succeed is published to `<prefix>.dlq.<rest>` with
//! headers saying where it came from and why, and only then terminated.

use async_nats::jetstream::{self, Context};
use async_nats::HeaderMap;

pub const HEADER_ORIGINAL_SUBJECT: &str = "Sea-Dlq-Original-Subject";
pub const HEADER_STREAM: &str = "Sea-Dlq-Stream";
pub const HEADER_STREAM_SEQUENCE: &str = "Sea-Dlq-Stream-Sequence";
pub const HEADER_DELIVERY_COUNT: &str = "Sea-Dlq-Delivery-Count";
pub const HEADER_ERROR: &str = "Sea-Dlq-Error";
pub const HEADER_CONSUMER: &str = "Sea-Dlq-Consumer";

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

/// Publishes the message to its DLQ subject and waits for the stream's ack. The DLQ entry is
/// de-duplicated by stream and sequence, so a retried move does not store it twice.
pub async fn publish(
    js: &Context,
    msg: &jetstream::Message,
    error: &str,
) -> Result<(), async_nats::Error> {
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
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        format!("dlq:{}:{}", info.stream, info.stream_sequence).as_str(),
    );
    js.publish_with_headers(
        dlq_subject(msg.subject.as_str()),
        headers,
        msg.payload.clone(),
    )
    .await?
    .await?;
    Ok(())
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
}
