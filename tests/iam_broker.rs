//! Least privilege that works, for the broker deployment (patterns/broker/template.yaml): each
//! function's requests, made by its real handler, go through recording proxies, one in front of
//! the local DynamoDB and one in front of moto's EventBridge and SQS, and every action they
//! needed is checked against the policies the template gives that function. The rewards inbox's
//! queue is polled by devkit's SQS mapping through the proxy, as Lambda's pollers poll it with
//! the function's role (`ReceiveMessage`, `DeleteMessage`, `GetQueueAttributes`). Not exercised
//! locally: the relay's stream mapping sending a dropped batch's metadata to its on-failure
//! queue.

#[path = "iam_audit.rs"]
mod audit;

use std::collections::BTreeSet;
use std::time::Duration;

use audit::{audit_rewards_api, write_orders, Audit};
use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::sqs::SqsEvent;
use aws_lambda_events::streams::DynamoDbEventResponse;
use devkit::iam::Access;
use devkit::mapping::sqs::{SqsMapping, SqsSettings};
use devkit::moto::LocalMoto;
use devkit::patterns::broker::{
    LocalBroker, BUS, DEAD_LETTER_QUEUE, EVENT_SOURCE, QUEUE, RELAY_FUNCTION,
};
use devkit::trigger::DynamoStream;
use devkit::Pattern;
use dynamodb_outbox::dynamodb::{DynamoConsumerStore, PendingEvents};
use dynamodb_outbox::lambda::{OutboxStream, OutboxSweep, ScheduledSweep, SqsQueue};
use dynamodb_outbox::relay::{EventBridgeTarget, Relay};
use dynamodb_outbox::{BatchOutcome, Processor, Source};
use lambda_runtime::{Context, LambdaEvent, Service as _};
use order_service::domain::events::{takes_order_placed, ORDER_RELAY};
use order_service::store::dynamodb::DynamoOrderStore;
use outbox_tests::*;
use rewards_service::consumer::RewardsConsumer;
use serde_json::json;

/// What `accesses` hold of `service` (`events`, `sqs`), as `action on resource`.
fn of_service(accesses: &BTreeSet<Access>, service: &str) -> BTreeSet<String> {
    let of = accesses.iter().filter(|a| a.action.starts_with(service));
    of.map(ToString::to_string).collect()
}

type RelayProcessor = Processor<Relay<EventBridgeTarget>, DynamoConsumerStore>;
type InboxProcessor = Processor<RewardsConsumer, DynamoConsumerStore>;

/// The relay as order-relay builds it (its progress and parked events in the orders table),
/// publishing to `target`.
fn relay(
    stack: &Stack,
    client: &aws_sdk_dynamodb::Client,
    target: EventBridgeTarget,
) -> RelayProcessor {
    let orders = &stack.tables.orders;
    let relay = Relay::new(ORDER_RELAY, takes_order_placed(), target);
    let store = DynamoConsumerStore::new(client.clone(), orders, orders);
    Processor::new(relay, store, stack.tables.orders_source())
        .retention_seconds(stack.retention_seconds())
        .expect("a retention in range")
}

/// What the relay's mapping passes on from the orders table's stream (its FilterCriteria
/// applied), through the relay's stream handler as one batch.
async fn relay_stream(stack: &Stack, relay: &RelayProcessor) -> BatchOutcome {
    let source = stack.template.stream_source(RELAY_FUNCTION).unwrap();
    let stream = DynamoStream {
        client: stack.stream.clone(),
        arn: stack.tables.orders_stream_arn.clone(),
    };
    let nothing = |_: Event| async { Ok::<_, String>(DynamoDbEventResponse::default()) };
    let mut mapping = devkit::Trigger::new(source, stream, nothing);
    let mut event = Event::default();
    event.records = mapping.mapped_records().await.unwrap();
    assert!(!event.records.is_empty(), "nothing for the relay");
    let event = LambdaEvent::new(event, Context::default());
    OutboxStream::new(relay).call(event).await.unwrap().outcome
}

/// One run of the relay's sweeper (order-relay with RELAY_SWEEPER) on `payload`.
async fn relay_sweeper(
    relay: &RelayProcessor,
    pending: &PendingEvents,
    payload: serde_json::Value,
) -> dynamodb_outbox::lambda::SweepReport {
    let job = OutboxSweep {
        processor: relay,
        pending,
        older_than: Duration::ZERO,
        limit: 100,
    };
    let mut sweeper = ScheduledSweep::new(&job, "relay-sweeper");
    let event = LambdaEvent::new(payload, Context::default());
    sweeper.call(event).await.unwrap()
}

#[tokio::test]
async fn every_request_of_the_broker_functions_is_allowed_by_their_policies() {
    let Some(moto) = LocalMoto::start_or_skip("iam: broker functions")
        .await
        .unwrap()
    else {
        return;
    };
    let stack = Stack::start_pattern(Pattern::Broker).await.unwrap();
    let broker = LocalBroker::create(&moto, &stack.template).await.unwrap();
    let (orders, rewards) = (stack.tables.orders.clone(), stack.tables.rewards.clone());
    let (dynamo, brokers) = (stack.dynamo.endpoint.as_str(), moto.endpoint.as_str());
    let audit = Audit::start(&stack.template, &[dynamo, brokers], &orders, &rewards)
        .await
        .name(BUS, &broker.bus)
        .name(QUEUE, &broker.queue.name)
        .name(DEAD_LETTER_QUEUE, &broker.dead_letter_queue.name);
    let client = stack.dynamo.client_via(audit.via(dynamo)).await;
    let events = moto.eventbridge_via(audit.via(brokers)).await;
    let target = EventBridgeTarget::new(events, &broker.bus, EVENT_SOURCE);
    balance_near_limit(&stack.dynamo.client, &rewards, "iam-2").await;

    let writer = DynamoOrderStore::relayed(client.clone(), &orders);
    let writing = write_orders(&writer, &["iam-1", "iam-2"]);
    audit.as_function("OrderWriterFunction", writing).await;

    // The relay publishes the stream's events, then takes the same batch again (duplicates).
    let publisher = relay(&stack, &client, target.clone());
    let ((first, again), needed) = audit
        .needs("OrderRelayFunction", async {
            let first = relay_stream(&stack, &publisher).await;
            (first, relay_stream(&stack, &publisher).await)
        })
        .await;
    assert!(
        first.applied >= 2 && again.duplicates == first.applied,
        "{first:?} {again:?}"
    );
    let bus = format!("events:PutEvents on {}", broker.bus);
    assert_eq!(
        of_service(&needed, "events:"),
        BTreeSet::from([bus.clone()])
    );

    // iam-3's event is larger than this relay puts: it parks it, in the orders table.
    let parking = relay(&stack, &client, target.clone().max_message_bytes(64));
    let late = DynamoOrderStore::relayed(stack.dynamo.client.clone(), &orders);
    write_orders(&late, &["iam-3"]).await;
    let parked = audit
        .as_function("OrderRelayFunction", relay_stream(&stack, &parking))
        .await;
    assert!(parked.parked >= 1, "{parked:?}");

    // iam-4's order is one the stream never delivers to the relay: the sweeper publishes it,
    // and on request the event the relay parked.
    write_orders(&late, &["iam-4"]).await;
    let pending = PendingEvents::new(client.clone(), &orders);
    let ((swept, redriven), needed) = audit
        .needs("RelaySweeperFunction", async {
            let swept = relay_sweeper(&publisher, &pending, json!({"source": "aws.scheduler"}));
            let swept = swept.await;
            let redrive = json!({"action": dynamodb_outbox::lambda::REDRIVE_PARKED});
            (swept, relay_sweeper(&publisher, &pending, redrive).await)
        })
        .await;
    assert!(
        swept.applied >= 1 && redriven.applied >= 1,
        "{swept:?} {redriven:?}"
    );
    assert_eq!(of_service(&needed, "events:"), BTreeSet::from([bus]));

    audit_inbox(&audit, &stack, &moto, &broker, &client).await;
    audit_rewards_api(&audit, client, &rewards).await;
}

/// The rewards inbox behind devkit's SQS mapping, both through the proxies, then the operator's
/// redrive of what it parked, before and after the fix.
async fn audit_inbox(
    audit: &Audit<'_>,
    stack: &Stack,
    moto: &LocalMoto,
    broker: &LocalBroker,
    client: &aws_sdk_dynamodb::Client,
) {
    let rewards = &stack.tables.rewards;
    let inbox = || -> InboxProcessor {
        let store = DynamoConsumerStore::new(client.clone(), rewards, rewards);
        let queue = Source::sqs_queue(&broker.queue.arn).unwrap();
        Processor::new(RewardsConsumer::new(rewards.clone()), store, queue)
    };
    let sqs = moto.sqs_via(audit.via(&moto.endpoint)).await;
    let settings = SqsSettings {
        report_batch_item_failures: true,
        ..SqsSettings::default()
    };
    // Each batch handled twice: a copy arriving before the original is deleted.
    let invoker = devkit::mapping::handler(inbox(), |p, event: LambdaEvent<SqsEvent>| async move {
        let copy = LambdaEvent::new(event.payload.clone(), event.context.clone());
        SqsQueue::new(&*p).call(copy).await?;
        Ok::<_, lambda_runtime::Error>(SqsQueue::new(&*p).call(event).await?.response)
    });
    let ((), needed) = audit
        .needs("RewardsInboxFunction", async {
            let url = &broker.queue.url;
            let mut mapping = SqsMapping::open(settings, sqs, url, invoker).await.unwrap();
            let stats = mapping.drain().await.unwrap();
            assert!(stats.messages_deleted >= 4, "{stats:?}");
        })
        .await;
    let queue = &broker.queue.name;
    let polled = ["DeleteMessage", "GetQueueAttributes", "ReceiveMessage"]
        .map(|action| format!("sqs:{action} on {queue}"));
    assert_eq!(of_service(&needed, "sqs:"), BTreeSet::from(polled));

    let redrive = inbox();
    let fixed = audit
        .as_function("ParkedRedriveFunction", async {
            let early = redrive.redrive_parked(1000).await;
            set_balance(&stack.dynamo.client, rewards, "iam-2", 0).await;
            (early.parked, redrive.redrive_parked(1000).await.applied)
        })
        .await;
    assert_eq!(fixed, (1, 1), "parked again before the fix, applied after");
}
