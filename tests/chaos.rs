//! A seeded, smaller chaos run (`make chaos` runs 10,000 orders): faults, duplicates, racing
//! consumers and crashes, then every invariant of the outbox checked on the tables; the same for
//! patterns 2 and 3 and the broker deployment (`make chaos PATTERN=cdc|self-read|broker`), one
//! test body for the four. And the checker itself, run over tables in which one
//! promise is broken on purpose.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::AttributeValue;
use devkit::chaos::{run, ChaosOptions, ChaosReport};
use devkit::invariants::{self, EventSource, Invariant, Violation};
use devkit::kinesis::LocalKinesis;
use devkit::moto::LocalMoto;
use devkit::proxy::{Fault, FaultPlan};
use devkit::stack::in_process;
use devkit::Pattern;
use dynamodb_outbox::testing::schema;
use order_service::schema as okeys;
use outbox_tests::*;
use rewards_service::schema as rkeys;

/// A seeded run of `pattern`: every invariant holds, and the faults, crashes and duplicates it
/// claims really happened.
async fn chaos_holds(pattern: Pattern) {
    let report = run(pattern, ChaosOptions::new(250, 42)).await.unwrap();
    chaos_report_holds(pattern, report);
}

fn chaos_report_holds(pattern: Pattern, report: ChaosReport) {
    println!("{}", report.summary());
    assert!(
        report.violations.is_empty(),
        "{pattern}: {:#?}",
        report.violations
    );
    assert!(
        report.orders_ok > 200,
        "{pattern}: most orders get through: {}",
        report.summary()
    );
    // The run proves something only if the faults really happened, at the proxy.
    assert!(
        report.proxy.fault(Fault::LostResponse) > 0
            && report.crashes > 0
            && report.duplicated_in_batch > 0,
        "{pattern}: {}",
        report.summary()
    );
    assert!(
        report.deliveries >= 2 * report.orders_ok,
        "{pattern}: two mappings deliver every record"
    );
    report.verdict().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_is_lost_and_nothing_is_applied_twice_under_chaos() {
    chaos_holds(Pattern::Outbox).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_cdc_nothing_is_lost_nothing_is_applied_twice_and_every_order_is_released() {
    chaos_holds(Pattern::Cdc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_self_read_every_accepted_order_exists_once_with_one_ledger_entry() {
    let test = "chaos: self-read";
    if LocalKinesis::start_or_skip(test).await.unwrap().is_none() {
        return;
    }
    chaos_holds(Pattern::SelfRead).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn through_the_broker_every_order_is_published_and_applied_once_and_no_queue_keeps_a_message()
{
    let test = "chaos: broker";
    if LocalMoto::start_or_skip(test).await.unwrap().is_none() {
        return;
    }
    let report = run(Pattern::Broker, ChaosOptions::new(250, 42))
        .await
        .unwrap();
    // The broker's own faults happened: calls failed, answers lost, entries of a call failed.
    let broker = report
        .broker_proxy
        .clone()
        .expect("a proxy in front of moto");
    for fault in [
        Fault::ServerError,
        Fault::LostResponse,
        Fault::PartialFailure,
    ] {
        assert!(broker.fault(fault) > 0, "{fault:?}: {}", broker.summary());
    }
    assert!(
        broker.requests.contains_key("PutEvents") && broker.requests.contains_key("ReceiveMessage")
    );
    chaos_report_holds(Pattern::Broker, report);
}

/// Pattern 2's checker on orders the CDC order-writer placed and no consumer read: each order
/// is still marked and has no ledger entry, and nothing else is reported.
#[tokio::test]
async fn the_cdc_checker_reports_orders_still_marked_and_without_their_ledger_entry() {
    let stack = devkit::Stack::start_pattern(devkit::Pattern::Cdc)
        .await
        .unwrap();
    let store = stack.cdc_orders();
    let mut acknowledged = BTreeSet::new();
    for customer in ["c-1", "c-2"] {
        let request = post_order(&order_body(customer, &[("A", 1, 1_200)]), &[]);
        let reply = call_order_api(&store, request).await;
        assert_eq!(reply.status, 201, "{:?}", reply.json);
        acknowledged.insert(reply.json["order_id"].as_str().unwrap().to_owned());
    }
    let check = |orders: &[Item], rewards: &[Item]| {
        invariants::check_source(orders, rewards, &acknowledged, EventSource::OrderItems)
    };
    let before = check(
        &scan(&stack, &stack.tables.orders).await,
        &scan(&stack, &stack.tables.rewards).await,
    );
    assert_eq!(
        invariants_broken(&before),
        BTreeSet::from([
            Invariant::OrderIsReleased,
            Invariant::OrderHasOneLedgerEntry
        ]),
        "{before:#?}"
    );
    assert_eq!(before.len(), 4, "two of each: {before:#?}");

    let mut trigger = stack
        .trigger(devkit::stack::in_process_changes(stack.service(), 4))
        .unwrap();
    trigger.drain().await.unwrap();
    let after = check(
        &scan(&stack, &stack.tables.orders).await,
        &scan(&stack, &stack.tables.rewards).await,
    );
    assert!(after.is_empty(), "{after:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chaos_run_that_injected_no_faults_is_not_a_pass() {
    let mut options = ChaosOptions::new(20, 7);
    options.faults = FaultPlan {
        seed: 7,
        ..FaultPlan::none()
    };
    let report = run(Pattern::Outbox, options).await.unwrap();
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert!(report.proxy.total_requests() > 0);
    let verdict = report.verdict().unwrap_err().to_string();
    assert!(
        verdict.contains("injected no faults") && verdict.contains("not a pass"),
        "{verdict}"
    );
}

/// The outbox's promises, checked on the tables.
async fn check_invariants(stack: &Stack, acknowledged: &BTreeSet<String>) -> Vec<Violation> {
    let orders = scan(stack, &stack.tables.orders).await;
    let rewards = scan(stack, &stack.tables.rewards).await;
    let outbox = EventSource::OutboxItems;
    invariants::check_source(&orders, &rewards, acknowledged, outbox)
}

/// Orders placed through the handler and consumed: tables on which every invariant holds.
async fn consistent_tables(customers: &[&str]) -> (Stack, BTreeSet<String>) {
    let stack = stack().await;
    let mut acknowledged = BTreeSet::new();
    for customer in customers {
        let order = place(&stack, customer, &[("A", 1, 1_200)]).await;
        acknowledged.insert(order.json["order_id"].as_str().unwrap().to_owned());
    }
    let mut trigger = stack.trigger(in_process(stack.service(), 4)).unwrap();
    trigger.drain().await.unwrap();
    (stack, acknowledged)
}

async fn put(stack: &Stack, table: &str, attributes: &[(&str, AttributeValue)]) {
    let mut request = stack.dynamo.client.put_item().table_name(table);
    for (name, value) in attributes {
        request = request.item(*name, value.clone());
    }
    request.send().await.unwrap();
}

fn text(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn invariants_broken(violations: &[Violation]) -> BTreeSet<Invariant> {
    violations.iter().map(|v| v.invariant).collect()
}

/// The checker's findings on `stack`, after asserting that they break `invariant` and no other,
/// and that the first one's evidence names `evidence`.
async fn only_broken(
    stack: &Stack,
    acknowledged: &BTreeSet<String>,
    invariant: Invariant,
    evidence: &str,
) -> Vec<Violation> {
    let violations = check_invariants(stack, acknowledged).await;
    assert_eq!(
        invariants_broken(&violations),
        BTreeSet::from([invariant]),
        "{violations:#?}"
    );
    assert!(
        violations[0].evidence.contains(evidence),
        "the evidence names {evidence}: {}",
        violations[0]
    );
    violations
}

#[tokio::test]
async fn the_checker_passes_consistent_tables_and_ignores_items_it_does_not_know() {
    let (stack, acknowledged) = consistent_tables(&["c-1", "c-2"]).await;
    let order_id = acknowledged.first().unwrap().clone();
    // A reward claim per order, as the rewards table may also carry, and an entity of the
    // orders table the checker has never heard of.
    put(
        &stack,
        &stack.tables.rewards,
        &[
            (schema::PK, text(&okeys::order_pk(&order_id))),
            (schema::SK, text("REWARD")),
            ("customer_id", text("c-1")),
            (rkeys::POINTS, AttributeValue::N("12".into())),
        ],
    )
    .await;
    put(
        &stack,
        &stack.tables.orders,
        &[
            (schema::PK, text("AUDIT#1")),
            (schema::SK, text("AUDIT")),
            (schema::ENTITY, text("AuditRecord")),
        ],
    )
    .await;
    let violations = check_invariants(&stack, &acknowledged).await;
    assert!(violations.is_empty(), "{violations:#?}");
}

#[tokio::test]
async fn the_checker_reports_an_acknowledged_order_that_was_never_stored() {
    let (stack, mut acknowledged) = consistent_tables(&["c-1"]).await;
    acknowledged.insert("acknowledged-but-lost".into());
    let missing = okeys::order_pk("acknowledged-but-lost");
    let lost = Invariant::AcknowledgedOrderIsStored;
    let violations = only_broken(&stack, &acknowledged, lost, &missing).await;
    assert_eq!(violations.len(), 1);
}

#[tokio::test]
async fn the_checker_reports_a_balance_that_has_no_ledger() {
    let (stack, acknowledged) = consistent_tables(&["c-1"]).await;
    put(
        &stack,
        &stack.tables.rewards,
        &[
            (schema::PK, text(&rkeys::customer_pk("ghost"))),
            (schema::SK, text(rkeys::BALANCE_SK)),
            (rkeys::POINTS, AttributeValue::N("50".into())),
        ],
    )
    .await;
    let no_ledger = Invariant::BalanceIsTheSumOfItsLedger;
    only_broken(
        &stack,
        &acknowledged,
        no_ledger,
        &rkeys::customer_pk("ghost"),
    )
    .await;
}

#[tokio::test]
async fn the_checker_reports_a_parked_event_as_unprocessed() {
    let (stack, acknowledged) = consistent_tables(&["c-1"]).await;
    // What the rewards consumer writes when it parks an event.
    let parked_pk = schema::parked_pk(rewards_service::consumer::NAME);
    put(
        &stack,
        &stack.tables.rewards,
        &[
            (schema::PK, text(&parked_pk)),
            (schema::SK, text("2026-11-30T00:00:00.000000Z#c-1#1")),
            ("reason", text("poison")),
        ],
    )
    .await;
    only_broken(&stack, &acknowledged, Invariant::EventIsProcessed, "parked").await;
}
