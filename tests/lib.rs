//! Test support: API Gateway requests as the HTTP API sends them, calls through the real Lambda
//! handlers, and reads of what the tables hold. The server is devkit's local DynamoDB.

use std::collections::HashMap;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_sdk_dynamodb::types::AttributeValue;
pub use devkit::Stack;
use dynamodb_outbox::testing::schema;
use dynamodb_outbox::{
    Consumer, Counter, Effect, Envelope, Event, HandlerError, ItemKey, PoisonPolicy, Takes,
};
use lambda_runtime::{Context, LambdaEvent};
use order_service::handlers::order_api;
use order_service::schema as orders;
use rewards_service::handlers::rewards_api;
use rewards_service::schema as rewards;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub type Item = HashMap<String, AttributeValue>;

/// The suites' own event for the engine alone, outside the reference application's domain: an
/// amount moved on an account, with what a test's consumer should make of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Moved {
    pub account: String,
    pub cents: i64,
    /// The balance the move may not pass.
    #[serde(default)]
    pub limit: Option<i64>,
    /// The consumer refuses it as poison.
    #[serde(default)]
    pub poison: bool,
    /// Bytes of padding in an extra item the effect puts (DynamoDB takes 400 KB an item).
    #[serde(default)]
    pub pad: usize,
}

/// `cents` moved on `account`, with nothing asked of its consumer.
pub fn moved(account: &str, cents: i64) -> Moved {
    Moved {
        account: account.into(),
        cents,
        limit: None,
        poison: false,
        pad: 0,
    }
}

impl Event for Moved {
    const EVENT_TYPE: &'static str = "Moved";
    const SCHEMA_VERSION: u32 = 1;
    const AGGREGATE_TYPE: &'static str = "Account";
    fn aggregate_id(&self) -> String {
        self.account.clone()
    }
}

/// The suites' consumer of [`Moved`]: sums the moves of each account in its table, at the
/// account's [`balance_pk`] and [`BALANCE_SK`], as far as the move's limit allows; a move marked
/// poison is refused as poison, and one with padding also puts an item that large.
#[derive(Debug)]
pub struct Tally {
    name: String,
    table: String,
    policy: PoisonPolicy,
}

pub const BALANCE_SK: &str = "BALANCE";

pub fn balance_pk(account: &str) -> String {
    format!("ACCOUNT#{account}")
}

impl Tally {
    /// The consumer `name`, writing balances to `table`, treating poison as `policy` says.
    pub fn new(name: &str, table: &str, policy: PoisonPolicy) -> Self {
        Self {
            name: name.to_owned(),
            table: table.to_owned(),
            policy,
        }
    }
}

impl Consumer for Tally {
    type Payload = Moved;
    fn name(&self) -> &str {
        &self.name
    }
    fn takes(&self) -> Vec<Takes> {
        vec![Takes::versions(Moved::EVENT_TYPE, 1..=1)]
    }
    fn on_poison(&self) -> PoisonPolicy {
        self.policy
    }
    async fn effect(&self, event: &Envelope<Moved>) -> Result<Effect, HandlerError> {
        let m = &event.payload;
        if m.poison {
            return Err(HandlerError::Poison("marked poison by the test".into()));
        }
        let balance = Counter {
            table: self.table.clone(),
            key: ItemKey {
                pk: balance_pk(&m.account),
                sk: BALANCE_SK.into(),
            },
            attribute: "cents".into(),
        };
        let mut effect = match m.limit {
            Some(limit) => Effect::new().add_at_most(balance, m.cents, limit),
            None => Effect::new().add(balance, m.cents),
        };
        if m.pad > 0 {
            let padding: serde_dynamo::Item = HashMap::from([
                (
                    "pk".to_owned(),
                    serde_dynamo::AttributeValue::S(format!("PAD#{}", event.event_id)),
                ),
                (
                    "sk".to_owned(),
                    serde_dynamo::AttributeValue::S("PAD".into()),
                ),
                (
                    "blob".to_owned(),
                    serde_dynamo::AttributeValue::S("x".repeat(m.pad)),
                ),
            ])
            .into();
            effect = effect.put(&self.table, padding);
        }
        Ok(effect)
    }
}

/// Asserts counters of an outcome, a report or a mapping's stats at once, each by its name:
/// `assert_counts!(outcome, [applied = 2, parked = 1, failures = 0], "why")`, where `failures`
/// counts the records reported for retry. A failure shows the whole value after the message.
#[macro_export]
macro_rules! assert_counts {
    ($value:expr, [$($field:ident = $expected:expr),+ $(,)?] $(,)?) => {
        $crate::assert_counts!($value, [$($field = $expected),+], "unexpected counts")
    };
    ($value:expr, [$($field:ident = $expected:expr),+ $(,)?], $($message:tt)+) => {{
        let value = &$value;
        assert_eq!(
            ($($crate::__count_of!(value, $field),)+),
            ($($expected,)+),
            "{}: {:?}",
            format_args!($($message)+),
            value
        );
    }};
}

/// One counter for [`assert_counts!`]: a field, or the length of `failures`.
#[doc(hidden)]
#[macro_export]
macro_rules! __count_of {
    ($value:ident, failures) => {
        $value.failures.len()
    };
    ($value:ident, $field:ident) => {
        $value.$field
    };
}

pub async fn stack() -> Stack {
    Stack::start()
        .await
        .expect("local DynamoDB with the template's tables")
}

/// A payload v2 request as API Gateway builds it (default stage).
pub fn request(
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> ApiGatewayV2httpRequest {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), json!(v)))
        .collect();
    let (path_only, query) = path.split_once('?').unwrap_or((path, ""));
    let query_params: serde_json::Map<String, Value> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), json!(v)))
        .collect();
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path_only,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "requestId": "test",
            "stage": "$default",
            "time": "26/Nov/2026:00:00:00 +0000",
            "timeEpoch": 0,
            "http": { "method": method, "path": path_only, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test" }
        },
        "isBase64Encoded": false
    });
    if !query_params.is_empty() {
        event["queryStringParameters"] = Value::Object(query_params);
    }
    if let Some(body) = body {
        event["body"] = json!(body);
    }
    serde_json::from_value(event).expect("a valid API Gateway v2 request")
}

pub fn post_order(body: &str, headers: &[(&str, &str)]) -> ApiGatewayV2httpRequest {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    request("POST", "/orders", Some(body), &all)
}

pub fn order_body(customer: &str, items: &[(&str, i64, i64)]) -> String {
    let items: Vec<Value> = items
        .iter()
        .map(|(sku, q, p)| json!({"sku": sku, "quantity": q, "unit_price_cents": p}))
        .collect();
    json!({"customer_id": customer, "currency": "USD", "items": items}).to_string()
}

/// A response, with its JSON body parsed.
#[derive(Debug)]
pub struct Reply {
    pub status: i64,
    pub headers: http::HeaderMap,
    pub json: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn error_code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or_default()
    }
}

pub fn reply(response: ApiGatewayV2httpResponse) -> Reply {
    let text = match response.body {
        Some(Body::Text(t)) => t,
        Some(Body::Binary(b)) => String::from_utf8(b).expect("utf-8 body"),
        _ => String::new(),
    };
    Reply {
        status: response.status_code,
        headers: response.headers,
        json: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

/// Through the order-writer's real Lambda handler.
pub async fn call_orders(stack: &Stack, req: ApiGatewayV2httpRequest) -> Reply {
    call_order_api(&stack.orders, req).await
}

/// Through the order API's real Lambda handler, on `store`.
pub async fn call_order_api<S: order_service::store::OrderStore>(
    store: &S,
    req: ApiGatewayV2httpRequest,
) -> Reply {
    // Boxed: the handler's future nested in a caller's overflows the compiler's layout depth.
    let response = Box::pin(order_api::handle(
        store,
        LambdaEvent::new(req, Context::default()),
    ))
    .await
    .expect("the handler answers every request");
    reply(response)
}

/// Puts a bare item at the key of `ordering_key`'s first outbox event, so an event's put there
/// fails its condition.
pub async fn occupy_first_event_key(stack: &Stack, ordering_key: &str) {
    let item = Item::from([
        (
            schema::PK.to_owned(),
            AttributeValue::S(schema::key_pk(ordering_key)),
        ),
        (
            schema::SK.to_owned(),
            AttributeValue::S(schema::event_sk(1)),
        ),
    ]);
    put_items(stack, &stack.tables.orders, vec![item]).await;
}

/// Through the rewards-api's real Lambda handler.
pub async fn call_rewards(stack: &Stack, req: ApiGatewayV2httpRequest) -> Reply {
    let response = rewards_api::handle(&stack.rewards, LambdaEvent::new(req, Context::default()))
        .await
        .expect("the handler answers every request");
    reply(response)
}

pub async fn place(stack: &Stack, customer: &str, items: &[(&str, i64, i64)]) -> Reply {
    let r = call_orders(stack, post_order(&order_body(customer, items), &[])).await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    r
}

/// Runs the rewards consumer, in process, over everything the orders table's stream holds.
pub async fn drain_to_rewards(stack: &Stack) {
    let mut mapping = stack
        .trigger(devkit::stack::in_process(stack.service(), 4))
        .expect("a mapping over the orders table's stream");
    mapping
        .drain()
        .await
        .expect("the mapping drains the stream");
}

/// One run of the rewards sweeper function on `payload` (a schedule's event or an operator's
/// request), with no grace and up to 100 events.
pub async fn sweep_with(stack: &Stack, payload: Value) -> rewards_service::service::SweepReport {
    rewards_service::handlers::sweeper::handle(
        &stack.sweeper(0, 100),
        LambdaEvent::new(payload, Context::default()),
    )
    .await
    .expect("the sweeper answers")
}

/// Every item of a table.
pub async fn scan(stack: &Stack, table: &str) -> Vec<Item> {
    stack.scan(table).await.expect("scan")
}

pub fn s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

pub fn n(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// Items of the orders table by entity: (orders, outbox events).
pub async fn orders_and_events(stack: &Stack) -> (Vec<Item>, Vec<Item>) {
    let all = scan(stack, &stack.tables.orders).await;
    let of = |e: &str| {
        all.iter()
            .filter(|i| s(i, schema::ENTITY) == Some(e))
            .cloned()
            .collect::<Vec<_>>()
    };
    (of(orders::ENTITY_ORDER), of(schema::ENTITY_OUTBOX_EVENT))
}

/// A customer's balance and number of ledger entries, read from the rewards table.
pub async fn balance(stack: &Stack, customer: &str) -> (i64, usize) {
    let pk = rewards::customer_pk(customer);
    let items: Vec<Item> = scan(stack, &stack.tables.rewards)
        .await
        .into_iter()
        .filter(|i| s(i, schema::PK) == Some(pk.as_str()))
        .collect();
    let points = items
        .iter()
        .find(|i| s(i, schema::SK) == Some(rewards::BALANCE_SK))
        .and_then(|i| n(i, rewards::POINTS))
        .unwrap_or(0);
    let ledger = items
        .iter()
        .filter(|i| s(i, schema::SK).is_some_and(|k| k.starts_with(rewards::LEDGER_SK_PREFIX)))
        .count();
    (points, ledger)
}

/// A pending outbox event for `customer`, as the order-writer stores it (routed to the rewards
/// consumer, with its pending-index keys), without its order: the customer's `sequence`-th event,
/// for tests that stock the outbox directly.
pub fn outbox_event(
    customer: &str,
    event_id: &str,
    occurred_at: service_runtime::Timestamp,
    sequence: u64,
) -> Item {
    let order_id = uuid_like(event_id);
    let mut event = dynamodb_outbox::Envelope::new(order_service::domain::OrderPlaced {
        order_id,
        customer_id: customer.to_owned(),
        currency: "USD".to_owned(),
        amount_cents: 1_000,
        points: 10,
        channel: order_service::domain::events::CHANNEL_API.to_owned(),
    })
    .with_ordering_key(customer);
    event.event_id = event_id.to_owned();
    event.occurred_at = occurred_at.to_string();
    let after = std::collections::BTreeMap::from([(
        rewards_service::consumer::NAME.to_owned(),
        sequence - 1,
    )]);
    dynamodb_outbox::testing::outbox_item(&event, sequence, &after)
        .expect("an envelope encodes")
        .into()
}

/// [`outbox_event`] with points that do not follow from its total: no order the order service
/// wrote, poison to the rewards consumer.
pub fn poison_outbox_event(
    customer: &str,
    event_id: &str,
    occurred_at: service_runtime::Timestamp,
    sequence: u64,
) -> Item {
    let mut item = outbox_event(customer, event_id, occurred_at, sequence);
    if let Some(AttributeValue::M(payload)) = item.get_mut("payload") {
        payload.insert("points".into(), AttributeValue::N("9999".into()));
    }
    item
}

/// A stable order id for an event id, so a test can name both.
fn uuid_like(event_id: &str) -> String {
    format!("order-of-{event_id}")
}

/// Writes items 25 at a time (BatchWriteItem's limit).
pub async fn put_items(stack: &Stack, table: &str, items: Vec<Item>) {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    for chunk in items.chunks(25) {
        let requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|item| {
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item.clone()))
                            .build()
                            .unwrap(),
                    )
                    .build()
            })
            .collect();
        let out = stack
            .dynamo
            .client
            .batch_write_item()
            .request_items(table, requests)
            .send()
            .await
            .expect("batch write");
        assert!(
            out.unprocessed_items
                .unwrap_or_default()
                .values()
                .all(Vec::is_empty),
            "the local server took every item"
        );
    }
}

/// The orders table's stream so far, as the template's filter passes it to the consumer.
pub async fn outbox_batch(stack: &Stack) -> Vec<aws_lambda_events::dynamodb::EventRecord> {
    outbox_inserts(
        &stack
            .stream_records()
            .await
            .expect("the orders table's stream"),
    )
}

/// Outbox INSERT records only, as the template's filter would pass them.
pub fn outbox_inserts(
    records: &[aws_lambda_events::dynamodb::EventRecord],
) -> Vec<aws_lambda_events::dynamodb::EventRecord> {
    records
        .iter()
        .filter(|r| {
            r.event_name == "INSERT"
                && matches!(r.change.new_image.get(schema::ENTITY),
                    Some(serde_dynamo::AttributeValue::S(e)) if e == schema::ENTITY_OUTBOX_EVENT)
        })
        .cloned()
        .collect()
}

/// A table of the invoices example as its template declares it (`InvoicesTable`, `LedgerTable`,
/// `NotificationsTable`): the tests create the tables the example deploys.
pub fn invoices_table(logical_id: &str) -> devkit::template::TableSpec {
    invoices_template()
        .table(logical_id)
        .expect("the invoices example's template declares its tables")
}

/// The invoices example on the embedded DynamoDB: its tables named as its template names them
/// (with a suffix of this run's own), the invoices table's stream, and the producer as its
/// function builds it.
pub struct InvoiceTables {
    pub dynamo: devkit::LocalDynamo,
    pub stream: devkit::StreamClient,
    pub stream_arn: String,
    pub invoices: String,
    pub ledger: String,
    pub notifications: String,
    pub outbox: dynamodb_outbox::dynamodb::Outbox,
}

impl InvoiceTables {
    /// The item of `table` at `pk`, `sk`, read consistently.
    pub async fn item(&self, table: &str, pk: &str, sk: &str) -> Option<Item> {
        self.dynamo.item(table, pk, sk).await.unwrap()
    }

    /// Creates the invoices and ledger tables, and the notifications table when `notifications`
    /// (a test can create it later with [`InvoiceTables::create_notifications_table`]).
    pub async fn start(notifications: bool) -> Self {
        let dynamo = devkit::LocalDynamo::start().await.unwrap();
        let suffix = format!("-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let name = |id: &str| format!("{}{suffix}", invoices_table(id).name);
        let (invoices, ledger) = (name("InvoicesTable"), name("LedgerTable"));
        let tables = [("InvoicesTable", &invoices), ("LedgerTable", &ledger)];
        for (id, name) in tables {
            devkit::local::create_table(&dynamo.client, &invoices_table(id), name)
                .await
                .unwrap();
        }
        let stream_arn = devkit::local::stream_arn(&dynamo.client, &invoices)
            .await
            .unwrap();
        let stream = devkit::StreamClient::new(&dynamo.endpoint, &dynamo.sdk_config).unwrap();
        let client = dynamo.client.clone();
        let outbox =
            dynamodb_outbox::dynamodb::Outbox::new(client, &invoices, invoices_example::routes());
        let tables = Self {
            dynamo,
            stream,
            stream_arn,
            invoices,
            ledger,
            notifications: name("NotificationsTable"),
            outbox,
        };
        if notifications {
            tables.create_notifications_table().await;
        }
        tables
    }

    pub async fn create_notifications_table(&self) {
        let spec = invoices_table("NotificationsTable");
        devkit::local::create_table(&self.dynamo.client, &spec, &self.notifications)
            .await
            .unwrap();
    }
}

/// `examples/invoices/template.yaml`.
pub fn invoices_template() -> devkit::template::Template {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/invoices/template.yaml"
    );
    devkit::template::Template::load(path.as_ref()).expect("the invoices example's template")
}

/// A stream record's image as a map a test can change.
pub type Image = HashMap<String, serde_dynamo::AttributeValue>;

/// Changes a stream record's new image in place, as a forged or corrupted delivery would carry it.
pub fn edit_image(
    record: &mut aws_lambda_events::dynamodb::EventRecord,
    change: impl FnOnce(&mut Image),
) {
    let mut image: Image = record
        .change
        .new_image
        .clone()
        .into_inner()
        .into_iter()
        .collect();
    change(&mut image);
    record.change.new_image = serde_dynamo::Item::from(image);
}

/// The sample requests of `events/<folder>` (what `sam local invoke` is given), parsed.
pub fn sample_requests(folder: &str) -> Vec<ApiGatewayV2httpRequest> {
    let dir = devkit::template::default_path()
        .parent()
        .unwrap()
        .join("events")
        .join(folder);
    let mut requests = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        requests.push(serde_json::from_str(&text).unwrap());
    }
    assert!(!requests.is_empty(), "{}", dir.display());
    requests
}

/// Sets `customer`'s balance just under the limit (a data error elsewhere): any reward would
/// pass it, so the consumer parks the customer's events until the balance is corrected.
pub async fn balance_near_limit(client: &aws_sdk_dynamodb::Client, table: &str, customer: &str) {
    let points = rewards_service::domain::MAX_BALANCE - 3;
    set_balance(client, table, customer, points).await;
}

/// Sets `customer`'s balance in the rewards table `table` to `points`.
pub async fn set_balance(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    customer: &str,
    points: i64,
) {
    client
        .put_item()
        .table_name(table)
        .item(
            schema::PK,
            AttributeValue::S(rewards::customer_pk(customer)),
        )
        .item(schema::SK, AttributeValue::S(rewards::BALANCE_SK.into()))
        .item(rewards::POINTS, AttributeValue::N(points.to_string()))
        .send()
        .await
        .unwrap();
}
