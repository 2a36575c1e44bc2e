//! The rewards consumer of `OrderPlaced`: given an event, its effect. The engine commits that
//! effect with the consumer's progress, so each order is credited exactly once, one customer's
//! orders in the order they were placed.

use dynamodb_outbox::{
    Consumer, Counter, Effect, Envelope, HandlerError, ItemKey, PoisonPolicy, Takes,
};
use order_service::domain::events::takes_order_placed;
use order_service::domain::OrderPlaced;
use serde_dynamo::{AttributeValue, Item};
use service_runtime::Timestamp;

use crate::domain::{LedgerEntry, Reward, MAX_BALANCE};
use crate::schema;

/// The consumer's name: its progress, its routing entry, its parked events.
pub const NAME: &str = "rewards";

/// Credits each placed order's points to its customer.
#[derive(Debug, Clone)]
pub struct RewardsConsumer {
    table: String,
}

impl RewardsConsumer {
    /// The consumer writing to the rewards table `table`.
    pub fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
        }
    }

    /// The rewards table.
    pub fn table(&self) -> &str {
        &self.table
    }
}

impl Consumer for RewardsConsumer {
    type Payload = OrderPlaced;

    fn name(&self) -> &str {
        NAME
    }

    /// `OrderPlaced` v2, and v1 events (written before v2, or published by pattern 3) upcast
    /// to it.
    fn takes(&self) -> Vec<Takes> {
        takes_order_placed()
    }

    /// Rewards add up in any order: one bad event must not hold back a customer's later
    /// rewards. It is parked, with its reason, for an operator to redrive after a fix.
    fn on_poison(&self) -> PoisonPolicy {
        PoisonPolicy::Park
    }

    /// Three writes: the order's reward record (new: an order is rewarded once, whatever event
    /// claims it again), the ledger line, and the balance (never past [`MAX_BALANCE`]).
    async fn effect(&self, event: &Envelope<OrderPlaced>) -> Result<Effect, HandlerError> {
        let reward = Reward::try_from(event).map_err(HandlerError::poison)?;
        let entry = LedgerEntry {
            order_id: reward.order_id.clone(),
            points: reward.points,
            event_id: reward.event_id.clone(),
            occurred_at: reward.occurred_at.clone(),
            applied_at: Timestamp::now().to_string(),
        };
        let keyed = |pk: String, sk: String| -> Result<Item, HandlerError> {
            let mut item: Item = serde_dynamo::to_item(&entry)
                .map_err(|e| HandlerError::poison(format!("ledger entry does not encode: {e}")))?;
            item.insert(schema::PK.into(), AttributeValue::S(pk));
            item.insert(schema::SK.into(), AttributeValue::S(sk));
            Ok(item)
        };
        let mut record = keyed(
            schema::order_reward_pk(&reward.order_id),
            schema::ORDER_REWARD_SK.to_owned(),
        )?;
        record.insert(
            schema::REWARDED_CUSTOMER.into(),
            AttributeValue::S(reward.customer_id.clone()),
        );
        let line = keyed(
            schema::customer_pk(&reward.customer_id),
            schema::ledger_sk(&reward.occurred_at, &reward.order_id),
        )?;
        let balance = Counter {
            table: self.table.clone(),
            key: ItemKey {
                pk: schema::customer_pk(&reward.customer_id),
                sk: schema::BALANCE_SK.to_owned(),
            },
            attribute: schema::POINTS.to_owned(),
        };
        Ok(Effect::new()
            .put_new(&self.table, record)
            .put(&self.table, line)
            .add_at_most(balance, reward.points, MAX_BALANCE))
    }
}
