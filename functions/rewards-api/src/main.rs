//! rewards-api: `GET /customers/{customer_id}/rewards`.

use lambda_runtime::{run, service_fn, Error};
use rewards_service::handlers::rewards_api;
use rewards_service::store::dynamodb::DynamoRewardsStore;
use service_runtime::config;

// One thread: a 128 MB function has a fraction of one vCPU, and the handler only waits on I/O.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    config::init_tracing();
    let client = config::dynamodb_client().await;
    let store = DynamoRewardsStore::new(client, config::required(config::REWARDS_TABLE)?);
    run(service_fn(|event| rewards_api::handle(&store, event))).await
}
