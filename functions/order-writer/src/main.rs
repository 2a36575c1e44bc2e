//! order-writer: `POST /orders` and `GET /orders/{order_id}` behind an API Gateway HTTP API.

// The handler's future nests the SDK's and the outbox engine's: deeper than rustc's default
// layout query limit.
#![recursion_limit = "256"]

use lambda_runtime::{run, service_fn, Error};
use order_service::handlers::order_api;
use order_service::store::dynamodb::DynamoOrderStore;
use service_runtime::config;

// One thread: a 128 MB function has a fraction of one vCPU, and the handler only waits on I/O.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    config::init_tracing();
    service_runtime::metrics::init();
    let table = config::required(config::ORDERS_TABLE)?;
    let store = DynamoOrderStore::new(config::dynamodb_client().await, table);
    run(service_fn(|event| order_api::handle(&store, event))).await
}
