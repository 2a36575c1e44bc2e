//! The broker deployment's demo end to end: orders through the order-writer on the local
//! DynamoDB, the stream mapping driving the relay to moto's EventBridge bus, the rule delivering
//! to the SQS queue, the SQS mapping driving the rewards inbox (each batch delivered twice);
//! the demo fails unless every order placed is rewarded exactly once, nothing is left pending
//! for the relay, and the queue and its dead letters are empty.
//!
//! Without moto's server (`make tools`) it fails and says why; with `OUTBOX_SKIP_MOTO=<reason>`
//! it prints `SKIPPED` instead.

use devkit::demo::{run_broker_on, DemoOptions};
use devkit::patterns::broker::BrokerStack;
use devkit::Pattern;

#[tokio::test]
async fn the_broker_demo_rewards_every_order_once_through_the_bus_and_the_queue() {
    let test = "the_broker_demo_rewards_every_order_once_through_the_bus_and_the_queue";
    let Some(stack) = BrokerStack::start_or_skip(test).await.expect("the stack") else {
        return;
    };
    let opts = DemoOptions {
        pattern: Pattern::Broker,
        orders: 12,
        customers: 4,
        seed: 11,
        concurrency: 4,
    };
    run_broker_on(stack, opts)
        .await
        .expect("the broker demo's invariants");
}
