//! rewards-kinesis-consumer (pattern 3, self-read): the rewards consumer of the other patterns,
//! reading `OrderPlaced` from the Kinesis stream.

use dynamodb_outbox::lambda::{self, KinesisStream};
use lambda_runtime::Error;
use rewards_service::handlers::{kinesis, stream};
use service_runtime::config;

// One thread: a 128 MB function has a fraction of one vCPU, and the handler only waits on I/O.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    config::init_tracing();
    service_runtime::metrics::init();
    let processor = kinesis::processor_from_env(config::dynamodb_client().await)?;
    lambda::run(stream::report(), KinesisStream::new(&processor)).await
}
