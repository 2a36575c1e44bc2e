//! The rewards service's use cases: reading a ledger, and the sweeper's runs on the engine.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use dynamodb_outbox::dynamodb::{DynamoConsumerStore, PendingEvents};
use dynamodb_outbox::{BatchOutcome, Processor, Source, SourceKind};
use order_service::changes::order_placed_from_image;
use service_runtime::config::{self, ConfigError};
use service_runtime::validate_id;

use crate::consumer::RewardsConsumer;
use crate::domain::{LedgerPage, StoreError, ValidationError};
use crate::schema::LEDGER_SK_PREFIX;
use crate::store::RewardsStore;

/// Ledger lines per page unless the caller asks for another number.
pub const DEFAULT_PAGE: usize = 20;
/// The most ledger lines one page holds.
pub const MAX_PAGE: usize = 100;

/// The rewards consumer on DynamoDB, as the stream consumer and the sweeper run it.
pub type RewardsProcessor = Processor<RewardsConsumer, DynamoConsumerStore>;

/// The rewards processor of a function, from its settings (read once, at start-up): the
/// rewards table (effects and progress), the orders table (the outbox), retention, concurrency.
pub fn processor_from_env(client: Client) -> Result<RewardsProcessor, ConfigError> {
    let rewards = config::required(config::REWARDS_TABLE)?;
    let orders = config::source(config::ORDERS_TABLE, SourceKind::Table)?;
    let retention: i64 = config::OUTBOX_RETENTION_SECONDS.read()?;
    let out_of_range = |_: dynamodb_outbox::SettingError| ConfigError::OutOfRange {
        variable: config::OUTBOX_RETENTION_SECONDS.variable,
        value: retention.to_string(),
        min: config::OUTBOX_RETENTION_SECONDS.min,
        max: config::OUTBOX_RETENTION_SECONDS.max,
    };
    Ok(processor(client, &rewards, orders)
        .retention_seconds(retention)
        .map_err(out_of_range)?
        .concurrency(config::CONSUMER_CONCURRENCY.read()?))
}

/// The rewards processor on `rewards_table`, for the outbox in `orders_table` (its name, or its
/// ARN: records are admitted from that table's stream only, and the outbox items are marked on
/// the table of that name in the function's account), with the engine's defaults.
pub fn processor(client: Client, rewards_table: &str, orders: Source) -> RewardsProcessor {
    Processor::new(
        RewardsConsumer::new(rewards_table),
        DynamoConsumerStore::new(client, rewards_table, orders.name()),
        orders,
    )
}

/// What one run of the sweeper found and did: the engine's report of a sweep.
pub use dynamodb_outbox::lambda::SweepReport;

/// Applies events still pending for the rewards consumer `grace` after they occurred: the ones
/// the stream never delivered, or gave up on. Safe at any time, concurrently with the stream
/// consumer, any number of times: it goes through the same path (exactly once, per-customer
/// order). Reads up to `limit` events, spread evenly over the pending index's shards; the
/// engine starts each customer at its lowest pending event and moves what it cannot apply now
/// behind the rest ([`dynamodb_outbox::Processor::sweep`]).
pub async fn sweep(
    pending: &PendingEvents,
    processor: &RewardsProcessor,
    grace: Duration,
    limit: usize,
) -> Result<BatchOutcome, StoreError> {
    Ok(processor.sweep(pending, grace, limit).await?)
}

/// Pattern 2's sweep: order items still carrying their pending marker for the rewards consumer
/// `grace` after they occurred (their creation was never delivered, or the stream gave up on
/// it), read from the same sparse index on the orders table and applied through the same path
/// as the stream (once by event id, released from the marker after).
pub async fn sweep_order_changes(
    pending: &PendingEvents,
    processor: &RewardsProcessor,
    grace: Duration,
    limit: usize,
) -> Result<BatchOutcome, StoreError> {
    Ok(processor
        .sweep_entities(pending, order_placed_from_image, grace, limit)
        .await?)
}

/// A page of a customer's ledger, newest first. `next` is the cursor a previous page returned.
pub async fn rewards_of<R: RewardsStore>(
    rewards: &R,
    customer_id: &str,
    limit: Option<usize>,
    next: Option<&str>,
) -> Result<LedgerPage, RewardsQueryError> {
    validate_id("customer_id", customer_id)?;
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ValidationError::new(
            "invalid_limit",
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        )
        .into());
    }
    let start_after = next.map(decode_cursor).transpose()?;
    let mut page = rewards
        .ledger(customer_id, limit, start_after.as_deref())
        .await?;
    page.next = page.next.map(|sk| URL_SAFE_NO_PAD.encode(sk));
    Ok(page)
}

#[derive(Debug, thiserror::Error)]
pub enum RewardsQueryError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn decode_cursor(token: &str) -> Result<String, ValidationError> {
    let invalid =
        || ValidationError::new("invalid_cursor", "next", "is not a cursor this API issued");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let sk = String::from_utf8(bytes).map_err(|_| invalid())?;
    if sk.starts_with(LEDGER_SK_PREFIX) && sk.len() < 256 {
        Ok(sk)
    } else {
        Err(invalid())
    }
}
