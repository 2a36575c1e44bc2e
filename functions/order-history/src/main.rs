//! order-history (pattern 3, self-read): writes each order published to the Kinesis stream into
//! the orders table, once.

use dynamodb_outbox::dynamodb::DynamoConsumerStore;
use dynamodb_outbox::Processor;
use lambda_runtime::{run, service_fn, Error};
use order_service::self_read::history::{self, OrderHistoryConsumer};
use service_runtime::config;

// One thread: a 128 MB function has a fraction of one vCPU, and the handler only waits on I/O.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    config::init_tracing();
    let table = config::required(config::ORDERS_TABLE)?;
    let stream = config::required_stream(config::ORDER_EVENTS_STREAM)?;
    let client = config::dynamodb_client().await;
    let processor = Processor::new(
        OrderHistoryConsumer::new(&table),
        DynamoConsumerStore::new(client, &table, &stream),
        &stream,
    )
    .concurrency(config::CONSUMER_CONCURRENCY.read()?);
    run(service_fn(|event| history::handle(&processor, event))).await
}
