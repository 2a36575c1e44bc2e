//! The workloads criterion times (`benches/handlers.rs`): the order-writer's handler and the
//! stream consumer's batch processing, on the [`replay`](crate::replay) client, so the figure is
//! the CPU of one request with no network in it.

use std::time::Duration;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::dynamodb::EventRecord;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use dynamodb_outbox::BatchOutcome;
use lambda_runtime::{Context, LambdaEvent};
use order_service::domain::{NewOrder, OrderRequest, Timestamp};
use order_service::handlers::order_api;
use order_service::store::dynamodb::DynamoOrderStore;
use order_service::store::{OrderStore, PutOutcome};
use rewards_service::service::{self, RewardsProcessor};
use serde_json::json;

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

/// The sample `POST /orders` event (`make events` writes it from the code).
pub const PLACE_ORDER_EVENT: &[u8] = include_bytes!("../../events/order-writer/place-order.json");

/// Logs as the functions log (JSON, `info`, the SDK quietened), into a sink: formatting a log
/// line is part of a request's CPU, printing it to the terminal is not.
pub fn init_sink_tracing() {
    service_runtime::config::init_tracing_to(std::io::sink);
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
        let request: ApiGatewayV2httpRequest =
            serde_json::from_slice(PLACE_ORDER_EVENT).expect("the sample event parses");
        let body: OrderRequest = serde_json::from_str(request.body.as_deref().unwrap_or("{}"))
            .expect("the sample body is an order");
        let new_order = body
            .into_new_order(uuid::Uuid::new_v4().to_string(), Timestamp::now(), None)
            .expect("the sample order is valid");
        Self {
            store: DynamoOrderStore::new(crate::replay::client().await, BENCH_ORDERS),
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
        let request: ApiGatewayV2httpRequest =
            serde_json::from_slice(PLACE_ORDER_EVENT).expect("the sample event parses");
        let event = LambdaEvent::new(request, Context::default());
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
        let client = crate::replay::client().await;
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

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
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
pub fn outbox_insert(i: usize) -> EventRecord {
    let mut event = dynamodb_outbox::Envelope::new(order_service::domain::OrderPlaced {
        order_id: format!("00000000-0000-4000-8000-{i:012}"),
        customer_id: format!("customer-{i}"),
        currency: "USD".into(),
        total_cents: 2999,
        points: 29,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_consumer_workload_applies_every_record_it_times() {
        let workload = ConsumerWorkload::new(3).await;
        let outcome = workload.service.process_stream(&workload.records).await;
        assert_eq!(outcome.applied, 3, "{outcome:?}");
    }

    #[tokio::test]
    async fn the_writer_workload_places_the_order_it_times() {
        let workload = WriterWorkload::new().await;
        assert_eq!(workload.handler().await.status_code, 201);
    }
}
