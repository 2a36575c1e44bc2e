//! rewards-inbox (the broker deployment): applies the `OrderPlaced` events that the order
//! events bus's rule delivers to the rewards inbox queue, once each by event id, with the same
//! `RewardsConsumer` as pattern 1's stream consumer; on `{"action":"redrive-parked"}` it puts
//! the events it parked back through the consumer. It reports as `stream-consumer` and
//! `outbox-sweeper`, so the rewards alarms read the same metrics in every deployment.

use dynamodb_outbox::lambda::InboxConsumer;
use dynamodb_outbox::SourceKind;
use lambda_runtime::Error;
use rewards_service::consumer::RewardsConsumer;
use service_runtime::{config, metrics};

/// The queue the function reads (name or ARN), set by the template.
const INBOX_QUEUE: &str = "REWARDS_INBOX_QUEUE";

// One thread: a 128 MB function has a fraction of one vCPU, and the handler only waits on I/O.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let rewards = config::required(config::REWARDS_TABLE)?;
    let queue = config::source(INBOX_QUEUE, SourceKind::SqsQueue)?;
    InboxConsumer::new(service_runtime::start().await, &rewards, queue)
        .reporting_as(metrics::STREAM_CONSUMER, metrics::OUTBOX_SWEEPER)
        .run(RewardsConsumer::new(rewards))
        .await
}
