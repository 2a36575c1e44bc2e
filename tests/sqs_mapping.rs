//! The local SQS event source mapping on moto's real SQS server, driven by a template's queues
//! and `Type: SQS` event: batches in Lambda's shape deleted when done, partial failures kept
//! until the visibility timeout, a FIFO group held while its message is in flight, a poison
//! message moved to the dead-letter queue by the queue's redrive policy, and the engine's inbox
//! behind it applying an envelope sent twice once.
//!
//! Without moto's server (`make tools`) every test here fails and says which; with
//! `OUTBOX_SKIP_MOTO=<reason>` they print `SKIPPED` with the reason instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use aws_sdk_sqs::Client;
use devkit::mapping::sqs::{self, LocalQueue, SqsMapping, SqsStats};
use devkit::moto::LocalMoto;
use devkit::Invoke;
use devkit::Template;
use outbox_tests::assert_counts;

/// A queue with its dead-letter queue, a FIFO queue, and a function reading each, as SAM
/// declares them. Short visibility timeouts keep the tests short; the FIFO queue's is long
/// enough that its kept messages stay in flight while the test sends and drains again.
const TEMPLATE: &str = include_str!("fixtures/sqs-mapping.yaml");

/// The local SQS with the template's queues, by logical id.
struct Queues {
    _moto: LocalMoto,
    client: Client,
    queues: HashMap<String, LocalQueue>,
    template: Template,
}

async fn queues(test: &str) -> Option<Queues> {
    let moto = LocalMoto::start_or_skip(test)
        .await
        .expect("moto's server")?;
    let client = Client::new(&moto.sdk_config().await);
    let template = Template::parse(TEMPLATE).unwrap();
    let queues = sqs::create_queues(&template, &client).await.unwrap();
    Some(Queues {
        _moto: moto,
        client,
        queues,
        template,
    })
}

impl Queues {
    fn url(&self, logical_id: &str) -> &str {
        &self.queues[logical_id].url
    }

    /// The mapping of `function` as the template sets it, to `invoker`.
    async fn mapping<I: Invoke<SqsEvent>>(&self, function: &str, invoker: I) -> SqsMapping<I> {
        let source = sqs::sqs_source(&self.template, function).unwrap();
        let url = self.url(&source.queue_logical_id).to_owned();
        SqsMapping::open(source.settings, self.client.clone(), &url, invoker)
            .await
            .unwrap()
    }

    async fn send(&self, logical_id: &str, body: &str, group: Option<&str>) {
        self.client
            .send_message()
            .queue_url(self.url(logical_id))
            .message_body(body)
            .set_message_group_id(group.map(str::to_owned))
            .message_attributes(
                "origin",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("tests")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }

    /// Messages in the queue, visible or in flight.
    async fn depth(&self, logical_id: &str) -> usize {
        let queue = self
            .client
            .get_queue_attributes()
            .queue_url(self.url(logical_id));
        let out = queue.attribute_names(QueueAttributeName::All).send().await;
        let attributes = out.unwrap().attributes.unwrap_or_default();
        [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|a| attributes[a].parse::<usize>().unwrap())
        .sum()
    }
}

/// Past the queues' visibility timeout of a second.
async fn after_visibility_timeout() {
    tokio::time::sleep(Duration::from_millis(1300)).await;
}

type Log = Arc<Mutex<Vec<SqsEvent>>>;

/// A function that keeps every event it gets and answers with `answer(event)`.
fn recording<F>(answer: F) -> (impl Invoke<SqsEvent>, Log)
where
    F: Fn(&SqsEvent) -> Result<SqsBatchResponse, String> + Send + Sync,
{
    let log: Log = Arc::default();
    let seen = log.clone();
    let function = move |event: SqsEvent| {
        let answer = answer(&event);
        seen.lock().unwrap().push(event);
        async move { answer }
    };
    (function, log)
}

/// A function that reports the messages whose body `fails` on their first delivery.
fn failing_first_time(fails: fn(&str) -> bool) -> (impl Invoke<SqsEvent>, Log) {
    recording(move |event| {
        let mut response = SqsBatchResponse::default();
        for record in &event.records {
            let first = record.attributes["ApproximateReceiveCount"] == "1";
            if first && fails(record.body.as_deref().unwrap()) {
                response.add_failure(record.message_id.clone().unwrap());
            }
        }
        Ok(response)
    })
}

fn bodies(log: &Log) -> Vec<Vec<String>> {
    log.lock()
        .unwrap()
        .iter()
        .map(|e| e.records.iter().map(|r| r.body.clone().unwrap()).collect())
        .collect()
}

#[tokio::test]
async fn a_batch_is_delivered_in_lambdas_shape_and_deleted() {
    let Some(local) = queues("a_batch_is_delivered_in_lambdas_shape_and_deleted").await else {
        return;
    };
    for i in 0..7 {
        local.send("Inbox", &format!("m{i}"), None).await;
    }
    let (function, log) = recording(|_| Ok(SqsBatchResponse::default()));
    let mut mapping = local.mapping("InboxFunction", function).await;
    let every_message_once = SqsStats {
        invocations: 2,
        messages_delivered: 7,
        messages_deleted: 7,
        ..SqsStats::default()
    };
    assert_eq!(
        *mapping.drain().await.unwrap(),
        every_message_once,
        "BatchSize 5"
    );
    let events = log.lock().unwrap().clone();
    let record = &events[0].records[0];
    assert_eq!(record.event_source.as_deref(), Some("aws:sqs"));
    assert_eq!(
        record.event_source_arn.as_deref(),
        Some(local.queues["Inbox"].arn.as_str())
    );
    assert!(record
        .event_source_arn
        .as_deref()
        .unwrap()
        .ends_with(":inbox-test"));
    assert_eq!(record.attributes["ApproximateReceiveCount"], "1");
    assert!(record.attributes.contains_key("SentTimestamp"));
    assert_eq!(
        record.message_attributes["origin"].string_value.as_deref(),
        Some("tests")
    );
    assert!(record.receipt_handle.is_some() && record.md5_of_body.is_some());
    assert_eq!(local.depth("Inbox").await, 0, "every message deleted");
}

#[tokio::test]
async fn a_partial_failure_keeps_only_the_failed_message_until_the_visibility_timeout() {
    let test = "a_partial_failure_keeps_only_the_failed_message_until_the_visibility_timeout";
    let Some(local) = queues(test).await else {
        return;
    };
    for body in ["ok-1", "fail", "ok-2"] {
        local.send("Inbox", body, None).await;
    }
    let (function, log) = failing_first_time(|body| body == "fail");
    let mut mapping = local.mapping("InboxFunction", function).await;
    let one_kept = SqsStats {
        invocations: 1,
        messages_delivered: 3,
        messages_deleted: 2,
        partial_failures: 1,
        messages_kept: 1,
        function_errors: 0,
    };
    assert_eq!(*mapping.drain().await.unwrap(), one_kept);
    assert_eq!(
        local.depth("Inbox").await,
        1,
        "only the failed message stays"
    );
    assert_eq!(
        mapping.drain().await.unwrap().invocations,
        1,
        "in flight: not visible yet"
    );

    after_visibility_timeout().await;
    mapping.drain().await.unwrap();
    assert_eq!(bodies(&log)[1], ["fail"], "redelivered alone");
    assert_eq!(
        log.lock().unwrap()[1].records[0].attributes["ApproximateReceiveCount"],
        "2"
    );
    assert_eq!(local.depth("Inbox").await, 0);

    // A function error keeps the whole batch; so does an answer naming a stranger.
    local.send("Inbox", "again", None).await;
    let (broken, _) = recording(|_| Err("the function crashed".to_owned()));
    let mut crashing = local.mapping("InboxFunction", broken).await;
    assert_eq!(crashing.drain().await.unwrap().function_errors, 1);
    after_visibility_timeout().await;
    let (confused, _) = recording(|_| {
        let mut response = SqsBatchResponse::default();
        response.add_failure("not-a-message-of-this-batch");
        Ok(response)
    });
    let mut confused = local.mapping("InboxFunction", confused).await;
    let stats = confused.drain().await.unwrap();
    assert_counts!(stats, [function_errors = 1, messages_kept = 1]);
}

#[tokio::test]
async fn a_fifo_group_is_held_while_its_message_is_in_flight() {
    let Some(local) = queues("a_fifo_group_is_held_while_its_message_is_in_flight").await else {
        return;
    };
    for (body, group) in [("a1", "a"), ("a2", "a"), ("b1", "b")] {
        local.send("OrderedInbox", body, Some(group)).await;
    }
    // As the engine answers on a FIFO queue: a failed message and its group's later ones.
    let (function, log) = recording(|event| {
        let mut response = SqsBatchResponse::default();
        let mut failed_groups = Vec::new();
        for record in &event.records {
            let group = record.attributes["MessageGroupId"].clone();
            let first = record.attributes["ApproximateReceiveCount"] == "1";
            if failed_groups.contains(&group) || (first && record.body.as_deref() == Some("a1")) {
                response.add_failure(record.message_id.clone().unwrap());
                failed_groups.push(group);
            }
        }
        Ok(response)
    });
    let mut mapping = local.mapping("OrderedInboxFunction", function).await;
    mapping.drain().await.unwrap();
    assert_eq!(bodies(&log)[0], ["a1", "a2", "b1"]);

    for (body, group) in [("a3", "a"), ("b2", "b")] {
        local.send("OrderedInbox", body, Some(group)).await;
    }
    mapping.drain().await.unwrap();
    assert_eq!(
        bodies(&log)[1],
        ["b2"],
        "group a waits for its message in flight"
    );

    tokio::time::sleep(Duration::from_secs(4)).await;
    mapping.drain().await.unwrap();
    // All of group a comes back; moto 5.2.5 hands a message visible again after its group's
    // later ones (SQS hands it first), so the order is the engine's contract suite's to check.
    let mut again = bodies(&log)[2..].concat();
    again.sort();
    assert_eq!(again, ["a1", "a2", "a3"]);
    assert_eq!(local.depth("OrderedInbox").await, 0);
}

#[tokio::test]
async fn a_poison_message_reaches_the_dead_letter_queue_after_max_receive_count() {
    let test = "a_poison_message_reaches_the_dead_letter_queue_after_max_receive_count";
    let Some(local) = queues(test).await else {
        return;
    };
    local.send("Inbox", "poison", None).await;
    local.send("Inbox", "fine", None).await;
    let (function, log) = recording(|event| {
        let mut response = SqsBatchResponse::default();
        for record in &event.records {
            if record.body.as_deref() == Some("poison") {
                response.add_failure(record.message_id.clone().unwrap());
            }
        }
        Ok(response)
    });
    let mut mapping = local.mapping("InboxFunction", function).await;
    for _ in 0..3 {
        mapping.drain().await.unwrap();
        after_visibility_timeout().await;
    }
    let deliveries = bodies(&log).concat();
    assert_eq!(
        deliveries.iter().filter(|b| *b == "poison").count(),
        2,
        "maxReceiveCount 2: {deliveries:?}"
    );
    assert_eq!(local.depth("Inbox").await, 0);
    let dead = local
        .client
        .receive_message()
        .queue_url(local.url("InboxDeadLetters"))
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    let dead: Vec<_> = dead.iter().filter_map(|m| m.body()).collect();
    assert_eq!(dead, ["poison"]);
}

mod inbox {
    //! The mapping in front of the engine's inbox on the local DynamoDB: what a deployed inbox
    //! function does with a queue.

    use aws_lambda_events::sqs::SqsEvent;
    use devkit::LocalDynamo;
    use dynamodb_outbox::dynamodb::DynamoConsumerStore;
    use dynamodb_outbox::lambda::SqsQueue;
    use dynamodb_outbox::testing::{create_tables, Inspect};
    use dynamodb_outbox::{Envelope, PoisonPolicy, Processor, Source};
    use lambda_runtime::tower::Service;
    use lambda_runtime::{Context, LambdaEvent};
    use outbox_tests::{assert_counts, balance_pk, moved, Tally, BALANCE_SK};
    use serde_json::json;

    const TABLE: &str = "inbox-ledger";

    #[tokio::test]
    async fn an_envelope_sent_twice_through_the_queue_is_applied_once() {
        let test = "an_envelope_sent_twice_through_the_queue_is_applied_once";
        let Some(local) = super::queues(test).await else {
            return;
        };
        let dynamo = LocalDynamo::start().await.unwrap();
        create_tables(&dynamo.client, TABLE, "inbox-outbox")
            .await
            .unwrap();
        let store = DynamoConsumerStore::new(dynamo.client.clone(), TABLE, "inbox-outbox");
        let queue = Source::sqs_queue(&local.queues["Inbox"].arn).unwrap();
        let totals = Tally::new("totals", TABLE, PoisonPolicy::Wait);
        let processor = Processor::new(totals, store.clone(), queue);

        let body = serde_json::to_string(&Envelope::new(moved("a", 250))).unwrap();
        // A relay that crashed after publishing publishes again; SNS wraps its copy.
        let through_sns = json!({
            "Type": "Notification",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:payments",
            "Message": body,
        });
        local.send("Inbox", &body, None).await;
        local.send("Inbox", &body, None).await;
        local.send("Inbox", &through_sns.to_string(), None).await;

        let processor = &processor;
        let function = move |event: SqsEvent| async move {
            let mut handler = SqsQueue::new(processor);
            let processed = handler
                .call(LambdaEvent::new(event, Context::default()))
                .await
                .map_err(|e| e.to_string())?;
            Ok(processed.response)
        };
        let mut mapping = local.mapping("InboxFunction", function).await;
        let stats = mapping.drain().await.unwrap().clone();
        assert_counts!(stats, [messages_deleted = 3, messages_kept = 0]);
        let cents = store
            .number(TABLE, &balance_pk("a"), BALANCE_SK, "cents")
            .await
            .unwrap();
        assert_eq!(cents, 250, "applied once");
        assert_eq!(local.depth("Inbox").await, 0);
    }
}
