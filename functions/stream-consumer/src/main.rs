//! stream-consumer: applies `OrderPlaced` events from the orders table's stream to the rewards
//! ledger, through the outbox engine: outbox items under pattern 1, the order items' own
//! creation under pattern 2 (`OUTBOX_PATTERN=cdc`).

use lambda_runtime::{run, service_fn, Error};
use rewards_service::handlers::stream;
use rewards_service::service;
use service_runtime::config::OutboxPattern;

// Allocation is about a fifth of a batch's CPU (perf, most of it in the SDK's request pipeline),
// and a 128 MB function's CPU is what bounds its batch: with mimalloc the bench's 100-record
// batch took about 7 % less CPU than with the system allocator (3 pairs of criterion runs side by
// side, 8.4 to 9.4 ms against 9.3 to 9.8 ms). What it costs, measured by `make bench`: peak RSS
// 16 MB against 7 MB (of 128), and about 130 KB of the arm64 binary. The bench of this batch
// (`benches/consumer.rs`) uses the same allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One thread: a 128 MB function has a fraction of one vCPU, and the handler only waits on I/O.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // Pattern 3's events are on Kinesis: rewards-kinesis-consumer reads them.
    let pattern = OutboxPattern::read_served_by(
        "stream-consumer",
        &[OutboxPattern::Outbox, OutboxPattern::Cdc],
    )?;
    let processor = service::processor_from_env(service_runtime::start().await)?;
    if pattern == OutboxPattern::Cdc {
        run(service_fn(|event| {
            stream::handle_order_changes(&processor, event)
        }))
        .await
    } else {
        run(service_fn(|event| stream::handle(&processor, event))).await
    }
}
