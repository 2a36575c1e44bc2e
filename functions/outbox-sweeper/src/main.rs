//! outbox-sweeper: on a schedule, applies the rewards consumer's outbox events still pending
//! after a grace period; on request, redrives the events it parked.

use dynamodb_outbox::lambda;
use lambda_runtime::Error;
use rewards_service::handlers::sweeper::Sweeper;
use service_runtime::metrics;

// One thread: a 128 MB function has a fraction of one vCPU, and the handler only waits on I/O.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let sweeper = Sweeper::from_env(service_runtime::start().await)?;
    lambda::run_sweeper(&sweeper, metrics::OUTBOX_SWEEPER).await
}
