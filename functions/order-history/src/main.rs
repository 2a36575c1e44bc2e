//! order-history (pattern 3, self-read): writes each order published to the Kinesis stream into
//! the orders table, once.

use dynamodb_outbox::lambda::{self, KinesisStream};
use lambda_runtime::Error;
use order_service::self_read::history;
use service_runtime::config;

// One thread: a 128 MB function has a fraction of one vCPU, and the handler only waits on I/O.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    config::init_tracing();
    service_runtime::metrics::init();
    let processor = history::processor_from_env(config::dynamodb_client().await)?;
    lambda::run(history::report(), KinesisStream::new(&processor)).await
}
