//! order-writer: `POST /orders` and `GET /orders/{order_id}` behind an API Gateway HTTP API.

use lambda_runtime::{run, service_fn, Error};
use outbox::config;
use outbox::handlers::order_api;
use outbox::store::dynamodb::DynamoOrderStore;

// One thread: a 128 MB function has a fraction of one vCPU, and the handler only waits on I/O.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    config::init_tracing();
    outbox::metrics::init();
    let table = config::required(config::ORDERS_TABLE)?;
    let store = DynamoOrderStore::new(config::dynamodb_client().await, table);
    run(service_fn(|event| order_api::handle(&store, event))).await
}
