//! order-relay (the broker deployment): publishes the outbox's `OrderPlaced` events to the order
//! events bus (`EVENT_BUS_NAME`) as the outbox's consumer `order-relay`, each customer's in
//! sequence. With `RELAY_SWEEPER` set it is the relay's sweeper instead: on its schedule it
//! publishes what the stream left pending for the relay, on `{"action":"redrive-parked"}` what
//! the relay parked.

use std::time::Duration;

use dynamodb_outbox::dynamodb::{DynamoConsumerStore, PendingEvents};
use dynamodb_outbox::lambda::{self, OutboxStream, OutboxSweep};
use dynamodb_outbox::relay::{EventBridgeTarget, Relay};
use dynamodb_outbox::{Processor, SourceKind};
use lambda_runtime::Error;
use order_service::domain::events::{takes_order_placed, ORDER_RELAY};
use service_runtime::{config, metrics};

/// The `source` of the events on the bus: what the subscribers' rules match.
const EVENT_SOURCE: &str = "orders";

// One thread: a 128 MB function has a fraction of one vCPU, and the handler only waits on I/O.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let orders = config::source(config::ORDERS_TABLE, SourceKind::Table)?;
    let bus = config::required("EVENT_BUS_NAME")?;
    let client = service_runtime::start().await;
    let target = EventBridgeTarget::from_env(bus, EVENT_SOURCE);
    let relay = Relay::new(ORDER_RELAY, takes_order_placed(), target);
    // The relay's progress and parked events live beside the outbox, in the orders table.
    let store = DynamoConsumerStore::new(client.clone(), orders.name(), orders.name());
    let processor = Processor::new(relay, store, orders.clone())
        .retention_seconds(config::OUTBOX_RETENTION_SECONDS.read()?)?
        .concurrency(config::CONSUMER_CONCURRENCY.read()?);
    if std::env::var_os("RELAY_SWEEPER").is_some() {
        let grace: u64 = config::SWEEPER_GRACE_SECONDS.read()?;
        let sweep = OutboxSweep {
            processor: &processor,
            pending: &PendingEvents::new(client, orders.name()),
            older_than: Duration::from_secs(grace),
            limit: config::SWEEPER_BATCH_LIMIT.read()?,
        };
        return lambda::run_sweeper(&sweep, metrics::RELAY_SWEEPER).await;
    }
    let report = metrics::batch_report(metrics::ORDER_RELAY);
    lambda::run(report, OutboxStream::new(&processor)).await
}
