//! An SQS queue as a source: the inbox of a consumer whose events reach it through a broker.
//! No outbox item, no counter: each event is applied once by its event id, as a Kinesis
//! record's is, whether the envelope was sent to the queue directly, published to an SNS topic
//! the queue subscribes to, or put on an EventBridge bus whose rule targets the queue.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsMessage};
use serde_dynamo::Item;
use serde_json::{Map, Value};

use super::sources::unreadable;
use super::{BatchOutcome, Processor, Work};
use crate::consumer::{Consumer, Takes};
use crate::source::SourceKind;
use crate::store::ConsumerStore;

/// The system attribute naming a FIFO message's group.
const MESSAGE_GROUP_ID: &str = "MessageGroupId";

impl<C: Consumer, S: ConsumerStore> Processor<C, S> {
    /// A batch of SQS messages as Lambda delivers them (the processor's source is the queue,
    /// [`crate::Source::sqs_queue`]); return its [`BatchOutcome::sqs_response`], with
    /// `ReportBatchItemFailures` on the mapping.
    ///
    /// A message's body is an [`crate::Envelope`] as JSON, as it was sent: directly (or by an
    /// SNS subscription with raw message delivery), wrapped in an SNS notification (the
    /// envelope is its `Message`), or wrapped in an EventBridge event (the envelope is its
    /// `detail`). Each event is applied once by its event id (see `StoreOps::commit_once`), its
    /// effect committed in the same transaction as its done record: a message delivered again
    /// (SQS delivers at least once; a relay that republishes after a crash sends it twice) is a
    /// duplicate, whichever way it came.
    ///
    /// Order: on a FIFO queue (its name ends in `.fifo`) the messages of one message group come
    /// in order, and a message that fails holds back the later messages of its group in the
    /// batch (reported with it, so the queue redelivers them after it, in order); other groups
    /// go on. On a standard queue nothing about order is promised: messages may come in any
    /// order and again, in this batch or another. Within a batch the messages of one ordering
    /// key are still applied in the order they came, a failure holding back the key's later
    /// ones; across batches an event's predecessor is not waited for.
    ///
    /// What is not an event never blocks the queue. Messages from another queue are refused
    /// (poison, reported: nothing from them is trusted). A body that names an event (a usable
    /// `event_id`) but is not one this consumer can apply is poison: parked under
    /// [`crate::PoisonPolicy::Park`], reported under [`crate::PoisonPolicy::Wait`] (then the
    /// queue's redrive policy moves it to its dead-letter queue after `maxReceiveCount`). A body
    /// that names no event (no body, not JSON, not an object, no usable `event_id`) is dropped:
    /// logged with its message id and why ([`crate::DROPPED_LOG_MESSAGE`]), counted in
    /// [`BatchOutcome::dropped`], not reported, so the queue deletes it.
    pub async fn process_sqs(&self, messages: &[SqsMessage]) -> BatchOutcome {
        let takes = self.consumer.takes();
        let incoming = messages
            .iter()
            .enumerate()
            .map(|(position, message)| {
                let id = message
                    .message_id
                    .clone()
                    .unwrap_or_else(|| format!("message {position} (no messageId)"));
                let work = self.classify_sqs(&id, message, &takes);
                (id, work)
            })
            .collect();
        self.process(incoming).await
    }

    fn classify_sqs(
        &self,
        id: &str,
        message: &SqsMessage,
        takes: &[Takes],
    ) -> Work<'static, C::Payload> {
        let queue = message.event_source_arn.as_deref();
        if let Err(reason) = self.admit(SourceKind::SqsQueue, queue) {
            return unreadable(format!("message {id}: {reason}"));
        }
        let work = match envelope_of(message.body.as_deref()) {
            Ok(envelope) => match serde_dynamo::to_item::<_, Item>(Value::Object(envelope)) {
                Ok(item) => self.classify_once(item, takes),
                Err(e) => Work::Drop(format!("its envelope does not read as an item: {e}")),
            },
            Err(why) => Work::Drop(why),
        };
        // A standard queue's messages may carry a group too (fair queues), which orders
        // nothing: only a FIFO queue's group is its order.
        let fifo = queue.is_some_and(|arn| arn.ends_with(".fifo"));
        match (work, message.attributes.get(MESSAGE_GROUP_ID)) {
            (Work::Once(arrived, mut once), Some(group)) if fifo => {
                once.group = Some(group.clone());
                Work::Once(arrived, once)
            }
            (Work::Unreadable(mut once, reason, event), Some(group)) if fifo => {
                once.group = Some(group.clone());
                Work::Unreadable(once, reason, event)
            }
            (work, _) => work,
        }
    }
}

impl BatchOutcome {
    /// The partial batch response Lambda expects from an SQS consumer (with
    /// `ReportBatchItemFailures` on the mapping): the ids of the messages to keep; the queue
    /// deletes the others.
    pub fn sqs_response(&self) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        response.set_failures(self.failures.iter().cloned());
        response
    }
}

/// The envelope a message's body carries, as a JSON object: the body itself, an SNS
/// notification's `Message`, or an EventBridge event's `detail` (an SNS notification of an
/// EventBridge event is unwrapped twice). `Err` says why the body names no event.
fn envelope_of(body: Option<&str>) -> Result<Map<String, Value>, String> {
    let body = body.ok_or("the message has no body")?;
    let mut fields = object(body, "its body")?;
    if is_sns_notification(&fields) {
        let Some(Value::String(message)) = fields.remove("Message") else {
            return Err("its SNS notification's Message is not a string".to_owned());
        };
        fields = object(&message, "its SNS notification's Message")?;
    }
    if fields.contains_key("detail-type") && fields.contains_key("detail") {
        return match fields.remove("detail") {
            Some(Value::Object(detail)) => Ok(detail),
            _ => Err("its EventBridge event's detail is not an object".to_owned()),
        };
    }
    Ok(fields)
}

fn object(text: &str, what: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(format!("{what} is JSON but not an object")),
        Err(e) => Err(format!("{what} is not JSON: {e}")),
    }
}

/// What SNS delivers to a queue without raw message delivery: the message in a notification.
fn is_sns_notification(fields: &Map<String, Value>) -> bool {
    fields.get("Type").and_then(Value::as_str) == Some("Notification")
        && fields.contains_key("TopicArn")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope() -> Value {
        json!({"event_id": "e1", "event_type": "Paid", "ordering_key": "a"})
    }

    #[test]
    fn the_envelope_is_found_however_the_message_was_sent() {
        let direct = envelope().to_string();
        let sns = json!({
            "Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
            "Message": direct, "Timestamp": "2026-01-01T00:00:00.000Z"
        })
        .to_string();
        let bridge = json!({
            "version": "0", "id": "x", "detail-type": "Paid", "source": "orders",
            "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
            "resources": [], "detail": envelope()
        });
        let bridged_by_sns = json!({
            "Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
            "Message": bridge.to_string()
        })
        .to_string();
        for body in [direct, sns, bridge.to_string(), bridged_by_sns] {
            assert_eq!(
                envelope_of(Some(&body)).map(Value::Object),
                Ok(envelope()),
                "{body}"
            );
        }
    }

    #[test]
    fn a_body_that_carries_no_object_says_where_it_stopped() {
        let cases = [
            (None, "no body"),
            (Some("not json".to_owned()), "its body is not JSON"),
            (Some("[1]".to_owned()), "its body is JSON but not an object"),
            (
                Some(json!({"Type": "Notification", "TopicArn": "t", "Message": "x"}).to_string()),
                "its SNS notification's Message is not JSON",
            ),
            (
                Some(json!({"Type": "Notification", "TopicArn": "t", "Message": 3}).to_string()),
                "Message is not a string",
            ),
            (
                Some(json!({"detail-type": "Paid", "detail": "x"}).to_string()),
                "detail is not an object",
            ),
        ];
        for (body, expected) in cases {
            let err = envelope_of(body.as_deref()).unwrap_err();
            assert!(err.contains(expected), "{body:?}: {err}");
        }
    }
}
