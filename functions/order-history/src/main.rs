//! order-history (pattern 3, self-read): writes each order published to the Kinesis stream into
//! the orders table, once.

use lambda_runtime::{run, service_fn, Error};
use order_service::self_read::history;

// One thread: a 128 MB function has a fraction of one vCPU, and the handler only waits on I/O.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let processor = history::processor_from_env(service_runtime::start().await)?;
    run(service_fn(|event| history::handle(&processor, event))).await
}
