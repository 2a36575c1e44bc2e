//! The example's binary as Lambda runs it: started as each function of `template.yaml` (with
//! that function's environment), handed events through a local Lambda Runtime API, against the
//! embedded DynamoDB holding the template's tables, through a proxy that checks each request
//! against the function's policy in the template (least privilege that works).

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use devkit::iam;
use devkit::local::create_table;
use devkit::proxy::{FaultPlan, FaultProxy};
use devkit::runtime_api::{lambda_environment, Answer, RuntimeStub};
use devkit::{LocalDynamo, StreamClient, Template};
use serde_json::{json, Value};

/// Where Lambda runs the functions locally: the Runtime API stub's region and account, which
/// the records of a table in that account carry.
const HOME: &str = "us-east-1:123456789012";

struct Deployed {
    runtime: tokio::runtime::Runtime,
    dynamo: LocalDynamo,
    /// Between the functions and the database: what each request needs of IAM.
    proxy: FaultProxy,
    template: Template,
    /// Each table's name in the template → its name here (this run's own).
    tables: BTreeMap<String, String>,
}

impl Deployed {
    fn start() -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (dynamo, proxy, template, tables) = runtime.block_on(Self::tables());
        Self {
            runtime,
            dynamo,
            proxy,
            template,
            tables,
        }
    }

    async fn tables() -> (LocalDynamo, FaultProxy, Template, BTreeMap<String, String>) {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml");
        let template = Template::load(path.as_ref()).unwrap();
        let dynamo = LocalDynamo::start().await.unwrap();
        let suffix = uuid_suffix();
        let mut tables = BTreeMap::new();
        for spec in template.tables().unwrap() {
            let name = format!("{}{suffix}", spec.name);
            create_table(&dynamo.client, &spec, &name).await.unwrap();
            tables.insert(spec.name.clone(), name);
        }
        let proxy = FaultProxy::start(&dynamo.endpoint, FaultPlan::none())
            .await
            .unwrap();
        (dynamo, proxy, template, tables)
    }

    fn table(&self, logical_id: &str) -> &str {
        &self.tables[&self.template.table(logical_id).unwrap().name]
    }

    /// Runs the binary as `function` until it answered each of `events`: the answers.
    fn invoke(&self, function: &str, events: &[Value]) -> Vec<Value> {
        self.invoke_with(function, &[], events)
    }

    /// As [`Self::invoke`], with some of the function's variables set otherwise.
    fn invoke_with(&self, function: &str, set: &[(&str, &str)], events: &[Value]) -> Vec<Value> {
        let environment = self.template.function_environment(function).unwrap();
        let environment = environment.into_iter().map(|(name, value)| {
            let value = value
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            (name, self.tables.get(&value).cloned().unwrap_or(value))
        });
        let runtime = &self.runtime;
        self.proxy.reset_stats();
        let bytes = events.iter().map(|e| Bytes::from(e.to_string())).collect();
        let stub = runtime
            .block_on(RuntimeStub::start(bytes, events.len()))
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_invoices"))
            .env_clear()
            .envs(lambda_environment(&stub.runtime_api(), function))
            .envs(environment)
            .envs([
                ("AWS_ENDPOINT_URL", self.proxy.endpoint.as_str()),
                ("AWS_REGION", "us-east-1"),
            ])
            .envs([
                ("AWS_ACCESS_KEY_ID", "local"),
                ("AWS_SECRET_ACCESS_KEY", "local"),
            ])
            .envs(set.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let answered = runtime.block_on(stub.all_answered(Duration::from_secs(30)));
        let _ = child.kill();
        let _ = child.wait();
        let mut stderr = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
        let counts = answered.unwrap_or_else(|e| panic!("{function}: {e}: {stderr}"));
        assert_eq!(counts.init_errors, 0, "{function} did not start: {stderr}");
        self.assert_allowed(function);
        let answers = stub.answers().into_iter().map(|answer| match answer {
            Answer::Response(bytes) => serde_json::from_slice(&bytes).unwrap(),
            Answer::Error(bytes) => panic!("{function}: {}", String::from_utf8_lossy(&bytes)),
        });
        answers.collect()
    }

    /// Every request the function made since it started is one its policy allows.
    fn assert_allowed(&self, function: &str) {
        let accesses = self.proxy.stats().accesses;
        assert!(!accesses.is_empty(), "{function} made no request");
        let grants = iam::grants(&self.template, function).unwrap();
        let ids = self
            .template
            .tables()
            .unwrap()
            .into_iter()
            .map(|t| (t.logical_id, t.name));
        let ids: Vec<(String, String)> = ids.collect();
        let tables = ids
            .iter()
            .map(|(id, name)| (id.as_str(), self.tables[name].as_str()))
            .collect();
        let denied = iam::denied(&grants, &tables, &accesses);
        assert!(
            denied.is_empty(),
            "{function}'s policy does not allow {denied:?} (it needed {accesses:?})"
        );
    }

    async fn number(&self, table: &str, pk: &str, sk: &str, attribute: &str) -> Option<i64> {
        let item = self.dynamo.item(table, pk, sk).await.unwrap()?;
        item.get(attribute)?.as_n().ok()?.parse().ok()
    }

    /// The invoices table's stream records that `function`'s mapping passes, as Lambda delivers
    /// them to a function in the stub's account.
    async fn stream_event(&self, function: &str) -> Value {
        let invoices = self.table("InvoicesTable");
        let described = self
            .dynamo
            .client
            .describe_table()
            .table_name(invoices)
            .send()
            .await
            .unwrap();
        let stream_arn = described.table.and_then(|t| t.latest_stream_arn).unwrap();
        let stream = StreamClient::new(&self.dynamo.endpoint, &self.dynamo.sdk_config).unwrap();
        let filters = self
            .template
            .stream_source(function)
            .unwrap()
            .filter_patterns;
        let mut records = Vec::new();
        let from_start = &mut Default::default();
        for record in stream.read_all(&stream_arn, from_start).await.unwrap() {
            if devkit::filter::passes(&filters, &record.json) {
                let mut json = record.json;
                json["eventSourceARN"] = json!(format!(
                    "arn:aws:dynamodb:{HOME}:table/{invoices}/stream/local"
                ));
                records.push(json);
            }
        }
        json!({ "Records": records })
    }
}

fn uuid_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("-{}", nanos.as_nanos() % 1_000_000_007)
}

/// `POST /invoices` as the HTTP API hands it to the function.
fn post(command: Value) -> Value {
    json!({
        "version": "2.0", "routeKey": "POST /invoices", "rawPath": "/invoices", "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "local", "domainName": "localhost",
            "requestId": "test", "routeKey": "POST /invoices", "stage": "$default",
            "time": "02/Dec/2026:00:00:00 +0000", "timeEpoch": 0,
            "http": {"method": "POST", "path": "/invoices", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"}
        },
        "body": command.to_string(), "isBase64Encoded": false
    })
}

#[test]
fn the_binary_serves_the_api_and_each_consumers_batches_and_sweeps_as_the_template_configures_them()
{
    let app = Deployed::start();
    let runtime = &app.runtime;
    let issue = |id: &str, cents: i64| {
        post(json!({"issue": {"invoice_id": id, "account_id": "acme", "amount_cents": cents}}))
    };
    let void =
        post(json!({"void": {"invoice_id": "i-1", "account_id": "acme", "amount_cents": 700}}));
    let mut not_json = post(json!(null));
    not_json["body"] = json!("{");
    let events = [
        issue("i-1", 700),
        issue("i-2", 50),
        void,
        issue("i-2", 50),
        not_json,
    ];
    let statuses: Vec<Value> = app
        .invoke("InvoicesApiFunction", &events)
        .iter()
        .map(|a| a["statusCode"].clone())
        .collect();
    assert_eq!(
        statuses,
        [200, 200, 200, 409, 400],
        "the retried issue was done already"
    );

    let batch = runtime.block_on(app.stream_event("LedgerFunction"));
    assert_eq!(
        batch["Records"].as_array().unwrap().len(),
        3,
        "the ledger's filter passes its three events"
    );
    let answers = app.invoke("LedgerFunction", &[batch.clone(), batch]);
    assert_eq!(
        answers,
        vec![json!({"batchItemFailures": []}); 2],
        "applied, then duplicates"
    );
    let ledger = app.table("LedgerTable");
    let balance = runtime.block_on(app.number(ledger, "ACCOUNT#acme", "BALANCE", "balance_cents"));
    assert_eq!(balance, Some(50), "700 + 50 - 700, once");

    // The notifications function never had a batch: scheduled (with no grace period), it
    // finds both issues pending and applies them, through the same path.
    let now = [("SWEEPER_GRACE_SECONDS", "0")];
    let swept = app.invoke_with("NotificationsFunction", &now, &[json!({}), json!({})]);
    assert_eq!(
        (swept[0]["applied"].clone(), swept[1]["found"].clone()),
        (json!(2), json!(0)),
        "{swept:?}"
    );
    // The ledger's function, scheduled, finds nothing pending, and nothing parked to redrive.
    let redrive = json!({"action": "redrive-parked"});
    let swept = app.invoke_with("LedgerFunction", &now, &[json!({}), redrive]);
    assert_eq!(
        (swept[0]["found"].clone(), swept[1]["found"].clone()),
        (json!(0), json!(0))
    );
    let notifications = app.table("NotificationsTable");
    let sent = runtime.block_on(app.number(notifications, "ACCOUNT#acme", "NOTIFICATIONS", "sent"));
    assert_eq!(sent, Some(2));
}
