//! The local stack the operator's command runs against: dynoxide with the template's tables, and
//! the sweeper's and the stream consumer's handlers behind a local Lambda Invoke API, as the
//! deployed functions would answer. The command itself is the built binary.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::dynamodb::Event;
use aws_sdk_dynamodb::types::AttributeValue;
use devkit::lambda_api::{handler, Handler, LocalLambda};
use lambda_runtime::{Context, LambdaEvent};
use outbox_tests::{stack, Item, Stack};
use rewards_service::handlers::{stream, sweeper};
use serde_json::Value as Json;

/// The sweeper function's name on the local Invoke API.
pub const SWEEPER: &str = "outbox-sweeper";
/// The stream consumer function's name on the local Invoke API.
pub const STREAM_CONSUMER: &str = "stream-consumer";
/// The rewards consumer, by the name it is routed by.
pub const CONSUMER: &str = rewards_service::consumer::NAME;

pub struct Rig {
    pub stack: Arc<Stack>,
    pub lambda: LocalLambda,
}

/// What one run of the command printed, and how it ended.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Json {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

impl Rig {
    /// Fresh tables, and the functions served: the sweeper with no grace period, 100 events a
    /// run.
    pub async fn start() -> Self {
        let stack = Arc::new(stack().await);
        let sweeper = Arc::new(stack.sweeper(0, 100));
        let sweep: Handler = handler(move |payload: Json| {
            let sweeper = sweeper.clone();
            async move {
                let event = LambdaEvent::new(payload, Context::default());
                let report = sweeper::handle(&sweeper, event).await;
                let report = report.map_err(|e| e.to_string())?;
                serde_json::to_value(report).map_err(|e| e.to_string())
            }
        });
        let processor = Arc::new(stack.service());
        let consume: Handler = handler(move |payload: Json| {
            let processor = processor.clone();
            async move {
                let event: Event = serde_json::from_value(payload).map_err(|e| e.to_string())?;
                let event = LambdaEvent::new(event, Context::default());
                let response = stream::handle(&processor, event).await;
                let response = response.map_err(|e| e.to_string())?;
                serde_json::to_value(response).map_err(|e| e.to_string())
            }
        });
        let functions = HashMap::from([
            (SWEEPER.to_owned(), sweep),
            (STREAM_CONSUMER.to_owned(), consume),
        ]);
        let lambda = LocalLambda::serve(functions).await.expect("the Invoke API");
        Self { stack, lambda }
    }

    /// `outboxctl args...` against this stack.
    pub async fn outboxctl(&self, args: &[&str]) -> Run {
        self.outboxctl_with(args, &[]).await
    }

    /// `outboxctl args...` against this stack, run in `dir` (where it finds `template.yaml`).
    pub async fn outboxctl_in(&self, dir: &std::path::Path, args: &[&str]) -> Run {
        self.run(args, &[], Some(dir)).await
    }

    /// `outboxctl args...` against this stack, with `env` on top.
    pub async fn outboxctl_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.run(args, env, None).await
    }

    async fn run(&self, args: &[&str], env: &[(&str, &str)], dir: Option<&std::path::Path>) -> Run {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_outboxctl"));
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        command
            .args(args)
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ENDPOINT_URL_KINESIS")
            .env_remove("AWS_PROFILE")
            .env("AWS_ENDPOINT_URL_DYNAMODB", &self.stack.dynamo.endpoint)
            .env("AWS_ENDPOINT_URL_LAMBDA", &self.lambda.endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .stdin(std::process::Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        let out = command.output().await.expect("outboxctl runs");
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The arguments naming this stack's tables and the rewards consumer.
    pub fn tables(&self) -> Vec<String> {
        let t = &self.stack.tables;
        [
            "--table",
            &t.orders,
            "--consumer-table",
            &t.rewards,
            "--consumer",
            CONSUMER,
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// The id of ordering key `key`'s first outbox event, as `outboxctl inspect` finds it.
    pub async fn event_id_of(&self, key: &str) -> String {
        let orders = &self.stack.tables.orders;
        let run = self
            .outboxctl(&["--json", "inspect", "--table", orders, key])
            .await;
        let found = run.json();
        found["events"][0]["event_id"]
            .as_str()
            .unwrap_or_else(|| panic!("an event of {key}: {found}"))
            .to_owned()
    }

    /// Every item of both tables, sorted by key: what must not change.
    pub async fn snapshot(&self) -> Vec<String> {
        let mut all = Vec::new();
        for table in [&self.stack.tables.orders, &self.stack.tables.rewards] {
            let items: Vec<Item> = self.stack.scan(table).await.expect("scan");
            all.extend(items.iter().map(|item| {
                let fields = item.iter().map(|(k, v)| format!("{k}={}", canonical(v)));
                let mut fields: Vec<String> = fields.collect();
                fields.sort();
                format!("{table}: {}", fields.join(" "))
            }));
        }
        all.sort();
        all
    }

    /// Sets `customer`'s balance (a data error elsewhere, or its fix).
    pub async fn set_balance(&self, customer: &str, points: i64) {
        let schema = rewards_service::schema::customer_pk(customer);
        self.stack
            .dynamo
            .client
            .put_item()
            .table_name(&self.stack.tables.rewards)
            .item("pk", AttributeValue::S(schema))
            .item(
                "sk",
                AttributeValue::S(rewards_service::schema::BALANCE_SK.into()),
            )
            .item(
                rewards_service::schema::POINTS,
                AttributeValue::N(points.to_string()),
            )
            .send()
            .await
            .expect("put the balance");
    }
}

/// A value written out with its maps' and sets' members sorted, so equal values print alike.
fn canonical(value: &AttributeValue) -> String {
    match value {
        AttributeValue::M(map) => {
            let mut fields: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", canonical(v)))
                .collect();
            fields.sort();
            format!("{{{}}}", fields.join(","))
        }
        AttributeValue::L(list) => {
            let items: Vec<String> = list.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        AttributeValue::Ss(set) | AttributeValue::Ns(set) => {
            let mut set = set.clone();
            set.sort();
            format!("{set:?}")
        }
        other => format!("{other:?}"),
    }
}

/// Two customers' orders the consumer parks (their balances sit just under the limit), one it
/// applies, all through `outboxctl sweep`; then one more order left pending.
pub async fn parked_and_pending(rig: &Rig) -> Vec<String> {
    let stack = &rig.stack;
    let parked = ["c-park-1", "c-park-2"];
    for customer in parked {
        rig.set_balance(customer, rewards_service::domain::MAX_BALANCE - 3)
            .await;
        outbox_tests::place(stack, customer, &[("A", 1, 700)]).await;
    }
    outbox_tests::place(stack, "c-ok", &[("A", 1, 500)]).await;
    let swept = rig
        .outboxctl(&["--json", "sweep", "--function", SWEEPER])
        .await;
    assert!(swept.ok, "{swept:?}");
    let report = swept.json();
    assert_eq!(
        (&report["found"], &report["applied"], &report["parked"]),
        (&Json::from(3), &Json::from(1), &Json::from(2)),
        "the sweep applied one and parked two: {report}"
    );
    outbox_tests::place(stack, "c-late", &[("A", 1, 900)]).await;
    parked.map(str::to_owned).to_vec()
}

/// What Lambda's on-failure destination receives when the stream consumer's mapping gives up on
/// everything the orders table's stream holds so far: the range, never the records.
pub async fn stream_failure_message(rig: &Rig) -> Json {
    let stack = &rig.stack;
    let arn = &stack.tables.orders_stream_arn;
    let shards = stack
        .stream
        .shard_ids(arn)
        .await
        .expect("the stream's shards");
    let records = stack
        .stream
        .read(arn, &shards[0], None, 1000)
        .await
        .expect("the stream's records");
    serde_json::json!({"DDBStreamBatchInfo": {
        "shardId": shards[0], "streamArn": arn, "batchSize": records.len(),
        "startSequenceNumber": records.first().expect("a record").sequence_number,
        "endSequenceNumber": records.last().expect("a record").sequence_number}})
}
