//! outbox-sweeper: on a schedule, applies outbox events still pending after a grace period.

use lambda_runtime::{run, service_fn, Error};
use outbox::config;
use outbox::handlers::sweeper;
use outbox::service::RewardsService;
use outbox::store::dynamodb::{DynamoOrderStore, DynamoRewardsStore};

// One thread: a 128 MB function has a fraction of one vCPU, and the handler only waits on I/O.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    config::init_tracing();
    outbox::metrics::init();
    let client = config::dynamodb_client().await;
    let service = RewardsService {
        rewards: DynamoRewardsStore::new(client.clone(), config::required(config::REWARDS_TABLE)?),
        outbox: DynamoOrderStore::new(client, config::required(config::ORDERS_TABLE)?),
        retention_seconds: config::OUTBOX_RETENTION_SECONDS.read()?,
    };
    let grace = config::SWEEPER_GRACE_SECONDS.read()?;
    let limit = config::SWEEPER_BATCH_LIMIT.read()?;
    run(service_fn(|event| {
        sweeper::handle(&service, grace, limit, event)
    }))
    .await
}
