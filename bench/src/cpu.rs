//! The workloads criterion times (`benches/handlers.rs`): the order-writer's handler and the
//! stream consumer's batch processing, on the [`replay`](crate::replay) client, so the figure is
//! the CPU of one request with no network in it.

use std::time::Duration;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::dynamodb::EventRecord;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use lambda_runtime::{Context, LambdaEvent};
use outbox::domain::{NewOrder, OrderRequest, Timestamp};
use outbox::handlers::order_api;
use outbox::handlers::stream::{process_batch, BatchOutcome};
use outbox::service::RewardsService;
use outbox::store::dynamodb::{DynamoOrderStore, DynamoRewardsStore};
use outbox::store::{OrderStore, PutOutcome};
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
    outbox::config::init_tracing_to(std::io::sink);
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
            store: DynamoOrderStore::new(crate::replay::client().await, "bench-orders"),
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
    service: RewardsService<DynamoRewardsStore, DynamoOrderStore>,
    records: Vec<EventRecord>,
}

impl ConsumerWorkload {
    pub async fn new(records: usize) -> Self {
        let client = crate::replay::client().await;
        Self {
            service: RewardsService {
                rewards: DynamoRewardsStore::new(client.clone(), "bench-rewards"),
                outbox: DynamoOrderStore::new(client, "bench-orders"),
                retention_seconds: outbox::config::DEFAULT_RETENTION_SECONDS,
            },
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
        let outcome = process_batch(
            &self.service,
            outbox::config::DEFAULT_CONCURRENCY,
            &self.records,
        )
        .await;
        debug_assert_eq!(outcome.applied, self.records.len());
        outcome
    }
}

/// An outbox INSERT record as the stream delivers it (the shape of the sample events).
pub fn outbox_insert(i: usize) -> EventRecord {
    let order_id = format!("00000000-0000-4000-8000-{i:012}");
    let event_id = format!("10000000-0000-4000-8000-{i:012}");
    let occurred_at = "2026-11-26T05:43:12.123456Z";
    let record = json!({
        "awsRegion": "us-east-1",
        "eventID": format!("bench-{i}"),
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/outbox-dev-orders/stream/2026-11-26T00:00:00.000",
        "eventVersion": "1.1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1_790_000_001,
            "Keys": {"pk": {"S": format!("ORDER#{order_id}")}, "sk": {"S": format!("OUTBOX#{event_id}")}},
            "NewImage": {
                "pk": {"S": format!("ORDER#{order_id}")},
                "sk": {"S": format!("OUTBOX#{event_id}")},
                "entity": {"S": "OutboxEvent"},
                "status": {"S": "PENDING"},
                "event_id": {"S": event_id},
                "event_type": {"S": "OrderPlaced"},
                "schema_version": {"N": "1"},
                "aggregate_type": {"S": "Order"},
                "aggregate_id": {"S": order_id},
                "occurred_at": {"S": occurred_at},
                "pending_pk": {"S": "OUTBOX#PENDING#4"},
                "pending_sk": {"S": format!("{occurred_at}#{event_id}")},
                "payload": {"M": {
                    "order_id": {"S": order_id},
                    "customer_id": {"S": format!("customer-{i}")},
                    "currency": {"S": "USD"},
                    "total_cents": {"N": "2999"},
                    "points": {"N": "29"}
                }}
            },
            "SequenceNumber": format!("{:021}", 100_000_000_000_000_000_000u128 + i as u128),
            "SizeBytes": 512,
            "StreamViewType": "NEW_IMAGE"
        }
    });
    serde_json::from_value(record).expect("a valid stream record")
}
