//! Handler CPU: the workloads criterion times (`benches/handlers.rs`, `benches/consumer.rs`), the order-writer's
//! handler and the stream consumer's batch, on an HTTP client that never leaves the process
//! ([`Replay`]), so the figure is the CPU of one request (parsing, validation, serialization,
//! SigV4 signing, the SDK's orchestrator, logging) with no network or server time in it; and
//! the section of the table that reads criterion's estimates back.

use std::time::Duration;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::dynamodb::EventRecord;
use aws_sdk_dynamodb::config::http::{HttpRequest, HttpResponse};
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BenchmarkGroup, Criterion, Throughput};
use dynamodb_outbox::BatchOutcome;
use lambda_runtime::{Context, LambdaEvent};
use order_service::domain::{NewOrder, OrderRequest, Timestamp};
use order_service::handlers::order_api;
use order_service::store::dynamodb::DynamoOrderStore;
use order_service::store::{OrderStore, PutOutcome};
use rewards_service::service::{self, RewardsProcessor};
use serde_json::json;

use crate::consumer::{round_trips, Settings, Shape};
use crate::report::{us, Limit::AtMost, Row, Section};

/// The consumer's CPU per record at which a 128 MB function's batch of 100 stays near its floor
/// of round trips instead of being bound by its own CPU.
const CONSUMER_CPU_GOAL_US: f64 = 90.0;

/// A criterion measurement of the calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`). On a
/// current-thread runtime all a request's work runs on that thread, and other work on a shared
/// machine does not count against it as it does against wall-clock time.
pub struct ThreadCpuTime;

fn thread_cpu_now() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec, and the clock is one Linux always has.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or_default(),
        u32::try_from(now.tv_nsec).unwrap_or_default(),
    )
}

/// Criterion's own formatting of durations.
static WALL_TIME: WallTime = WallTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_now()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WALL_TIME.formatter()
    }
}

/// The sample `POST /orders` event (`make events` writes it from the code), parsed as the
/// runtime parses an invocation's.
fn place_order_request() -> ApiGatewayV2httpRequest {
    let event = include_bytes!("../../events/order-writer/place-order.json");
    serde_json::from_slice(event).expect("the sample event parses")
}

/// A criterion bench's `main` for one group of this module's workloads, `elements` a timed
/// iteration: the functions' logging (JSON, `info`, the SDK quietened) into a sink, since
/// formatting a log line is part of a request's CPU and printing it to the terminal is not; a
/// current-thread runtime, as in the functions, so all a request's work runs on the thread whose
/// CPU time is measured; and that time ([`ThreadCpuTime`]) as the measure. `bench` builds its
/// workload on the runtime and times its functions in the group.
pub fn bench_main(
    group: &str,
    elements: u64,
    bench: impl FnOnce(&mut BenchmarkGroup<'_, ThreadCpuTime>, &tokio::runtime::Runtime),
) {
    service_runtime::config::init_tracing_to(std::io::sink);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut criterion = Criterion::default()
        .with_measurement(ThreadCpuTime)
        .configure_from_args();
    let mut timed = criterion.benchmark_group(group);
    timed.throughput(Throughput::Elements(elements));
    bench(&mut timed, &runtime);
    timed.finish();
    criterion.final_summary();
}

/// One `POST /orders`, as the order-writer handles it.
pub struct WriterWorkload {
    store: DynamoOrderStore,
    request: ApiGatewayV2httpRequest,
    /// The same order, validated and built, for timing the store's write alone.
    new_order: NewOrder,
}

impl WriterWorkload {
    pub async fn new() -> Self {
        let request = place_order_request();
        let body: OrderRequest = serde_json::from_str(request.body.as_deref().unwrap_or("{}"))
            .expect("the sample body is an order");
        let new_order = body
            .into_new_order(uuid::Uuid::new_v4().to_string(), Timestamp::now(), None)
            .expect("the sample order is valid");
        Self {
            store: DynamoOrderStore::new(client().await, BENCH_ORDERS),
            request,
            new_order,
        }
    }

    /// The store's `TransactWriteItems` alone (item encoding, the SDK's request pipeline and
    /// signing): what of the handler's time the SDK call takes.
    pub async fn store_write(&self) -> PutOutcome {
        self.store
            .put_order(&self.new_order)
            .await
            .expect("the replayed write succeeds")
    }

    /// The handler alone, from the API Gateway request to its response.
    pub async fn handler(&self) -> ApiGatewayV2httpResponse {
        let event = LambdaEvent::new(self.request.clone(), Context::default());
        let response = order_api::handle(&self.store, event)
            .await
            .expect("the handler answers");
        debug_assert_eq!(response.status_code, 201);
        response
    }

    /// What the runtime adds around it for one invocation: the event's JSON parsed, the
    /// response serialized (the HTTP exchange with the Runtime API is not included).
    pub async fn invocation(&self) -> Vec<u8> {
        let event = LambdaEvent::new(place_order_request(), Context::default());
        let response = order_api::handle(&self.store, event)
            .await
            .expect("the handler answers");
        serde_json::to_vec(&response).expect("a response serializes")
    }
}

/// A stream batch of outbox INSERTs, one customer each, as the consumer handles it.
pub struct ConsumerWorkload {
    service: RewardsProcessor,
    records: Vec<EventRecord>,
}

impl ConsumerWorkload {
    pub async fn new(records: usize) -> Self {
        let client = client().await;
        Self {
            service: service::processor(
                client,
                "bench-rewards",
                // By ARN: a source by name would need the function's account and region, which a
                // benchmark has none of, and every record would be refused.
                dynamodb_outbox::Source::table(&bench_orders_arn()).expect("a table's ARN"),
            )
            .retention_seconds(service_runtime::config::DEFAULT_RETENTION_SECONDS)
            .expect("a retention in range")
            .concurrency(service_runtime::config::DEFAULT_CONCURRENCY),
            records: (0..records).map(outbox_insert).collect(),
        }
    }

    pub async fn batch(&self) -> BatchOutcome {
        let outcome = self.service.process_stream(&self.records).await;
        debug_assert_eq!(outcome.applied, self.records.len());
        outcome
    }
}

/// The orders table the consumer workload's records come from.
const BENCH_ORDERS: &str = "bench-orders";

fn bench_orders_arn() -> String {
    format!("arn:aws:dynamodb:us-east-1:123456789012:table/{BENCH_ORDERS}")
}

/// An outbox INSERT record as the stream delivers it (the shape of the sample events): the first
/// event of its own customer, routed to the rewards consumer.
fn outbox_insert(i: usize) -> EventRecord {
    let mut event = dynamodb_outbox::Envelope::new(order_service::domain::OrderPlaced {
        order_id: format!("00000000-0000-4000-8000-{i:012}"),
        customer_id: format!("customer-{i}"),
        currency: "USD".into(),
        amount_cents: 2999,
        points: 29,
        channel: order_service::domain::events::CHANNEL_API.into(),
    })
    .with_ordering_key(format!("customer-{i}"));
    event.event_id = format!("10000000-0000-4000-8000-{i:012}");
    event.occurred_at = "2026-11-26T05:43:12.123456Z".into();
    let after = std::collections::BTreeMap::from([(rewards_service::consumer::NAME.to_owned(), 0)]);
    let image =
        dynamodb_outbox::testing::outbox_item(&event, 1, &after).expect("an envelope encodes");
    let keys = json!({"pk": image.get("pk"), "sk": image.get("sk")});
    let record = json!({
        "awsRegion": "us-east-1",
        "eventID": format!("bench-{i}"),
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "eventSourceARN": format!("{}/stream/2026-11-26T00:00:00.000", bench_orders_arn()),
        "eventVersion": "1.1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1_790_000_001,
            "Keys": keys,
            "NewImage": image,
            "SequenceNumber": format!("{:021}", 100_000_000_000_000_000_000u128 + i as u128),
            "SizeBytes": 512,
            "StreamViewType": "NEW_IMAGE"
        }
    });
    serde_json::from_value(record).expect("a valid stream record")
}

/// Answers every request with `200` and an empty JSON object: a successful `TransactWriteItems`,
/// `UpdateItem` or `PutItem` as DynamoDB returns it when no return values are asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Replay;

impl HttpConnector for Replay {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        let mut response = HttpResponse::new(
            200u16.try_into().expect("200 is a status code"),
            SdkBody::from("{}"),
        );
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.0");
        HttpConnectorFuture::ready(Ok(response))
    }
}

impl HttpClient for Replay {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(*self)
    }
}

/// The functions' own client (the project's retry, timeout and classifier settings), with the
/// replaying HTTP client in place of the network. Region and credentials are fixed so nothing is
/// looked up; the endpoint is DynamoDB's real one, so endpoint resolution is timed too.
async fn client() -> aws_sdk_dynamodb::Client {
    let config = service_runtime::config::sdk_defaults()
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
        .http_client(Replay)
        .load()
        .await;
    service_runtime::config::client_from(&config)
}

/// Criterion's median time of one iteration of `group/function`, read back from `home` (where
/// `cargo bench` wrote it).
fn median_in(home: &std::path::Path, group: &str, function: &str) -> anyhow::Result<Duration> {
    use anyhow::Context as _;
    let path = home
        .join(group)
        .join(function)
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{} (run `cargo bench -p outbox-bench` first)",
            path.display()
        )
    })?;
    let estimates: serde_json::Value = serde_json::from_str(&text)?;
    let nanos = estimates["median"]["point_estimate"].as_f64();
    Ok(Duration::from_secs_f64(
        nanos.context("no median in criterion's estimates")? / 1e9,
    ))
}

/// The same from `CRITERION_HOME`, else `<target>/criterion`.
fn median(group: &str, function: &str) -> anyhow::Result<Duration> {
    let home = std::env::var_os("CRITERION_HOME").map(std::path::PathBuf::from);
    median_in(
        &home.unwrap_or_else(|| crate::target_dir().join("criterion")),
        group,
        function,
    )
}

/// The order-writer's handler CPU that was once a goal: reported beside the figure, no longer a
/// goal (the SDK's request pipeline is most of it).
const ONCE_A_GOAL_US: f64 = 50.0;

/// The table's CPU rows, from criterion's estimates.
pub fn section() -> Section {
    let mut section = Section::new("Handler CPU (criterion)");
    let figure = "order-writer handler CPU per request, no network";
    match ["handler", "invocation", "store_write"].map(|f| median("order_writer", f)) {
        [Ok(handler), Ok(invocation), Ok(store_write)] => {
            section.rows.push(Row::info(
                figure,
                format!(
                    "{} µs handler, of which {} µs the store's `TransactWriteItems` call (item \
                     encoding, the SDK's pipeline, SigV4); {} µs with the event's JSON parsed and \
                     the response serialized",
                    us(handler),
                    us(store_write),
                    us(invocation)
                ),
            ));
            let handler_us = handler.as_secs_f64() * 1e6;
            // The two are separate criterion runs: the store's write can measure above the
            // handler it is part of, and then the split is within the noise.
            let (share, own) = if store_write < handler {
                let share = store_write.as_secs_f64() / handler.as_secs_f64() * 100.0;
                let own = handler - store_write;
                (
                    format!("{share:.0} % of the handler ({} µs)", us(store_write)),
                    format!("the other {} µs", us(own)),
                )
            } else {
                (
                    format!(
                        "about all of the handler ({} µs against the handler's {} µs, two runs \
                         within the noise of each other)",
                        us(store_write),
                        us(handler)
                    ),
                    "too small to tell apart from that noise".to_owned(),
                )
            };
            if handler_us > ONCE_A_GOAL_US {
                section.notes.push(format!(
                    "Handler CPU is {:.0} µs above the 50 µs once set as a goal (dropped: meeting \
                     it would mean hand-rolling the SDK), and the split says why: the \
                     store's write, encoding the two items and the SDK's `TransactWriteItems` \
                     (answered in process), is {share}. Its profile (perf) \
                     is mostly the SDK's request pipeline and it is flat: allocation, hashing \
                     in the config bag, interceptor and runtime-component bookkeeping, header \
                     building, SHA-256 and HMAC for SigV4, JSON escaping, each a few percent, with \
                     no single hot spot to remove from outside the SDK. The project's own work \
                     (parse, validate, fingerprint, build the items, respond, log) is \
                     {own}. Size optimisation is not the cause: built at `opt-level = 3` the \
                     handler measured 144 µs against 158 µs at `\"z\"` (wall-clock, one session) while \
                     tuning, within the noise of this shared machine, so the functions stay \
                     small.",
                    handler_us - ONCE_A_GOAL_US,
                ));
            }
        }
        results => {
            let why = results
                .into_iter()
                .find_map(Result::err)
                .map(|e| e.to_string());
            section.rows.push(Row::not_measured(
                figure,
                "informative",
                why.unwrap_or_default(),
            ));
        }
    }
    let figure = "stream-consumer CPU per record, no network";
    let batch = match median("stream_consumer", "batch_100") {
        Ok(batch) => batch,
        Err(e) => {
            section
                .rows
                .push(Row::info(figure, format!("not measured: {e}")));
            return section;
        }
    };
    let (per_record, per_batch) = (us(batch / 100), us(batch));
    let measured =
        format!("{per_record} µs ({per_batch} µs per 100-record batch; one SDK call per record)");
    section.rows.push(Row::bounded(
        figure,
        measured,
        batch.as_secs_f64() * 1e6 / 100.0,
        AtMost(CONSUMER_CPU_GOAL_US),
        "µs",
    ));
    section.notes.push(at_128_mb(batch));
    section
}

/// What the consumer's CPU for a 100-record batch would take on a 128 MB function, against the
/// floor of its round trips at the deployed concurrency.
fn at_128_mb(batch: Duration) -> String {
    // Lambda gives a function CPU in proportion to its memory: one vCPU at 1,769 MB.
    let at_128_mb = batch.as_secs_f64() * 1769.0 / 128.0 * 1000.0;
    let settings = Settings::concurrent(service_runtime::config::DEFAULT_CONCURRENCY);
    let trips = round_trips(Shape::distinct(100), settings);
    let floor_ms = 25 * trips;
    let bound = if at_128_mb > floor_ms as f64 {
        "more than the floor: there the batch is bound by CPU rather than by round trips, and \
         more memory (so more CPU) shortens it more than more concurrency does"
    } else {
        "under the floor: there the batch is bound by its round trips, not by its CPU"
    };
    format!(
        "On a 128 MB function (128/1,769 of a vCPU) the consumer's own CPU for a \
         100-record batch, {:.1} ms here, would take about {at_128_mb:.0} ms, against a floor \
         of {floor_ms} ms for the deployed concurrency ({} keys at a time: {trips} round trip(s) \
         of 25 ms on the longest chain): {bound}.",
        batch.as_secs_f64() * 1000.0,
        settings.concurrency,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_workloads_do_the_work_they_time() {
        assert_eq!(ConsumerWorkload::new(3).await.batch().await.applied, 3);
        assert_eq!(WriterWorkload::new().await.handler().await.status_code, 201);
        let estimates =
            r#"{"mean": {"point_estimate": 1.0}, "median": {"point_estimate": 1500.0}}"#;
        let dir = crate::target_dir().join("bench-test-criterion");
        let path = dir.join("group/function/new/estimates.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, estimates).unwrap();
        assert_eq!(
            median_in(&dir, "group", "function").unwrap(),
            Duration::from_nanos(1500)
        );
        let err = median_in(&dir, "group", "other").unwrap_err().to_string();
        assert!(err.contains("cargo bench -p outbox-bench"), "{err}");
    }
}
