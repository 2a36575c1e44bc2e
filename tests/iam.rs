//! Least privilege that works: each function's DynamoDB requests, made by its real handler through
//! a recording proxy, are checked against the policy its template gives it. A statement missing
//! an action (the redrive's `DeleteItem`, a query of the parked events) fails here instead of as
//! an `AccessDenied` in production. Every path that reaches a table is walked: orders placed and
//! replayed, a batch applied, replayed and partly parked, a sweep, a redrive before and after
//! the fix, a balance read. The publisher's Kinesis requests go through a proxy too and are
//! checked the same way. The on-failure queues of these patterns' stream mappings (Lambda sends
//! to them with the function's role) are not exercised locally; the broker deployment's
//! EventBridge and SQS grants, its inbox queue's included, are, in tests/iam_broker.rs.

use std::collections::BTreeMap;
use std::future::Future;

use aws_lambda_events::dynamodb::Event;
use aws_sdk_dynamodb::Client;
use devkit::iam;
use devkit::pattern::Pattern;
use devkit::patterns::self_read::{
    history_in_process, rewards_in_process, SelfReadStack, ORDER_HISTORY_FUNCTION, REWARDS_FUNCTION,
};
use devkit::proxy::{FaultPlan, FaultProxy};
use devkit::Template;
use dynamodb_outbox::dynamodb::PendingEvents;
use lambda_runtime::{Context, LambdaEvent};
use order_service::handlers::order_api;
use order_service::self_read::kinesis::KinesisPublisher;
use order_service::store::cdc::CdcOrderStore;
use order_service::store::dynamodb::DynamoOrderStore;
use order_service::store::OrderStore;
use outbox_tests::*;
use rewards_service::handlers::sweeper::{self, Sweeper, REDRIVE_PARKED};
use rewards_service::handlers::{rewards_api, stream};
use rewards_service::service::{self, SweepReport};
use rewards_service::store::dynamodb::DynamoRewardsStore;
use serde_json::json;

/// The proxy every audited request goes through (and pattern 3's in front of its Kinesis), and
/// what the template grants.
struct Audit<'a> {
    proxy: FaultProxy,
    kinesis_proxy: Option<FaultProxy>,
    template: &'a Template,
    tables: BTreeMap<&'static str, String>,
}

impl<'a> Audit<'a> {
    async fn start(upstream: &str, template: &'a Template, orders: &str, rewards: &str) -> Self {
        Self {
            proxy: FaultProxy::start(upstream, FaultPlan::none())
                .await
                .unwrap(),
            kinesis_proxy: None,
            template,
            tables: BTreeMap::from([
                ("OrdersTable", orders.to_owned()),
                ("RewardsTable", rewards.to_owned()),
            ]),
        }
    }

    /// Puts a proxy in front of the Kinesis at `upstream`, whose stream is the template's
    /// `logical_id` named `name` here.
    async fn with_kinesis(mut self, upstream: &str, logical_id: &'static str, name: &str) -> Self {
        self.kinesis_proxy = Some(
            FaultProxy::start(upstream, FaultPlan::none())
                .await
                .unwrap(),
        );
        self.tables.insert(logical_id, name.to_owned());
        self
    }

    fn proxies(&self) -> impl Iterator<Item = &FaultProxy> {
        std::iter::once(&self.proxy).chain(self.kinesis_proxy.as_ref())
    }

    /// Runs `work` as `function` (its requests through the proxies) and fails on any action its
    /// policy does not grant.
    async fn as_function<T>(&self, function: &str, work: impl Future<Output = T>) -> T {
        self.proxies().for_each(FaultProxy::reset_stats);
        let output = work.await;
        let accesses: std::collections::BTreeSet<iam::Access> =
            self.proxies().flat_map(|p| p.stats().accesses).collect();
        assert!(!accesses.is_empty(), "{function} made no request");
        let grants = iam::grants(self.template, function).unwrap();
        let tables = self
            .tables
            .iter()
            .map(|(id, name)| (*id, name.as_str()))
            .collect();
        let denied: Vec<String> = iam::denied(&grants, &tables, &accesses)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            denied.is_empty(),
            "{function}'s policy does not allow: {denied:?} (it needed {accesses:?})"
        );
        output
    }
}

async fn invoke_sweeper(sweeper: &Sweeper, payload: serde_json::Value) -> SweepReport {
    sweeper::handle(sweeper, LambdaEvent::new(payload, Context::default()))
        .await
        .unwrap()
}

/// Pattern 1 or 2 (both on the orders table's stream): writer, consumer, sweeper, rewards API.
async fn audit_stream_pattern(pattern: Pattern) {
    let stack = Stack::start_pattern(pattern).await.unwrap();
    let (orders, rewards) = (stack.tables.orders.clone(), stack.tables.rewards.clone());
    let audit = Audit::start(&stack.dynamo.endpoint, &stack.template, &orders, &rewards).await;
    let client = stack.dynamo.client_via(&audit.proxy.endpoint).await;
    balance_near_limit(&stack.dynamo.client, &rewards, "iam-2").await;

    if pattern == Pattern::Cdc {
        let store = CdcOrderStore::new(client.clone(), &orders);
        audit
            .as_function("OrderWriterFunction", write_orders(&store))
            .await;
    } else {
        let store = DynamoOrderStore::new(client.clone(), &orders);
        audit
            .as_function("OrderWriterFunction", write_orders(&store))
            .await;
    }

    let processor = service::processor(client.clone(), &rewards, stack.tables.orders_source())
        .retention_seconds(3_600)
        .expect("a retention in range");
    let batch = stack.stream_records().await.unwrap();
    audit
        .as_function("StreamConsumerFunction", async {
            for _ in 0..2 {
                let mut event = Event::default();
                event.records = batch.clone();
                let event = LambdaEvent::new(event, Context::default());
                if pattern == Pattern::Cdc {
                    stream::handle_order_changes(&processor, event)
                        .await
                        .unwrap();
                } else {
                    stream::handle(&processor, event).await.unwrap();
                }
            }
        })
        .await;
    assert_eq!(balance(&stack, "iam-1").await.0, 7, "applied once");

    // One more order the stream never delivers: the sweeper's, of a customer with events
    // applied before (the sweep reads the customer's own events down from its predecessor).
    let late = post_order(&order_body("iam-1", &[("A", 1, 500)]), &[]);
    let late = LambdaEvent::new(late, Context::default());
    let placed = if pattern == Pattern::Cdc {
        order_api::handle(&stack.cdc_orders(), late).await
    } else {
        order_api::handle(&stack.orders, late).await
    };
    assert_eq!(placed.unwrap().status_code, 201);
    let sweeper = Sweeper {
        pending: Some(PendingEvents::new(client.clone(), &orders)),
        processor: service::processor(client.clone(), &rewards, stack.tables.orders_source()),
        order_history: None,
        grace_seconds: 0,
        limit: 100,
        pattern: pattern.runtime(),
    };
    let swept = audit
        .as_function("OutboxSweeperFunction", async {
            let swept = invoke_sweeper(&sweeper, json!({"source": "aws.scheduler"})).await;
            let early = invoke_sweeper(&sweeper, json!({"action": REDRIVE_PARKED})).await;
            set_balance(&stack.dynamo.client, &rewards, "iam-2", 0).await;
            let fixed = invoke_sweeper(&sweeper, json!({"action": REDRIVE_PARKED})).await;
            (swept.applied, early.parked, fixed.applied)
        })
        .await;
    assert_eq!(
        swept,
        (1, 1, 1),
        "{pattern:?}: swept, parked again, redriven"
    );

    audit_rewards_api(&audit, client, &rewards).await;
}

/// The rewards API's sample requests, as the same function in every pattern.
async fn audit_rewards_api(audit: &Audit<'_>, client: Client, rewards: &str) {
    let store = DynamoRewardsStore::new(client, rewards);
    audit
        .as_function("RewardsApiFunction", async {
            for request in sample_requests("rewards-api") {
                rewards_api::handle(&store, LambdaEvent::new(request, Context::default()))
                    .await
                    .unwrap();
            }
        })
        .await;
}

/// The order-writer's sample events, and an order each for iam-1 and iam-2.
async fn write_orders<S: OrderStore>(store: &S) {
    let mut requests = sample_requests("order-writer");
    for customer in ["iam-1", "iam-2"] {
        requests.push(post_order(&order_body(customer, &[("A", 1, 700)]), &[]));
    }
    for request in requests {
        order_api::handle(store, LambdaEvent::new(request, Context::default()))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn every_request_of_the_outbox_functions_is_allowed_by_their_policies() {
    audit_stream_pattern(Pattern::Outbox).await;
}

#[tokio::test]
async fn every_request_of_the_cdc_functions_is_allowed_by_their_policies() {
    audit_stream_pattern(Pattern::Cdc).await;
}

#[tokio::test]
async fn every_request_of_the_self_read_functions_is_allowed_by_their_policies() {
    let Some(stack) = SelfReadStack::start_or_skip("iam: self-read functions")
        .await
        .unwrap()
    else {
        return;
    };
    let (orders, rewards) = (stack.orders_table.clone(), stack.rewards_table.clone());
    let audit = Audit::start(&stack.dynamo.endpoint, &stack.template, &orders, &rewards)
        .await
        .with_kinesis(
            &stack.kinesis.endpoint,
            "OrderEventsStream",
            &stack.stream.name,
        )
        .await;
    let client = stack.dynamo.client_via(&audit.proxy.endpoint).await;
    let kinesis_endpoint = &audit.kinesis_proxy.as_ref().unwrap().endpoint;
    let publisher = KinesisPublisher::new(
        devkit::kinesis::client_for(kinesis_endpoint).await,
        &stack.stream.name,
    );
    let history = DynamoOrderStore::new(client.clone(), &orders);
    audit
        .as_function("OrderPublisherFunction", async {
            // The second request under k-1 is another order under the same id: both consumers
            // park it, for the redrive below.
            let mut id = String::new();
            for quantity in [1, 5] {
                let body = order_body("iam-1", &[("A", quantity, 700)]);
                let request = post_order(&body, &[("idempotency-key", "k-1")]);
                let response = stack.call(&publisher, request).await;
                assert_eq!(response.status_code, 202);
                id = reply(response).json["order_id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
            }
            let request = devkit::demo::api_request("GET", &format!("/orders/{id}"), None, &[]);
            order_service::self_read::api::handle(
                &publisher,
                &history,
                LambdaEvent::new(request.unwrap(), Context::default()),
            )
            .await
            .unwrap();
        })
        .await;

    let history_processor = order_service::self_read::history::processor(
        client.clone(),
        &orders,
        stack.stream.source(),
    );
    let history_consumer = history_in_process(history_processor);
    audit_mapping(&audit, &stack, ORDER_HISTORY_FUNCTION, history_consumer).await;
    let rewards_processor = rewards_service::handlers::kinesis::processor(
        client.clone(),
        &rewards,
        stack.stream.source(),
    );
    let rewards_consumer = rewards_in_process(rewards_processor);
    audit_mapping(&audit, &stack, REWARDS_FUNCTION, rewards_consumer).await;

    let sweeper = Sweeper {
        pending: None,
        processor: rewards_service::handlers::kinesis::processor(
            client.clone(),
            &rewards,
            stack.stream.source(),
        ),
        order_history: Some(order_service::self_read::history::processor(
            client.clone(),
            &orders,
            stack.stream.source(),
        )),
        grace_seconds: 0,
        limit: 100,
        pattern: service_runtime::config::OutboxPattern::SelfRead,
    };
    let report = audit
        .as_function(
            "ParkedRedriveFunction",
            invoke_sweeper(&sweeper, json!({"action": REDRIVE_PARKED})),
        )
        .await;
    assert_eq!(report.found, 2, "one parked event per consumer: {report:?}");

    audit_rewards_api(&audit, client, &rewards).await;
}

/// Drains `function`'s local Kinesis mapping through `consumer`, audited as `function`.
async fn audit_mapping<I: devkit::Invoke<aws_lambda_events::kinesis::KinesisEvent>>(
    audit: &Audit<'_>,
    stack: &SelfReadStack,
    function: &str,
    consumer: I,
) {
    let drained = async {
        let mut mapping = stack.trigger(function, consumer).await.unwrap();
        mapping.drain().await.unwrap();
    };
    audit.as_function(function, drained).await;
}
