//! rewards-kinesis-consumer (pattern 3, self-read): the rewards consumer of the other patterns,
//! reading `OrderPlaced` from the Kinesis stream.

use lambda_runtime::{run, service_fn, Error};
use rewards_service::handlers::kinesis;

// One thread: a 128 MB function has a fraction of one vCPU, and the handler only waits on I/O.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let processor = kinesis::processor_from_env(service_runtime::start().await)?;
    run(service_fn(|event| kinesis::handle(&processor, event))).await
}
