//! order-writer: `POST /orders` and `GET /orders/{order_id}` behind an API Gateway HTTP API.
//! Under pattern 1 (default) each order is written with its outbox event; under pattern 2
//! (`OUTBOX_PATTERN=cdc`) the order item alone, carrying its pending marker; under the broker
//! deployment (`OUTBOX_PATTERN=broker`) as under pattern 1, the event routed to the relay.

// The handler's future nests the SDK's and the outbox engine's: deeper than rustc's default
// layout query limit.
#![recursion_limit = "256"]

use lambda_runtime::{run, service_fn, Error};
use order_service::handlers::order_api;
use order_service::store::cdc::CdcOrderStore;
use order_service::store::dynamodb::DynamoOrderStore;
use order_service::store::OrderStore;
use service_runtime::config::{self, OutboxPattern};

// One thread: a 128 MB function has a fraction of one vCPU, and the handler only waits on I/O.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // Pattern 3's order service publishes to Kinesis, which this binary does not link: it has its
    // own functions in patterns/self-read/template.yaml.
    let pattern = OutboxPattern::read_served_by(
        "order-writer",
        &[
            OutboxPattern::Outbox,
            OutboxPattern::Cdc,
            OutboxPattern::Broker,
        ],
    )?;
    let table = config::required_name(config::ORDERS_TABLE, config::SourceKind::Table)?;
    let client = service_runtime::start().await;
    match pattern {
        OutboxPattern::Outbox => serve(DynamoOrderStore::new(client, table)).await,
        OutboxPattern::Broker => serve(DynamoOrderStore::relayed(client, table)).await,
        // Cdc: read_served_by refused the rest.
        _ => serve(CdcOrderStore::new(client, table)).await,
    }
}

/// Serves the order API over `store` until the runtime stops.
async fn serve<S: OrderStore>(store: S) -> Result<(), Error> {
    run(service_fn(|event| order_api::handle(&store, event))).await
}
