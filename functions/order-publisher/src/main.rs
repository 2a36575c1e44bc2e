//! order-publisher (pattern 3, self-read): `POST /orders` publishes `OrderPlaced` to the Kinesis
//! stream and answers 202; `GET /orders/{order_id}` reads the order-history table.

#![recursion_limit = "256"]

use lambda_runtime::{run, service_fn, Error};
use order_service::self_read::api;
use order_service::self_read::kinesis::{kinesis_client, KinesisPublisher};
use order_service::store::dynamodb::DynamoOrderStore;
use service_runtime::config;

// One thread: a 128 MB function has a fraction of one vCPU, and the handler only waits on I/O.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let stream = config::required_name(
        config::ORDER_EVENTS_STREAM,
        config::SourceKind::KinesisStream,
    )?;
    let table = config::required_name(config::ORDERS_TABLE, config::SourceKind::Table)?;
    let client = service_runtime::start().await;
    let publisher = KinesisPublisher::new(kinesis_client(), stream);
    let history = DynamoOrderStore::new(client, table);
    run(service_fn(|event| api::handle(&publisher, &history, event))).await
}
