//! Pattern 2's own promises (the shared ones are in `guarantees.rs`): the rewards consumer reads
//! the order table's shape, so what an order item gains is ignored and what it renames is
//! reported until the adapter learns it; `GET /orders/{id}` says whether rewards still waits.

use aws_lambda_events::dynamodb::Event;
use devkit::stack::in_process_changes;
use devkit::trigger::Invoke;
use devkit::{Pattern, Stack};
use dynamodb_outbox::dynamodb::PendingEvents;
use dynamodb_outbox::testing::StoreOps;
use order_service::changes::order_placed_from_image;
use outbox_tests::{
    assert_counts, balance, call_order_api, order_body, post_order, request, sweep_with, Reply,
};
use rewards_service::consumer::NAME as REWARDS;
use serde_dynamo::Item;
use serde_json::json;

async fn cdc_stack() -> Stack {
    Stack::start_pattern(Pattern::Cdc).await.unwrap()
}

async fn call(stack: &Stack, req: aws_lambda_events::apigw::ApiGatewayV2httpRequest) -> Reply {
    call_order_api(&stack.cdc_orders(), req).await
}

async fn place(stack: &Stack, customer: &str, cents: i64) -> String {
    let r = call(
        stack,
        post_order(&order_body(customer, &[("A-1", 1, cents)]), &[]),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    r.json["order_id"].as_str().unwrap().to_owned()
}

/// Rewrites the stored order item as a later order service would write it.
async fn rewrite_order(stack: &Stack, order_id: &str, change: impl Fn(&mut Item)) {
    let pk = order_service::schema::order_pk(order_id);
    let got = stack
        .dynamo
        .item(&stack.tables.orders, &pk, order_service::schema::ORDER_SK);
    let mut item = Item::from(got.await.unwrap().unwrap());
    change(&mut item);
    // A new order id: the rewritten item is a new order, inserted as the later service would.
    let new_id = uuid::Uuid::new_v4().to_string();
    item.insert("pk".into(), text(order_service::schema::order_pk(&new_id)));
    if item.get("order_id").is_some() {
        item.insert("order_id".into(), text(new_id));
    }
    stack
        .dynamo
        .client
        .put_item()
        .table_name(&stack.tables.orders)
        .set_item(Some(item.into()))
        .send()
        .await
        .unwrap();
}

/// A string attribute of an order item.
fn text(value: impl Into<String>) -> serde_dynamo::AttributeValue {
    serde_dynamo::AttributeValue::S(value.into())
}

async fn deliver(stack: &Stack) -> devkit::TriggerStats {
    let mut trigger = stack
        .trigger(in_process_changes(stack.service(), 10))
        .unwrap();
    trigger.drain().await.unwrap().clone()
}

#[tokio::test]
async fn an_attribute_the_order_item_gains_changes_nothing_for_the_rewards_consumer() {
    let stack = cdc_stack().await;
    let template = place(&stack, "c-0", 100).await;
    rewrite_order(&stack, &template, |item| {
        item.insert("gift_wrap".into(), serde_dynamo::AttributeValue::Bool(true));
        item.insert("customer_id".into(), text("c-1"));
    })
    .await;
    let stats = deliver(&stack).await;
    assert_eq!(stats.records_delivered, 2, "{stats:?}");
    assert_eq!(stats.partial_failures, 0, "{stats:?}");
    assert_eq!(balance(&stack, "c-1").await, (1, 1));
}

#[tokio::test]
async fn an_attribute_renamed_in_the_order_item_is_reported_not_parked_until_the_adapter_learns_it()
{
    let stack = cdc_stack().await;
    let template = place(&stack, "c-0", 100).await;
    // A later order service calls the customer `buyer_id`.
    rewrite_order(&stack, &template, |item| {
        item.remove("customer_id");
        item.insert("buyer_id".into(), text("c-1"));
    })
    .await;
    let stats = deliver(&stack).await;
    assert!(
        stats.partial_failures > 0,
        "reported as a batch item failure: {stats:?}"
    );
    assert_eq!(
        stats.batches_to_on_failure, 1,
        "after the retry cap, the batch's metadata goes to the on-failure destination: {stats:?}"
    );
    let parked = stack.service().store().parked(REWARDS, 10).await.unwrap();
    assert!(parked.is_empty(), "no event to park: {parked:?}");
    assert_eq!(balance(&stack, "c-1").await, (0, 0), "nothing credited");

    // The order item still carries its pending marker: the sweeper finds it on every run and
    // reports it by its key, while the adapter cannot read it.
    let report = sweep_with(&stack, json!({})).await;
    assert_counts!(report, [found = 1, failed = 1, applied = 0]);
    assert!(report.problems[0].contains("ORDER#"), "{report:?}");

    // An adapter that learned the new name applies it on the next sweep, once.
    let learned = |image: &Item| {
        let mut image = image.clone();
        if let Some(buyer) = image.remove("buyer_id") {
            image.insert("customer_id".into(), buyer);
        }
        order_placed_from_image(&image)
    };
    let far_future = service_runtime::Timestamp::now()
        .plus_seconds(60)
        .to_string();
    let pending = PendingEvents::new(stack.dynamo.client.clone(), &stack.tables.orders);
    let items = pending
        .waiting_for(REWARDS, &far_future, 100)
        .await
        .unwrap();
    let outcome = stack.service().process_entities(items, learned).await;
    assert_eq!(outcome.applied, 1, "{outcome:?}");
    assert_eq!(balance(&stack, "c-1").await, (1, 1));
    let items = pending
        .waiting_for(REWARDS, &far_future, 100)
        .await
        .unwrap();
    assert!(items.is_empty(), "released from its marker");
}

#[tokio::test]
async fn get_order_says_pending_until_the_rewards_consumer_processed_the_orders_creation() {
    let stack = cdc_stack().await;
    let order_id = place(&stack, "c-1", 2_500).await;
    let get = || request("GET", &format!("/orders/{order_id}"), None, &[]);
    let before = call(&stack, get()).await;
    assert_eq!(
        (before.status, &before.json["outbox_pending"]),
        (200, &json!(true))
    );

    let records = stack.stream_records().await.unwrap();
    let mut event = Event::default();
    event.records = records;
    let consumer = in_process_changes(stack.service(), 10);
    let answer = consumer.invoke(event).await.unwrap();
    assert!(answer.batch_item_failures.is_empty());

    let after = call(&stack, get()).await;
    assert_eq!(
        (after.status, &after.json["outbox_pending"]),
        (200, &json!(false))
    );
    assert_eq!(after.json["points"], json!(25));
    assert_eq!(balance(&stack, "c-1").await, (25, 1));
}

#[tokio::test]
async fn an_order_item_marked_for_rewards_that_the_adapter_does_not_recognise_is_reported_never_skipped(
) {
    let stack = cdc_stack().await;
    let template = place(&stack, "c-0", 100).await;
    // Later order services: the entity renamed, another sort key, the entity attribute gone.
    // Each item still carries the pending marker waiting for rewards.
    let later_services: [fn(&mut Item); 3] = [
        |item| drop(item.insert("entity".into(), text("Purchase"))),
        |item| drop(item.insert("sk".into(), text("ORDER#V2"))),
        |item| drop(item.remove("entity")),
    ];
    for rewrite in later_services {
        rewrite_order(&stack, &template, rewrite).await;
    }
    let stats = deliver(&stack).await;
    assert!(
        stats.partial_failures > 0,
        "reported as batch item failures, not ignored: {stats:?}"
    );
    assert_eq!(
        balance(&stack, "c-0").await,
        (1, 1),
        "the recognised order only"
    );

    let report = sweep_with(&stack, json!({})).await;
    assert_counts!(report, [found = 3, failed = 3, applied = 0]);
    assert_eq!(report.problems.len(), 3, "{report:?}");
    assert!(
        report.problems.iter().all(|p| p.starts_with("ORDER#")),
        "each named by its key: {report:?}"
    );
}
