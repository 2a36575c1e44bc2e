//! stream-consumer: applies `OrderPlaced` events from the orders table's stream to the rewards
//! ledger, through the outbox engine.

use lambda_runtime::{run, service_fn, Error};
use rewards_service::handlers::stream;
use rewards_service::service;
use service_runtime::config;

// One thread: a 128 MB function has a fraction of one vCPU, and the handler only waits on I/O.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    config::init_tracing();
    service_runtime::metrics::init();
    let processor = service::processor_from_env(config::dynamodb_client().await)?;
    run(service_fn(|event| stream::handle(&processor, event))).await
}
