//! Least privilege that works: each function's DynamoDB requests, made by its real handler through
//! a recording proxy, are checked against the policy its template gives it. A statement missing
//! an action (the redrive's `DeleteItem`, a query of the parked events) fails here instead of as
//! an `AccessDenied` in production. Every path that reaches a table is walked: orders placed and
//! replayed, a batch applied, replayed and partly parked, a sweep, a redrive before and after
//! the fix, a balance read. The publisher's Kinesis requests go through a proxy too and are
//! checked the same way. The on-failure queues of these patterns' stream mappings (Lambda sends
//! to them with the function's role) are not exercised locally; the broker deployment's
//! EventBridge and SQS grants, its inbox queue's included, are, in tests/iam_broker.rs.

#[path = "iam_audit.rs"]
mod audit;

use audit::{audit_rewards_api, write_orders, Audit};
use aws_lambda_events::dynamodb::Event;
use devkit::pattern::Pattern;
use devkit::patterns::self_read::{
    history_in_process, rewards_in_process, SelfReadStack, ORDER_HISTORY_FUNCTION, REWARDS_FUNCTION,
};
use dynamodb_outbox::dynamodb::PendingEvents;
use lambda_runtime::{Context, LambdaEvent};
use order_service::handlers::order_api;
use order_service::self_read::kinesis::KinesisPublisher;
use order_service::store::cdc::CdcOrderStore;
use order_service::store::dynamodb::DynamoOrderStore;
use outbox_tests::*;
use rewards_service::handlers::stream;
use rewards_service::handlers::sweeper::{self, Sweeper, REDRIVE_PARKED};
use rewards_service::service::{self, SweepReport};
use serde_json::json;

async fn invoke_sweeper(sweeper: &Sweeper, payload: serde_json::Value) -> SweepReport {
    sweeper::handle(sweeper, LambdaEvent::new(payload, Context::default()))
        .await
        .unwrap()
}

/// Pattern 1 or 2 (both on the orders table's stream): writer, consumer, sweeper, rewards API.
async fn audit_stream_pattern(pattern: Pattern) {
    let stack = Stack::start_pattern(pattern).await.unwrap();
    let (orders, rewards) = (stack.tables.orders.clone(), stack.tables.rewards.clone());
    let dynamo = stack.dynamo.endpoint.as_str();
    let audit = Audit::start(&stack.template, &[dynamo], &orders, &rewards).await;
    let client = stack.dynamo.client_via(audit.via(dynamo)).await;
    balance_near_limit(&stack.dynamo.client, &rewards, "iam-2").await;

    let customers = ["iam-1", "iam-2"];
    if pattern == Pattern::Cdc {
        let store = CdcOrderStore::new(client.clone(), &orders);
        let writing = write_orders(&store, &customers);
        audit.as_function("OrderWriterFunction", writing).await;
    } else {
        let store = DynamoOrderStore::new(client.clone(), &orders);
        let writing = write_orders(&store, &customers);
        audit.as_function("OrderWriterFunction", writing).await;
    }

    let processor = service::processor(client.clone(), &rewards, stack.tables.orders_source())
        .retention_seconds(3_600)
        .expect("a retention in range");
    let batch = stack.stream_records().await.unwrap();
    audit
        .as_function("StreamConsumerFunction", async {
            for _ in 0..2 {
                let mut event = Event::default();
                event.records = batch.clone();
                let event = LambdaEvent::new(event, Context::default());
                if pattern == Pattern::Cdc {
                    stream::handle_order_changes(&processor, event)
                        .await
                        .unwrap();
                } else {
                    stream::handle(&processor, event).await.unwrap();
                }
            }
        })
        .await;
    assert_eq!(balance(&stack, "iam-1").await.0, 7, "applied once");

    // One more order the stream never delivers: the sweeper's, of a customer with events
    // applied before (the sweep reads the customer's own events down from its predecessor).
    let late = post_order(&order_body("iam-1", &[("A", 1, 500)]), &[]);
    let late = LambdaEvent::new(late, Context::default());
    let placed = if pattern == Pattern::Cdc {
        order_api::handle(&stack.cdc_orders(), late).await
    } else {
        order_api::handle(&stack.orders, late).await
    };
    assert_eq!(placed.unwrap().status_code, 201);
    let sweeper = Sweeper {
        pending: Some(PendingEvents::new(client.clone(), &orders)),
        processor: service::processor(client.clone(), &rewards, stack.tables.orders_source()),
        order_history: None,
        grace_seconds: 0,
        limit: 100,
        pattern: pattern.runtime(),
    };
    let swept = audit
        .as_function("OutboxSweeperFunction", async {
            let swept = invoke_sweeper(&sweeper, json!({"source": "aws.scheduler"})).await;
            let early = invoke_sweeper(&sweeper, json!({"action": REDRIVE_PARKED})).await;
            set_balance(&stack.dynamo.client, &rewards, "iam-2", 0).await;
            let fixed = invoke_sweeper(&sweeper, json!({"action": REDRIVE_PARKED})).await;
            (swept.applied, early.parked, fixed.applied)
        })
        .await;
    assert_eq!(
        swept,
        (1, 1, 1),
        "{pattern:?}: swept, parked again, redriven"
    );

    audit_rewards_api(&audit, client, &rewards).await;
}

#[tokio::test]
async fn every_request_of_the_outbox_functions_is_allowed_by_their_policies() {
    audit_stream_pattern(Pattern::Outbox).await;
}

#[tokio::test]
async fn every_request_of_the_cdc_functions_is_allowed_by_their_policies() {
    audit_stream_pattern(Pattern::Cdc).await;
}

#[tokio::test]
async fn every_request_of_the_self_read_functions_is_allowed_by_their_policies() {
    let Some(stack) = SelfReadStack::start_or_skip("iam: self-read functions")
        .await
        .unwrap()
    else {
        return;
    };
    let (orders, rewards) = (stack.orders_table.clone(), stack.rewards_table.clone());
    let (dynamo, kinesis) = (
        stack.dynamo.endpoint.as_str(),
        stack.kinesis.endpoint.as_str(),
    );
    let audit = Audit::start(&stack.template, &[dynamo, kinesis], &orders, &rewards)
        .await
        .name("OrderEventsStream", &stack.stream.name);
    let client = stack.dynamo.client_via(audit.via(dynamo)).await;
    let publisher = KinesisPublisher::new(
        devkit::kinesis::client_for(audit.via(kinesis)).await,
        &stack.stream.name,
    );
    let history = DynamoOrderStore::new(client.clone(), &orders);
    audit
        .as_function("OrderPublisherFunction", async {
            // The second request under k-1 is another order under the same id: both consumers
            // park it, for the redrive below.
            let mut id = String::new();
            for quantity in [1, 5] {
                let body = order_body("iam-1", &[("A", quantity, 700)]);
                let request = post_order(&body, &[("idempotency-key", "k-1")]);
                let response = stack.call(&publisher, request).await;
                assert_eq!(response.status_code, 202);
                id = reply(response).json["order_id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
            }
            let request = devkit::demo::api_request("GET", &format!("/orders/{id}"), None, &[]);
            order_service::self_read::api::handle(
                &publisher,
                &history,
                LambdaEvent::new(request.unwrap(), Context::default()),
            )
            .await
            .unwrap();
        })
        .await;

    // Each consumer of the stream, for its mapping and again for the sweeper.
    let history_processor = || {
        order_service::self_read::history::processor(client.clone(), &orders, stack.stream.source())
    };
    let rewards_processor = || {
        rewards_service::handlers::kinesis::processor(
            client.clone(),
            &rewards,
            stack.stream.source(),
        )
    };
    let history_consumer = history_in_process(history_processor());
    audit_mapping(&audit, &stack, ORDER_HISTORY_FUNCTION, history_consumer).await;
    let rewards_consumer = rewards_in_process(rewards_processor());
    audit_mapping(&audit, &stack, REWARDS_FUNCTION, rewards_consumer).await;

    let sweeper = Sweeper {
        pending: None,
        processor: rewards_processor(),
        order_history: Some(history_processor()),
        grace_seconds: 0,
        limit: 100,
        pattern: service_runtime::config::OutboxPattern::SelfRead,
    };
    let report = audit
        .as_function(
            "ParkedRedriveFunction",
            invoke_sweeper(&sweeper, json!({"action": REDRIVE_PARKED})),
        )
        .await;
    assert_eq!(report.found, 2, "one parked event per consumer: {report:?}");

    audit_rewards_api(&audit, client, &rewards).await;
}

/// Drains `function`'s local Kinesis mapping through `consumer`, audited as `function`.
async fn audit_mapping<I: devkit::Invoke<aws_lambda_events::kinesis::KinesisEvent>>(
    audit: &Audit<'_>,
    stack: &SelfReadStack,
    function: &str,
    consumer: I,
) {
    let drained = async {
        let mut mapping = stack.trigger(function, consumer).await.unwrap();
        mapping.drain().await.unwrap();
    };
    audit.as_function(function, drained).await;
}
