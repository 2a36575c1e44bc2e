//! The example's Lambda functions in one binary: `FUNCTION` (set by template.yaml) says which
//! one this is, and the tables come from the environment the template gives every function.

use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use dynamodb_outbox::dynamodb::{DynamoConsumerStore, Outbox, PendingEvents};
use dynamodb_outbox::lambda::{self, BatchReport, OutboxStream, OutboxSweep, SweepAction};
use dynamodb_outbox::lambda::{SweepJob, SweepReport};
use dynamodb_outbox::Processor;
use invoices_example::ledger::{self, Ledger};
use invoices_example::notifications::{self, Notifications};
use lambda_runtime::{service_fn, Error, LambdaEvent};

type Sweep<'a, C> = OutboxSweep<'a, C, DynamoConsumerStore>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt().json().init();
    lambda::init_metrics();
    let var = |name: &str| std::env::var(name).map_err(|e| format!("{name}: {e}"));
    let (client, invoices) = (
        invoices_example::dynamodb_client().await,
        var("INVOICES_TABLE")?,
    );
    let store = |table: &str| DynamoConsumerStore::new(client.clone(), table, &invoices);
    let (ledger_table, notifications_table) = (var("LEDGER_TABLE")?, var("NOTIFICATIONS_TABLE")?);
    let ledger = Processor::new(Ledger::new(&ledger_table), store(&ledger_table), &invoices);
    let notifications = Notifications::new(&notifications_table);
    let notifications = Processor::new(notifications, store(&notifications_table), &invoices);
    match var("FUNCTION")?.as_str() {
        "api" => {
            let outbox = &Outbox::new(client.clone(), &invoices, invoices_example::routes());
            let api = |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
                Ok::<_, Error>(invoices_example::api(outbox, &event.payload).await)
            };
            lambda_runtime::run(service_fn(api)).await
        }
        // A consumer's function is named as the consumer is.
        ledger::NAME => {
            lambda::run(BatchReport::new(ledger::NAME), OutboxStream::new(&ledger)).await
        }
        notifications::NAME => {
            let handler = OutboxStream::new(&notifications);
            lambda::run(BatchReport::new(notifications::NAME), handler).await
        }
        "sweeper" => {
            let pending = PendingEvents::new(client.clone(), &invoices);
            let older_than = Duration::from_secs(var("SWEEPER_GRACE_SECONDS")?.parse()?);
            let (pending, limit) = (&pending, 1000);
            let job = Both(
                Sweep {
                    processor: &ledger,
                    pending,
                    older_than,
                    limit,
                },
                Sweep {
                    processor: &notifications,
                    pending,
                    older_than,
                    limit,
                },
            );
            lambda::run_sweeper(&job, "sweeper").await
        }
        other => Err(format!("FUNCTION={other}: api, ledger, notifications or sweeper").into()),
    }
}

/// The sweeper's run: each consumer's, one's failure not stopping the other's.
struct Both<'a>(Sweep<'a, Ledger>, Sweep<'a, Notifications>);

impl SweepJob for Both<'_> {
    async fn run(&self, action: SweepAction) -> Result<SweepReport, Error> {
        let (ledger, notifications) = tokio::join!(self.0.run(action), self.1.run(action));
        let mut report = ledger?;
        report.add(notifications?);
        Ok(report)
    }
}
