//! The project's local DynamoDB: dynoxide embedded in-process on a free port, or whatever server
//! `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_DYNAMODB` names (DynamoDB Local, another emulator, AWS).

use std::net::SocketAddr;

use anyhow::{anyhow, bail, Context, Result};
use aws_config::{Region, SdkConfig};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, TableDescription, TableStatus,
    TimeToLiveSpecification,
};
use std::time::Duration;

use aws_sdk_dynamodb::config::retry::{RetryConfig, RetryPartition};
use aws_sdk_dynamodb::Client;
use serde_json::Value as Json;

use dynamodb_outbox::testing::schema;

use crate::template::{TableSpec, Template};

pub const ORDERS_TABLE_ID: &str = "OrdersTable";
pub const REWARDS_TABLE_ID: &str = "RewardsTable";
pub(crate) const LOCAL_REGION: &str = "us-east-1";

/// Where `make ddb` serves DynamoDB unless told otherwise; the functions' local environment
/// (`events/env.json`, `events/local.env`) points here.
pub const DDB_DEFAULT_LISTEN: &str = "127.0.0.1:8000";

/// A running DynamoDB and a client for it.
pub struct LocalDynamo {
    pub endpoint: String,
    pub sdk_config: SdkConfig,
    /// The project's client (its retry rules included), pointed at this server.
    pub client: Client,
    db: Option<dynoxide::Database>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// The ARN the embedded dynoxide gives the table `name` (its streams' ARNs are this and
/// `/stream/<label>`): dynoxide's own region and account (`arn:aws:dynamodb:dynoxide:000000000000:table/<name>`),
/// not the client's. The local environment names the tables by it, so a consumer admits the
/// records of their streams wherever its emulator says the function runs.
pub fn table_arn(name: &str) -> String {
    dynoxide::streams::table_arn(name)
}

/// The tables of one run: their names and the orders table's stream.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    pub orders: String,
    pub rewards: String,
    pub orders_stream_arn: String,
}

impl Tables {
    /// The orders table's ARN, as the server names it (its stream's ARN without the stream): what
    /// a consumer of its stream is configured with, so its records are admitted wherever the
    /// server says the table is.
    pub fn orders_arn(&self) -> String {
        self.orders_stream_arn.split_once("/stream/").map_or_else(
            || self.orders_stream_arn.clone(),
            |(table, _)| table.to_owned(),
        )
    }

    /// The orders table as the consumers' source: by its ARN, so its records are checked
    /// wherever the tool runs.
    pub fn orders_source(&self) -> dynamodb_outbox::Source {
        dynamodb_outbox::Source::table(&self.orders_arn())
            .expect("the local server names its tables by valid ARNs")
    }
}

/// The DynamoDB endpoint the environment names, with the SDK's precedence (the service-specific
/// variable first).
pub fn external_endpoint() -> Option<String> {
    service_runtime::config::endpoint_url(service_runtime::config::DYNAMODB)
}

pub use outboxctl::is_local_endpoint;

impl LocalDynamo {
    /// The server named by `AWS_ENDPOINT_URL` if set, else an embedded dynoxide.
    pub async fn start() -> Result<Self> {
        match external_endpoint() {
            Some(endpoint) => Self::external(endpoint).await,
            None => Self::embedded("127.0.0.1:0".parse()?).await,
        }
    }

    /// The item of `table` under the key `pk`, `sk` (the names every table of the project keys
    /// by), read consistently: for checks and tests.
    pub async fn item(&self, table: &str, pk: &str, sk: &str) -> Result<Option<crate::Item>> {
        let key = |v: &str| aws_sdk_dynamodb::types::AttributeValue::S(v.to_owned());
        let out = (self.client.get_item().table_name(table))
            .key(schema::PK, key(pk))
            .key(schema::SK, key(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error(format!("reading {pk} {sk} of {table}"), e))?;
        Ok(out.item)
    }

    /// The server named by `AWS_ENDPOINT_URL` if set, else the one `make ddb` serves by default:
    /// for tools that join a running local stack.
    pub async fn running() -> Result<Self> {
        let endpoint =
            external_endpoint().unwrap_or_else(|| format!("http://{DDB_DEFAULT_LISTEN}"));
        Self::external(endpoint).await
    }

    /// An in-memory dynoxide served on `addr` (port 0: a free port).
    pub async fn embedded(addr: SocketAddr) -> Result<Self> {
        let db = dynoxide::Database::memory().map_err(|e| anyhow!("dynoxide: {e}"))?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(dynoxide::server::serve_on(listener, db.clone()));
        let sdk_config = local_sdk_config(&endpoint).await;
        Ok(Self {
            client: isolated(client_at(&sdk_config, &endpoint)),
            endpoint,
            sdk_config,
            db: Some(db),
            server: Some(server),
        })
    }

    async fn external(endpoint: String) -> Result<Self> {
        // Region and credentials come from the usual AWS sources. A server on this machine checks
        // that requests are signed, not by whom, so it works without any being configured.
        let local = is_local_endpoint(&endpoint);
        let mut loader = service_runtime::config::sdk_defaults();
        if local && std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.credentials_provider(local_credentials());
        }
        let mut sdk_config = loader.load().await;
        if sdk_config.region().is_none() && local {
            let region = Region::new(LOCAL_REGION);
            sdk_config = sdk_config.to_builder().region(region).build();
        }
        Ok(Self {
            client: client_at(&sdk_config, &endpoint),
            endpoint,
            sdk_config,
            db: None,
            server: None,
        })
    }

    /// The embedded database itself, for TTL sweeps on a schedule.
    pub fn database(&self) -> Option<dynoxide::Database> {
        self.db.clone()
    }

    pub fn is_embedded(&self) -> bool {
        self.db.is_some()
    }

    /// A client of the same configuration whose requests go to `endpoint` instead (a proxy).
    ///
    /// It gets a retry partition of its own, as a separate Lambda process would: the SDK's retry
    /// quota is shared per partition across a process, and the faults one test or simulated
    /// function injects must not use up another's retries.
    pub async fn client_via(&self, endpoint: &str) -> Client {
        isolated(client_at(&self.sdk_config, endpoint))
    }

    /// Every item of a table, read consistently (for checks and tests, not for hot paths).
    pub async fn scan(&self, table: &str) -> Result<Vec<crate::Item>> {
        scan_all(&self.client, table).await
    }

    /// Runs dynoxide's TTL sweep now: deletes expired items and emits their REMOVE records with
    /// the TTL service identity, as DynamoDB does some time after expiry.
    pub async fn sweep_ttl(&self) -> Result<usize> {
        let Some(db) = self.db.clone() else {
            bail!("TTL sweeps can only be forced on the embedded dynoxide");
        };
        tokio::task::spawn_blocking(move || db.sweep_ttl())
            .await?
            .map_err(|e| anyhow!("sweep_ttl: {e}"))
    }

    /// A suffix for a run's table names: none on the embedded server, a random one on a shared
    /// server (AWS_ENDPOINT_URL), so runs there do not see each other's items.
    pub fn run_suffix(&self) -> String {
        match self.is_embedded() {
            true => String::new(),
            false => format!("-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        }
    }

    /// Creates the template's two tables, their names with `suffix` appended; the orders
    /// table's stream, if the template gives it one.
    pub async fn create_tables(&self, template: &Template, suffix: &str) -> Result<Tables> {
        let mut names = Vec::new();
        for logical_id in [ORDERS_TABLE_ID, REWARDS_TABLE_ID] {
            let spec = template.table(logical_id)?;
            let name = format!("{}{suffix}", spec.name);
            create_table(&self.client, &spec, &name).await?;
            names.push(name);
        }
        let [orders, rewards] = <[String; 2]>::try_from(names).expect("two tables");
        let has_stream =
            template.table(ORDERS_TABLE_ID)?.properties["StreamSpecification"].is_object();
        let orders_stream_arn = match has_stream {
            true => stream_arn(&self.client, &orders).await?,
            false => String::new(),
        };
        Ok(Tables {
            orders,
            rewards,
            orders_stream_arn,
        })
    }
}

impl Drop for LocalDynamo {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// The ARN of `table`'s stream.
pub async fn stream_arn(client: &Client, table: &str) -> Result<String> {
    describe(client, table)
        .await?
        .and_then(|t| t.latest_stream_arn)
        .ok_or_else(|| anyhow!("{table} has no stream"))
}

async fn describe(client: &Client, table: &str) -> Result<Option<TableDescription>> {
    let described = client.describe_table().table_name(table).send().await;
    Ok(described
        .map_err(|e| sdk_error(format!("DescribeTable {table}"), e))?
        .table)
}

/// An SDK error with everything it carries (the service's code and message), after `what`.
pub(crate) fn sdk_error(
    what: impl std::fmt::Display,
    error: impl std::error::Error,
) -> anyhow::Error {
    anyhow!(
        "{what}: {}",
        aws_sdk_dynamodb::error::DisplayErrorContext(error)
    )
}

/// Every item of a table, read consistently page by page (for checks and tests, not for hot
/// paths).
pub async fn scan_all(client: &Client, table: &str) -> Result<Vec<crate::Item>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .with_context(|| format!("scanning {table}"))?;
        items.extend(out.items.unwrap_or_default());
        start = out.last_evaluated_key;
        if start.is_none() {
            return Ok(items);
        }
    }
}

/// The same client with a retry partition (and so a retry quota) of its own, and the project's
/// number of attempts with the backoff between them compressed: a local server needs no time to
/// recover, and a chaos run with thousands of injected throttles would otherwise spend most of
/// its time asleep. What is retried, and how often, stays the production configuration's.
pub fn isolated(client: Client) -> Client {
    let name = format!("devkit-{}", uuid::Uuid::new_v4().simple());
    let production = client
        .config()
        .retry_config()
        .cloned()
        .unwrap_or_else(RetryConfig::standard);
    let config = client
        .config()
        .to_builder()
        .retry_partition(RetryPartition::new(name))
        .retry_config(
            production
                .with_initial_backoff(Duration::from_millis(5))
                .with_max_backoff(Duration::from_millis(100)),
        )
        .build();
    Client::from_conf(config)
}

/// The project's client for `config`, talking to `endpoint` whatever the environment says.
///
/// An endpoint set on the shared config ranks below `AWS_ENDPOINT_URL` in the SDK: the service
/// config reads the variable again when it is built from the shared one. Set on the service
/// config itself, the endpoint ranks above it, so a client built for a proxy reaches the proxy.
pub fn client_at(config: &SdkConfig, endpoint: &str) -> Client {
    let client = service_runtime::config::client_from(config);
    Client::from_conf(client.config().to_builder().endpoint_url(endpoint).build())
}

/// The SDK configuration for a server this module, `kinesis` or `moto` started: the local
/// region, static credentials (such a server checks that requests are signed, not by whom) and
/// `endpoint` set on the shared config.
pub(crate) async fn local_sdk_config(endpoint: &str) -> SdkConfig {
    service_runtime::config::sdk_defaults()
        .region(Region::new(LOCAL_REGION))
        .credentials_provider(local_credentials())
        .endpoint_url(endpoint)
        .load()
        .await
}

fn local_credentials() -> aws_sdk_dynamodb::config::Credentials {
    aws_sdk_dynamodb::config::Credentials::new("local", "local", None, None, "devkit")
}

/// CreateTable (and UpdateTimeToLive) from the template's table properties. An existing table of
/// the same name is left as it is.
pub async fn create_table(client: &Client, spec: &TableSpec, name: &str) -> Result<()> {
    let p = &spec.properties;
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_schema(p)?));
    for def in array(p, "AttributeDefinitions") {
        let definition = AttributeDefinition::builder()
            .attribute_name(text(def, "AttributeName")?)
            .attribute_type(ScalarAttributeType::from(text(def, "AttributeType")?));
        request = request.attribute_definitions(definition.build()?);
    }
    for gsi in array(p, "GlobalSecondaryIndexes") {
        let projection = &gsi["Projection"];
        let kind = projection["ProjectionType"].as_str().unwrap_or("ALL");
        let non_key: Vec<String> = array(projection, "NonKeyAttributes")
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect();
        let projection = Projection::builder()
            .projection_type(ProjectionType::from(kind))
            .set_non_key_attributes((!non_key.is_empty()).then_some(non_key));
        let index = GlobalSecondaryIndex::builder()
            .index_name(text(gsi, "IndexName")?)
            .set_key_schema(Some(key_schema(gsi)?))
            .projection(projection.build());
        request = request.global_secondary_indexes(index.build()?);
    }
    if let Some(view) = p["StreamSpecification"]["StreamViewType"].as_str() {
        let stream = StreamSpecification::builder().stream_enabled(true);
        request = request.stream_specification(stream.stream_view_type(view.into()).build()?);
    }
    match request.send().await {
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            return Ok(())
        }
        sent => _ = sent.map_err(|e| sdk_error(format!("CreateTable {name}"), e))?,
    }
    wait_until_active(client, name).await?;
    let ttl = &p["TimeToLiveSpecification"];
    if ttl["Enabled"] == true {
        let attribute = text(ttl, "AttributeName")?;
        let ttl = TimeToLiveSpecification::builder()
            .attribute_name(attribute)
            .enabled(true);
        let request = client.update_time_to_live().table_name(name);
        let sent = request
            .time_to_live_specification(ttl.build()?)
            .send()
            .await;
        sent.map_err(|e| sdk_error(format!("UpdateTimeToLive {name}"), e))?;
    }
    Ok(())
}

/// DynamoDB creates a table in the background (local servers at once); until it is ACTIVE, its
/// TTL cannot be set and writes fail.
async fn wait_until_active(client: &Client, name: &str) -> Result<()> {
    for _ in 0..120 {
        let table = describe(client, name).await?;
        if table.and_then(|t| t.table_status) == Some(TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    bail!("table {name} did not become ACTIVE within two minutes")
}

fn key_schema(p: &Json) -> Result<Vec<KeySchemaElement>> {
    array(p, "KeySchema")
        .map(|k| {
            Ok(KeySchemaElement::builder()
                .attribute_name(text(k, "AttributeName")?)
                .key_type(KeyType::from(text(k, "KeyType")?))
                .build()?)
        })
        .collect()
}

fn array<'a>(v: &'a Json, key: &str) -> impl Iterator<Item = &'a Json> {
    v[key].as_array().into_iter().flatten()
}

fn text<'a>(v: &'a Json, key: &str) -> Result<&'a str> {
    v[key]
        .as_str()
        .ok_or_else(|| anyhow!("template table property {key} is missing"))
}

#[cfg(test)]
mod tests {
    use super::is_local_endpoint;

    #[test]
    fn only_loopback_endpoints_count_as_local() {
        for local in [
            "http://localhost:8000",
            "http://127.0.0.1:8000",
            "http://127.3.2.1",
            "http://[::1]:8000",
        ] {
            assert!(is_local_endpoint(local), "{local}");
        }
        for remote in [
            "https://dynamodb.us-east-1.amazonaws.com",
            "http://10.0.0.5:8000",
            "http://localhost.example.com",
            "http://128.0.0.1",
            "not a url",
            "",
        ] {
            assert!(!is_local_endpoint(remote), "{remote}");
        }
    }
}
