//! The example's Lambda functions in one binary: the HTTP API, or (with `CONSUMER` set, naming
//! the consumer, and `CONSUMER_TABLE` its table) a consumer's function, which serves both its
//! stream mapping and its schedule (template.yaml).

use std::time::Duration;

use dynamodb_outbox::dynamodb::Outbox;
use dynamodb_outbox::lambda::{self, env_var, OutboxConsumer};
use dynamodb_outbox::Source;
use invoices_example::ledger::{self, Ledger};
use invoices_example::notifications::{self, Notifications};
use lambda_runtime::{service_fn, Error};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt().json().init();
    lambda::init_metrics();
    let client = lambda::dynamodb_client().await;
    // By name, or by ARN (a consumer then admits only that table's records, wherever it runs).
    let invoices = Source::table(&env_var::<String>("INVOICES_TABLE")?)?;
    let Ok(consumer) = env_var::<String>("CONSUMER") else {
        let outbox = &Outbox::new(client, invoices.name(), invoices_example::routes());
        return lambda_runtime::run(service_fn(|event| invoices_example::api(outbox, event))).await;
    };
    let table: String = env_var("CONSUMER_TABLE")?;
    let grace = Duration::from_secs(env_var("SWEEPER_GRACE_SECONDS")?);
    let function = OutboxConsumer::new(client, &table, invoices).sweep_after(grace);
    match consumer.as_str() {
        ledger::NAME => function.run(Ledger::new(&table)).await,
        notifications::NAME => function.run(Notifications::new(&table)).await,
        other => Err(format!("CONSUMER={other}: ledger or notifications").into()),
    }
}
