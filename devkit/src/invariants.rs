//! The outbox's promises, checked on what the two tables hold after a run: each broken promise
//! comes with the keys of the items that show it, so a user can look at them.
//!
//! Items the checker does not know (other entities, other key shapes) are left alone: the tables
//! may carry more than these promises are about.

use std::collections::{BTreeMap, BTreeSet};

use dynamodb_outbox::testing::schema;
use order_service::schema as okeys;
use rewards_service::consumer::NAME as REWARDS;
use rewards_service::schema as rkeys;

use crate::Item;

use crate::local::{ORDERS_TABLE_ID, REWARDS_TABLE_ID};

/// One promise of the outbox, as the chaos run states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    AcknowledgedOrderIsStored,
    OrderHasOneEventAndOneLedgerEntry,
    EventHasItsOrder,
    LedgerEntryHasItsOrder,
    LedgerEntryMatchesItsOrder,
    BalanceIsTheSumOfItsLedger,
    EventIsProcessed,
    ProcessedEventExpires,
    /// Pattern 2: the order item is the event; these replace the outbox event's.
    OrderHasOneLedgerEntry,
    OrderIsReleased,
}

/// Where the events a run checks live: outbox items beside the orders (pattern 1), or the order
/// items themselves with their pending marker (pattern 2, CDC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSource {
    OutboxItems,
    OrderItems,
}

impl Invariant {
    pub fn statement(self) -> &'static str {
        match self {
            Self::AcknowledgedOrderIsStored => "every acknowledged order (201) is stored",
            Self::OrderHasOneEventAndOneLedgerEntry => {
                "every stored order has exactly one outbox event and one ledger entry"
            }
            Self::EventHasItsOrder => "no outbox event without its order",
            Self::LedgerEntryHasItsOrder => "no ledger entry without its order",
            Self::LedgerEntryMatchesItsOrder => {
                "every ledger entry has its order's customer and points"
            }
            Self::BalanceIsTheSumOfItsLedger => {
                "every balance equals the sum of its customer's ledger, and every ledger has a balance"
            }
            Self::EventIsProcessed => "no outbox event left unprocessed (pending or parked)",
            Self::ProcessedEventExpires => "every processed outbox event carries expires_at",
            Self::OrderHasOneLedgerEntry => "every stored order has exactly one ledger entry",
            Self::OrderIsReleased => {
                "no order item left with its pending marker (waiting for rewards, or in the pending index)"
            }
        }
    }
}

/// One broken promise and the item keys that show it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    pub invariant: Invariant,
    pub evidence: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.invariant.statement(), self.evidence)
    }
}

/// Each broken invariant once, with how often it broke and its first `examples` violations.
pub fn describe(violations: &[Violation], examples: usize) -> Vec<String> {
    let mut by_invariant: BTreeMap<Invariant, Vec<&Violation>> = BTreeMap::new();
    for violation in violations {
        by_invariant
            .entry(violation.invariant)
            .or_default()
            .push(violation);
    }
    let mut lines = Vec::new();
    for (invariant, cases) in by_invariant {
        lines.push(format!(
            "BROKEN: {} ({} {})",
            invariant.statement(),
            cases.len(),
            if cases.len() == 1 { "case" } else { "cases" }
        ));
        for case in cases.iter().take(examples) {
            lines.push(format!("  {}", case.evidence));
        }
        if cases.len() > examples {
            lines.push(format!("  ... and {} more", cases.len() - examples));
        }
    }
    lines
}

fn text(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

/// `Table pk / sk`, the way to find the item again.
fn key(table: &str, item: &Item) -> String {
    format!(
        "{table} {} / {}",
        text(item, schema::PK).unwrap_or_default(),
        text(item, schema::SK).unwrap_or_default()
    )
}

/// An order item still waiting for rewards, or still in the pending index.
fn still_marked(item: &Item) -> bool {
    let waiting = item
        .get(schema::WAITING_CONSUMERS)
        .and_then(|v| v.as_ss().ok())
        .is_some_and(|consumers| consumers.iter().any(|c| c == REWARDS));
    waiting || item.contains_key(schema::PENDING_PK)
}

struct StoredOrder {
    customer: Option<String>,
    points: Option<i64>,
}

#[derive(Default)]
struct CustomerLedger {
    sum: i64,
    entries: usize,
}

/// Checks the invariants on the items of the two tables; `acknowledged` holds the ids of every
/// order whose request was answered 201.
pub fn check(
    orders_table: &[Item],
    rewards_table: &[Item],
    acknowledged: &BTreeSet<String>,
) -> Vec<Violation> {
    check_source(
        orders_table,
        rewards_table,
        acknowledged,
        EventSource::OutboxItems,
    )
}

/// [`check`] for the pattern whose events live in `source`.
pub fn check_source(
    orders_table: &[Item],
    rewards_table: &[Item],
    acknowledged: &BTreeSet<String>,
    source: EventSource,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut broken = |invariant, evidence: String| {
        violations.push(Violation {
            invariant,
            evidence,
        })
    };

    let (order_prefix, customer_prefix) = (okeys::order_pk(""), rkeys::customer_pk(""));
    let mut orders: BTreeMap<String, StoredOrder> = BTreeMap::new();
    let mut events_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in orders_table {
        let order_pk = text(item, schema::PK).unwrap_or_default();
        let order_of_key = order_pk
            .strip_prefix(order_prefix.as_str())
            .map(str::to_owned);
        match text(item, schema::ENTITY).as_deref() {
            Some(okeys::ENTITY_ORDER) => {
                let Some(order_id) = text(item, "order_id").or(order_of_key) else {
                    continue;
                };
                if source == EventSource::OrderItems && still_marked(item) {
                    broken(Invariant::OrderIsReleased, key(ORDERS_TABLE_ID, item));
                }
                orders.insert(
                    order_id,
                    StoredOrder {
                        customer: text(item, "customer_id"),
                        points: number(item, rkeys::POINTS),
                    },
                );
            }
            Some(schema::ENTITY_OUTBOX_EVENT) => {
                let Some(order_id) = text(item, "aggregate_id") else {
                    continue;
                };
                events_of
                    .entry(order_id)
                    .or_default()
                    .push(key(ORDERS_TABLE_ID, item));
                match text(item, schema::STATUS).as_deref() {
                    Some(schema::STATUS_PROCESSED) => {
                        if number(item, schema::EXPIRES_AT).is_none() {
                            broken(Invariant::ProcessedEventExpires, key(ORDERS_TABLE_ID, item));
                        }
                    }
                    status => broken(
                        Invariant::EventIsProcessed,
                        format!(
                            "{} has status {}",
                            key(ORDERS_TABLE_ID, item),
                            status.unwrap_or("(none)")
                        ),
                    ),
                }
            }
            _ => {}
        }
    }

    let mut ledger_of_order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut ledgers: BTreeMap<String, CustomerLedger> = BTreeMap::new();
    let mut balances: BTreeMap<String, (i64, String)> = BTreeMap::new();
    let parked_pk = schema::parked_pk(REWARDS);
    for item in rewards_table {
        let customer_pk = text(item, schema::PK).unwrap_or_default();
        if customer_pk == parked_pk {
            broken(
                Invariant::EventIsProcessed,
                format!("{} is a parked event", key(REWARDS_TABLE_ID, item)),
            );
            continue;
        }
        let Some(customer) = customer_pk.strip_prefix(customer_prefix.as_str()) else {
            continue;
        };
        let sort_key = text(item, schema::SK).unwrap_or_default();
        if sort_key == rkeys::BALANCE_SK {
            balances.insert(
                customer.to_owned(),
                (
                    number(item, rkeys::POINTS).unwrap_or(0),
                    key(REWARDS_TABLE_ID, item),
                ),
            );
        } else if sort_key.starts_with(rkeys::LEDGER_SK_PREFIX) {
            let order_id = text(item, "order_id").unwrap_or_default();
            let points = number(item, rkeys::POINTS);
            let ledger = ledgers.entry(customer.to_owned()).or_default();
            ledger.sum += points.unwrap_or(0);
            ledger.entries += 1;
            ledger_of_order
                .entry(order_id.clone())
                .or_default()
                .push(key(REWARDS_TABLE_ID, item));
            match orders.get(&order_id) {
                None => broken(
                    Invariant::LedgerEntryHasItsOrder,
                    format!(
                        "{} names order {order_id}; no {ORDERS_TABLE_ID} {} / {}",
                        key(REWARDS_TABLE_ID, item),
                        okeys::order_pk(&order_id),
                        okeys::ORDER_SK
                    ),
                ),
                Some(order)
                    if order.customer.as_deref() != Some(customer) || order.points != points =>
                {
                    broken(
                        Invariant::LedgerEntryMatchesItsOrder,
                        format!(
                            "{} ({customer}, {points:?} points) against {ORDERS_TABLE_ID} {} / {} ({:?}, {:?} points)",
                            key(REWARDS_TABLE_ID, item),
                            okeys::order_pk(&order_id),
                            okeys::ORDER_SK,
                            order.customer,
                            order.points
                        ),
                    )
                }
                Some(_) => {}
            }
        }
    }

    for order_id in acknowledged {
        if !orders.contains_key(order_id) {
            broken(
                Invariant::AcknowledgedOrderIsStored,
                format!(
                    "order {order_id} was acknowledged; no {ORDERS_TABLE_ID} {} / {}",
                    okeys::order_pk(order_id),
                    okeys::ORDER_SK
                ),
            );
        }
    }
    let no_keys = Vec::new();
    for order_id in orders.keys() {
        let events = events_of.get(order_id).unwrap_or(&no_keys);
        let ledger = ledger_of_order.get(order_id).unwrap_or(&no_keys);
        if source == EventSource::OrderItems {
            if ledger.len() != 1 {
                broken(
                    Invariant::OrderHasOneLedgerEntry,
                    format!(
                        "order {order_id}: {} ledger entries {ledger:?}",
                        ledger.len()
                    ),
                );
            }
        } else if events.len() != 1 || ledger.len() != 1 {
            broken(
                Invariant::OrderHasOneEventAndOneLedgerEntry,
                format!(
                    "order {order_id}: {} outbox events {events:?}, {} ledger entries {ledger:?}",
                    events.len(),
                    ledger.len()
                ),
            );
        }
    }
    for (order_id, events) in &events_of {
        if !orders.contains_key(order_id) {
            broken(
                Invariant::EventHasItsOrder,
                format!(
                    "{events:?} for order {order_id}; no {ORDERS_TABLE_ID} {} / {}",
                    okeys::order_pk(order_id),
                    okeys::ORDER_SK
                ),
            );
        }
    }
    let customers: BTreeSet<&String> = balances.keys().chain(ledgers.keys()).collect();
    for customer in customers {
        let ledger = ledgers.get(customer);
        let (sum, entries) = ledger.map_or((0, 0), |l| (l.sum, l.entries));
        match balances.get(customer) {
            Some((points, balance_key)) if *points != sum => broken(
                Invariant::BalanceIsTheSumOfItsLedger,
                format!("{balance_key} holds {points} points; its {entries} ledger entries sum to {sum}"),
            ),
            Some(_) => {}
            None => broken(
                Invariant::BalanceIsTheSumOfItsLedger,
                format!(
                    "no {REWARDS_TABLE_ID} {} / {}; its {entries} ledger entries sum to {sum}",
                    rkeys::customer_pk(customer),
                    rkeys::BALANCE_SK
                ),
            ),
        }
    }
    violations.sort();
    violations
}
