//! The three patterns and the broker deployment behind one harness, which the chaos run
//! ([`crate::chaos`]) and the demo ([`crate::demo`]) drive: how a pattern's order API takes an
//! order, how its consumers read their source (racing and crashing, for the chaos run), what
//! redrives what they leave, and where its events live for the invariants. Patterns 1 and 2
//! share the DynamoDB stream's stack ([`stream`]); pattern 3 has kinesalite's ([`self_read`]);
//! the broker deployment adds moto's bus and queues ([`broker`]).

use anyhow::Result;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use dynamodb_outbox::testing::CrashPoint;
use rewards_service::store::dynamodb::DynamoRewardsStore;

use crate::chaos::{ConsumerChaos, Faults};
use crate::demo::DemoOrders;
use crate::invariants::{EventSource, Violation};
use crate::local::{LocalDynamo, Tables};
use crate::metrics::Collector;
use crate::trigger::TriggerStats;

pub mod broker;
pub mod self_read;
pub mod stream;

/// A pattern's order API handler, invoked in process.
pub(crate) trait OrderApi {
    async fn handle(&self, request: ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse>;
}

/// One pattern's local stack, as the chaos run and the demo drive it.
pub(crate) trait Harness {
    /// What the order API answers an order it took: 201 (stored), or 202 (published).
    const ACCEPTED: i64 = 201;
    /// Where a crashing consumer dies: before its second write (the mark or the release) when it
    /// makes two, right after its one commit otherwise.
    fn crash_point(&self) -> CrashPoint {
        CrashPoint::AfterCommit
    }
    type Api: OrderApi;

    fn dynamo(&self) -> &LocalDynamo;
    /// The Kinesis server, for the pattern that publishes to one.
    fn kinesis_endpoint(&self) -> Option<&str> {
        None
    }
    /// The broker's server (moto), for the deployment that relays to one.
    fn broker_endpoint(&self) -> Option<&str> {
        None
    }
    fn tables(&self) -> Tables;
    fn rewards(&self) -> &DynamoRewardsStore;
    /// Where the events the invariants speak of live: outbox items, unless the pattern has none.
    fn events(&self) -> EventSource {
        EventSource::OutboxItems
    }

    /// The order API, its clients through `faults` when given.
    async fn order_api(&self, faults: Option<&Faults>) -> Result<Self::Api>;
    /// Every consumer read by two racing mappings at once until its source is drained, the
    /// first mapping duplicating records, both crashing as `chaos` says, writing through
    /// `faults`; the mappings' counts summed.
    async fn consume_racing(&self, chaos: &ConsumerChaos, faults: &Faults) -> Result<TriggerStats>;
    /// The sweeper's redrive of the events still pending, through `faults` (and what else the
    /// pattern's runbook redrives, consumed as `chaos` says): how many it redrove (a pattern
    /// without pending events: what its runbook's replay delivered again), or `None` when
    /// nothing takes back what the mappings give up.
    async fn sweep(&self, chaos: &ConsumerChaos, faults: &Faults) -> Result<Option<usize>>;
    /// What the run left undone that the tables do not show (messages left in a queue), as
    /// broken invariants.
    async fn leftovers(&self) -> Result<Vec<Violation>> {
        Ok(Vec::new())
    }

    /// The demo's opening lines: where the stack runs.
    fn describe(&self) -> Vec<String>;
    /// The demo's lines on the orders placed, and what the pattern shows of them before any
    /// consumer ran.
    async fn demo_placed(&self, api: &Self::Api, orders: &DemoOrders) -> Result<()>;
    /// The demo's delivery of the source to the consumers, then of all of it again; how many
    /// events the second delivery brought again.
    async fn demo_deliver(
        &self,
        api: &Self::Api,
        orders: &DemoOrders,
        concurrency: usize,
    ) -> Result<usize>;
    /// What the pattern promises beyond the balances, checked after the demo; the closing
    /// sentence's lead.
    async fn demo_check(
        &self,
        api: &Self::Api,
        orders: &DemoOrders,
        metrics: &Collector,
        redelivered: usize,
    ) -> Result<&'static str>;
}
