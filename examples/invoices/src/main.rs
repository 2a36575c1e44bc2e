//! The example's Lambda functions in one binary: `FUNCTION` (set by template.yaml) says which
//! one this is: the HTTP API, a consumer's stream function or a consumer's sweeper (`CONSUMER`
//! names the consumer, `CONSUMER_TABLE` its table).

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use dynamodb_outbox::dynamodb::{DynamoConsumerStore, Outbox, PendingEvents};
use dynamodb_outbox::lambda::{self, BatchReport, OutboxStream, OutboxSweep};
use dynamodb_outbox::{Consumer, Processor, Source};
use invoices_example::ledger::{self, Ledger};
use invoices_example::notifications::{self, Notifications};
use lambda_runtime::{service_fn, Error};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt().json().init();
    lambda::init_metrics();
    let client = invoices_example::dynamodb_client().await;
    // By name, or by ARN (a consumer then admits only that table's records, wherever it runs).
    let invoices = Source::table(&var("INVOICES_TABLE")?)?;
    if var("FUNCTION")? == "api" {
        let outbox = &Outbox::new(client, invoices.name(), invoices_example::routes());
        return lambda_runtime::run(service_fn(|event| invoices_example::api(outbox, event))).await;
    }
    let table = var("CONSUMER_TABLE")?;
    match var("CONSUMER")?.as_str() {
        ledger::NAME => serve(Ledger::new(&table), client, invoices).await,
        notifications::NAME => serve(Notifications::new(&table), client, invoices).await,
        other => Err(format!("CONSUMER={other}: ledger or notifications").into()),
    }
}

/// A consumer's stream function, or its sweeper (`FUNCTION=sweeper`).
async fn serve<C: Consumer>(consumer: C, client: Client, invoices: Source) -> Result<(), Error> {
    // Its name for the metrics' `Function` dimension, for the life of the process.
    let name: &'static str = consumer.name().to_owned().leak();
    let table = var("CONSUMER_TABLE")?;
    let pending = &PendingEvents::new(client.clone(), invoices.name());
    let store = DynamoConsumerStore::new(client, table, invoices.name());
    let processor = Processor::new(consumer, store, invoices);
    if var("FUNCTION")? != "sweeper" {
        return lambda::run(BatchReport::new(name), OutboxStream::new(&processor)).await;
    }
    let older_than = Duration::from_secs(var("SWEEPER_GRACE_SECONDS")?.parse()?);
    let sweep = OutboxSweep {
        processor: &processor,
        pending,
        older_than,
        limit: 1000,
    };
    lambda::run_sweeper(&sweep, name).await
}

fn var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|e| format!("{name}: {e}"))
}
