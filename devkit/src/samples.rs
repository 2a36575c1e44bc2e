//! The sample events in `events/`, generated from the real types so they cannot drift from the
//! code: `make events` rewrites them, and a test handles every file.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use dynamodb_outbox::testing::schema;
use order_service::domain::{NewOrder, OrderRequest, Timestamp};
use order_service::store::dynamodb::order_item;
use rewards_service::consumer::NAME as REWARDS;
use serde_dynamo::{AttributeValue, Item};
use serde_json::{json, Value as Json};

use crate::pattern::Pattern;
use crate::template::Template;

/// Fixed ids and times, so regenerating the samples gives the same files.
const WHEN: i64 = 1_790_000_000;
/// The ARN `sam local invoke` gives every function it runs: its emulator
/// (aws-lambda-runtime-interface-emulator) invokes `arn:aws:lambda:us-east-1:012345678912:function:<name>`
/// whatever the region or account, and `cargo lambda`'s emulator gives none a consumer can use.
/// Neither matters: the local environment names each source by the ARN its local server gives
/// it, which a consumer checks records against wherever it runs.
pub const SAM_LOCAL_FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:012345678912:function:sample";
/// The template's orders table's stream as `make ddb`'s dynoxide names it ([`local_source`]):
/// the samples, `make trigger`'s records and the local environment agree.
const STREAM_ARN: &str =
    "arn:aws:dynamodb:dynoxide:000000000000:table/outbox-dev-orders/stream/2026-11-26T00:00:00.000";
/// The key of the idempotent sample: the order it creates is the one `get-order.json` reads.
pub const SAMPLE_IDEMPOTENCY_KEY: &str = "sample-checkout-0001";
/// Pattern 3's keyed sample: `order-publisher/get-order.json` reads its order, which the
/// Kinesis samples carry.
pub const SELF_READ_IDEMPOTENCY_KEY: &str = "sample-checkout-0003";
/// Pattern 3's stream as the template names it with its default stage, on `make kinesis`'s
/// kinesalite ([`local_source`]).
const SELF_READ_STREAM_ARN: &str =
    "arn:aws:kinesis:us-east-1:000000000000:stream/self-read-dev-order-events";

pub struct Sample {
    pub path: &'static str,
    pub json: Json,
}

/// An HTTP API request as API Gateway hands it to a function, with an `Idempotency-Key` when
/// `key` is given and the body base64-encoded when `base64`.
fn http(method: &str, path: &str, route: &str, body: Option<Json>, key: Option<&str>) -> Json {
    let mut headers = json!({"content-type": "application/json", "user-agent": "curl/8.5.0"});
    if let Some(key) = key {
        headers["idempotency-key"] = json!(key);
    }
    let mut event = json!({
        "version": "2.0", "routeKey": route, "rawPath": path, "rawQueryString": "", "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "sample",
            "domainName": "sample.execute-api.us-east-1.amazonaws.com", "domainPrefix": "sample",
            "requestId": "sample-request", "routeKey": route, "stage": "$default",
            "time": "26/Nov/2026:00:00:00 +0000", "timeEpoch": WHEN * 1000,
            "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "curl/8.5.0" }
        },
        "isBase64Encoded": false
    });
    if let Some(body) = body {
        event["body"] = json!(body.to_string());
    }
    event
}

/// `POST /orders` with `body`.
fn post(body: Json, key: Option<&str>) -> Json {
    http("POST", "/orders", "POST /orders", Some(body), key)
}

/// `GET /orders/{id}` of `order_id`.
fn get_order(order_id: &str) -> Json {
    let path = format!("/orders/{order_id}");
    http("GET", &path, "GET /orders/{order_id}", None, None)
}

fn order(customer: &str, items: &[(&str, i64, i64)]) -> Json {
    json!({
        "customer_id": customer,
        "currency": "USD",
        "items": items.iter().map(|(sku, q, p)| json!({"sku": sku, "quantity": q, "unit_price_cents": p})).collect::<Vec<_>>()
    })
}

/// An order and its event as the order-writer would build them, with fixed ids and time.
fn placed(n: u32, customer: &str, items: &[(&str, i64, i64)]) -> Result<NewOrder> {
    let request: OrderRequest = serde_json::from_value(order(customer, items))?;
    let when = Timestamp::from_unix_seconds(WHEN + i64::from(n)).expect("a valid time");
    let mut new = request.into_new_order(format!("00000000-0000-4000-8000-{n:012}"), when, None)?;
    new.event.event_id = format!("10000000-0000-4000-8000-{n:012}");
    Ok(new)
}

/// The outbox item of a one-item order: the `sequence`-th event of its customer.
fn event(n: u32, customer: &str, cents: i64, sequence: u64) -> Result<Item> {
    outbox_item(&placed(n, customer, &[("SKU-1", 1, cents)])?, sequence)
}

fn outbox_item(new: &NewOrder, sequence: u64) -> Result<Item> {
    let after = BTreeMap::from([(REWARDS.to_owned(), sequence - 1)]);
    dynamodb_outbox::testing::outbox_item(&new.event, sequence, &after).map_err(anyhow::Error::msg)
}

/// A stream record of the item with `keys`; a REMOVE by the TTL service when `ttl`.
fn record(seq: u64, name: &str, keys: Json, new_image: Option<Json>, ttl: bool) -> Json {
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": WHEN + seq as i64,
        "Keys": keys,
        "SequenceNumber": format!("{:021}", 100_000_000_000_000_000_000u128 + seq as u128),
        "SizeBytes": 512,
        "StreamViewType": "NEW_IMAGE"
    });
    if let Some(image) = new_image {
        dynamodb["NewImage"] = image;
    }
    let mut r = json!({
        "eventID": format!("sample-{seq}"), "eventName": name, "eventVersion": "1.1",
        "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "dynamodb": dynamodb,
        "eventSourceARN": STREAM_ARN
    });
    if ttl {
        r["userIdentity"] = json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"});
    }
    r
}

fn keys_of(image: &Json) -> Json {
    json!({"pk": image["pk"], "sk": image["sk"]})
}

fn insert(seq: u64, item: Item) -> Result<Json> {
    let image = serde_json::to_value(item)?;
    Ok(record(seq, "INSERT", keys_of(&image), Some(image), false))
}

fn batch(records: Vec<Json>) -> Json {
    json!({ "Records": records })
}

pub fn samples(template: &Template) -> Result<Vec<Sample>> {
    let mut out = Vec::new();
    let mut add = |path, json| out.push(Sample { path, json });
    let place = post(order("c-1", &[("A-1", 2, 1250), ("B-7", 1, 499)]), None);
    let mut base64 = place.clone();
    base64["isBase64Encoded"] = json!(true);
    base64["body"] = json!(STANDARD.encode(place["body"].as_str().unwrap_or_default()));
    let invalid = json!({"customer_id": "c-1", "currency": "usd", "items": [{"sku": "A-1", "quantity": 0, "unit_price_cents": 100}]});
    let mut malformed = http("POST", "/orders", "POST /orders", None, None);
    malformed["body"] = json!("{\"customer_id\": \"c-1\", ");
    let replay_id = order_service::service::idempotent_order_id("c-1", SAMPLE_IDEMPOTENCY_KEY);
    let replay = order("c-1", &[("A-1", 1, 2000)]);
    let replay = post(replay, Some(SAMPLE_IDEMPOTENCY_KEY));
    let unknown = http("DELETE", "/orders", "$default", None, None);
    let route = "GET /customers/{customer_id}/rewards";
    let rewards = http("GET", "/customers/c-1/rewards", route, None, None);
    for (path, json) in [
        ("events/order-writer/place-order.json", place),
        ("events/order-writer/place-order-base64.json", base64),
        ("events/order-writer/idempotent-replay.json", replay),
        (
            "events/order-writer/invalid-order.json",
            post(invalid, None),
        ),
        ("events/order-writer/malformed-json.json", malformed),
        ("events/order-writer/get-order.json", get_order(&replay_id)),
        ("events/order-writer/unknown-route.json", unknown),
        ("events/rewards-api/get-rewards.json", rewards),
    ] {
        add(path, json);
    }
    stream_samples(&mut add)?;
    self_read_samples(&mut add)?;
    add(
        "events/outbox-sweeper/scheduled.json",
        json!({
            "version": "0", "id": "sample-schedule", "detail-type": "Scheduled Event",
            "source": "aws.scheduler", "account": "123456789012", "time": "2026-11-26T00:00:00Z",
            "region": "us-east-1", "resources": [], "detail": {}
        }),
    );
    // What an operator sends the sweeper (and pattern 3's ParkedRedriveFunction) after a fix.
    add(
        "events/outbox-sweeper/redrive-parked.json",
        json!({"action": rewards_service::handlers::sweeper::REDRIVE_PARKED}),
    );
    add("events/env.json", env_vars(template)?);
    Ok(out)
}

/// The stream consumer's batches. Customers of their own (c-11 ...): a customer's outbox events
/// are numbered, so samples of the HTTP API's customer c-1 would collide with the events its
/// orders wrote.
fn stream_samples(add: &mut impl FnMut(&'static str, Json)) -> Result<()> {
    let e1 = event(1, "c-11", 2999, 1)?;
    let e2 = event(2, "c-12", 10_000, 1)?;
    let e3 = event(3, "c-11", 150, 2)?;
    let (i1, i2) = (insert(1, e1)?, insert(2, e2)?);
    let inserts = vec![i1.clone(), i2.clone(), insert(3, e3.clone())?];
    add(
        "events/stream-consumer/outbox-insert-batch.json",
        batch(inserts),
    );
    let duplicates = vec![i1.clone(), i1, i2.clone(), i2];
    add(
        "events/stream-consumer/duplicate-batch.json",
        batch(duplicates),
    );
    let mut processed = e3;
    for name in [
        schema::PENDING_PK,
        schema::PENDING_SK,
        schema::WAITING_CONSUMERS,
    ] {
        processed.remove(name);
    }
    let status = AttributeValue::S(schema::STATUS_PROCESSED.into());
    processed.insert(schema::STATUS.into(), status);
    let expires = AttributeValue::N((WHEN + 604_800).to_string());
    processed.insert(schema::EXPIRES_AT.into(), expires);
    let processed = serde_json::to_value(processed)?;
    let removed = keys_of(&processed);
    let ttl_remove = record(10, "REMOVE", removed.clone(), None, true);
    add(
        "events/stream-consumer/ttl-remove.json",
        batch(vec![ttl_remove]),
    );
    // An order and its event written together: the consumer acts on the event only.
    let new4 = placed(4, "c-13", &[("SKU-9", 3, 700)])?;
    let event_key = (
        schema::key_pk(&new4.event.ordering_key),
        schema::event_sk(1),
    );
    let o4: Item = order_item(&new4.order, Some(event_key))?.into();
    let mixed = vec![
        insert(4, o4)?,
        insert(5, outbox_item(&new4, 1)?)?,
        record(6, "MODIFY", removed.clone(), Some(processed), false),
        record(7, "REMOVE", removed, None, true),
    ];
    add("events/stream-consumer/mixed-batch.json", batch(mixed));
    // Points that do not follow from the total: no order the order service wrote. Parked, and
    // the next record goes on.
    let mut poison = placed(8, "c-14", &[("SKU-1", 1, 500)])?;
    poison.event.payload.points = 5_000;
    let poison = vec![
        insert(8, outbox_item(&poison, 1)?)?,
        insert(9, event(9, "c-15", 800, 1)?)?,
    ];
    add("events/stream-consumer/poison-record.json", batch(poison));
    // Pattern 2 (OUTBOX_PATTERN=cdc): the order items' own INSERTs, each with its pending
    // marker, the first delivered twice.
    let cdc_order = |n: u32, customer: &str, cents: i64| -> Result<Json> {
        let new = placed(n, customer, &[("SKU-1", 1, cents)])?;
        insert(
            u64::from(n),
            order_service::store::cdc::cdc_order_item(&new)?.into(),
        )
    };
    let first = cdc_order(10, "c-16", 4_200)?;
    let cdc = vec![first.clone(), cdc_order(11, "c-17", 1_999)?, first];
    add(
        "events/stream-consumer/cdc-order-insert-batch.json",
        batch(cdc),
    );
    Ok(())
}

/// Pattern 3 (self-read): the order-publisher's requests, and the Kinesis batch both consumers
/// read (the keyed order's event, another customer's, the first again: a publish retried after
/// its response was lost).
fn self_read_samples(add: &mut impl FnMut(&'static str, Json)) -> Result<()> {
    let keyed = order("c-21", &[("SKU-3", 2, 1_500)]);
    let keyed_id = order_service::service::idempotent_order_id("c-21", SELF_READ_IDEMPOTENCY_KEY);
    let invalid = json!({"customer_id": "c-21", "currency": "EUR", "items": []});
    for (path, json) in [
        (
            "events/order-publisher/place-order.json",
            post(order("c-22", &[("SKU-1", 1, 999)]), None),
        ),
        (
            "events/order-publisher/place-order-keyed.json",
            post(keyed.clone(), Some(SELF_READ_IDEMPOTENCY_KEY)),
        ),
        (
            "events/order-publisher/invalid-order.json",
            post(invalid, None),
        ),
        (
            "events/order-publisher/get-order.json",
            get_order(&keyed_id),
        ),
    ] {
        add(path, json);
    }
    let published = |n: u32, order_id: String, request: Json| -> Result<Json> {
        let request: OrderRequest = serde_json::from_value(request)?;
        let when = Timestamp::from_unix_seconds(WHEN + i64::from(n)).expect("a valid time");
        let order = request.into_new_order(order_id, when, None)?.order;
        let put =
            dynamodb_outbox::kinesis_put(&order_service::self_read::order_placed(&order, None))
                .map_err(anyhow::Error::msg)?;
        Ok(kinesis_record(n, &put.partition_key, &put.data))
    };
    let first = published(21, keyed_id, keyed)?;
    let other_id = "00000000-0000-4000-8000-000000000022".into();
    let second = published(22, other_id, order("c-23", &[("SKU-4", 4, 250)]))?;
    let mut retried = first.clone();
    retried["kinesis"]["sequenceNumber"] = json!(kinesis_sequence(23));
    retried["eventID"] = json!(format!("shardId-000000000000:{}", kinesis_sequence(23)));
    let records = batch(vec![first, second, retried]);
    add("events/order-history/order-events.json", records.clone());
    add("events/rewards-kinesis-consumer/order-events.json", records);
    Ok(())
}

fn kinesis_sequence(n: u32) -> String {
    format!("{:056}", 49_000_000_000_000_000_000u128 + u128::from(n))
}

/// A record as Lambda delivers it in a Kinesis event (what the local mapping builds too).
fn kinesis_record(n: u32, partition_key: &str, data: &[u8]) -> Json {
    let sequence = kinesis_sequence(n);
    json!({
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": sequence,
            "data": STANDARD.encode(data),
            "approximateArrivalTimestamp": (WHEN + i64::from(n)) as f64,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": format!("shardId-000000000000:{sequence}"),
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::012345678912:role/local-event-source-mapping",
        "awsRegion": "us-east-1",
        "eventSourceARN": SELF_READ_STREAM_ARN,
    })
}

/// Where a pattern's local environment files are (`sam local invoke --env-vars`, `cargo lambda
/// watch --env-file`). Each pattern has its own: the pattern templates reuse function ids of the
/// root template (`RewardsApiFunction`, `OrderWriterFunction`) with other tables, and
/// `cargo lambda watch` gives all functions one environment, which holds one `ORDERS_TABLE`.
///
/// `None` for the broker deployment: its functions also call EventBridge and SQS, which
/// `make ddb` does not serve; `make demo PATTERN=broker` runs it whole, on moto.
pub fn env_paths(pattern: Pattern) -> Option<(&'static str, &'static str)> {
    match pattern {
        Pattern::Outbox => Some(("events/env.json", WATCH_ENV_PATH)),
        Pattern::Cdc => Some((
            "events/patterns/cdc/env.json",
            "events/patterns/cdc/local.env",
        )),
        Pattern::SelfRead => Some((
            "events/patterns/self-read/env.json",
            "events/patterns/self-read/local.env",
        )),
        Pattern::Broker => None,
    }
}

/// The functions' environment on the no-Docker path: one file for every function, read by
/// `cargo lambda watch` through `[workspace.metadata.lambda.watch]` in Cargo.toml.
pub const WATCH_ENV_PATH: &str = "events/local.env";

/// Each function's environment for a local run, by logical id: the template's variables (table
/// names and settings resolved from the parameter defaults, the sources by their local ARNs:
/// [`local_source`]) plus what points the SDK at the DynamoDB of `make ddb`, reached at
/// `endpoint`, and the functions that read or write the order events stream (pattern 3) at the
/// Kinesis of `make kinesis`, at `kinesis_endpoint`. `events/env.json` and `events/local.env`
/// are both derived from this, so the two local paths cannot disagree.
pub fn local_environment(
    template: &Template,
    endpoint: &str,
    kinesis_endpoint: &str,
) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
    let mut functions = BTreeMap::new();
    for function in template.functions()? {
        let mut vars = BTreeMap::new();
        for (name, value) in template.function_environment(&function.logical_id)? {
            let text = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            vars.insert(name.clone(), local_source(&name, &text));
        }
        for (name, value) in [
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_ACCESS_KEY_ID", "local"),
            ("AWS_SECRET_ACCESS_KEY", "local"),
            ("AWS_REGION", crate::local::LOCAL_REGION),
        ] {
            vars.insert(name.into(), value.into());
        }
        if vars.contains_key(service_runtime::config::ORDER_EVENTS_STREAM) {
            vars.insert("AWS_ENDPOINT_URL_KINESIS".into(), kinesis_endpoint.into());
        }
        functions.insert(function.logical_id, vars);
    }
    Ok(functions)
}

/// The local value of the template's variable `name`, which it sets to `value`: the orders table
/// (`ORDERS_TABLE`) and pattern 3's stream (`ORDER_EVENTS_STREAM`) by the ARNs the local servers
/// give them (dynoxide: [`crate::local::table_arn`]; kinesalite: [`crate::kinesis::stream_arn`]),
/// anything else as it is. A consumer checks each record's whole source ARN, and a name means
/// the function's own region and account, which no local emulator gives as the servers do
/// (`cargo lambda` gives none, `sam local` its own); by ARN the consumers admit the records
/// of the local streams wherever they run, and every function calls the table or stream by
/// the name in the ARN.
pub fn local_source(name: &str, value: &str) -> String {
    match name {
        service_runtime::config::ORDERS_TABLE => crate::local::table_arn(value),
        service_runtime::config::ORDER_EVENTS_STREAM => crate::kinesis::stream_arn(value),
        _ => value.to_owned(),
    }
}

/// `make ddb`'s and `make kinesis`'s endpoints as reached from `host`: this machine
/// (`127.0.0.1`), or SAM's Docker container (`host.docker.internal`, which Linux needs
/// `--add-host` for).
fn endpoints(host: &str) -> Result<(String, String)> {
    let ddb: std::net::SocketAddr = crate::local::DDB_DEFAULT_LISTEN.parse()?;
    let kinesis = crate::kinesis::KINESIS_DEFAULT_PORT;
    Ok((
        format!("http://{host}:{}", ddb.port()),
        format!("http://{host}:{kinesis}"),
    ))
}

/// `sam local invoke --env-vars events/env.json`: keyed by the template's function ids.
pub fn env_vars(template: &Template) -> Result<Json> {
    let (ddb, kinesis) = endpoints("host.docker.internal")?;
    Ok(serde_json::to_value(local_environment(
        template, &ddb, &kinesis,
    )?)?)
}

/// `events/local.env`: `cargo lambda watch` gives every function the same environment, so this
/// is the union of the functions' variables; a variable two functions set differently could not
/// be served that way and is an error.
pub fn watch_env(template: &Template) -> Result<String> {
    let (ddb, kinesis) = endpoints("127.0.0.1")?;
    let mut union: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (function, vars) in local_environment(template, &ddb, &kinesis)? {
        for (name, value) in vars {
            if let Some((other, seen)) = union.get(&name) {
                anyhow::ensure!(
                    *seen == value,
                    "{name} is {seen:?} for {other} but {value:?} for {function}: \
                     `cargo lambda watch` cannot give the functions different values"
                );
            }
            union.insert(name, (function.clone(), value));
        }
    }
    let mut text = String::from(
        "# The functions' environment for `cargo lambda watch` (Cargo.toml names this file), pointed\n\
         # at `make ddb`. Generated by `make events` from the SAM template (template.yaml; for\n\
         # events/patterns/<p>/, patterns/<p>/template.yaml): edit that, not this.\n",
    );
    for (name, (_, value)) in union {
        text.push_str(&format!("{name}={value}\n"));
    }
    Ok(text)
}

/// Writes every sample under `root`, and each pattern's environment files.
pub fn write_all(root: &Path, template: &Template) -> Result<Vec<String>> {
    let mut files = Vec::new();
    for sample in samples(template)? {
        files.push((
            sample.path,
            serde_json::to_string_pretty(&sample.json)? + "\n",
        ));
    }
    files.push((WATCH_ENV_PATH, watch_env(template)?));
    // The root template's are written above; the broker deployment has none.
    let patterns = Pattern::DEPLOYMENTS
        .into_iter()
        .filter(|p| *p != Pattern::Outbox);
    for (pattern, (env_json, local_env)) in patterns.filter_map(|p| Some((p, env_paths(p)?))) {
        let template = Template::load(&pattern.template_path())?;
        files.push((
            env_json,
            serde_json::to_string_pretty(&env_vars(&template)?)? + "\n",
        ));
        files.push((local_env, watch_env(&template)?));
    }
    for (path, text) in &files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap_or(root))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(files.into_iter().map(|(path, _)| path.to_owned()).collect())
}
