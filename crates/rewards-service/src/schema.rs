//! How the rewards service lays out its items in the rewards table, beside the outbox engine's
//! progress and parked items (`dynamodb_outbox::table`): key shapes and attribute names here and
//! nowhere else.

pub use dynamodb_outbox::table::{PK, SK};

/// Balance attribute on a customer's balance item (updated with `ADD`).
pub const POINTS: &str = "points";

// A customer's balance and ledger share a partition; each rewarded order has its own reward
// record, the consumer's idempotency record.

/// The reward record of an order: one per order, whatever the events about it say, so an
/// order is rewarded once, and to one customer.
pub fn order_reward_pk(order_id: &str) -> String {
    format!("ORDER#{order_id}")
}
/// Sort key of an order's reward record.
pub const ORDER_REWARD_SK: &str = "REWARD";
/// On the reward record: the customer the order was rewarded to.
pub const REWARDED_CUSTOMER: &str = "customer_id";
/// Partition of a customer's balance and ledger.
pub fn customer_pk(customer_id: &str) -> String {
    format!("CUSTOMER#{customer_id}")
}
/// Sort key of a customer's balance.
pub const BALANCE_SK: &str = "BALANCE";
/// Sort keys of a customer's ledger lines start with this.
pub const LEDGER_SK_PREFIX: &str = "LEDGER#";
/// Ordered by when the order was placed, then by order id. Deduplication does not rest on
/// it (an event redelivered with another `occurred_at` would land elsewhere): the order's
/// reward record, written in the same transaction, does.
pub fn ledger_sk(occurred_at: &str, order_id: &str) -> String {
    format!("{LEDGER_SK_PREFIX}{occurred_at}#{order_id}")
}
