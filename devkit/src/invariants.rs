//! The outbox's promises, checked on what the two tables hold after a run: each broken promise
//! comes with the keys of the items that show it, so a user can look at them.
//!
//! Items the checker does not know (other entities, other key shapes) are left alone: the tables
//! may carry more than these promises are about.

use std::collections::{BTreeMap, BTreeSet};

use dynamodb_outbox::testing::schema;
use order_service::schema as okeys;
use order_service::self_read::history::NAME as ORDER_HISTORY;
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
    /// Pattern 3: the event lives in the stream alone; this replaces the outbox event's.
    OrderExistsOnceWithOneLedgerEntry,
}

/// Where the events a run checks live: outbox items beside the orders (pattern 1), the order
/// items themselves with their pending marker (pattern 2, CDC), or the stream alone, the order
/// items written by order-history (pattern 3, self-read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSource {
    OutboxItems,
    OrderItems,
    Stream,
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
            Self::OrderExistsOnceWithOneLedgerEntry => {
                "every stored order exists exactly once, with one ledger entry"
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
    /// How many order items name this order (one, unless it was written twice).
    items: usize,
}

#[derive(Default)]
struct CustomerLedger {
    sum: i64,
    entries: usize,
}

/// What the two tables hold, as the invariants speak of it; the violations found reading them.
#[derive(Default)]
struct Findings {
    orders: BTreeMap<String, StoredOrder>,
    events_of: BTreeMap<String, Vec<String>>,
    ledger_of_order: BTreeMap<String, Vec<String>>,
    ledgers: BTreeMap<String, CustomerLedger>,
    balances: BTreeMap<String, (i64, String)>,
    violations: Vec<Violation>,
}

impl Findings {
    fn broken(&mut self, invariant: Invariant, evidence: String) {
        self.violations.push(Violation {
            invariant,
            evidence,
        });
    }
}

/// Checks the invariants on the items of the two tables, of the pattern whose events live in
/// `source`; `acknowledged` holds the ids of every order whose request was answered as taken.
pub fn check_source(
    orders_table: &[Item],
    rewards_table: &[Item],
    acknowledged: &BTreeSet<String>,
    source: EventSource,
) -> Vec<Violation> {
    let mut found = Findings::default();
    for item in orders_table {
        read_orders_item(&mut found, item, source);
    }
    for item in rewards_table {
        read_rewards_item(&mut found, item);
    }
    check_orders(&mut found, acknowledged, source);
    check_balances(&mut found);
    found.violations.sort();
    found.violations
}

fn read_orders_item(found: &mut Findings, item: &Item, source: EventSource) {
    let order_pk = text(item, schema::PK).unwrap_or_default();
    if source == EventSource::Stream && order_pk == schema::parked_pk(ORDER_HISTORY) {
        let evidence = format!("order-history parked {}", key(ORDERS_TABLE_ID, item));
        found.broken(Invariant::EventIsProcessed, evidence);
    }
    match text(item, schema::ENTITY).as_deref() {
        Some(okeys::ENTITY_ORDER) => {
            let order_of_key = order_pk.strip_prefix(okeys::order_pk("").as_str());
            let Some(order_id) = text(item, "order_id").or(order_of_key.map(str::to_owned)) else {
                return;
            };
            if source == EventSource::OrderItems && still_marked(item) {
                found.broken(Invariant::OrderIsReleased, key(ORDERS_TABLE_ID, item));
            }
            let order = found.orders.entry(order_id).or_insert(StoredOrder {
                customer: text(item, "customer_id"),
                points: number(item, rkeys::POINTS),
                items: 0,
            });
            order.items += 1;
        }
        Some(schema::ENTITY_OUTBOX_EVENT) => {
            let Some(order_id) = text(item, "aggregate_id") else {
                return;
            };
            let event = key(ORDERS_TABLE_ID, item);
            found
                .events_of
                .entry(order_id)
                .or_default()
                .push(event.clone());
            match text(item, schema::STATUS).as_deref() {
                Some(schema::STATUS_PROCESSED) if number(item, schema::EXPIRES_AT).is_none() => {
                    found.broken(Invariant::ProcessedEventExpires, event)
                }
                Some(schema::STATUS_PROCESSED) => {}
                status => found.broken(
                    Invariant::EventIsProcessed,
                    format!("{event} has status {}", status.unwrap_or("(none)")),
                ),
            }
        }
        _ => {}
    }
}

fn read_rewards_item(found: &mut Findings, item: &Item) {
    let customer_pk = text(item, schema::PK).unwrap_or_default();
    if customer_pk == schema::parked_pk(REWARDS) {
        let evidence = format!("{} is a parked event", key(REWARDS_TABLE_ID, item));
        found.broken(Invariant::EventIsProcessed, evidence);
        return;
    }
    let Some(customer) = customer_pk.strip_prefix(rkeys::customer_pk("").as_str()) else {
        return;
    };
    let sort_key = text(item, schema::SK).unwrap_or_default();
    let here = key(REWARDS_TABLE_ID, item);
    if sort_key == rkeys::BALANCE_SK {
        let points = number(item, rkeys::POINTS).unwrap_or(0);
        found.balances.insert(customer.to_owned(), (points, here));
        return;
    }
    if !sort_key.starts_with(rkeys::LEDGER_SK_PREFIX) {
        return;
    }
    let order_id = text(item, "order_id").unwrap_or_default();
    let points = number(item, rkeys::POINTS);
    let ledger = found.ledgers.entry(customer.to_owned()).or_default();
    ledger.sum += points.unwrap_or(0);
    ledger.entries += 1;
    let entries = found.ledger_of_order.entry(order_id.clone()).or_default();
    entries.push(here.clone());
    let order_key = format!(
        "{ORDERS_TABLE_ID} {} / {}",
        okeys::order_pk(&order_id),
        okeys::ORDER_SK
    );
    match found.orders.get(&order_id) {
        None => found.broken(
            Invariant::LedgerEntryHasItsOrder,
            format!("{here} names order {order_id}; no {order_key}"),
        ),
        Some(order) if order.customer.as_deref() != Some(customer) || order.points != points => {
            let evidence = format!(
                "{here} ({customer}, {points:?} points) against {order_key} ({:?}, {:?} points)",
                order.customer, order.points
            );
            found.broken(Invariant::LedgerEntryMatchesItsOrder, evidence)
        }
        Some(_) => {}
    }
}

/// Every acknowledged order stored, each stored order with its one event (where events are
/// items) and its one ledger entry, every event with its order.
fn check_orders(found: &mut Findings, acknowledged: &BTreeSet<String>, source: EventSource) {
    let missing = |order_id: &str| {
        let order_pk = okeys::order_pk(order_id);
        format!("no {ORDERS_TABLE_ID} {order_pk} / {}", okeys::ORDER_SK)
    };
    let mut broken = Vec::new();
    for order_id in acknowledged
        .iter()
        .filter(|id| !found.orders.contains_key(*id))
    {
        let evidence = format!("order {order_id} was acknowledged; {}", missing(order_id));
        broken.push((Invariant::AcknowledgedOrderIsStored, evidence));
    }
    let no_keys = Vec::new();
    for (order_id, order) in &found.orders {
        let events = found.events_of.get(order_id).unwrap_or(&no_keys);
        let ledger = found.ledger_of_order.get(order_id).unwrap_or(&no_keys);
        let (e, l, items) = (events.len(), ledger.len(), order.items);
        let (invariant, evidence) = match source {
            EventSource::OrderItems if l != 1 => (
                Invariant::OrderHasOneLedgerEntry,
                format!("{l} ledger entries {ledger:?}"),
            ),
            EventSource::Stream if items != 1 || l != 1 => (
                Invariant::OrderExistsOnceWithOneLedgerEntry,
                format!("{items} order items, {l} ledger entries"),
            ),
            EventSource::OutboxItems if e != 1 || l != 1 => (
                Invariant::OrderHasOneEventAndOneLedgerEntry,
                format!("{e} outbox events {events:?}, {l} ledger entries {ledger:?}"),
            ),
            _ => continue,
        };
        broken.push((invariant, format!("order {order_id}: {evidence}")));
    }
    for (order_id, events) in &found.events_of {
        if !found.orders.contains_key(order_id) {
            let evidence = format!("{events:?} for order {order_id}; {}", missing(order_id));
            broken.push((Invariant::EventHasItsOrder, evidence));
        }
    }
    for (invariant, evidence) in broken {
        found.broken(invariant, evidence);
    }
}

/// Every balance the sum of its customer's ledger, every ledger with a balance.
fn check_balances(found: &mut Findings) {
    let customers: BTreeSet<String> = found
        .balances
        .keys()
        .chain(found.ledgers.keys())
        .cloned()
        .collect();
    for customer in customers {
        let ledger = found.ledgers.get(&customer);
        let (sum, entries) = ledger.map_or((0, 0), |l| (l.sum, l.entries));
        let evidence = match found.balances.get(&customer) {
            Some((points, _)) if *points == sum => continue,
            Some((points, balance_key)) => {
                format!("{balance_key} holds {points} points; its {entries} ledger entries sum to {sum}")
            }
            None => format!(
                "no {REWARDS_TABLE_ID} {} / {}; its {entries} ledger entries sum to {sum}",
                rkeys::customer_pk(&customer),
                rkeys::BALANCE_SK
            ),
        };
        found.broken(Invariant::BalanceIsTheSumOfItsLedger, evidence);
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;

    use super::*;

    /// An item of `(name, value)` pairs; points are numbers, the rest text.
    fn item(attributes: &[(&str, &str)]) -> Item {
        let value = |name: &str, v: &str| match name {
            rkeys::POINTS => AttributeValue::N(v.to_owned()),
            _ => AttributeValue::S(v.to_owned()),
        };
        attributes
            .iter()
            .map(|(name, v)| ((*name).to_owned(), value(name, v)))
            .collect()
    }

    fn order(pk: &str, order_id: &str) -> Item {
        let (sk, entity) = (okeys::ORDER_SK, okeys::ENTITY_ORDER);
        let attributes = [
            ("order_id", order_id),
            ("customer_id", "c-1"),
            (rkeys::POINTS, "12"),
        ];
        let mut order = item(&[(schema::PK, pk), (schema::SK, sk), (schema::ENTITY, entity)]);
        order.extend(item(&attributes));
        order
    }

    #[test]
    fn under_self_read_an_order_written_twice_or_without_its_ledger_entry_and_a_parked_event_are_reported(
    ) {
        let (customer, ledger_sk) = (rkeys::customer_pk("c-1"), rkeys::ledger_sk("t", "o-1"));
        let ledger = [(schema::PK, customer.as_str()), (schema::SK, &ledger_sk)];
        let mut entry = item(&ledger);
        entry.extend(item(&[("order_id", "o-1"), (rkeys::POINTS, "12")]));
        let balance = [
            (schema::PK, customer.as_str()),
            (schema::SK, rkeys::BALANCE_SK),
        ];
        let mut balance = item(&balance);
        balance.extend(item(&[(rkeys::POINTS, "12")]));
        let (rewards, acknowledged) = ([entry, balance], BTreeSet::from(["o-1".to_owned()]));
        let check = |orders: &[Item], source| {
            let violations = check_source(orders, &rewards, &acknowledged, source);
            violations.iter().map(|v| v.invariant).collect::<Vec<_>>()
        };
        let one_order = [order(&okeys::order_pk("o-1"), "o-1")];
        assert_eq!(check(&one_order, EventSource::Stream), []);
        // The outbox's promise is broken by the same tables: no outbox event beside the order.
        let outbox = check(&one_order, EventSource::OutboxItems);
        assert_eq!(outbox, [Invariant::OrderHasOneEventAndOneLedgerEntry]);

        let parked_pk = schema::parked_pk(ORDER_HISTORY);
        let broken = [
            order(&okeys::order_pk("o-1"), "o-1"),
            order("ORDER#o-1-again", "o-1"),
            order(&okeys::order_pk("o-2"), "o-2"),
            item(&[(schema::PK, &parked_pk), (schema::SK, "t#o-3")]),
        ];
        let once = Invariant::OrderExistsOnceWithOneLedgerEntry;
        let expected = [Invariant::EventIsProcessed, once, once];
        assert_eq!(check(&broken, EventSource::Stream), expected);
    }
}
